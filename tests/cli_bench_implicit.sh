#!/usr/bin/env bash
# bench/bench_implicit.sh's paths that measure nothing: with an `implicit` that cannot be
# imported (a stand-in on PYTHONPATH that raises ImportError, so an installed one is shadowed)
# or one without its compiled CPU ALS (a source tree whose extensions were not built: the
# measurement would fail later), it exits 77, says SKIPPED and why on stderr, prints nothing on stdout and makes no scratch
# directory; a bad setting is exit 2 naming it. The measured path needs the real package.
# Env: MFREC_BIN (build dir).
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1

mkdir -p fake/implicit
echo 'raise ImportError("stand-in: no implicit here")' >fake/implicit/__init__.py
fake="$WORK/fake" scratch="$WORK/scratch"
PYTHONPATH="$fake" WORK="$scratch" PYTHON="$PY" timeout 120 \
  bash "$SRC/bench/bench_implicit.sh" "$BIN" >out.txt 2>err.txt
rc=$?
check "not importable: exit 77 (skipped)" test "$rc" -eq 77
check "not importable: stderr says SKIPPED and why" \
  grep -q "SKIPPED, nothing measured.*stand-in: no implicit here" err.txt
check "not importable: nothing on stdout" test ! -s out.txt
check "not importable: no scratch directory made" test ! -e scratch

mkdir -p unbuilt/implicit/cpu
echo '__version__ = "0.7.3"' >unbuilt/implicit/__init__.py
: >unbuilt/implicit/cpu/__init__.py
unbuilt="$WORK/unbuilt"
PYTHONPATH="$unbuilt" WORK="$scratch" PYTHON="$PY" timeout 120 \
  bash "$SRC/bench/bench_implicit.sh" "$BIN" >out.txt 2>err.txt
rc=$?
check "no compiled ALS: exit 77 (skipped)" test "$rc" -eq 77
check "no compiled ALS: stderr names implicit.cpu._als" grep -q "SKIPPED.*implicit.cpu._als" err.txt
check "no compiled ALS: no scratch directory made" test ! -e scratch

bad() {  # NAME PATTERN VAR=VALUE...: exit 2, PATTERN on stderr
  local name="$1" pattern="$2" rc
  shift 2
  env "$@" PYTHONPATH="$fake" WORK="$scratch" timeout 60 \
    bash "$SRC/bench/bench_implicit.sh" "$BIN" >out.txt 2>err.txt
  rc=$?
  if [ "$rc" -eq 2 ] && grep -q "$pattern" err.txt; then pass "$name"; else
    fail "$name (exit $rc)" "$(cat err.txt)"; fi
}
bad "ROUNDS 0 is exit 2" "ROUNDS 1..20" ROUNDS=0
bad "an unknown solver is exit 2" "SOLVERS: cg or cholesky, got 'lu'" SOLVERS="cg lu"
finish
