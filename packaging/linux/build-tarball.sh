#!/usr/bin/env bash
# Builds the Linux one-folder bundle with PyInstaller and packs it as dist/preview-desktop-VERSION-linux-ARCH.tar.xz.
#
#   packaging/linux/build-tarball.sh              # build, then pack
#   packaging/linux/build-tarball.sh --no-build   # pack the existing dist/preview-desktop
#
# Environment: PYTHON (default .venv/bin/python); XZ_LEVEL (default 9: xz -9, about 1.5 min here on 2 cores).
# Build on the oldest distribution you support: the bundle carries the build machine's X/xcb client libraries and
# needs a glibc at least as new as the build machine's. Release builds install from requirements/release.lock
# first; any other environment builds too, with a note of how it differs from the lock (packaging/check_env.py).
# The build writes nothing tracked: the notices are generated into build/preview-desktop/notices/.
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
TARBALL="dist/preview-desktop-$VERSION-linux-$ARCH.tar.xz"

if [ "$BUILD" = 1 ]; then
  "$PYTHON" -c "import PyInstaller" 2>/dev/null || "$PYTHON" -m pip install -q -e "$ROOT[package]"
  "$PYTHON" packaging/check_env.py ${PREVIEW_RELEASE_STRICT:+--strict}
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

# A stable archive: sorted names, one timestamp (the commit's), no owner names; xz in parallel blocks.
rm -f dist/preview-desktop-*-linux-*.tar.gz "$TARBALL"
mtime="$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)"
start=$(date +%s)
tar -C dist --sort=name --mtime="$mtime" --owner=0 --group=0 --numeric-owner -cf - preview-desktop \
  | xz -"${XZ_LEVEL:-9}" -T0 > "$TARBALL"
echo "build-tarball: $BUNDLE $(du -sm "$BUNDLE" | cut -f1) MB -> $TARBALL $(( $(stat -c %s "$TARBALL") / 1048576 )) MB" \
  "(packed in $(( $(date +%s) - start )) s)"
