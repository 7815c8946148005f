#!/usr/bin/env bash
# Label quality of each softening method on the MNI152 benchmark, before any training:
#   bash bench/label_quality.sh [OUT]     (default bench/out/label-quality; about 20 s on 2 cores)
# Writes 3D benchmark crops (softlabel make-benchmark: perturbed annotations and the clean truth),
# softens them with each method (softlabel soften-dataset) and prints each method's mean of
# softlabel label-quality (docs/metrics.md defines the keys). Extra arguments go to make-benchmark.
set -euo pipefail
OUT=${1:-bench/out/label-quality}
shift || true
softlabel make-benchmark --out "$OUT" --n-2d 0 --n-3d 2 --crop 96 96 96 "$@"
arm() {
    local name=$1; shift
    rm -rf "$OUT/soft_$name"
    softlabel soften-dataset "$OUT" --out "$OUT/soft_$name" "$@" > /dev/null 2>&1
    softlabel label-quality --soft "$OUT/soft_$name" --label "$OUT/labelsTr" --truth "$OUT/labelsTr_clean" > "$OUT/quality_$name.json"
    python3 -c "import json, sys; m = json.load(open(sys.argv[2]))['mean']; print(sys.argv[1], json.dumps(m))" "$name" "$OUT/quality_$name.json"
}
arm hard --method hard
arm superpixel-2000 --method superpixel --n-segments 2000
arm superpixel-20000 --method superpixel --n-segments 20000
arm superpixel-80000 --method superpixel --n-segments 80000
arm gaussian-1 --method gaussian --sigma 1
arm svls-1 --method svls --sigma 1
arm smoothing-0.1 --method smoothing --eps 0.1
