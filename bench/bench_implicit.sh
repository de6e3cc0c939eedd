#!/usr/bin/env bash
# Seconds per ALS iteration of mfrec_dist (a README launch: mpirun -n 2, one thread per rank; or, with
# RANKS=1, mpirun -n 1 --bind-to none, one process with every core a thread)
# and of the Python `implicit` package (AlternatingLeastSquares on the CPU, 2 threads, on the same
# 2 cores) on the same matrix: the default data set, prepared once, which mfrec_dist reads as HDF5
# and implicit reads as the CSV that mfrec_prep --export-csv writes from it, given mfrec's shape
# (users and items without training rows stay as empty rows, as in mfrec). Same model: confidence
# c = alpha r (mfrec_dist --confidence implicit; implicit's fit multiplies its input by alpha, so the
# raw r is passed), alpha 40, lambda 10, 3 CG steps, float32; solver cg (implicit use_cg=True) or
# cholesky (use_cg=False). A second per iteration is the mean over the iterations of one run of both
# half-steps (mfrec's report "seconds_per_iteration"; implicit's fit callback), so neither side's
# loading or set-up counts. The table at the end has the median over the rounds and implicit / mfrec.
#
#   bash bench/bench_implicit.sh [BUILD_DIR]
#   PYTHONPATH=/path/to/implicit/source bash bench/bench_implicit.sh build   # an out-of-tree build
#
# The header names the implicit that ran (version, file, its native ALS module, the BLAS).
# Exit status: 0 measured; 77 skipped because `implicit` (with its compiled CPU ALS, implicit.cpu._als),
# scipy or numpy is not importable by $PYTHON -- said plainly on stderr, nothing measured; 1 a run
# failed or the two matrices differ; 2 bad settings.
# Environment (defaults in brackets):
#   WORK        scratch directory, the data set is made there once [${TMPDIR:-/tmp}/mfrec_bench_implicit]
#   FACTORS     ["64 128 200"]   SOLVERS ["cg cholesky"]   ITERATIONS [5]   ROUNDS [1]   RANKS [2]
#   PYTHON      [/usr/bin/python3]; PYTHONPATH, when exported, is passed to it unchanged
#   OPENBLAS_NUM_THREADS  for implicit's process [1, as implicit asks: its threads call BLAS per row]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
WORK=${WORK:-${TMPDIR:-/tmp}/mfrec_bench_implicit}
FACTORS=${FACTORS:-64 128 200} SOLVERS=${SOLVERS:-cg cholesky}
ITERATIONS=${ITERATIONS:-5} ROUNDS=${ROUNDS:-1} PYTHON=${PYTHON:-/usr/bin/python3} RANKS=${RANKS:-2}
((ITERATIONS >= 1 && ROUNDS >= 1 && ROUNDS <= 20)) ||
  { echo "bench_implicit: ITERATIONS must be >= 1 and ROUNDS 1..20" >&2; exit 2; }
case $RANKS in
  1) launch=(mpirun -n 1 --bind-to none) ;;  # the README's one process, every core a thread
  2) launch=(mpirun -n 2) ;;                 # a rank per core, one thread each
  *) echo "bench_implicit: RANKS: 1 or 2, got '$RANKS'" >&2; exit 2 ;;
esac
for s in $SOLVERS; do
  [[ $s == cg || $s == cholesky ]] || { echo "bench_implicit: SOLVERS: cg or cholesky, got '$s'" >&2; exit 2; }
done
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

if ! why=$("$PYTHON" -c 'import implicit, implicit.cpu._als, scipy.sparse, numpy
print(implicit.__version__, implicit.__file__, implicit.cpu._als.__file__)' 2>&1); then
  echo "bench_implicit: SKIPPED, nothing measured: the Python package 'implicit' is not importable" \
       "by $PYTHON ($(tail -1 <<<"$why")). Install it (pip install implicit) where a package index" \
       "is reachable, or export PYTHONPATH to a source tree with its CPU extensions built, and rerun;" \
       "exit status 77 means skipped." >&2
  exit 77
fi
read -r implicit_version implicit_file implicit_als <<<"$(tail -1 <<<"$why")"
blas=$("$PYTHON" -c 'import scipy.linalg, threadpoolctl
print("; ".join(" ".join(str(a.get(k)) for k in ("internal_api", "version", "architecture", "filepath"))
                for a in threadpoolctl.threadpool_info() if a.get("user_api") == "blas"))' 2>/dev/null ||
       echo "unknown (threadpoolctl not importable)")

if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
unset OMP_NUM_THREADS
mkdir -p "$WORK"
data="$WORK/retail_prepared.h5"
if [ ! -f "$data" ] || [ ! -f "$WORK/csv/train.csv" ]; then
  echo "== preparing the default data set in $WORK (HDF5 for mfrec, CSV export for implicit)"
  mpirun --bind-to none -n 2 "$bin/mfrec_gen" --output "$WORK/retail.h5" -q
  mpirun --bind-to none -n 2 "$bin/mfrec_prep" --input "$WORK/retail.h5" --output "$data" \
    --export-csv "$WORK/csv" -q
fi
echo "== implicit $implicit_version from $implicit_file (native ALS $implicit_als)"
echo "== BLAS of $PYTHON: $blas; OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
echo "== $(getconf _NPROCESSORS_ONLN) CPUs; $ITERATIONS iterations, $ROUNDS round(s);" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

: >"$WORK/times.txt"
shown_shape=""
for ((r = 1; r <= ROUNDS; r++)); do
  for s in $SOLVERS; do
    for f in $FACTORS; do
      "${launch[@]}" "$bin/mfrec_dist" --data "$data" --output "" --factors "$f" --solver "$s" \
        --iterations "$ITERATIONS" --confidence implicit --alpha 40 --regularization 10 --cg-steps 3 \
        --report "$WORK/run.json" >"$WORK/run.log" 2>&1 ||
        { echo "bench_implicit: mfrec_dist failed:" >&2; tail -20 "$WORK/run.log" >&2; exit 1; }
      # seconds per iteration, ranks x threads, users, items, training non-zeros
      read -r m mshape < <("$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1])); t = d["data"]
print(d["seconds_per_iteration"], str(d["ranks"]) + "x" + str(d["threads"]), t["users"], t["items"],
      t["nnz_train"])' \
        "$WORK/run.json")
      read -r _ mu mi mnnz <<<"$mshape"
      ires=$("$PYTHON" - "$WORK/csv/train.csv" "$f" "$s" "$ITERATIONS" "$mu" "$mi" <<'PYEOF'
import csv, sys, time
import numpy as np, scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
path, solver = sys.argv[1], sys.argv[3]
f, iters, n_users, n_items = map(int, (sys.argv[2], *sys.argv[4:7]))
users, items, rows, cols, vals = {}, {}, [], [], []
with open(path, newline="") as fh:
    rd = csv.reader(fh)
    next(rd)  # header
    for u, i, v in rd:
        rows.append(users.setdefault(u, len(users)))
        cols.append(items.setdefault(i, len(items)))
        vals.append(float(v))
if len(users) > n_users or len(items) > n_items:
    sys.exit(f"train.csv has {len(users)} users x {len(items)} items, more than mfrec's "
             f"{n_users} x {n_items}")
# mfrec's shape: its users and items without training rows are empty rows here too
m = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n_users, n_items))
model = AlternatingLeastSquares(factors=f, regularization=10.0, alpha=40.0, iterations=iters,
                                use_cg=(solver == "cg"), use_gpu=False, dtype=np.float32,
                                num_threads=2, calculate_training_loss=False, random_state=42)
model.cg_steps = 3  # not a constructor argument in 0.7; 3 is its default
seconds = []
model.fit(m, show_progress=False, callback=lambda it, elapsed, loss: seconds.append(elapsed))
assert len(seconds) == iters and model.user_factors.shape == (n_users, f), "unexpected fit"
print(sum(seconds) / iters, m.shape[0], m.shape[1], m.nnz, model.item_factors.shape[1])
PYEOF
      ) || { echo "bench_implicit: implicit failed" >&2; exit 1; }
      read -r i iu ii innz ifac <<<"$ires"
      if [[ "$iu $ii $innz" != "$mu $mi $mnnz" ]]; then
        echo "bench_implicit: the matrices differ: mfrec $mu x $mi, $mnnz non-zeros;" \
             "implicit $iu x $ii, $innz non-zeros" >&2
        exit 1
      fi
      if [ -z "$shown_shape" ]; then
        shown_shape=1
        echo "== training matrix: mfrec ${mu} users x ${mi} items, ${mnnz} non-zeros" \
          "(${mshape%% *} ranks x threads); implicit ${iu} x ${ii}, ${innz} non-zeros"
      fi
      [[ $ifac == "$f" ]] || echo "== note: implicit's factors are $ifac at f = $f"
      printf '%s\t%s\t%s\t%s\n' "$s" "$f" "$m" "$i" >>"$WORK/times.txt"
      printf '%-9s f=%-4s mfrec %8.4f s/iter  implicit %8.4f s/iter  (load average %s)\n' "$s" "$f" "$m" "$i" \
        "$(cut -d' ' -f1 /proc/loadavg)"
    done
  done
done
echo "== medians and best (least) seconds per iteration over the rounds; speed-up = implicit / mfrec" \
  "(load average now $(cut -d' ' -f1-3 /proc/loadavg))"
"$PYTHON" - "$WORK/times.txt" <<'PYEOF'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    s, f, m, i = line.rstrip("\n").split("\t")
    t.setdefault((s, int(f)), []).append((float(m), float(i)))
print(f"{'solver':9s} {'f':>4s} {'mfrec median':>13s} {'implicit median':>16s} {'speed-up':>9s}"
      f" {'mfrec best':>11s} {'implicit best':>14s} {'speed-up':>9s}")
med, best = [], []
for (s, f), v in t.items():
    m, i = statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)
    mb, ib = min(x[0] for x in v), min(x[1] for x in v)
    med.append(i / m)
    best.append(ib / mb)
    print(f"{s:9s} {f:4d} {m:13.4f} {i:16.4f} {i / m:8.1f}x {mb:11.4f} {ib:14.4f} {ib / mb:8.1f}x")
print(f"smallest speed-up: {min(med):.1f}x of the medians, {min(best):.1f}x of the best")
PYEOF
