#!/usr/bin/env bash
# mfrec_dist end to end under mpirun: a run with a report and a model that h5py alone can read,
# 32 ranks on this machine (oversubscribed), and every kind of bad input, each of which must end
# with a non-zero exit within the timeout, an error line naming the option, file or dataset,
# and no model (nor .partial) left behind.
# Env: MFREC_BIN (build dir), MPIEXEC, MFREC_FIXTURE (the shared tiny data set: 3,000 users).
# fixture: tiny_pipeline
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
use_fixture
ln -s "$FIXTURE/prep.h5" prep.h5
ln -s "$FIXTURE/data.h5" data.h5

# A normal run: model, report, metrics next to the baseline.
if run 2 300 mfrec_dist --data prep.h5 --factors 8 --iterations 3 --output model.h5 --report run.json; then
  pass "train on 2 ranks"
else
  fail "train on 2 ranks (exit $?)" "$(tail -20 log)"
fi
grep -q "popular" log && pass "prints the metrics next to the popularity baseline" || fail "no baseline column" "$(tail log)"
if "$PY" - <<'PYEOF'
import json, h5py, numpy as np
r = json.load(open("run.json"))
for key in ["config", "ranks", "threads", "data", "seconds_per_iteration", "phases", "metrics", "baseline"]:
    assert key in r, key
for m in ["map_at_k", "map_at_k_seed", "precision_at_k", "recall_at_k", "ndcg_at_k", "auc"]:
    assert m in r["metrics"] and m in r["baseline"], m
for p in ["solve", "gram", "exchange", "evaluation"]:
    assert set(r["phases"][p]) == {"min", "mean", "max"}, p
assert r["ranks"] == 2
assert r["exchange"] in ("allgather", "sparse") and r["config"]["exchange"] == "auto", r["exchange"]
for p in ["exchange", "allreduce"]:
    for d in ["sent", "received"]:
        s = r["bytes_per_iteration"][p][d]
        assert 0 < s["min"] <= s["mean"] <= s["max"], (p, d, s)
m = r["peak_rss_mib"]  # whole process per rank: above the libraries' few MiB, far below the machine
assert 8 < m["min"] <= m["mean"] <= m["max"] < 16384, m
with h5py.File("model.h5", "r") as f:
    assert f.attrs["format"] == b"mfrec-model" or f.attrs["format"] == "mfrec-model"
    U, V = f["user_factors"], f["item_factors"]
    assert U.dtype == np.float32 and V.dtype == np.float32
    assert U.shape == (3000, 8) and V.shape[1] == 8
    assert f["users/id"].shape[0] == 3000 and f["items/id"].shape[0] == V.shape[0]
    assert int(f.attrs["factors"]) == 8 and int(f.attrs["iterations"]) == 3
    for a in ["regularization", "alpha", "solver", "dataset_fingerprint", "program_version", "created"]:
        assert a in f.attrs, a
    assert abs(f["metrics"].attrs["map_at_k"] - r["metrics"]["map_at_k"]) < 1e-12
    assert np.isfinite(U[...]).all() and np.isfinite(V[...]).all()
    assert f["popularity/ranking"].shape == (V.shape[0],)
PYEOF
then pass "report JSON and model readable with h5py alone"; else fail "report/model check"; fi

# 32 ranks on 2 cores: runs to the end with the same metrics as 2 ranks.
if run 32 400 mfrec_dist --data prep.h5 --factors 8 --iterations 3 --threads 1 --output model32.h5 --report run32.json; then
  if "$PY" -c "
import json; a=json.load(open('run.json'))['metrics']; b=json.load(open('run32.json'))['metrics']
assert all(abs(a[k]-b[k]) < 1e-5 for k in a), (a, b)"; then
    pass "32 ranks run to the end, same metrics as 2 ranks"
  else
    fail "32 ranks: metrics differ from 2 ranks"
  fi
else
  fail "32 ranks (exit $?)" "$(tail -20 log)"
fi

# Damaged data sets, made with h5py.
"$PY" - <<'PYEOF'
import shutil, h5py, numpy as np
shutil.copy("prep.h5", "nan.h5")
with h5py.File("nan.h5", "r+") as f:
    d = f["matrix/train/data"]; v = d[...]; v[len(v) // 2] = np.nan; d[...] = v
shutil.copy("prep.h5", "shape.h5")
with h5py.File("shape.h5", "r+") as f:
    f["matrix/test"].attrs["n_cols"] = np.int64(f["matrix/test"].attrs["n_cols"] + 1)
shutil.copy("prep.h5", "type.h5")
with h5py.File("type.h5", "r+") as f:
    g = f["matrix/train"]; idx = g["indices"][...]; del g["indices"]; g["indices"] = idx.astype(np.float32)
PYEOF

expect_error() {  # NAME MESSAGE ARGS...
  local name="$1" msg="$2"
  shift 2
  rm -f bad.h5 bad.h5.partial
  run 2 120 mfrec_dist --output bad.h5 "$@"
  local rc=$?
  if [ "$rc" -eq 0 ]; then
    fail "$name: exit 0" "$(tail -5 log)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    fail "$name: timed out (hang)" "$(tail -5 log)"
  elif ! grep '^mfrec_dist: error' log | head -1 | grep -qF -- "$msg"; then
    fail "$name: no error line saying '$msg'" "$(tail -8 log)"
  elif [ -e bad.h5 ] || [ -e bad.h5.partial ]; then
    fail "$name: model left behind"
  else
    pass "$name (exit $rc): $(grep '^mfrec_dist: error' log | head -1)"
  fi
}
expect_error "factors < 1" "--factors" --data prep.h5 --factors 0
expect_error "negative lambda" "--regularization" --data prep.h5 --regularization -1
expect_error "negative alpha" "--alpha" --data prep.h5 --alpha -0.5
expect_error "K < 1" "--k" --data prep.h5 --k 0
expect_error "iterations < 1" "--iterations" --data prep.h5 --iterations 0
expect_error "malformed list" "--factors" --data prep.h5 --factors 8,,16
expect_error "more groups than ranks" "--groups" --data prep.h5 --groups 3
expect_error "unknown metric" "--select-metric" --data prep.h5 --select-metric accuracy
expect_error "unknown solver" "--solver" --data prep.h5 --solver lu
expect_error "missing data file" "nothere.h5" --data nothere.h5 --factors 4 --iterations 2
expect_error "data set without prepared matrices" "missing matrix /matrix/train" --data data.h5 --factors 4 --iterations 2
expect_error "mismatched shapes" "/matrix/test" --data shape.h5 --factors 4 --iterations 2
expect_error "NaN in the data" "/matrix/train/data" --data nan.h5 --factors 4 --iterations 2
expect_error "indices stored as floats" "/matrix/train/indices" --data type.h5 --factors 4 --iterations 2

finish
