; Inno Setup 6 script: installs the one-folder PyInstaller build (dist\preview-desktop) as "Preview Desktop".
;
;   iscc /DAppVersion=0.1.0 packaging\windows\preview-desktop.iss
;
; Output: dist\PreviewDesktop-<version>-windows-x64-setup.exe. To sign the installer and uninstaller, define Sign
; and name a sign tool called "signtool" on the command line ($f is the file, $q a double quote):
;   iscc /DAppVersion=0.1.0 /DSign "/Ssigntool=signtool.exe sign /f $qcert.pfx$q /p $qPASSWORD$q /fd sha256 /tr TIMESTAMP_URL /td sha256 $f" packaging\windows\preview-desktop.iss
; The certificate comes from CI secrets (docs/packaging.md, "Signing"), never from the repository. The two
; executables inside dist\preview-desktop are signed before this step (release workflow).

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#define AppName "Preview Desktop"
#define AppExe "preview-desktop.exe"
#define CliExe "preview-desktop-cli.exe"
#define SourceRoot "..\..\dist\preview-desktop"

[Setup]
; Never change AppId: upgrades and the uninstaller find earlier installs by it.
AppId={{761F8A2A-9CE8-49AA-AF89-346447739B94}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Preview Desktop
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
; Per-user install by default (no admin rights needed); the dialog offers all users.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64
ArchitecturesInstallIn64BitMode=x64
MinVersion=10.0
OutputDir=..\..\dist
OutputBaseFilename=PreviewDesktop-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\preview-desktop.ico
UninstallDisplayIcon={app}\{#AppExe}
; The licence page shows the GPL-3.0 the program and the bundle are distributed under (the notices: Start menu).
LicenseFile=..\..\LICENSE
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=yes
CloseApplications=yes
#ifdef Sign
SignTool=signtool
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add preview-desktop-cli to PATH (for --worker and the command line)"; GroupDescription: "Command line:"; Flags: unchecked

[Files]
Source: "{#SourceRoot}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\{#AppName} worker (headless)"; Filename: "{app}\{#CliExe}"; Parameters: "--worker"
Name: "{group}\Third-party notices"; Filename: "{app}\_internal\THIRD_PARTY_NOTICES.txt"
Name: "{group}\Licence (GPL-3.0)"; Filename: "{app}\_internal\LICENSE"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; PATH entry for the console executable's folder; removed again by the uninstaller (see [Code]).
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}')) and not IsAdminInstallMode
Root: HKLM; Subkey: "SYSTEM\CurrentControlSet\Control\Session Manager\Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}')) and IsAdminInstallMode

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only what the program writes next to itself; user data (%LOCALAPPDATA%\preview-desktop) is kept.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"

[Code]
function PathKeyRoot(): Integer;
begin
  if IsAdminInstallMode then Result := HKEY_LOCAL_MACHINE else Result := HKEY_CURRENT_USER;
end;

function PathKeyName(): String;
begin
  if IsAdminInstallMode then
    Result := 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment'
  else
    Result := 'Environment';
end;

function NeedsAddPath(Dir: String): Boolean;
var
  Paths: String;
begin
  if not RegQueryStringValue(PathKeyRoot(), PathKeyName(), 'Path', Paths) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') = 0;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Paths, Dir: String;
  P: Integer;
begin
  if CurUninstallStep <> usPostUninstall then exit;
  if not RegQueryStringValue(PathKeyRoot(), PathKeyName(), 'Path', Paths) then exit;
  Dir := ExpandConstant('{app}');
  P := Pos(';' + Uppercase(Dir), Uppercase(Paths));
  if P > 0 then
  begin
    Delete(Paths, P, Length(Dir) + 1);
    RegWriteExpandStringValue(PathKeyRoot(), PathKeyName(), 'Path', Paths);
  end;
end;
