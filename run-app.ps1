# Runs Preview Desktop from this checkout on Windows (the window by default; any arguments pass through, e.g.
# --worker). Sets up what it needs first: a .venv with the dependencies. The twin of ./run-app.
$ErrorActionPreference = "Stop"
Set-Location $PSScriptRoot
. "$PSScriptRoot\scripts\setup-env.ps1"
& (Join-Path $Venv "Scripts\preview-desktop.exe") @args
exit $LASTEXITCODE
