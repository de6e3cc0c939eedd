#!/usr/bin/env bash
# Threads from the CPU affinity mask (issue 12, "Threads and binding"): under Open MPI's binding
# to one core a rank runs one thread (it ran 2 on that core before); unbound ranks divide the
# cores they share; --threads beyond a rank's cores is warned once; the binding is in the log
# and in the report; mfrec_recommend --all takes the same default.
# Env: MFREC_BIN (build dir), MPIEXEC, MFREC_FIXTURE (the shared tiny data set).
# fixture: tiny_pipeline
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
use_fixture
ln -s "$FIXTURE/prep.h5" prep.h5
ln -s "$FIXTURE/model.h5" model.h5
# The CPUs of this script's affinity mask, which mpirun --bind-to none passes on (not nproc: it
# reads OMP_NUM_THREADS).
CPUS=$("$PY" -c 'import os; print(len(os.sched_getaffinity(0)))')
DIST=(--data prep.h5 --factors 4 --iterations 1 --output "")

launch() {  # launch NP BINDING LOG PROG ARGS...: mpirun with an explicit --bind-to
  local np="$1" bind="$2" log="$3" prog="$4"
  shift 4
  timeout 300 "$MPIEXEC" --oversubscribe --bind-to "$bind" -n "$np" "$BIN/$prog" "$@" >"$log" 2>&1
}

# report FILE PYTHON-EXPRESSION: true when the expression holds for r = the JSON report.
report() { "$PY" -c "import json, sys; r = json.load(open('$1')); b = r['binding']; sys.exit(0 if ($2) else 1)"; }

if [ "$CPUS" -ge 2 ]; then
  if launch 1 core core1.log mfrec_dist "${DIST[@]}" --report core1.json; then
    check "-n 1 bound to a core: 1 thread (not the node's $CPUS)" \
      report core1.json "r['threads'] == 1 and b['ranks'][0]['n_cores'] == 1 and b['ranks'][0]['threads'] == 1"
    check "-n 1 bound to a core: the log shows the binding" grep -Eq "rank 0: cores [0-9]+ \(1\), 1 thread$" core1.log
    check "-n 1 bound to a core: the log says how to use the other cores" grep -q "add --bind-to none" core1.log
  else
    fail "mfrec_dist -n 1 --bind-to core" "$(tail -5 core1.log)"
  fi
  if launch 2 core core2.log mfrec_dist "${DIST[@]}" --report core2.json; then
    check "-n 2 bound to a core each: 1 thread each, disjoint cores" \
      report core2.json "[x['threads'] for x in b['ranks']] == [1, 1] and b['ranks'][0]['cores'] != b['ranks'][1]['cores'] and [x['sharing'] for x in b['ranks']] == [1, 1]"
  else
    fail "mfrec_dist -n 2 --bind-to core" "$(tail -5 core2.log)"
  fi
  if launch 1 core over.log mfrec_dist "${DIST[@]}" --threads 3 --report over.json; then
    check "--threads 3 on one core: kept" report over.json "r['threads'] == 3 and b['requested']"
    check "--threads 3 on one core: one warning" test "$(grep -c 'threads 3 exceeds the cores a rank may use' over.log)" = 1
  else
    fail "mfrec_dist --threads 3 --bind-to core" "$(tail -5 over.log)"
  fi
fi

if launch 1 none none1.log mfrec_dist "${DIST[@]}" --report none1.json; then
  check "-n 1 unbound: all $CPUS cores, $CPUS threads" \
    report none1.json "b['ranks'][0]['n_cores'] == $CPUS and r['threads'] == $CPUS and b['threads'] == {'min': $CPUS, 'max': $CPUS}"
  check "-n 1 unbound: no warning" bash -c "! grep -qi warn none1.log"
else
  fail "mfrec_dist -n 1 --bind-to none" "$(tail -5 none1.log)"
fi
if launch 2 none none2.log mfrec_dist "${DIST[@]}" --report none2.json; then
  check "-n 2 unbound: the 2 ranks divide the $CPUS cores" \
    report none2.json "[x['threads'] for x in b['ranks']] == [max(1, $CPUS // 2)] * 2 and [x['sharing'] for x in b['ranks']] == [2, 2]"
  check "-n 2 unbound: the log shows the sharing" grep -q "shared by 2 ranks" none2.log
else
  fail "mfrec_dist -n 2 --bind-to none" "$(tail -5 none2.log)"
fi
if launch 2 none over2.log mfrec_dist "${DIST[@]}" --threads $((CPUS + 1)); then
  check "--threads beyond the shared cores: one warning for the node" \
    test "$(grep -c "threads $((CPUS + 1)) exceeds the cores a rank may use" over2.log)" = 1
else
  fail "mfrec_dist -n 2 --threads $((CPUS + 1))" "$(tail -5 over2.log)"
fi
if launch 2 none thr1.log mfrec_dist "${DIST[@]}" --threads 1; then
  check "--threads 1 is never warned" bash -c "! grep -q 'exceeds the cores' thr1.log"
else
  fail "mfrec_dist -n 2 --threads 1" "$(tail -5 thr1.log)"
fi

# mfrec_recommend --all: the same default.
if [ "$CPUS" -ge 2 ]; then
  if launch 1 core rec.log mfrec_recommend --model model.h5 --all --output recs.h5 --log-level info; then
    check "recommend --all bound to a core: 1 thread" grep -Eq "rank 0: cores [0-9]+ \(1\), 1 thread$" rec.log
  else
    fail "mfrec_recommend --all --bind-to core" "$(tail -5 rec.log)"
  fi
fi
if launch 1 none rec2.log mfrec_recommend --model model.h5 --all --output recs2.h5 --log-level info; then
  check "recommend --all unbound: $CPUS threads" grep -Eq "rank 0: cores [0-9,-]+ \($CPUS\), $CPUS threads?$" rec2.log
else
  fail "mfrec_recommend --all --bind-to none" "$(tail -5 rec2.log)"
fi
finish
