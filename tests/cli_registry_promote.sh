#!/usr/bin/env bash
# Champion/challenger promotion end to end (docs/registry.md): mfrec_dist --registry promotes a new
# model to production only when it beats the popularity baseline AND the production model on the
# selection metric, on the same data set; otherwise it stays a candidate, with one line saying why,
# and the decision is in the run report. `mfrec_registry compare` shows two versions side by side;
# a person's `mfrec_registry promote` still works, with a warning.
# Env: MFREC_BIN (build dir), MPIEXEC, MFREC_FIXTURE (the shared tiny data set).
# fixture: tiny_pipeline
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
use_fixture
ln -s "$FIXTURE/prep.h5" prep.h5

STRONG=(--factors 32 --iterations 10 --regularization 1)  # MAP@20 ~0.11 on the fixture
WEAK=(--factors 8 --iterations 3)                          # ~0.06: beats popularity (~0.03), not STRONG
train() {  # train NAME DATA ARGS...: model NAME.h5, report NAME.json, log NAME.log, into registry reg
  local name="$1" data="$2"
  shift 2
  if run_mpi 2 300 mfrec_dist --data "$data" --threads 1 --output "$name.h5" --report "$name.json" --registry reg \
    "$@" >"$name.log" 2>&1; then
    pass "train $name"
  else
    fail "train $name (exit $?)" "$(tail -20 "$name.log")"
  fi
}
# promotion NAME FIELD: the report's registry.promotion.FIELD (JSON)
promotion() { "$PY" -c "import json,sys; print(json.dumps(json.load(open('$1.json'))['registry']['promotion']['$2']))"; }
production() { "$BIN/mfrec_registry" --registry reg show retail-als@production | "$PY" -c "import json,sys; print(json.load(sys.stdin)['version'])"; }
expect_eq() {  # expect_eq NAME GOT WANT
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got: $2"$'\n'"want: $3"; fi
}

# 1. The first model that beats the baseline becomes production.
train strong prep.h5 "${STRONG[@]}"
expect_eq "first model: promoted" "$(promotion strong promoted)" true
expect_eq "first model: no champion" "$(promotion strong champion)" null
grep -q "registered retail-als version 1 in reg, promoted to production: map_at_k .* beats the popularity baseline's .*; no version held production" strong.log &&
  pass "first model: one line says why" || fail "first model: log line" "$(grep registered strong.log)"

# 2. The issue's case: a later model beats popularity but not production. It stays a candidate.
train weak prep.h5 "${WEAK[@]}"
expect_eq "worse model: not promoted" "$(promotion weak promoted)" false
expect_eq "worse model: compared with production" "$(promotion weak champion)" '"retail-als:1"'
expect_eq "worse model: production unchanged" "$(production)" 1
line=$(grep "registered retail-als version 2" weak.log)
[[ "$line" =~ "kept as a candidate: map_at_k 0."[0-9]+" does not beat production retail-als:1's 0."[0-9]+$ ]] &&
  pass "worse model: one line says why" || fail "worse model: log line" "$line"
"$PY" -c "import json; r=json.load(open('weak.json')); assert r['beats_baseline'] is True; assert r['registry']['stages']==['candidate'], r['registry']" &&
  pass "worse model: beats the baseline, registered as candidate" || fail "worse model: report"

# 3. A better model on a different data set (another split): not comparable, not promoted.
if run_mpi 2 120 mfrec_prep --input "$FIXTURE/data.h5" --output prep7.h5 --seed 7 -q >prep7.log 2>&1; then
  train other prep7.h5 --factors 32 --iterations 15 --regularization 1
  expect_eq "other data set: not promoted" "$(promotion other promoted)" false
  grep -q "kept as a candidate: evaluated on another data set than production retail-als:1 (fingerprint [0-9a-f]* vs [0-9a-f]*): the metrics are not comparable" other.log &&
    pass "other data set: says so" || fail "other data set: log line" "$(grep registered other.log)"
  expect_eq "other data set: production unchanged" "$(production)" 1
else
  fail "prepare another split" "$(tail prep7.log)"
fi

# 4. compare: side by side, text and JSON.
if "$BIN/mfrec_registry" --registry reg compare retail-als:1 retail-als:2 >cmp.txt 2>cmp.err; then
  pass "compare: exit 0"
else
  fail "compare: exit" "$(cat cmp.err)"
fi
grep -Eq '^factors +32 +8 +\*$' cmp.txt && pass "compare: parameters side by side, differences marked" ||
  fail "compare: factors row" "$(cat cmp.txt)"
grep -Eq '^baseline map_at_k +0\.[0-9]{4} +0\.[0-9]{4}$' cmp.txt && pass "compare: the baseline's metrics" ||
  fail "compare: baseline row" "$(cat cmp.txt)"
grep -Eq '^dataset_fingerprint +([0-9a-f]+) +\1$' cmp.txt && grep -Eq '^bytes +[0-9]+ +[0-9]+' cmp.txt &&
  grep -Eq '^registered +[0-9T:Z-]+ +[0-9T:Z-]+' cmp.txt && pass "compare: fingerprint, sizes, times" ||
  fail "compare: fingerprint/bytes/registered rows" "$(cat cmp.txt)"
grep -q "^same data set; on map_at_k: retail-als:1 0\.[0-9]*, retail-als:2 0\.[0-9]*: retail-als:1 is better$" cmp.txt &&
  pass "compare: the verdict" || fail "compare: verdict" "$(tail -2 cmp.txt)"
"$BIN/mfrec_registry" --registry reg compare retail-als:1 retail-als:3 --json >cmp.json &&
  "$PY" -c "
import json; j=json.load(open('cmp.json'))
assert j['a']=='retail-als:1' and j['b']=='retail-als:3' and j['same_dataset'] is False and j['better'] is None, j
rows={r['field']: r for r in j['rows']}
assert rows['dataset_fingerprint']['differs'] and rows['iterations']['a']==10 and rows['iterations']['b']==15, rows
" && pass "compare --json: different data sets, no verdict" || fail "compare --json" "$(head -c 600 cmp.json)"
"$BIN/mfrec_registry" --registry reg compare retail-als:1 >/dev/null 2>cmp1.err
rc=$?
[ "$rc" -eq 2 ] && grep -q "takes 2 arguments" cmp1.err && pass "compare with one spec: usage error" ||
  fail "compare with one spec (exit $rc)" "$(cat cmp1.err)"

# 5. A person may still promote the worse model: it works, with a warning saying why it would not
#    have been promoted automatically.
"$BIN/mfrec_registry" --registry reg promote retail-als:2 production >promote.out 2>promote.err
rc=$?
expect_eq "explicit promote: exit 0" "$rc" 0
expect_eq "explicit promote: done" "$(production)" 2
grep -q "retail-als:2: map_at_k 0\.[0-9]* does not beat production retail-als:1's 0\.[0-9]*; promoted to production as asked" promote.err &&
  pass "explicit promote: warns" || fail "explicit promote: warning" "$(cat promote.err)"

# 6. The selection metric travels in the model file and decides: --select-metric auc.
train by_auc prep.h5 "${STRONG[@]}" --select-metric auc --auto-promote false
expect_eq "auto-promote off: not promoted" "$(promotion by_auc promoted)" false
expect_eq "auto-promote off: says so" "$(promotion by_auc reason)" '"auto-promotion is off (--auto-promote false)"'
expect_eq "select metric in the report" "$(promotion by_auc metric)" '"auc"'
"$PY" -c "
import h5py; f=h5py.File('by_auc.h5','r'); v=f.attrs['select_metric']; v=v.decode() if isinstance(v,bytes) else v
assert v=='auc', v" && pass "model file: select_metric attribute" || fail "model file: select_metric attribute"
"$BIN/mfrec_registry" --registry reg show retail-als@candidate |
  "$PY" -c "import json,sys; m=json.load(sys.stdin)['meta']; assert m['select_metric']=='auc', m" &&
  pass "registry: select_metric in the entry" || fail "registry: select_metric in the entry"

finish
