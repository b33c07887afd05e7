#!/usr/bin/env bash
# Prepares a machine for Preview Desktop from a source checkout: system packages (Debian/Ubuntu, when run as
# root or with sudo), then a virtual environment in .venv with the project and its test tools.
# Sourced by ./run-app and ./run-tests; safe to run again (it only does what is missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

# redis-server: farm tests; ffmpeg: checks and the renderer benchmark; nodejs + npm: the Node.js BullMQ interop
# test; the rest: Qt offscreen and under X.
SYSTEM_PACKAGES=(redis-server ffmpeg nodejs npm xvfb xauth libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0
  libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-xfixes0 libnss3 libasound2
  libpulse0 python3-venv xdotool libxss1)

# A package whose command is already on PATH counts as present: Node.js from another source (NodeSource's
# nodejs ships npm and conflicts with Debian's npm package) must not be replaced.
package_command() {
  case "$1" in
    nodejs) echo node ;;
    npm) echo npm ;;
    *) echo "" ;;
  esac
}

missing_packages() {
  local missing=() cmd
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    cmd="$(package_command "$pkg")"
    if [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then continue; fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  echo "${missing[@]:-}"
}

install_system_packages() {
  command -v apt-get >/dev/null 2>&1 || {
    echo "setup: not a Debian/Ubuntu system; install redis-server, ffmpeg and Node.js (node, npm) yourself" \
      "(see docs/development.md)" >&2
    return 0
  }
  local missing
  missing="$(missing_packages)"
  [ -z "$missing" ] && return 0
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
      echo "setup: please install these packages (needs root): $missing" >&2
      return 0
    fi
  fi
  echo "setup: installing system packages: $missing" >&2
  $sudo apt-get update -qq >/dev/null
  local available=()
  for pkg in $missing; do  # names differ a little between releases: skip what this one does not have
    if apt-cache show "$pkg" >/dev/null 2>&1; then available+=("$pkg"); else echo "setup: no package $pkg here" >&2; fi
  done
  [ ${#available[@]} -eq 0 ] && return 0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${available[@]}" >/dev/null
}

install_python_env() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed"'
    echo "setup: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.deps-stamp" want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing Python dependencies into .venv" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"
    echo "$want" > "$stamp"
  fi
}

install_system_packages
install_python_env
