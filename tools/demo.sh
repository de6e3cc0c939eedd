#!/usr/bin/env bash
# The main job end to end on the built-in default data (the seed's size): generate, prepare,
# grid-search ALS over communicator splits, register the best model, recommend.
# Usage: bash tools/demo.sh [BUILD_DIR]; outputs go to ./out/ (OUT_DIR), RANKS ranks (default 2).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
ranks=${RANKS:-2}
out=${OUT_DIR:-$root/out}
mkdir -p "$out"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_mpi_yield_when_idle=1
mpirun=(mpirun --oversubscribe --bind-to none -n "$ranks")

echo "== 1/4 generate the synthetic Retail Demo Store data set (100,000 users, 800,000 events)"
"${mpirun[@]}" "$bin/mfrec_gen" --output "$out/retail.h5"
echo "== 2/4 prepare: confidences, 80/20 train/test split, CSR matrices"
"${mpirun[@]}" "$bin/mfrec_prep" --input "$out/retail.h5" --output "$out/retail_prepared.h5"
echo "== 3/4 grid search (configs/demo-grid.ini) on $ranks ranks, best model registered"
"${mpirun[@]}" "$bin/mfrec_dist" --config "$root/configs/demo-grid.ini" --data "$out/retail_prepared.h5" \
  --output "$out/model.h5" --report "$out/run.json" --experiment "$out/experiment.h5" \
  --summary-csv "$out/experiment.csv" --registry "$out/registry" --groups $((ranks >= 2 ? 2 : 1))
echo "== 4/4 recommendations from the production model"
"$bin/mfrec_recommend" --registry "$out/registry" --spec retail-als@production --sample 3 -n 10
echo "outputs in $out: retail.h5, retail_prepared.h5, model.h5, run.json, experiment.{h5,csv}, registry/"
