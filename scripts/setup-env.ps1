# Prepares a Windows machine for Preview Desktop from a source checkout: a virtual environment in .venv with the
# project and its test tools. Dot-sourced by run-app.ps1 and run-tests.ps1; safe to run again (it only does what is
# missing). The Windows twin of scripts/setup-env.sh, which also installs Debian packages; here it only says what
# to install: redis-server (farm tests; without it they skip) and ffmpeg (checks and benchmarks).
$ErrorActionPreference = "Stop"
$Root = Split-Path -Parent $PSScriptRoot
$Venv = Join-Path $Root ".venv"
$VenvPython = Join-Path $Venv "Scripts\python.exe"

function Find-Python {
    if ($env:PYTHON) { return @($env:PYTHON) }
    if (Get-Command py -ErrorAction SilentlyContinue) { return @("py", "-3") }  # the python.org launcher
    if (Get-Command python -ErrorAction SilentlyContinue) { return @("python") }
    throw "setup: no Python found; install Python 3.10 or newer from python.org (with the py launcher)"
}

if (-not (Test-Path $VenvPython)) {
    $python = @(Find-Python)
    $exe = $python[0]; $pyArgs = @($python | Select-Object -Skip 1)
    & $exe @pyArgs -c "import sys; assert sys.version_info >= (3, 10), 'Python 3.10 or newer is needed'"
    if ($LASTEXITCODE -ne 0) { throw "setup: Python 3.10 or newer is needed" }
    Write-Host "setup: creating $Venv"
    & $exe @pyArgs -m venv $Venv
    if ($LASTEXITCODE -ne 0) { throw "setup: could not create $Venv" }
}

$stamp = Join-Path $Venv ".deps-stamp"
$want = (Get-FileHash -Algorithm SHA256 (Join-Path $Root "pyproject.toml")).Hash.ToLower()
if (-not (Test-Path $stamp) -or (Get-Content $stamp -Raw).Trim() -ne $want) {
    Write-Host "setup: installing Python dependencies into .venv"
    & $VenvPython -m pip install -q --disable-pip-version-check --upgrade pip
    & $VenvPython -m pip install -q --disable-pip-version-check -e "$Root[test]"
    if ($LASTEXITCODE -ne 0) { throw "setup: pip install failed" }
    Set-Content -Path $stamp -Value $want -NoNewline
}

foreach ($tool in @("redis-server", "ffmpeg")) {
    if (-not (Get-Command $tool -ErrorAction SilentlyContinue)) {
        Write-Host "setup: $tool is not on PATH (see docs/development.md); tests that need it are skipped"
    }
}
