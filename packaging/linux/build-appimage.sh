#!/usr/bin/env bash
# Wraps the built Linux bundle (dist/preview-desktop, from build-tarball.sh) into an AppImage:
# dist/Preview_Desktop-VERSION-ARCH.AppImage. Needs appimagetool (on PATH or in $APPIMAGETOOL); without it this
# script prepares dist/AppDir and prints how to finish.
#
#   packaging/linux/build-tarball.sh && packaging/linux/build-appimage.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' preview_desktop/__init__.py)"
ARCH="$(uname -m)"
BUNDLE="dist/preview-desktop"
APPDIR="dist/AppDir"
OUT="dist/Preview_Desktop-$VERSION-$ARCH.AppImage"
[ -x "$BUNDLE/preview-desktop" ] || { echo "build-appimage: build the bundle first (packaging/linux/build-tarball.sh)" >&2; exit 1; }

rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/lib"
cp -a "$BUNDLE" "$APPDIR/usr/lib/preview-desktop"
rm -rf "$APPDIR/usr/lib/preview-desktop/share"
install -Dm644 resources/preview-desktop.desktop "$APPDIR/usr/share/applications/preview-desktop.desktop"
install -Dm644 resources/com.previewdesktop.PreviewDesktop.metainfo.xml \
  "$APPDIR/usr/share/metainfo/com.previewdesktop.PreviewDesktop.metainfo.xml"
for size in 16 32 48 64 128 256 512; do
  install -Dm644 "resources/icons/preview-desktop-$size.png" "$APPDIR/usr/share/icons/hicolor/${size}x$size/apps/preview-desktop.png"
done
# appimagetool wants the desktop file and the icon at the top of the AppDir too.
cp resources/preview-desktop.desktop "$APPDIR/preview-desktop.desktop"
cp resources/icons/preview-desktop-256.png "$APPDIR/preview-desktop.png"
ln -s preview-desktop.png "$APPDIR/.DirIcon"
cat > "$APPDIR/AppRun" <<'RUN'
#!/bin/sh
# The AppImage runtime mounts the image and runs this; every argument goes to the program (window, --worker, CLI).
HERE="$(dirname "$(readlink -f "$0")")"
exec "$HERE/usr/lib/preview-desktop/preview-desktop" "$@"
RUN
chmod +x "$APPDIR/AppRun"

TOOL="${APPIMAGETOOL:-$(command -v appimagetool || command -v appimagetool-$ARCH.AppImage || true)}"
if [ -z "$TOOL" ]; then
  cat >&2 <<MSG
build-appimage: appimagetool not found; $APPDIR is ready. To finish:
  1. download appimagetool-$ARCH.AppImage from the AppImage project's releases
     (github.com/AppImage/appimagetool), chmod +x it;
  2. ARCH=$ARCH APPIMAGETOOL=/path/to/appimagetool-$ARCH.AppImage packaging/linux/build-appimage.sh
     (in a container without FUSE add APPIMAGE_EXTRACT_AND_RUN=1).
MSG
  exit 0
fi
ARCH="$ARCH" "$TOOL" --no-appstream "$APPDIR" "$OUT"
echo "build-appimage: $OUT $(( $(stat -c %s "$OUT") / 1048576 )) MB"
