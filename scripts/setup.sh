#!/usr/bin/env bash
# Installs everything jaxnotes needs on a fresh Debian/Ubuntu machine with Python >= 3.11:
# fluidsynth and General-MIDI soundfonts (to render the default corpus), ffmpeg (mp3 input),
# then jaxnotes itself with pinned dependencies and the test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
DEBS="fluidsynth fluid-soundfont-gm fluidr3mono-gm-soundfont musescore-general-soundfont ffmpeg"
missing=""
for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test]"
