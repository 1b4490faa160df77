#!/bin/bash
# 1 vs 2 Ray workers against the local runner on the embedded sample: all 66 pairs of its
# 12 subjects, landmark, complete + spliced, PNG; landmarks cached by a first run. Prints wall
# times and the load, and checks the folders are byte-identical (cmp).
# Usage: benchmarks/ray_scaling.sh [OUT_DIR]   (from the repository root; needs morphlab[ray])
set -euo pipefail
OUT=${1:-ray_scaling}
M=${MORPHLAB:-$PWD/.venv/bin/morphlab}
RAY=${RAY:-$PWD/.venv/bin/ray}
SAMPLE=$PWD/morphlab/sample/frll
mkdir -p "$OUT" && cd "$OUT"
export MORPHLAB_CACHE=$PWD/cache
[ -f all.csv ] || $M pairs "$SAMPLE/neutral" --pairs-file all.csv --all >/dev/null   # all 66 pairs
G="generate all.csv -g landmark --variant complete --variant spliced --no-progress --seed 0"
rm -rf warm l1 l2 r1 r2 a1 a2
$M $G -o warm -j 1 >/dev/null   # fills the landmark cache
t() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "local -j1: $(t $M $G -o l1 -j 1) s"
echo "local -j2: $(t $M $G -o l2 -j 2) s"
echo "ray -j1 (own instance): $(t $M $G -o r1 -j 1 --executor ray) s"
echo "ray -j2 (own instance): $(t $M $G -o r2 -j 2 --executor ray) s"
$RAY start --head --num-cpus 2 --include-dashboard=false --disable-usage-stats >/dev/null 2>&1
trap '$RAY stop >/dev/null 2>&1' EXIT
echo "ray -j1 (running cluster, auto): $(t $M $G -o a1 -j 1 --executor ray --ray-address auto) s"
echo "ray -j2 (running cluster, auto): $(t $M $G -o a2 -j 2 --executor ray --ray-address auto) s"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
for d in l2 r1 r2 a1 a2; do
  for f in l1/*.png l1/manifest.jsonl l1/contact.html; do
    cmp -s "$f" "$d/$(basename "$f")" || echo "DIFF $d $(basename "$f")"
  done
done
echo "byte-identity checked over $(ls l1/*.png | wc -l) morphs"
