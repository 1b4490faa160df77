#!/usr/bin/env bash
# MAP of the landmark generator (complete + spliced, alpha 0.5) on 40 same-gender FRLL pairs:
# random pairs vs similarity-based pairs (dlib-resnet), scored with dlib-resnet and lbph.
# Enrolment = neutral/NNN_03.jpg (morph inputs), probes = smiling/NNN_08.jpg; thresholds
# calibrated at FMR 0.1% on all pairs of the 164 FRLL images (13,366 comparisons), and
# again with dlib at its published 0.6 distance (map06_*).
# Usage: benchmarks/frll_map_landmark.sh [OUT_DIR] [FRLL_DIR]   (from the repository root)
set -euo pipefail
OUT=${1:-frll_map}
FRLL=${2:-../shared/data/frll}
ML=${MORPHLAB:-.venv/bin/morphlab}
mkdir -p "$OUT"
for strategy in same-gender similar; do
  $ML pairs "$FRLL" -o "$OUT/pairs_$strategy.csv" --strategy "$strategy" --capture 03 \
      --metadata "$FRLL/london_info.csv" --meta-id-column face_id --seed 1
  $ML generate "$OUT/pairs_$strategy.csv" -g landmark -o "$OUT/set_$strategy" --alpha 0.5 \
      --variant complete --variant spliced -j 2 --no-progress
  $ML map-score "$OUT/set_$strategy" -p "$FRLL/smiling" -o "$OUT/map_$strategy" \
      --fr dlib-resnet --fr lbph --fmr 0.001 --calibration "$FRLL" -j 2 --no-progress
  # the same morphs at dlib's published 0.6 distance (similarity 0.4), lbph at FMR 1%
  $ML map-score "$OUT/set_$strategy" -p "$FRLL/smiling" -o "$OUT/map06_$strategy" \
      --fr dlib-resnet --fr lbph --threshold dlib-resnet=published --fmr 0.01 \
      --calibration "$FRLL" -j 2 --no-progress
done
