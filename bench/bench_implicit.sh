#!/usr/bin/env bash
# Seconds per ALS iteration of mfrec_dist (the README's launch: mpirun -n 2, one thread per rank)
# and of the Python `implicit` package (AlternatingLeastSquares on the same 2 cores) on the same
# matrix: the default data set, prepared once, which mfrec_dist reads as HDF5 and implicit reads
# as the CSV that mfrec_prep --export-csv writes from it. Same model: confidence c = alpha r
# (mfrec_dist --confidence implicit, as implicit), alpha 40, lambda 10, 3 CG steps.
#
#   bash bench/bench_implicit.sh [BUILD_DIR]
#
# Exit status: 0 measured; 77 skipped because `implicit` (or scipy) is not importable by
# /usr/bin/python3 -- said plainly on stderr, nothing measured; 1 a run failed; 2 bad settings.
# Environment (defaults in brackets):
#   WORK        scratch directory, the data set is made there once [${TMPDIR:-/tmp}/mfrec_bench_implicit]
#   FACTORS     ["64 128 200"]   SOLVERS ["cg cholesky"]   ITERATIONS [5]   ROUNDS [1]
#   PYTHON      [/usr/bin/python3]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
WORK=${WORK:-${TMPDIR:-/tmp}/mfrec_bench_implicit}
FACTORS=${FACTORS:-64 128 200} SOLVERS=${SOLVERS:-cg cholesky}
ITERATIONS=${ITERATIONS:-5} ROUNDS=${ROUNDS:-1} PYTHON=${PYTHON:-/usr/bin/python3}
((ITERATIONS >= 1 && ROUNDS >= 1 && ROUNDS <= 20)) ||
  { echo "bench_implicit: ITERATIONS must be >= 1 and ROUNDS 1..20" >&2; exit 2; }
for s in $SOLVERS; do
  [[ $s == cg || $s == cholesky ]] || { echo "bench_implicit: SOLVERS: cg or cholesky, got '$s'" >&2; exit 2; }
done

if ! why=$("$PYTHON" -c 'import implicit, scipy.sparse, numpy; print(implicit.__version__)' 2>&1); then
  echo "bench_implicit: SKIPPED, nothing measured: the Python package 'implicit' is not importable" \
       "by $PYTHON ($(tail -1 <<<"$why")). Install it (pip install implicit) where a package index" \
       "is reachable and rerun; exit status 77 means skipped." >&2
  exit 77
fi
implicit_version=$why

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
echo "== implicit $implicit_version; $(getconf _NPROCESSORS_ONLN) CPUs; $ITERATIONS iterations," \
  "$ROUNDS round(s); load average $(cut -d' ' -f1-3 /proc/loadavg)"

: >"$WORK/times.txt"
for ((r = 1; r <= ROUNDS; r++)); do
  for s in $SOLVERS; do
    for f in $FACTORS; do
      mpirun -n 2 "$bin/mfrec_dist" --data "$data" --output "" --factors "$f" --solver "$s" \
        --iterations "$ITERATIONS" --confidence implicit --alpha 40 --regularization 10 \
        --report "$WORK/run.json" >"$WORK/run.log" 2>&1 ||
        { echo "bench_implicit: mfrec_dist failed:" >&2; tail -20 "$WORK/run.log" >&2; exit 1; }
      m=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds_per_iteration"])' \
        "$WORK/run.json")
      i=$("$PYTHON" - "$WORK/csv/train.csv" "$f" "$s" "$ITERATIONS" <<'PYEOF'
import csv, sys, time
import numpy as np, scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
path, f, solver, iters = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
users, items, rows, cols, vals = {}, {}, [], [], []
with open(path, newline="") as fh:
    rd = csv.reader(fh)
    next(rd)  # header
    for u, i, v in rd:
        rows.append(users.setdefault(u, len(users)))
        cols.append(items.setdefault(i, len(items)))
        vals.append(float(v))
m = sp.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(len(users), len(items)))
model = AlternatingLeastSquares(factors=f, regularization=10.0, alpha=40.0, iterations=iters,
                                use_cg=(solver == "cg"), cg_steps=3, num_threads=2,
                                calculate_training_loss=False, random_state=42)
t0 = time.perf_counter()
model.fit(m, show_progress=False)
print((time.perf_counter() - t0) / iters)
PYEOF
      ) || { echo "bench_implicit: implicit failed" >&2; exit 1; }
      printf '%s\t%s\t%s\t%s\n' "$s" "$f" "$m" "$i" >>"$WORK/times.txt"
      printf '%-9s f=%-4s mfrec %8.4f s/iter  implicit %8.4f s/iter\n' "$s" "$f" "$m" "$i"
    done
  done
done
echo "== medians over the rounds (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
"$PYTHON" - "$WORK/times.txt" <<'PYEOF'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    s, f, m, i = line.rstrip("\n").split("\t")
    t.setdefault((s, int(f)), []).append((float(m), float(i)))
print(f"{'solver':9s} {'f':>4s} {'mfrec s/iter':>13s} {'implicit s/iter':>16s} {'speed-up':>9s}")
for (s, f), v in t.items():
    m = statistics.median(x[0] for x in v)
    i = statistics.median(x[1] for x in v)
    print(f"{s:9s} {f:4d} {m:13.4f} {i:16.4f} {i / m:8.1f}x")
PYEOF
