#!/usr/bin/env bash
# The shared tiny pipeline: generate -> prepare -> train, once per ctest run (the CTest fixture
# "tiny_pipeline", see tests/CMakeLists.txt), for the script tests that only need some data:
#   bash tests/fixture.sh DIR   writes DIR/data.h5 (mfrec_gen: 3,000 users, 2,465 items, 30,000
#                               events, seed 42), DIR/prep.h5 (mfrec_prep) and DIR/model.h5
#                               (mfrec_dist: 8 factors, 3 iterations), all on 2 ranks.
# Tests read DIR from MFREC_FIXTURE and must not write into it: copy a file before spoiling it
# or before a case that might overwrite its input. The files appear together (built in a
# temporary sibling, then renamed), so a killed run never leaves a half-built fixture behind.
# Env: MFREC_BIN (build dir), MPIEXEC.
set -uo pipefail

DIR="${1:?usage: fixture.sh DIR}"
BIN="${MFREC_BIN:?set MFREC_BIN to the build directory}"
MPIEXEC="${MPIEXEC:-mpirun}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMPI_MCA_mpi_yield_when_idle=1

mkdir -p "$(dirname "$DIR")" || exit 1
TMP="$(mktemp -d "$DIR.tmp.XXXXXX")" || exit 1
trap 'rm -rf "$TMP"' EXIT

step() {  # step NAME PROGRAM ARGS...: on 2 ranks; on failure print the log's tail and exit 1
  local name="$1" prog="$2"
  shift 2
  if ! timeout 300 "$MPIEXEC" --oversubscribe --bind-to none -n 2 "$BIN/$prog" "$@" >"$TMP/$name.log" 2>&1; then
    echo "fixture: $name failed: $prog $*"
    tail -20 "$TMP/$name.log"
    exit 1
  fi
  echo "fixture: $name done"
}

start=$SECONDS
step generate mfrec_gen --users 3000 --events 30000 --seed 42 --output "$TMP/data.h5" -q
step prepare mfrec_prep --input "$TMP/data.h5" --output "$TMP/prep.h5" -q
step train mfrec_dist --data "$TMP/prep.h5" --factors 8 --iterations 3 --threads 1 --output "$TMP/model.h5" \
  --log-level warn
rm -f "$TMP"/*.log
rm -rf "$DIR"
mv "$TMP" "$DIR" || exit 1
trap - EXIT
echo "fixture: $DIR ready in $((SECONDS - start)) s: $(cd "$DIR" && ls | tr '\n' ' ')"
