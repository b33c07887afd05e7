#!/usr/bin/env bash
# Builds the Linux one-folder bundle with PyInstaller and packs it as dist/preview-desktop-VERSION-linux-ARCH.tar.gz.
#
#   packaging/linux/build-tarball.sh              # build, then pack
#   packaging/linux/build-tarball.sh --no-build   # pack the existing dist/preview-desktop
#
# Environment: PYTHON (default .venv/bin/python). Build on the oldest distribution you support: the bundle
# carries the build machine's X/xcb client libraries and needs a glibc at least as new as the build machine's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
done

VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' preview_desktop/__init__.py)"
ARCH="$(uname -m)"
BUNDLE="dist/preview-desktop"
TARBALL="dist/preview-desktop-$VERSION-linux-$ARCH.tar.gz"

if [ "$BUILD" = 1 ]; then
  "$PYTHON" -c "import PyInstaller" 2>/dev/null || "$PYTHON" -m pip install -q -e "$ROOT[package]"
  # The notices must describe the wheels this build bundles: regenerate them from this environment.
  if ! "$PYTHON" packaging/gen_notices.py --check 2>/dev/null; then
    "$PYTHON" packaging/gen_notices.py
    echo "build-tarball: note: THIRD_PARTY_NOTICES.txt changed for this environment's versions; commit it" >&2
  fi
  start=$(date +%s)
  "$PYTHON" -m PyInstaller packaging/preview-desktop.spec --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build
  echo "build-tarball: PyInstaller took $(( $(date +%s) - start )) s"
fi
[ -x "$BUNDLE/preview-desktop" ] || { echo "build-tarball: no $BUNDLE/preview-desktop; build first" >&2; exit 1; }

# Desktop integration files, in the layout of a prefix: `cp -r share ~/.local/` installs them for one user.
share="$BUNDLE/share"
rm -rf "$share"
install -Dm644 resources/preview-desktop.desktop "$share/applications/preview-desktop.desktop"
install -Dm644 resources/com.previewdesktop.PreviewDesktop.metainfo.xml \
  "$share/metainfo/com.previewdesktop.PreviewDesktop.metainfo.xml"
for size in 16 24 32 48 64 128 256 512; do
  install -Dm644 "resources/icons/preview-desktop-$size.png" "$share/icons/hicolor/${size}x$size/apps/preview-desktop.png"
done
install -Dm644 resources/icons/preview-desktop.svg "$share/icons/hicolor/scalable/apps/preview-desktop.svg"

# Copyright files of the system libraries the bundle carries (Debian/Ubuntu build machines).
"$PYTHON" packaging/linux/collect_system_licences.py "$BUNDLE" build/preview-desktop || true

tar -C dist -czf "$TARBALL" preview-desktop
echo "build-tarball: $BUNDLE $(du -sm "$BUNDLE" | cut -f1) MB -> $TARBALL $(( $(stat -c %s "$TARBALL") / 1048576 )) MB"
