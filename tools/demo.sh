#!/usr/bin/env bash
# The main job end to end on the built-in default data (the seed's size): generate, prepare,
# train and evaluate. Usage: bash tools/demo.sh [BUILD_DIR]; outputs go to ./out/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
ranks=${RANKS:-2}
out=${OUT_DIR:-$root/out}
mkdir -p "$out"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpirun=(mpirun --oversubscribe --bind-to none -n "$ranks")

echo "== 1/3 generate the synthetic Retail Demo Store data set (100,000 users, 800,000 events)"
"${mpirun[@]}" "$bin/mfrec_gen" --output "$out/retail.h5"
echo "== 2/3 prepare: confidences, 80/20 train/test split, CSR matrices"
"${mpirun[@]}" "$bin/mfrec_prep" --input "$out/retail.h5" --output "$out/retail_prepared.h5"
echo "== 3/3 train and evaluate (ALS) against the popularity baseline"
"${mpirun[@]}" "$bin/mfrec_dist" --data "$out/retail_prepared.h5" --output "$out/model.h5" --report "$out/run.json"
echo "outputs in $out: retail.h5, retail_prepared.h5, model.h5, run.json"
