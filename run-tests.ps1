# Runs the whole check on Windows: lint (ruff), types (mypy), then the test suite. Sets up what it needs first.
# Extra arguments go to pytest, e.g. .\run-tests.ps1 tests/unit -x. The twin of ./run-tests.
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
. "$PSScriptRoot\scripts\setup-env.ps1"
if (-not $env:QT_QPA_PLATFORM) { $env:QT_QPA_PLATFORM = "offscreen" }
if ($args.Count -eq 0) {
    Write-Host "== ruff"; & $VenvPython -m ruff check preview_desktop tests
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    Write-Host "== mypy"; & $VenvPython -m mypy
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}
Write-Host "== pytest"
& $VenvPython -m pytest @args
exit $LASTEXITCODE
