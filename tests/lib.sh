# Shared helpers of the tests/cli_*.sh scripts. Source it first thing:
#   . "$(dirname "$0")/lib.sh" || exit 1
# It sets
#   BIN       the build directory (MFREC_BIN, required)
#   SRC       the source tree (MFREC_SRC, default: this file's parent directory)
#   MPIEXEC   mpirun (MPIEXEC); MPI=("$MPIEXEC" --oversubscribe --bind-to none)
#   PY        Debian's python3 (with h5py), else python3 on PATH
#   WORK      a scratch directory, the current directory afterwards; removed on exit with any
#             background job of the script (MFREC_KEEP=1 keeps it and says where); named
#             $TMPDIR/<script name>.XXXXXX, or WORK_PREFIX.XXXXXX when the script sets WORK_PREFIX
# and exports the MPI environment a root container needs (run as root, oversubscribe, yield when
# idle, one OpenMP thread). Helpers:
#   pass NAME / fail NAME [DETAIL]   count and print one result ("ok   - NAME" / "FAIL - NAME")
#   check NAME COMMAND...            pass when COMMAND succeeds, else fail
#   run_mpi NP TIMEOUT PROG ARGS...  $BIN/PROG on NP ranks under `timeout TIMEOUT`
#   run NP TIMEOUT PROG ARGS...      the same with stdout and stderr in $WORK/log
#   timed_out RC                     true for timeout's exit statuses (124, 137)
#   use_fixture                      sets FIXTURE: the shared tiny data set (tests/fixture.sh:
#                                    data.h5, prep.h5, model.h5) from MFREC_FIXTURE, or built into
#                                    $WORK/fixture when the script runs outside ctest. Read only.
#   on_exit COMMAND                  run COMMAND (eval) on exit, before WORK is removed
#   finish                           print "N passed, M failed" and exit 0 only if none failed
# shellcheck shell=bash

BIN="${MFREC_BIN:?set MFREC_BIN to the build directory}"
SRC="${MFREC_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
MPIEXEC="${MPIEXEC:-mpirun}"
MPI=("$MPIEXEC" --oversubscribe --bind-to none)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
  OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
# When a rank exits non-zero, mpirun sends the others SIGTERM and waits odls_base_sigkill_timeout
# (1 s) before SIGKILL: every expected-error run took 1.5 to 2.5 s instead of 0.6. The ranks of an
# agreed error have printed and finalised by then. A script that tests signals and checkpoints
# (a rank's SIGTERM handler needs that grace) sets MFREC_KEEP_SIGKILL_GRACE=1 before sourcing.
[ "${MFREC_KEEP_SIGKILL_GRACE:-0}" = 1 ] || export OMPI_MCA_odls_base_sigkill_timeout=0

_lib_name="${WORK_PREFIX:-$(basename "${0%.*}")}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/$_lib_name.XXXXXX")" || exit 1
_lib_hooks=()
on_exit() { _lib_hooks+=("$1"); }
_lib_cleanup() {  # must not fail: under set -e a failing command here would change the exit status
  local h pids
  for h in "${_lib_hooks[@]}"; do eval "$h" || true; done
  pids=$(jobs -p)
  # shellcheck disable=SC2086
  if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; fi
  if [ "${MFREC_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap _lib_cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK" || exit 1

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() {
  failed=$((failed + 1))
  echo "FAIL - $1"
  if [ -n "${2:-}" ]; then sed 's/^/       /' <<<"$2"; fi
  return 0
}
check() {
  local name="$1"
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
run_mpi() {
  local np="$1" t="$2" prog="$3"
  shift 3
  timeout "$t" "${MPI[@]}" -n "$np" "$BIN/$prog" "$@"
}
run() { run_mpi "$@" >"$WORK/log" 2>&1; }
timed_out() { [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

use_fixture() {
  FIXTURE="${MFREC_FIXTURE:-}"
  if [ -n "$FIXTURE" ] && [ -s "$FIXTURE/data.h5" ] && [ -s "$FIXTURE/prep.h5" ] && [ -s "$FIXTURE/model.h5" ]; then
    return 0
  fi
  [ -n "$FIXTURE" ] && echo "note: MFREC_FIXTURE=$FIXTURE holds no fixture: building one here"
  FIXTURE="$WORK/fixture"
  bash "$SRC/tests/fixture.sh" "$FIXTURE" >"$WORK/fixture.log" 2>&1 || {
    fail "build the tiny fixture" "$(tail -20 "$WORK/fixture.log")"
    finish
  }
}
