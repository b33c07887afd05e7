#!/usr/bin/env bash
# macOS: build "Preview Desktop.app" with PyInstaller (the spec's BUNDLE), sign it when an identity is given,
# pack it into dist/PreviewDesktop-VERSION-macos-ARCH.dmg with hdiutil, and notarise the image when credentials
# are given. Runs on macOS only (hdiutil, codesign, xcrun).
#
#   packaging/macos/make-dmg.sh [--no-build]
#
# Signing (all optional; unsigned builds work locally but Gatekeeper blocks them elsewhere):
#   MACOS_CODESIGN_IDENTITY  "Developer ID Application: Name (TEAMID)" - in the login or a CI keychain
#   MACOS_NOTARY_APPLE_ID, MACOS_NOTARY_TEAM_ID, MACOS_NOTARY_PASSWORD (app-specific password) - notarisation
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ "$(uname -s)" = Darwin ] || { echo "make-dmg: macOS only" >&2; exit 2; }
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' preview_desktop/__init__.py)"
ARCH="$(uname -m)"
APP="dist/Preview Desktop.app"
DMG="dist/PreviewDesktop-$VERSION-macos-$ARCH.dmg"
IDENTITY="${MACOS_CODESIGN_IDENTITY:-}"

if [ "${1:-}" != "--no-build" ]; then
  "$PYTHON" -c "import PyInstaller" 2>/dev/null || "$PYTHON" -m pip install -q -e "$ROOT[package]"
  # The spec passes MACOS_CODESIGN_IDENTITY to PyInstaller, which signs every binary with the hardened runtime.
  "$PYTHON" -m PyInstaller packaging/preview-desktop.spec --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build
fi
[ -d "$APP" ] || { echo "make-dmg: $APP missing" >&2; exit 1; }

# Quick check that the frozen program starts at all before we spend minutes on signing and notarising.
"$APP/Contents/MacOS/preview-desktop" --version

if [ -n "$IDENTITY" ]; then
  codesign --force --deep --timestamp --options runtime \
    --entitlements packaging/macos/entitlements.plist --sign "$IDENTITY" "$APP"
  codesign --verify --deep --strict --verbose=2 "$APP"
fi

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
cp -R "$APP" "$staging/"
ln -s /Applications "$staging/Applications"
rm -f "$DMG"
hdiutil create -volname "Preview Desktop" -srcfolder "$staging" -fs HFS+ -format UDZO -imagekey zlib-level=9 -ov "$DMG"

if [ -n "$IDENTITY" ]; then
  codesign --force --timestamp --sign "$IDENTITY" "$DMG"
fi
if [ -n "$IDENTITY" ] && [ -n "${MACOS_NOTARY_APPLE_ID:-}" ]; then
  xcrun notarytool submit "$DMG" --apple-id "$MACOS_NOTARY_APPLE_ID" --team-id "$MACOS_NOTARY_TEAM_ID" \
    --password "$MACOS_NOTARY_PASSWORD" --wait
  xcrun stapler staple "$DMG"
fi
echo "make-dmg: $DMG $(( $(stat -f %z "$DMG") / 1048576 )) MB"
