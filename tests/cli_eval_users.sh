#!/usr/bin/env bash
# mfrec_dist --eval-users N end to end: on 1, 2 and 3 ranks, and as a grid over 2 groups, every
# point evaluates the same N users with the same metrics (model, system, popularity, kNN); the
# report gives users = N and a standard error per metric, the printed table a ±SE per value and
# the sample size; N beyond the test users is everybody (the same numbers as the default 0);
# a bad N is refused with one line naming --eval-users; items scored in blocks (--eval-memory)
# give the metrics of one gather.
# Env: MFREC_BIN (build dir), MPIEXEC, MFREC_FIXTURE (the shared tiny data set: 3,000 users).
# fixture: tiny_pipeline
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
use_fixture
ln -s "$FIXTURE/prep.h5" prep.h5
COMMON=(--data prep.h5 --factors 4,8 --iterations 2 --threads 1 --output "" --knn-k 10)

train() {  # train NAME NP ARGS...
  local name="$1" np="$2"
  shift 2
  if run "$np" 300 mfrec_dist "${COMMON[@]}" --report "$name.json" "$@"; then
    pass "train $name"
    cp log "$name.log"
  else
    fail "train $name (exit $?)" "$(tail -20 log)"
  fi
}
train s1 1 --eval-users 500
train s2 2 --eval-users 500
train s3 3 --eval-users 500
train g2 2 --eval-users 500 --groups 2
train all 2
train big 2 --eval-users 1000000000

if "$PY" - <<'PYEOF'
import json
r = {n: json.load(open(f"{n}.json")) for n in ("s1", "s2", "s3", "g2", "all", "big")}
keys = ("map_at_k", "map_at_k_seed", "precision_at_k", "recall_at_k", "ndcg_at_k", "auc")
ref = r["s1"]
assert ref["config"]["eval_users"] == 500
for name in ("s2", "s3", "g2"):
    for view in ("metrics", "system", "baseline", "knn"):
        a, b = ref[view], r[name][view]
        assert a["users"] == b["users"] == 500, (name, view, a["users"], b["users"])
        for k in keys:
            # the same users' values; their sum over ranks may round differently in the last bits
            assert abs(a[k] - b[k]) < 1e-12, (name, view, k, a[k], b[k])
            assert abs(a[k + "_se"] - b[k + "_se"]) < 1e-12, (name, view, k + "_se")
    for p, q in zip(ref["grid"], r[name]["grid"]):
        for k in keys:
            assert abs(p["metrics"][k] - q["metrics"][k]) < 1e-12, (name, "grid point", p["run"], k)
assert set(p["group"] for p in r["g2"]["grid"]) == {0, 1}, "the grid did not use both groups"
for view in ("metrics", "baseline"):
    for k in keys:
        se = ref[view][k + "_se"]
        assert 0 < se < 0.1 or (k == "auc" and se >= 0), (view, k, se)
# everybody: N beyond the test users gives exactly the default's numbers, and more users than 500
assert r["all"]["metrics"]["users"] > 500
for view in ("metrics", "system", "baseline", "knn"):
    for k in keys + tuple(k + "_se" for k in keys) + ("users",):
        assert r["all"][view][k] == r["big"][view][k], (view, k, r["all"][view][k], r["big"][view][k])
PYEOF
then
  pass "same sample and metrics on 1, 2, 3 ranks and 2 groups; N beyond the test users = all; SE reported"
else
  fail "sampled metrics differ"
fi

# --eval-memory: sparse on 3 ranks holds no rank every item; gathered in blocks (f = 128: three
# blocks of the 2,465 items) the metrics are those of one gather, to the last bit.
BLOCKS=(--data prep.h5 --factors 128 --iterations 2 --threads 1 --output "" --knn-k 0 --exchange sparse)
run 3 300 mfrec_dist "${BLOCKS[@]}" --report whole.json
cp log whole.log
run 3 300 mfrec_dist "${BLOCKS[@]}" --eval-memory 0.1 --report blocks.json
cp log blocks.log
check "--eval-memory 0.1: the items gathered in 3 blocks, logged" \
  grep -q 'evaluation: the 2465 item rows are gathered in 3 blocks of up to 929 (--eval-memory 0.1 MiB)' blocks.log
check "--eval-memory: the same metrics in blocks as in one gather" "$PY" -c "
import json
a, b = json.load(open('whole.json')), json.load(open('blocks.json'))
assert a['metrics']['users'] > 0 and b['config']['eval_memory'] == 0.1
for view in ('metrics', 'system', 'baseline'):
    assert a[view] == b[view], (view, a[view], b[view])
"

check "the table prints ±SE and the sample size" \
  bash -c "grep -q 'MAP@K  *[0-9.]* ±[0-9.]*' s1.log && grep -q 'users evaluated: 500 (a seeded sample: --eval-users 500)' s1.log"
check "the grid table has the MAP@K standard error column" grep -q '(SE)' s1.log

for bad in -1 abc 1.5; do
  run 2 10 mfrec_dist "${COMMON[@]}" --eval-users "$bad"
  rc=$?
  if [ "$rc" -ne 0 ] && ! timed_out "$rc" && [ "$(grep -c 'mfrec_dist: error' log)" -eq 1 ] &&
    grep 'mfrec_dist: error' log | grep -q -- '--eval-users'; then
    pass "--eval-users $bad refused with one line naming it"
  else
    fail "--eval-users $bad: exit $rc" "$(tail -5 log)"
  fi
done
finish
