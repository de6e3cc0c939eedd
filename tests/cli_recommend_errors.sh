#!/usr/bin/env bash
# Bad command lines for mfrec_recommend under `mpirun -n 2` and `-n 3` (each within 10 s), and
# for mfrec_serve's start: a non-zero exit, exactly one error line from the program naming the
# option or file (mpirun's own banner aside), the inputs unchanged and nothing new left behind.
# Among them the cases that once lost data or hung: --all -o onto the model, a --csv whose
# directory is unusable (it left the HDF5 behind), a rank-0 registry check the other ranks did not
# hear of, --max-body -1 (once: no limit) and a --port-file nobody can write (once ignored).
# No pipefail (as before): a `grep | grep -q` check would take the first grep's SIGPIPE for a miss.
set -u
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
# The inputs live in $WORK/work (a case names the model as ./../work/model.h5); the checks' own
# files (snapshots, output) in $WORK, out of the snapshot's way.
mkdir work
cd work || exit 1

# A small model, and a registry holding it as retail-als:1 (production).
"$BIN/mfrec_gen" --users 300 --events 4000 --output retail.h5 -q >/dev/null &&
  "$BIN/mfrec_prep" --input retail.h5 --output prepared.h5 -q >/dev/null &&
  "$BIN/mfrec_dist" --data prepared.h5 --output model.h5 --factors 4 --iterations 2 --threads 1 \
    --log-level warn >/dev/null &&
  "$BIN/mfrec_registry" --registry reg publish model.h5 retail-als --stage production -q >/dev/null ||
  { fail "could not build the model"; finish; }
rm retail.h5
REGFILE=reg/retail-als/v1.h5
[ -f "$REGFILE" ] || { fail "the registry does not hold $REGFILE"; finish; }

# Every file under work/ with its checksum: unchanged means nothing lost and nothing left.
snapshot() { find . -type f -print0 | sort -z | xargs -0 md5sum; find . -type d | sort; }
snapshot >"$WORK/before"

# expect_error PROGRAM NAME PATTERN LAUNCH... : LAUNCH exits non-zero within the timeout, prints
# exactly one "PROGRAM: error" line and no other line of PROGRAM's, the line contains PATTERN,
# and the files are as they were.
expect_error() {
  local prog=$1 name=$2 pattern=$3
  shift 3
  timeout 10 "$@" >"$WORK/out" 2>"$WORK/err"
  local rc=$? errors others why=""
  errors=$(grep -c "^$prog: error" "$WORK/err")
  others=$(grep -v "^$prog: error" "$WORK/err" | grep -c "$prog")
  snapshot >"$WORK/after"
  if timed_out "$rc"; then why="timed out (a hang)"
  elif [ "$rc" -eq 0 ]; then why="exit 0"
  elif [ "$errors" -ne 1 ] || [ "$others" -ne 0 ]; then why="$errors error lines, $others other lines"
  elif ! grep "^$prog: error" "$WORK/err" | grep -q -- "$pattern"; then why="no '$pattern' in the error"
  elif ! cmp -s "$WORK/before" "$WORK/after"; then why="files changed: $(diff "$WORK/before" "$WORK/after" | grep '^[<>]' | tr '\n' ' ')"
  fi
  if [ -z "$why" ]; then
    pass "$name"
  else
    fail "$name: $why (rc $rc)" "$(cat "$WORK/err")"
  fi
  # Leave the next case a clean directory, whatever this one did.
  find . -type f -newer "$WORK/before" -delete 2>/dev/null
}

for np in 2 3; do
  R=("${MPI[@]}" -n "$np" "$BIN/mfrec_recommend")
  e() { expect_error mfrec_recommend "np$np: $1" "$2" "${R[@]}" "${@:3}"; }
  # Outputs onto inputs or each other: refused before anything is read or written.
  e "--all -o onto the model" "option --output: model.h5: is the same file as --model" \
    --model model.h5 --all -o model.h5
  e "--all -o onto the model by another name" "option --output: ./../work/model.h5: is the same file as --model" \
    --model model.h5 --all -o ./../work/model.h5
  e "--all -o onto the registry's model file" "option --output: $REGFILE: is the same file as --model" \
    --registry reg --spec retail-als@production --all -o "$REGFILE"
  e "--csv onto --output" "option --csv: out.h5: is the same file as --output" \
    --model model.h5 --all -o out.h5 --csv out.h5
  e "--csv onto the model" "option --csv: model.h5: is the same file as --model" \
    --model model.h5 --all -o out.h5 --csv model.h5
  # Unusable output directories: refused before work, and the HDF5 output is not left behind.
  e "--csv in a missing directory" "option --csv: no_such_dir/recs.csv" \
    --model model.h5 --all -o out.h5 --csv no_such_dir/recs.csv
  e "--csv under a regular file" "option --csv: prepared.h5/recs.csv" \
    --model model.h5 --all -o out.h5 --csv prepared.h5/recs.csv
  e "--output in a missing directory" "option --output: no_such_dir/out.h5" \
    --model model.h5 --all -o no_such_dir/out.h5
  e "--all without --output" "option --output" --model model.h5 --all
  # Checks rank 0 makes alone: the verdict is agreed, so no rank waits for the others.
  e "--registry is a file" "option --registry: prepared.h5" --registry prepared.h5 --all -o out.h5
  e "--registry is missing" "option --registry: no_such_registry" --registry no_such_registry --popular
  e "--spec names no model" "unknown model 'nothing'" --registry reg --spec nothing --all -o out.h5
  e "--spec names no version" "has no version 7" --registry reg --spec retail-als:7 --all -o out.h5
  e "--model is not a model" "prepared.h5" --model prepared.h5 --all -o out.h5
  e "--model is not a model (query)" "prepared.h5" --model prepared.h5 --popular
  e "--model is missing" "option --model: no_such_model.h5" --model no_such_model.h5 --all -o out.h5
  e "--model is missing (query)" "no_such_model.h5" --model no_such_model.h5 --popular
  e "--similar names no item" "option --similar" --model model.h5 --similar no-such-item
  e "--history names no item" "option --history" --model model.h5 --history no-such-item
  # Option values.
  e "--n 0" "option --n" --model model.h5 --all -o out.h5 --n 0
  e "--n 1001" "option --n" --model model.h5 --popular --n 1001
  e "--n -1" "option --n" --model model.h5 --popular --n -1
  e "--n is not a number" "option --n" --model model.h5 --popular --n ten
  e "--threads -1" "option --threads" --model model.h5 --all -o out.h5 --threads -1
  e "--sample -1" "option --sample" --model model.h5 --sample -1
  e "--format xml" "option --format" --model model.h5 --popular --format xml
  e "--weights without --history" "option --weights" --model model.h5 --popular --weights 1
  e "two modes" "option --user" --model model.h5 --popular --all -o out.h5
  e "--model and --registry" "option --model" --model model.h5 --registry reg --popular
done

# mfrec_serve is not an MPI program: its bad start-up options, run directly.
S=("$BIN/mfrec_serve" --model model.h5 --port 0)
expect_error mfrec_serve "serve: --max-body -1 (once: no limit)" "option --max-body" "${S[@]}" --max-body -1
expect_error mfrec_serve "serve: --max-body too small" "option --max-body" "${S[@]}" --max-body 10
expect_error mfrec_serve "serve: --port-file in a missing directory" "option --port-file: no_such_dir/port" \
  "${S[@]}" --port-file no_such_dir/port
expect_error mfrec_serve "serve: --port-file under a regular file" "option --port-file: prepared.h5/port" \
  "${S[@]}" --port-file prepared.h5/port
expect_error mfrec_serve "serve: --port-file onto the model" "option --port-file: model.h5" \
  "${S[@]}" --port-file model.h5
expect_error mfrec_serve "serve: --model is missing" "option --model" "$BIN/mfrec_serve" --model no_such.h5
expect_error mfrec_serve "serve: --model is not a model" "prepared.h5" "$BIN/mfrec_serve" --model prepared.h5 --port 0
expect_error mfrec_serve "serve: --threads 0" "option --threads" "${S[@]}" --threads 0

finish
