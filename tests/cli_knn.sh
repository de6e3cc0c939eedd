#!/usr/bin/env bash
# The item-kNN baseline end to end: mfrec_dist --knn-k on 1, 2 and 4 ranks gives the same
# neighbour lists (/knn in the model) and metrics, reported in the printed table, the JSON report,
# the summary CSV and the experiment; the lists match a numpy computation of cosine top-k; --knn-k 0
# turns it off everywhere; a negative value is refused; mfrec_recommend --fallback knn answers a
# new user's history from the lists, and refuses a model without them.
# Env: MFREC_BIN (build dir), MPIEXEC, MFREC_FIXTURE (the shared tiny data set: 3,000 users).
# fixture: tiny_pipeline
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
use_fixture
ln -s "$FIXTURE/prep.h5" prep.h5

for np in 1 2 4; do
  if run "$np" 300 mfrec_dist --data prep.h5 --factors 8 --iterations 3 --threads 1 --output "m$np.h5" \
    --report "r$np.json" --summary-csv "s$np.csv" --experiment "e$np.h5"; then
    pass "train with the kNN baseline on $np ranks"
  else
    fail "train with the kNN baseline on $np ranks (exit $?)" "$(tail -20 log)"
  fi
  cp log "log$np"
done
grep -q "kNN@20" log1 && grep -q "vs item-kNN (k=20" log1 && pass "the table has a kNN@20 column and a comparison line" \
  || fail "no kNN column" "$(tail -15 log1)"

if "$PY" - <<'PYEOF'
import csv, json, h5py, numpy as np
ms = [h5py.File(f"m{n}.h5", "r") for n in (1, 2, 4)]
for name in ("indptr", "indices", "data"):
    a = ms[0]["knn/" + name][:]
    for m in ms[1:]:
        assert np.array_equal(a, m["knn/" + name][:]), ("/knn/" + name, "differs with the rank count")
assert int(ms[0]["knn"].attrs["k"]) == 20
assert "map_at_k" in ms[0]["metrics/knn"].attrs
reports = [json.load(open(f"r{n}.json")) for n in (1, 2, 4)]
for r in reports:
    assert r["knn"]["k"] == 20 and r["config"]["knn_k"] == 20, r.get("knn")
    # the per-user values are the same; their sum over ranks may round differently in the last bits
    assert abs(r["knn"]["map_at_k"] - reports[0]["knn"]["map_at_k"]) < 1e-12, "kNN MAP differs with the rank count"
    assert "beats_knn" in r
assert abs(ms[0]["metrics/knn"].attrs["map_at_k"] - reports[0]["knn"]["map_at_k"]) < 1e-12
row = next(csv.DictReader(open("s1.csv")))
assert abs(float(row["knn_map_at_k"]) - reports[0]["knn"]["map_at_k"]) < 1e-5, row
with h5py.File("e1.h5", "r") as e:
    assert abs(e["points/knn/map_at_k"][0] - reports[0]["knn"]["map_at_k"]) < 1e-12
    assert int(e.attrs["knn_k"]) == 20

# The lists against numpy: cosine of the training matrix's columns, top 20 by value (self included).
with h5py.File("prep.h5", "r") as f:
    g = f["matrix/train"]
    indptr = g["indptr"][:]
    A = np.zeros((int(g.attrs["n_rows"]), int(g.attrs["n_cols"])))
    A[np.repeat(np.arange(len(indptr) - 1), np.diff(indptr)), g["indices"][:]] = g["data"][:]
norm = np.sqrt((A * A).sum(0))
An = A / np.where(norm > 0, norm, 1)
S = An.T @ An
m = ms[0]
ip, ix, dv = m["knn/indptr"][:], m["knn/indices"][:], m["knn/data"][:]
for i in range(S.shape[0]):
    want = np.sort(S[i][S[i] > 0])[::-1][:20]
    got = dv[ip[i]:ip[i + 1]]
    assert len(got) == len(want), (i, len(got), len(want))
    assert np.allclose(got, want, rtol=1e-5, atol=1e-7), (i, got[:3], want[:3])
    assert np.allclose(S[i, ix[ip[i]:ip[i + 1]]], got, rtol=1e-5, atol=1e-7), i
PYEOF
then
  pass "the same lists and metrics on 1, 2 and 4 ranks, in the model, report, CSV and experiment; numpy agrees"
else
  fail "kNN outputs"
fi

# --knn-k 0: none anywhere.
if run 2 300 mfrec_dist --data prep.h5 --factors 8 --iterations 3 --threads 1 --knn-k 0 --output off.h5 \
  --report off.json --summary-csv off.csv; then
  pass "train with --knn-k 0"
else
  fail "train with --knn-k 0 (exit $?)" "$(tail -20 log)"
fi
! grep -q "kNN" log && pass "--knn-k 0: no kNN in the table" || fail "--knn-k 0 printed kNN" "$(tail log)"
if "$PY" - <<'PYEOF'
import csv, json, h5py
r = json.load(open("off.json"))
assert "knn" not in r and "beats_knn" not in r
with h5py.File("off.h5", "r") as f:
    assert "knn" not in f and "knn" not in f["metrics"]
row = next(csv.DictReader(open("off.csv")))
assert row["knn_map_at_k"] == "", row
PYEOF
then
  pass "--knn-k 0: no /knn, no report entry, empty CSV fields"
else
  fail "--knn-k 0 outputs"
fi

run 2 60 mfrec_dist --data prep.h5 --knn-k -1 --output bad.h5
rc=$?
if [ "$rc" -ne 0 ] && ! timed_out "$rc" && grep -q "option --knn-k" log && [ ! -e bad.h5 ]; then
  pass "--knn-k -1 is refused, naming the option"
else
  fail "--knn-k -1 (exit $rc)" "$(tail -5 log)"
fi

# The recommender's fallback: a new user's history scored by the lists.
hist=$("$PY" -c '
import h5py
f = h5py.File("m1.h5", "r")
ids = f["items/id"][:]
print(",".join(x.decode() for x in ids[[0, 1, 2]]))')
if "$BIN/mfrec_recommend" --model m1.h5 --history "$hist" --fallback knn -n 5 --format json >knn.json 2>err &&
  "$PY" - "$hist" <<'PYEOF'
import json, sys
import h5py, numpy as np
r = json.load(open("knn.json"))
assert r["source"] == "knn" and r["count"] == 5, r
hist = sys.argv[1].split(",")
got = [it["id"] for it in r["items"]]
assert not set(got) & set(hist), "history items recommended"
# The scores: sum over the history of sim(i, j) from the model's lists (weights 1).
with h5py.File("m1.h5", "r") as f:
    ids = [x.decode() for x in f["items/id"][:]]
    ip, ix, dv = f["knn/indptr"][:], f["knn/indices"][:], f["knn/data"][:]
s = np.zeros(len(ids))
for i in (0, 1, 2):
    s[ix[ip[i]:ip[i + 1]]] += dv[ip[i]:ip[i + 1]]
for it in r["items"]:
    j = ids.index(it["id"])
    if s[j] > 0:
        assert abs(it["score"] - s[j]) < 1e-5, (it, s[j])
PYEOF
then
  pass "mfrec_recommend --fallback knn scores a history by the model's lists"
else
  fail "--fallback knn" "$(cat err)"
fi
"$BIN/mfrec_recommend" --model off.h5 --history "$hist" --fallback knn >out 2>err
rc=$?
[ "$rc" -ne 0 ] && grep -q "option --fallback" err && pass "--fallback knn on a model without /knn is refused" ||
  fail "--fallback knn without lists (exit $rc)" "$(cat err)"
"$BIN/mfrec_recommend" --model m1.h5 --history "$hist" -n 3 >out 2>err && grep -q "(fold-in)" out &&
  pass "the default for a history is still fold-in" || fail "default fold-in" "$(cat out err)"

# A model whose /knn is broken is refused on load, naming the dataset.
cp m1.h5 broken.h5
"$PY" -c '
import h5py
with h5py.File("broken.h5", "r+") as f:
    f["knn/indices"][0] = 999999'
"$BIN/mfrec_recommend" --model broken.h5 --popular >out 2>err
rc=$?
[ "$rc" -ne 0 ] && grep -q "/knn/indices" err && pass "a model with a broken /knn is refused, naming /knn/indices" ||
  fail "broken /knn (exit $rc)" "$(cat err)"

finish
