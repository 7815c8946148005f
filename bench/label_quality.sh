#!/usr/bin/env bash
# Label quality of each softening method on an MNI152 benchmark, before any training:
#   bash bench/label_quality.sh [crops-3d|oracle-2d] [OUT]
#     crops-3d  (default) two 96^3 crops at 1 mm, strength 0.5; about 20 s on 2 cores
#     oracle-2d the oracle-check benchmark of trainer/configs/oracle_2d_cpu.toml (2 mm slices,
#               strength 0.5, GM/WM offset 2 mm, 8 training + 16 test slices); about 30 s
# Writes the benchmark (softlabel make-benchmark: perturbed annotations and the clean truth),
# softens it with each method (softlabel soften-dataset) and prints each method's mean of
# softlabel label-quality over the cases (docs/metrics.md defines the keys).
set -euo pipefail
PRESET=${1:-crops-3d}
OUT=${2:-bench/out/label-quality-$PRESET}
case "$PRESET" in
    crops-3d) bench_args=(--n-2d 0 --n-3d 2 --crop 96 96 96 --strength 0.5 --seed 0)
              superpixels=(2000 20000 80000) ;;
    oracle-2d) bench_args=(--spacing-mm 2 --n-2d 8 --n-2d-test 16 --n-3d 0 --strength 0.5 --gm-offset-mm 2 --seed 0)
               superpixels=(100 300 1000 3000) ;;
    *) echo "label_quality.sh: expected the preset crops-3d or oracle-2d, got '$PRESET'" >&2; exit 2 ;;
esac
softlabel make-benchmark --out "$OUT" "${bench_args[@]}"
arm() {
    local name=$1; shift
    rm -rf "$OUT/soft_$name"
    softlabel soften-dataset "$OUT" --out "$OUT/soft_$name" "$@" > /dev/null 2>&1
    softlabel label-quality --soft "$OUT/soft_$name" --label "$OUT/labelsTr" --truth "$OUT/labelsTr_clean" > "$OUT/quality_$name.json"
    python3 -c "import json, sys; m = json.load(open(sys.argv[2]))['mean']; print(sys.argv[1], json.dumps(m))" "$name" "$OUT/quality_$name.json"
}
arm hard --method hard
for n in "${superpixels[@]}"; do arm "superpixel-$n" --method superpixel --n-segments "$n"; done
arm gaussian-1 --method gaussian --sigma 1
arm svls-1 --method svls --sigma 1
arm smoothing-0.1 --method smoothing --eps 0.1
