; Inno Setup script: Windows installer for the one-folder app in dist\ctseg-gui.
; Built by packaging/windows-installer.yml:  iscc /DAppVersion=0.1.0 packaging\ctseg-gui.iss
; Installs per user by default (no administrator needed); the user may choose all users.
; Settings, downloaded models and logs live in the user's folders (platformdirs), never in {app},
; so uninstalling or upgrading leaves them alone.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif

[Setup]
AppId={{6E0C1C0B-6B9A-4C1E-9E0D-2C1B7D7A5C31}
AppName=ctseg-gui
AppVersion={#AppVersion}
AppPublisher=ctseg-gui developers
DefaultDirName={autopf}\ctseg-gui
DefaultGroupName=ctseg-gui
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\dist
OutputBaseFilename=ctseg-gui-{#AppVersion}-windows-x64-setup
Compression=lzma2/max
SolidCompression=yes
LZMAUseSeparateProcess=yes
UninstallDisplayIcon={app}\ctseg-gui.exe
WizardStyle=modern
LicenseFile=..\NOTICE

[Tasks]
Name: "desktopicon"; Description: "Create a &desktop shortcut"; Flags: unchecked

[Files]
Source: "..\dist\ctseg-gui\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\ctseg-gui"; Filename: "{app}\ctseg-gui.exe"
Name: "{autodesktop}\ctseg-gui"; Filename: "{app}\ctseg-gui.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\ctseg-gui.exe"; Description: "Start ctseg-gui"; Flags: nowait postinstall skipifsilent
