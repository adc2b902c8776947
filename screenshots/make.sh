#!/usr/bin/env bash
# Regenerates the README screenshots: runs the release binary in a real window under Xvfb
# (Mesa lavapipe draws it when there is no GPU) and captures it.
# Needs: apt-get install xvfb imagemagick mesa-vulkan-drivers libvulkan1; cargo build --release.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release/fixres"
[ -x "$bin" ] || cargo build --release
tool=../shared/tools/screenshot-window
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
SHOT_SIZE=900x560 "$tool" "$tmp/main-window.png" 8 -- "$bin"
cp "$tmp/main-window.png" screenshots/main-window.png
echo "wrote screenshots/main-window.png"
