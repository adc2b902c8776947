#!/usr/bin/env bash
# Regenerates the README screenshots: runs the release binary in a real 1440x900 window under
# Xvfb (Mesa lavapipe draws it when there is no GPU), acts on it with xdotool, and captures it.
#   main-window.png  the embedded demo, default settings, accuracy sweep run
#   own-folder.png   an ImageFolder made from the test photos, K_test dragged up, an object measured
#   finetune.png     the fine-tune window after a run
#   fashion.png      the Fashion demo with its resolution grid
#   transfer.png     the own-classes demo after training a classifier for its classes
#   (remedies.png and flips.png: by hand, see the end)
# Needs: apt-get install xvfb imagemagick xdotool mesa-vulkan-drivers libvulkan1.
# The clicks are at fixed window coordinates (the layout at 1440x900); if the layout changes,
# the screenshots show where they land, so look at them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${FIXRES_TARGET_DIR:-$HOME/.cache/fixres-target}}"
cargo build --release
bin="$CARGO_TARGET_DIR/release/fixres"
tool=../shared/tools/screenshot-window
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export SHOT_SIZE=1440x900

# 1. The demo: press "Run sweep" and wait for it.
SHOT_ACTIONS='xdotool mousemove 887 315 click 1; sleep 60' \
  "$tool" "$tmp/main-window.png" 20 -- "$bin" --fresh
cp "$tmp/main-window.png" screenshots/main-window.png

# 2. A user's own ImageFolder (three classes of the test photos): drag K_test to the right,
#    drag a box around an object, run the sweep.
data="$tmp/my-photos"
mkdir -p "$data/space shuttle" "$data/tabby" "$data/espresso"
cp tests/fixtures/photos/rocket.jpg tests/fixtures/photos/hubble_tall.jpg "$data/space shuttle/"
cp tests/fixtures/photos/chelsea.png "$data/tabby/"
cp tests/fixtures/photos/coffee_palette.png tests/fixtures/photos/coffee_cmyk.jpg "$data/espresso/"
SHOT_ACTIONS='xdotool mousemove 1192 82 mousedown 1 sleep 0.3 mousemove 1200 82 sleep 0.3 mousemove 1212 82 sleep 0.3 mouseup 1; sleep 1;
  xdotool mousemove 330 100 mousedown 1 sleep 0.3 mousemove 400 180 sleep 0.3 mousemove 470 230 sleep 0.3 mouseup 1; sleep 1;
  xdotool mousemove 886 379 click 1; sleep 30' \
  "$tool" "$tmp/own-folder.png" 20 -- "$bin" --fresh --data "$data"
cp "$tmp/own-folder.png" screenshots/own-folder.png

# 3. The fine-tune window on a small labelled folder (five copies of a photo per class, so a
#    fifth is held out for validation): open it from the menu, start, wait for the end.
ft="$tmp/fine-tune"
mkdir -p "$ft/tabby" "$ft/espresso"
for i in 0 1 2 3 4; do
  cp tests/fixtures/photos/chelsea.png "$ft/tabby/$i.png"
  cp tests/fixtures/photos/coffee_cmyk.jpg "$ft/espresso/$i.jpg"
done
SHOT_ACTIONS='xdotool mousemove 75 12 click 1; sleep 2; xdotool mousemove 757 388 click 1; sleep 40' \
  "$tool" "$tmp/finetune.png" 15 -- "$bin" --fresh --data "$ft"
cp "$tmp/finetune.png" screenshots/finetune.png

# 4. The Fashion demo (File > Demo: Fashion) with its resolution grid (Grid…).
SHOT_ACTIONS='xdotool mousemove 18 12 click 1; sleep 1; xdotool mousemove 60 108 click 1; sleep 15;
  xdotool mousemove 140 12 click 1; sleep 2' \
  "$tool" "$tmp/fashion.png" 15 -- "$bin" --fresh
cp "$tmp/fashion.png" screenshots/fashion.png
# 5. The own-classes demo (File > Demo: your own classes): the window trains a classifier for its
#    five classes at K_train; the new model is then the open one.
SHOT_ACTIONS='xdotool mousemove 18 12 click 1; sleep 1; xdotool mousemove 60 132 click 1; sleep 8;
  xdotool mousemove 752 433 click 1; sleep 45' \
  "$tool" "$tmp/transfer.png" 15 -- "$bin" --fresh
cp "$tmp/transfer.png" screenshots/transfer.png
# remedies.png and flips.png are taken by hand (five sweeps, minutes each on a CPU, and egui
# restores the fine-tune window where it was last left, so fixed clicks do not land twice alike):
# on the demo, drag K_test to 290, Run sweep; Fine-tune… > Re-estimate the last BatchNorm >
# Overlay its accuracy curve; Parametric adaptation 224 -> 290 > Overlay its accuracy curve;
# Start fine-tune > Export to the export folder > Overlay its accuracy curve; move the window aside
# (remedies.png); fold it, plot against latency, scroll to Resolution flips, wrong -> right, click
# the image (flips.png).
echo "wrote screenshots/main-window.png, own-folder.png, finetune.png, fashion.png and transfer.png"
