#!/usr/bin/env bash
# Seconds per ALS iteration under the launches the README uses, with Open MPI's default binding
# and with --bind-to none: mpirun -n 1 and -n 2, on the default data set. Alternates the launches
# in each round (ratios within one round are the figures to trust on a shared machine) and
# prints each launch's binding (the report's `binding`) and the median over the rounds.
#
#   bash bench/bench_threads.sh [BUILD_DIR [OLD_BUILD_DIR]]
#
# OLD_BUILD_DIR: a build from before the affinity-mask default, run as "old: mpirun -n 1".
# Environment (defaults in brackets):
#   WORK     scratch directory; the default data set is generated there once [${TMPDIR:-/tmp}/mfrec_bench_threads]
#   FACTORS  [200]   ITERATIONS [5]   SOLVER [cg]   ROUNDS [3]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
old="${2:-}"
WORK=${WORK:-${TMPDIR:-/tmp}/mfrec_bench_threads}
FACTORS=${FACTORS:-200} ITERATIONS=${ITERATIONS:-5} SOLVER=${SOLVER:-cg} ROUNDS=${ROUNDS:-3}
((ROUNDS >= 1 && ROUNDS <= 20)) || { echo "bench_threads: ROUNDS must be 1..20" >&2; exit 2; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
unset OMP_NUM_THREADS  # mfrec sets its threads itself; this only keeps the environment neutral
mkdir -p "$WORK"
data="$WORK/retail_prepared.h5"
if [ ! -f "$data" ]; then
  echo "== $data not found: generating and preparing the default data set"
  mpirun --bind-to none -n 2 "$bin/mfrec_gen" --output "$WORK/retail.h5" -q
  mpirun --bind-to none -n 2 "$bin/mfrec_prep" --input "$WORK/retail.h5" --output "$data" -q
fi

launches=("new: mpirun -n 1|-n 1|$bin" "new: mpirun -n 1 --bind-to none|-n 1 --bind-to none|$bin"
          "new: mpirun -n 2|-n 2|$bin" "new: mpirun -n 2 --bind-to none|-n 2 --bind-to none|$bin")
[ -n "$old" ] && launches=("old: mpirun -n 1|-n 1|$(cd "$old" && pwd)" "${launches[@]}")
echo "== CG f=$FACTORS, $ITERATIONS iterations, $ROUNDS rounds; $(getconf _NPROCESSORS_ONLN) CPUs;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/times.txt"
for ((r = 1; r <= ROUNDS; r++)); do
  for l in "${launches[@]}"; do
    IFS='|' read -r label args dir <<<"$l"
    # shellcheck disable=SC2086
    mpirun $args "$dir/mfrec_dist" --data "$data" --output "" --factors "$FACTORS" --iterations "$ITERATIONS" \
      --solver "$SOLVER" --report "$WORK/run.json" >"$WORK/run.log" 2>&1 \
      || { echo "bench_threads: $label failed:" >&2; tail -20 "$WORK/run.log" >&2; exit 1; }
    /usr/bin/python3 - "$WORK/run.json" "$label" "$WORK/times.txt" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
b = r.get("binding")
where = "" if b is None else " ".join(f"{x['cores']}:{x['threads']}" for x in b["ranks"])
line = f"{sys.argv[2]:34s} {r['seconds_per_iteration']:7.3f} s/iter  threads {r['threads']}  cores:threads {where}"
print(line)
open(sys.argv[3], "a").write(f"{sys.argv[2]}\t{r['seconds_per_iteration']}\n")
PYEOF
  done
done
echo "== medians (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
/usr/bin/python3 - "$WORK/times.txt" <<'PYEOF'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    k, v = line.rstrip("\n").split("\t")
    t.setdefault(k, []).append(float(v))
for k, v in t.items():
    print(f"{k:34s} {statistics.median(v):7.3f} s/iter ({min(v):.3f} to {max(v):.3f}, {len(v)} runs)")
PYEOF
