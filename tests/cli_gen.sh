#!/usr/bin/env bash
# mfrec_gen from the command line, under mpirun -n 2: --help, bad options (one error line, a
# non-zero exit, no hang, no output file left behind), --config, --csv, more ranks than users.
# Environment: MFREC_BIN (build directory), MPIEXEC (mpirun); prints "N passed, M failed".
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
GEN="$BIN/mfrec_gen"
gen() {  # gen NP ARGS...
  local np=$1
  shift
  run_mpi "$np" 60 mfrec_gen "$@"
}

# --- --help lists every option with its default ----------------------------------------------
help=$("$GEN" --help)
for opt in users items events seed end-time output catalog csv batch-events deflate config verbose quiet; do
  check "--help lists --$opt" grep -q -- "--$opt" <<<"$help"
done
for default in "(=100000)" "(=2465)" "(=800000)" "(=42)" "(=retail.h5)" "(=1609459200)" \
               "retail-demo-store-products.yaml)"; do
  check "--help shows default $default" grep -qF -- "$default" <<<"$help"
done

# --- bad options: one error line naming the option or file, exit != 0, nothing written ---------
expect_error() {  # expect_error NAME PATTERN OUTPUT ARGS...
  local name=$1 pattern=$2 output=$3
  shift 3
  local err rc=0
  err=$(gen 2 "$@" -o "$output" 2>&1 >/dev/null) || rc=$?
  local lines
  lines=$(grep -c "^mfrec_gen: error" <<<"$err" || true)
  if [[ $rc -eq 0 ]]; then
    fail "$name: exit status 0"
  elif [[ $rc -eq 124 ]]; then
    fail "$name: timed out (hang)"
  elif [[ $lines -ne 1 ]]; then
    fail "$name: expected one error line, got $lines: $err"
  elif ! grep "^mfrec_gen: error" <<<"$err" | grep -qF -- "$pattern"; then
    fail "$name: error does not name '$pattern': $(grep "^mfrec_gen: error" <<<"$err")"
  elif [[ -e $output || -e $output.partial ]]; then
    fail "$name: left an output file behind"
  else
    pass "$name ($(grep "^mfrec_gen: error" <<<"$err"))"
  fi
}
out="$WORK/bad.h5"
expect_error "--users 0" "--users" "$out" --users 0
expect_error "--events -5" "--events" "$out" --events -5
expect_error "--items abc" "--items" "$out" --items abc
expect_error "--items 0" "--items" "$out" --items 0
expect_error "--seed -1" "--seed" "$out" --seed=-1
expect_error "unknown option" "--no-such-option" "$out" --no-such-option 3
expect_error "missing catalog" "$WORK/missing.yaml" "$out" --catalog "$WORK/missing.yaml"
printf 'not: [a, catalog\n' >"$WORK/broken.yaml"
expect_error "broken catalog" "broken.yaml" "$out" --catalog "$WORK/broken.yaml"
expect_error "missing --config file" "--config" "$out" --config "$WORK/missing.ini"
touch "$WORK/a-file"
expect_error "output under a file" "--output" "$WORK/a-file/out.h5"
expect_error "output in a missing directory" "--output" "$WORK/no/such/dir/out.h5"

# --- a small data set with --config and --csv -------------------------------------------------
printf 'users = 300\nevents = 2000\n' >"$WORK/gen.ini"
summary=$(gen 2 --config "$WORK/gen.ini" --items 100 -q --csv "$WORK/csv" -o "$WORK/g.h5")
check "summary line" grep -q "^mfrec_gen: 300 users, 100 items, 2000 events in .* events/s" <<<"$summary"
check "data set written" test -s "$WORK/g.h5"
check "no partial file" test ! -e "$WORK/g.h5.partial"
lines() { wc -l <"$1" | tr -d ' '; }
check "users.csv has 300 rows + header" test "$(lines "$WORK/csv/users.csv")" -eq 301
check "items.csv has 100 rows + header" test "$(lines "$WORK/csv/items.csv")" -eq 101
check "events.csv has 2000 rows + header" test "$(lines "$WORK/csv/events.csv")" -eq 2001
check "events.csv header" test "$(head -n 1 "$WORK/csv/events.csv")" = "user_id,item_id,event_type,timestamp,discount"
check "events.csv names event types" grep -q ",View," "$WORK/csv/events.csv"
check "no partial CSV" test -z "$(find "$WORK/csv" -name '*.partial')"

# --- a custom catalog: --items defaults to its size ---------------------------------------------
cat >"$WORK/mini.yaml" <<'YAML'
- id: p1
  name: Red Chair
  category: furniture
  style: chair
  description: A red chair, "comfy"
  price: 10.5
  gender_affinity: F
- id: p2
  name: Lamp
  category: homedecor
  style: lamp
  price: 20
- id: p3
  name: Pizza
  category: food service
  style: pizza
  price: 3
YAML
summary=$(gen 2 --catalog "$WORK/mini.yaml" --users 50 --events 400 -q --csv "$WORK/mini" -o "$WORK/mini.h5")
check "custom catalog: 3 items" grep -q "^mfrec_gen: 50 users, 3 items, 400 events" <<<"$summary"
check "custom catalog: quoted CSV field" grep -qF '"A red chair, ""comfy"""' "$WORK/mini/items.csv"

# --- more ranks than users, and the rank count does not change the file ----------------------
check "4 ranks, 3 users" gen 4 --users 3 --events 40 -q -o "$WORK/tiny4.h5"
check "1 rank, 3 users" gen 1 --users 3 --events 40 -q -o "$WORK/tiny1.h5"
if command -v h5diff >/dev/null; then
  check "same file on 1 and 4 ranks (h5diff)" h5diff -q "$WORK/tiny1.h5" "$WORK/tiny4.h5"
fi

finish
