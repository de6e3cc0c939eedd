#!/usr/bin/env bash
# Grid search on one group of ranks against several: the same grid, the same ranks, run once with
# --groups 1 (every run trained by all ranks together) and once with --groups G (G groups of
# ranks, each training whole runs on its own), on the default data set. Prints both wall times,
# the ratio and the best point of each, which must be the same (exit 1 if not).
#
#   bash bench/bench_grid.sh [BUILD_DIR]
#
# Environment (defaults in brackets):
#   WORK         scratch directory; the default data set (mfrec_gen defaults: 100,000 users,
#                800,000 events; mfrec_prep defaults) is generated there once and reused
#                [${TMPDIR:-/tmp}/mfrec_bench_grid]
#   RANKS        MPI ranks [2]
#   GROUPS_MANY  groups of the second configuration [RANKS]
#   ALPHA FACTORS REGULARIZATION ITERATIONS SOLVER   the grid [10,40 16,32 10,100 5 cg]
#   THREADS      OpenMP threads per rank [1]
#   REPEAT       runs of each configuration, alternating; the best (minimum) wall time counts [1]
# Wall time is the whole mpirun (start-up and data loading included); "grid" time is mfrec_dist's
# own (the experiment log's root attribute `seconds`, from the first run handed out to the last
# result gathered).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
WORK=${WORK:-${TMPDIR:-/tmp}/mfrec_bench_grid}
RANKS=${RANKS:-2} GROUPS_MANY=${GROUPS_MANY:-${RANKS:-2}} THREADS=${THREADS:-1} REPEAT=${REPEAT:-1}
ALPHA=${ALPHA:-10,40} FACTORS=${FACTORS:-16,32} REGULARIZATION=${REGULARIZATION:-10,100}
ITERATIONS=${ITERATIONS:-5} SOLVER=${SOLVER:-cg}
((RANKS >= 1)) || { echo "bench_grid: RANKS must be at least 1" >&2; exit 2; }
((GROUPS_MANY >= 1 && GROUPS_MANY <= RANKS)) || { echo "bench_grid: GROUPS_MANY must be 1..RANKS" >&2; exit 2; }
((REPEAT >= 1 && REPEAT <= 20)) || { echo "bench_grid: REPEAT must be 1..20" >&2; exit 2; }
/usr/bin/python3 -c 'import h5py' 2>/dev/null \
  || { echo "bench_grid: needs /usr/bin/python3 with h5py (apt-get install python3-h5py)" >&2; exit 2; }

cores=$(nproc)  # before OMP_NUM_THREADS is set: GNU nproc honours it
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_mpi_yield_when_idle=1 OMP_NUM_THREADS="$THREADS"
mpirun=(mpirun --oversubscribe --bind-to none -n "$RANKS")
mkdir -p "$WORK"
data="$WORK/retail_prepared.h5"
if [ ! -f "$data" ]; then
  echo "== $data not found: generating and preparing the default data set"
  "${mpirun[@]}" "$bin/mfrec_gen" --output "$WORK/retail.h5" -q
  "${mpirun[@]}" "$bin/mfrec_prep" --input "$WORK/retail.h5" --output "$data" -q
fi

grid=(--alpha "$ALPHA" --factors "$FACTORS" --regularization "$REGULARIZATION" --iterations "$ITERATIONS"
      --solver "$SOLVER" --threads "$THREADS")
echo "== grid: alpha $ALPHA, factors $FACTORS, regularization $REGULARIZATION, iterations $ITERATIONS," \
  "solver $SOLVER; $RANKS ranks x $THREADS thread(s); $cores cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# One configuration: prints "<wall seconds> <grid seconds> <best point>".
run_once() {
  local groups=$1 tag=$2 t0 t1
  t0=$(date +%s.%N)
  "${mpirun[@]}" "$bin/mfrec_dist" --data "$data" --output "" --experiment "$WORK/exp_$tag.h5" \
    --groups "$groups" --log-level warn "${grid[@]}" >"$WORK/out_$tag.txt" 2>"$WORK/err_$tag.txt" \
    || { echo "bench_grid: mfrec_dist --groups $groups failed:" >&2; tail -20 "$WORK/err_$tag.txt" >&2; exit 1; }
  t1=$(date +%s.%N)
  /usr/bin/python3 - "$WORK/exp_$tag.h5" "$t0" "$t1" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    p, b, m = f["points"], int(f.attrs["best"]), f.attrs["select_metric"].decode()
    best = (f"run {p['run'][b]}: alpha {p['alpha'][b]:g}, factors {p['factors'][b]}, regularization "
            f"{p['regularization'][b]:g}, {p['solver'][b].decode()}, {p['iterations'][b]} iterations, "
            f"{m} {p['metrics/' + m][b]:.4f}")
    print(f"{float(sys.argv[3]) - float(sys.argv[2]):.2f} {float(f.attrs['seconds']):.2f} {best}")
EOF
}

declare -A wall grid_s best
for rep in $(seq 1 "$REPEAT"); do
  for groups in 1 "$GROUPS_MANY"; do
    read -r w g b < <(run_once "$groups" "g$groups")
    echo "   run $rep, --groups $groups: wall ${w} s, grid ${g} s; best $b"
    if [ -z "${wall[$groups]:-}" ] || awk -v a="$w" -v b="${wall[$groups]}" 'BEGIN { exit !(a < b) }'; then
      wall[$groups]=$w grid_s[$groups]=$g
    fi
    if [ -n "${best[$groups]:-}" ] && [ "${best[$groups]%,*}" != "${b%,*}" ]; then
      echo "bench_grid: --groups $groups chose a different best point between repeats" >&2
    fi
    best[$groups]=$b
  done
done

one=1 many=$GROUPS_MANY
echo
echo "--groups $one:  wall ${wall[$one]} s (grid ${grid_s[$one]} s)"
echo "--groups $many:  wall ${wall[$many]} s (grid ${grid_s[$many]} s)"
awk -v a="${wall[$one]}" -v b="${wall[$many]}" -v c="${grid_s[$one]}" -v d="${grid_s[$many]}" -v g="$many" \
  'BEGIN { printf "ratio wall(--groups 1) / wall(--groups %d): %.2f (grid time: %.2f)\n", g, a / b, c / d }'
echo "best, --groups $one:  ${best[$one]}"
echo "best, --groups $many:  ${best[$many]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# The same point must win; its metric may differ in the last digits (other partitions sum in another order).
if [ "${best[$one]%,*}" != "${best[$many]%,*}" ]; then
  echo "bench_grid: the best points differ" >&2
  exit 1
fi
echo "same best point: yes"
