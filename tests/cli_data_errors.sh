#!/usr/bin/env bash
# mfrec_prep and mfrec_gen refuse bad input and bad paths the same way on every rank count:
# each case runs under mpirun -n 2 and -n 3 with a 10 s timeout and must exit 2 (every rank
# agreed on the error, no MPI_Abort), print exactly one "PROGRAM: error:" line naming the option
# or the file (and line), and leave no output behind (no file, no .partial, no CSV, no directory
# it created). Also: text that is not UTF-8 is refused at import (or converted with
# --encoding latin1), and a stray positional argument is refused.
# Env: MFREC_BIN (build dir), MFREC_SRC, MPIEXEC.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
CATALOG="$SRC/data/retail-demo-store-products.yaml"
on_exit 'chmod -R u+w "$WORK" 2>/dev/null'  # a read-only directory below would stop rm -rf

# run10 NP PROGRAM ARGS...: under the 10 s timeout, stdout+stderr in $WORK/log; the exit status.
run10() { run "$1" 10 "${@:2}"; }

# A listing of everything under $WORK except the log, to see what a failed run left behind.
snapshot() { find . -path ./log -prune -o -print | LC_ALL=C sort; }

# expect_error NAME PROGRAM MESSAGE ARGS...: on 2 and on 3 ranks: exit 2 (not a timeout, not
# MPI_Abort), one error line that contains MESSAGE, and no new file or directory.
expect_error() {
  local name="$1" prog="$2" msg="$3"
  shift 3
  local np rc lines before after
  for np in 2 3; do
    before="$(snapshot)"
    run10 "$np" "$prog" "$@"
    rc=$?
    after="$(snapshot)"
    lines="$(grep -c "^$prog: error" log)"
    if timed_out "$rc"; then
      fail "$name (-n $np): timed out (hang)" "$(tail -5 log)"
    elif [ "$rc" -ne 2 ]; then
      fail "$name (-n $np): exit $rc, expected 2" "$(tail -8 log)"
    elif grep -q "MPI_ABORT" log; then
      fail "$name (-n $np): MPI_Abort" "$(cat log)"
    elif [ "$lines" -ne 1 ] || grep -q "error (rank" log; then
      fail "$name (-n $np): $lines error lines, expected 1" "$(cat log)"
    elif ! grep "^$prog: error" log | grep -qF -- "$msg"; then
      fail "$name (-n $np): message does not say '$msg'" "$(grep "^$prog: error" log)"
    elif [ "$before" != "$after" ]; then
      fail "$name (-n $np): output left behind" "$(diff <(echo "$before") <(echo "$after"))"
    else
      pass "$name (-n $np): $(grep "^$prog: error" log)"
    fi
  done
}

# expect_ok NAME PROGRAM ARGS...: on 2 ranks, must succeed.
expect_ok() {
  local name="$1" prog="$2"
  shift 2
  if run10 2 "$prog" "$@"; then pass "$name"; else fail "$name (exit $?)" "$(tail -8 log)"; fi
}

# expect_stray PROGRAM ARGS...: a stray positional argument must be an error naming it. Cli's
# parse() rejects it from the config change on branch "tests" on; until that is merged the case
# is reported as a known failure (XFAIL) instead of failing this test.
# TODO(lead): once merged, replace this function's body by the expect_error call alone.
expect_stray() {
  local prog="$1"
  shift
  rm -f out.h5 g.h5
  if run10 2 "$prog" "$@" stray && ! grep -q "^$prog: error" log; then
    echo "XFAIL - $prog: stray positional argument accepted (needs config.cpp's check)"
    rm -f out.h5 g.h5
    return
  fi
  expect_error "$prog: stray positional argument" "$prog" "stray" "$@" stray
}

# ---- inputs --------------------------------------------------------------------------------------

printf 'user_id,item_id,event_type\nu1,i1,View\nu2,i2,Purchase\nu1,i2,AddToCart\nu3,i1,View\n' >events.csv
# Latin-1: "café" as the bytes c a f 0xE9 (the audit's case: accepted, then JSON failed later).
printf 'user_id,item_id,event_type\nu1,i1,View\nu2,caf\xe9,Purchase\nu1,i2,AddToCart\n' >latin1.csv
printf 'u1,i1,1\nj\xf6rg,i2,2\nu3,i1,3\n' >latin1_user.csv
mkdir -p adir exported_in
cp events.csv exported_in/train.csv
touch a-file
# A directory whose files cannot be created: a read-only directory (root ignores permission bits,
# so then a read-only file system such as /proc/sys).
if [ "$(id -u)" != 0 ]; then
  mkdir -p ro && chmod 555 ro
  RO=ro
elif [ -d /proc/sys ] && [ ! -w /proc/sys ]; then
  RO=/proc/sys
else
  RO=
fi
# A catalog with a Latin-1 name on its second product (line 9).
cat >latin1.yaml <<'YAML'
- id: p1
  name: Chair
  category: furniture
  style: chair
  price: 10
- id: p2
  category: homedecor
  style: lamp
YAML
printf '  name: L\xe2mpara de mesa\n  price: 20\n' >>latin1.yaml
GEN_SMALL=(--users 20 --events 200 -q)

# ---- mfrec_prep --------------------------------------------------------------------------------

expect_error "prep: latin-1 item id" mfrec_prep "latin1.csv:3: item id is not valid UTF-8 (byte 0xE9 at byte 4)" \
  -i latin1.csv -o out.h5
expect_error "prep: latin-1 user id (triplets)" mfrec_prep "latin1_user.csv:2: user id is not valid UTF-8" \
  -i latin1_user.csv -o out.h5
expect_error "prep: unknown --encoding" mfrec_prep "option --encoding: unknown encoding 'ebcdic'" \
  -i events.csv -o out.h5 --encoding ebcdic
expect_error "prep: --seed -1" mfrec_prep "--seed" -i events.csv -o out.h5 --seed -1
expect_error "prep: --seed=-1" mfrec_prep "option --seed" -i events.csv -o out.h5 --seed=-1
expect_error "prep: missing input" mfrec_prep "option --input: missing.csv: no such file" -i missing.csv -o out.h5
expect_error "prep: input is a directory" mfrec_prep "option --input: adir: is a directory" -i adir -o out.h5
expect_error "prep: output is the input" mfrec_prep "option --output: ./events.csv: is the same file as --input" \
  -i events.csv -o ./events.csv
expect_error "prep: output is a directory" mfrec_prep "option --output: adir: is a directory" -i events.csv -o adir
expect_error "prep: output under a file" mfrec_prep "option --output: a-file/out.h5" -i events.csv -o a-file/out.h5
expect_error "prep: output in a missing directory" mfrec_prep "option --output: no/such/out.h5" \
  -i events.csv -o no/such/out.h5
if [ -n "$RO" ]; then
  expect_error "prep: output directory not writable" mfrec_prep "option --output: $RO/out.h5: its directory" \
    -i events.csv -o "$RO/out.h5"
  expect_error "prep: --export-csv not writable" mfrec_prep "option --export-csv: $RO/exp" \
    -i events.csv -o out.h5 --export-csv "$RO/exp"
else
  echo "skip - no unwritable directory available"
fi
expect_error "prep: --export-csv is a file" mfrec_prep "option --export-csv: a-file: is a file, not a directory" \
  -i events.csv -o out.h5 --export-csv a-file
expect_error "prep: --export-csv would overwrite the input" mfrec_prep \
  "option --export-csv: exported_in/train.csv: is the same file as --input" \
  -i exported_in/train.csv -o out.h5 --export-csv exported_in
expect_error "prep: --export-csv would overwrite the output" mfrec_prep \
  "option --export-csv: adir/train.csv: is the same file as --output" \
  -i events.csv -o adir/train.csv --export-csv adir
mkdir -p blocked/test.csv
expect_error "prep: a directory where --export-csv writes test.csv" mfrec_prep \
  "option --export-csv: blocked/test.csv: is a directory" -i events.csv -o out.h5 --export-csv blocked
expect_stray mfrec_prep -i events.csv -o out.h5

expect_ok "prep: --encoding latin1 converts" mfrec_prep -i latin1.csv -o l1.h5 --encoding latin1 --export-csv l1 -q
if grep -qh "^u2,café,5$" l1/train.csv l1/test.csv; then
  pass "prep: the latin-1 id is stored as UTF-8"
else
  fail "prep: the latin-1 id is not stored as UTF-8" "$(cat l1/*.csv | od -c | head)"
fi
rm -rf l1 l1.h5

# ---- mfrec_gen ---------------------------------------------------------------------------------

expect_error "gen: latin-1 catalog" mfrec_gen "option --catalog: latin1.yaml:9: product 1: name is not valid UTF-8" \
  --catalog latin1.yaml -o g.h5 "${GEN_SMALL[@]}"
expect_error "gen: --seed -1" mfrec_gen "--seed" -o g.h5 --seed -1 "${GEN_SMALL[@]}"
expect_error "gen: --seed=-1" mfrec_gen "option --seed" -o g.h5 --seed=-1 "${GEN_SMALL[@]}"
expect_error "gen: missing catalog" mfrec_gen "option --catalog: missing.yaml: no such file" \
  --catalog missing.yaml -o g.h5 "${GEN_SMALL[@]}"
cp "$CATALOG" catalog.yaml
expect_error "gen: output is the catalog" mfrec_gen "option --output: catalog.yaml: is the same file as --catalog" \
  --catalog catalog.yaml -o catalog.yaml "${GEN_SMALL[@]}"
cmp -s "$CATALOG" catalog.yaml && pass "gen: the catalog is intact" || fail "gen: the catalog was overwritten"
expect_error "gen: output is a directory" mfrec_gen "option --output: adir: is a directory" -o adir "${GEN_SMALL[@]}"
expect_error "gen: output in a missing directory" mfrec_gen "option --output: no/such/g.h5" -o no/such/g.h5 \
  "${GEN_SMALL[@]}"
if [ -n "$RO" ]; then
  expect_error "gen: output directory not writable" mfrec_gen "option --output: $RO/g.h5: its directory" \
    -o "$RO/g.h5" "${GEN_SMALL[@]}"
  expect_error "gen: --csv not writable" mfrec_gen "option --csv: $RO/csv" -o g.h5 --csv "$RO/csv" "${GEN_SMALL[@]}"
fi
expect_error "gen: --csv is a file" mfrec_gen "option --csv: a-file: is a file, not a directory" \
  -o g.h5 --csv a-file "${GEN_SMALL[@]}"
expect_error "gen: output is --csv's events.csv" mfrec_gen "option --csv: adir/events.csv: is the same file as --output" \
  -o adir/events.csv --csv adir "${GEN_SMALL[@]}"
mkdir -p gblocked/items.csv
expect_error "gen: a directory where --csv writes items.csv" mfrec_gen "option --csv: gblocked/items.csv: is a directory" \
  -o g.h5 --csv gblocked "${GEN_SMALL[@]}"
expect_stray mfrec_gen -o g.h5 "${GEN_SMALL[@]}"

finish
