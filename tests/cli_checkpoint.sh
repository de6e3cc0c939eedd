#!/usr/bin/env bash
# Checkpoint and restart of mfrec_dist, and a rank that dies:
#  1. a grid stopped by SIGUSR1 (what SLURM sends before the time limit) checkpoints and exits 75
#     without a model; --resume ends with the same best point, metrics and model as a run that
#     was never interrupted;
#  2. a rank killed with SIGKILL ends the whole job with a non-zero status within seconds.
# Env: MFREC_BIN (build dir), MPIEXEC, MFREC_FIXTURE (the shared tiny data set).
# fixture: tiny_pipeline
set -uo pipefail
MFREC_KEEP_SIGKILL_GRACE=1   # signals and checkpoints: keep mpirun's SIGTERM-to-SIGKILL grace
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
use_fixture
ln -s "$FIXTURE/prep.h5" prep.h5

# Two runs (alpha 1 and 10), each evaluated at 100 and 300 iterations.
GRID=(--data prep.h5 --factors 8 --regularization 5 --alpha 1,10 --iterations 100,300 --threads 1)

if timeout 300 "${MPI[@]}" -n 2 "$BIN/mfrec_dist" "${GRID[@]}" --output ref.h5 --report ref.json >ref.log 2>&1; then
  pass "uninterrupted reference run"
else
  fail "reference run (exit $?)" "$(tail ref.log)"
fi

# The same grid, stopped with SIGUSR1 once the first checkpoint exists.
"${MPI[@]}" -n 2 "$BIN/mfrec_dist" "${GRID[@]}" --output model.h5 --report run.json --checkpoint-dir ck \
  --checkpoint-every 10 >run1.log 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -n "$(ls ck/*.h5 2>/dev/null)" ] && break
  sleep 0.1
done
kill -USR1 "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 75 ] && [ ! -e model.h5 ] && grep -q "resume" run1.log; then
  pass "SIGUSR1: checkpointed, exit 75, no model written"
else
  fail "SIGUSR1: exit $rc, model present: $([ -e model.h5 ] && echo yes || echo no)" "$(tail -8 run1.log)"
fi

if timeout 300 "${MPI[@]}" -n 2 "$BIN/mfrec_dist" "${GRID[@]}" --output model.h5 --report run.json --checkpoint-dir ck \
  --checkpoint-every 10 --resume >run2.log 2>&1; then
  grep -q "resumed from" run2.log && pass "--resume continues from the checkpoint" || fail "did not resume" "$(tail run2.log)"
else
  fail "resume (exit $?)" "$(tail -8 run2.log)"
fi

if "$PY" - <<'PYEOF'
import json, h5py, numpy as np
a, b = json.load(open("ref.json")), json.load(open("run.json"))
assert a["best"] == b["best"], (a["best"], b["best"])
for k, v in a["metrics"].items():
    assert abs(v - b["metrics"][k]) <= 1e-9 * max(1, abs(v)), (k, v, b["metrics"][k])
for pa, pb in zip(a["grid"], b["grid"]):
    for k, v in pa["metrics"].items():
        assert abs(v - pb["metrics"][k]) <= 1e-9 * max(1, abs(v)), (pa["run"], k)
with h5py.File("ref.h5") as f, h5py.File("model.h5") as g:
    for d in ["user_factors", "item_factors"]:
        x, y = f[d][...], g[d][...]
        assert np.linalg.norm(x - y) <= 1e-5 * np.linalg.norm(x), d
PYEOF
then
  pass "resumed grid ends with the same best point, metrics and model"
else
  fail "resumed grid differs from the uninterrupted run"
fi

# Stale checkpoints (another grid on the same directory) are not resumed: that run starts over.
if timeout 300 "${MPI[@]}" -n 2 "$BIN/mfrec_dist" --data prep.h5 --factors 6 --regularization 5 --alpha 1 \
  --iterations 20 --threads 1 --output other.h5 --checkpoint-dir ck --resume >run3.log 2>&1 &&
  grep -q "different run or data set: starting over" run3.log && [ -e other.h5 ]; then
  pass "a checkpoint of another run is ignored, not resumed"
else
  fail "stale checkpoint handling" "$(tail -5 run3.log)"
fi

# A rank killed with SIGKILL: the job must end, non-zero, within seconds.
"${MPI[@]}" -n 2 "$BIN/mfrec_dist" --data prep.h5 --factors 8 --iterations 100000 --threads 1 --output "" >kill.log 2>&1 &
pid=$!
for _ in $(seq 300); do
  grep -q "iteration 2/" kill.log && break
  sleep 0.1
done
victim=$(pgrep -f "mfrec_dist --data prep.h5 --factors 8 --iterations 100000" | while read -r p; do
  [ "$(ps -o comm= -p "$p")" = "mfrec_dist" ] && echo "$p"; done | tail -1)
start=$(date +%s)
kill -9 "$victim"
for _ in $(seq 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  fail "job still running 30 s after a rank was killed"
  kill -9 "$pid"
else
  wait "$pid"
  rc=$?
  took=$(($(date +%s) - start))
  if [ "$rc" -ne 0 ] && [ "$took" -le 15 ]; then
    pass "a killed rank ends the job (exit $rc) in ${took} s"
  else
    fail "killed rank: exit $rc after ${took} s"
  fi
fi

finish
