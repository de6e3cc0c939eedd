#!/usr/bin/env bash
# mfrec_prep's import of real data files under mpirun: MovieLens-100k's layout as it is (tab
# separated, no header, user item rating timestamp; pipe-separated Latin-1 u.item and u.user),
# other delimiters, --columns, comment lines, --min-value, item and user catalogs, and --split
# time, whose expected train/test split is written out by hand below and must come out the same
# on 1, 2 and 3 ranks. Every bad input must end every rank with exit status 2, one error line
# naming the option, file or line, and nothing left behind.
# Env: MFREC_BIN (build dir), MFREC_SRC, MPIEXEC.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
ML="$SRC/tests/data/ml-tiny"

# prep NP ARGS...: mfrec_prep on NP ranks within 60 s, stdout+stderr in $WORK/log.
prep() { run "$1" 60 mfrec_prep "${@:2}"; }

expect_ok() {
  local name="$1"
  shift
  if prep 2 "$@"; then pass "$name"; else fail "$name (exit $?)" "$(tail -20 log)"; fi
}

# expect_error NAME MESSAGE ARGS...: on 2 ranks, exit status 2, exactly one "mfrec_prep: error:"
# line containing MESSAGE, and nothing in the (fresh) output directory out/.
expect_error() {
  local name="$1" msg="$2"
  shift 2
  rm -rf out && mkdir out
  prep 2 "$@"
  local rc=$? lines
  lines="$(grep -c '^mfrec_prep: error' log)"
  if [ "$rc" -ne 2 ]; then
    fail "$name: exit $rc, expected 2" "$(tail -5 log)"
  elif [ "$lines" -ne 1 ]; then
    fail "$name: $lines error lines, expected 1" "$(cat log)"
  elif ! grep '^mfrec_prep: error' log | grep -qF -- "$msg"; then
    fail "$name: message does not say '$msg'" "$(grep '^mfrec_prep: error' log)"
  elif [ -n "$(ls -A out)" ]; then
    fail "$name: output left behind" "$(ls -lA out)"
  else
    pass "$name: $(grep '^mfrec_prep: error' log)"
  fi
}

# same_csv NAME FILE EXPECTED: the file's lines, sorted, are the expected ones.
same_csv() {
  if diff <(sort "$2") <(sort <<<"$3") >diff.txt; then pass "$1"; else fail "$1" "$(cat diff.txt)"; fi
}

# ---- MovieLens-100k's u.data as it is ----------------------------------------------------------

expect_ok "u.data (tab separated, no header, 4 columns)" -i "$ML/u.data" -o ml.h5
if grep -q "16 triplets (5 users, 6 items), tab separated" log && grep -q "csv-triplets input, confidences as given" log &&
  ! grep -q "weights" log; then
  pass "the log says what is used: confidences as given, no event weights"
else
  fail "log of a triplet import" "$(cat log)"
fi

# ---- --split time: the expected split, by hand ---------------------------------------------------
# A pair's time is its first event's; ties go by item index (order of first appearance).
# user 1: items 1@100 2@200 3@300 4@400 5@500 -> last 1: 5
# user 2: 1@150 3@250 6@350                   -> 6
# user 3: 2@120 (and 600: summed 4+5=9) 4@130 5@140 -> 5
# user 4: 6@700 only                           -> none (a user keeps one training pair)
# user 5: 1@50 6@60 3@60 (tie: item 6 appeared after item 3) -> 6
TRAIN_LAST1='user_id,item_id,confidence
1,1,5
1,2,3
1,3,4
1,4,1
2,1,4
2,3,5
3,2,9
3,4,3
4,6,5
5,1,2
5,3,3'
TEST_LAST1='user_id,item_id,confidence
1,5,5
2,6,2
3,5,4
5,6,4'
for np in 1 2 3; do
  if prep "$np" -i "$ML/u.data" -o "time$np.h5" --split time --holdout-last 1 --export-csv "exp$np"; then
    pass "--split time --holdout-last 1 on $np rank(s)"
  else
    fail "--split time on $np rank(s) (exit $?)" "$(tail -5 log)"
  fi
done
same_csv "--holdout-last 1: train as written by hand" exp1/train.csv "$TRAIN_LAST1"
same_csv "--holdout-last 1: test as written by hand" exp1/test.csv "$TEST_LAST1"
if cmp -s time1.h5 time2.h5 && cmp -s time1.h5 time3.h5 && cmp -s exp1/test.csv exp3/test.csv &&
  cmp -s exp1/train.csv exp2/train.csv; then
  pass "--split time: 1, 2 and 3 ranks write the same bytes"
else
  fail "--split time differs with the rank count"
fi

# --holdout-fraction 0.5: round(n/2) per user, at most n-1: 3 of user 1's 5, 2 of 3, 0 of 1.
prep 3 -i "$ML/u.data" -o frac.h5 --split time --holdout-fraction 0.5 --export-csv frac
same_csv "--holdout-fraction 0.5: test as written by hand" frac/test.csv 'user_id,item_id,confidence
1,3,4
1,4,1
1,5,5
2,3,5
2,6,2
3,4,3
3,5,4
5,3,3
5,6,4'

# --min-value 3 drops ratings below 3 before anything else: (1,4), (2,6), (5,1).
prep 2 -i "$ML/u.data" -o minv.h5 --split time --holdout-last 1 --min-value 3 --export-csv minv
same_csv "--min-value 3 then --holdout-last 1: test" minv/test.csv 'user_id,item_id,confidence
1,5,5
2,3,5
3,5,4
5,6,4'
if grep -q "3 below --min-value 3 dropped" log; then pass "--min-value: the log counts the dropped rows"; else fail "--min-value log" "$(cat log)"; fi

# ---- catalogs: u.item (pipe, Latin-1, no header) and u.user --------------------------------------

expect_ok "--items u.item --users u.user, latin1" -i "$ML/u.data" -o cat.h5 --encoding latin1 \
  --items "$ML/u.item" --items-columns id,name --users "$ML/u.user" --users-columns id,age,gender,occupation,zip
if grep -q "6 of 6 items described; 1 rows for items without events skipped" log &&
  grep -q "5 of 5 users described; 1 rows for users without events skipped" log; then
  pass "catalog log: described and skipped rows"
else
  fail "catalog log" "$(cat log)"
fi
# --user-order category moves each user's catalog columns (and, with --split time, its records'
# times) to the rank that owns its new number: the same bytes on 1, 3 and 8 ranks (8 > 5 users),
# and each id keeps its occupation. u.item's 6th column (a genre flag) serves as the category.
uo_args=(-i "$ML/u.data" --encoding latin1 --items "$ML/u.item" --items-columns id,name,-,-,-,category
  --users "$ML/u.user" --users-columns id,age,gender,occupation,zip --user-order category --split time --holdout-last 1)
if prep 1 "${uo_args[@]}" -o uo1.h5 && prep 3 "${uo_args[@]}" -o uo3.h5 && prep 8 "${uo_args[@]}" -o uo8.h5 &&
   cmp -s uo1.h5 uo3.h5 && cmp -s uo1.h5 uo8.h5; then
  pass "--user-order category with a users catalog and --split time: 1, 3 and 8 ranks write the same bytes"
else
  fail "--user-order category with catalogs" "$(tail -3 log)"
fi
if "$PY" -c 'import h5py' 2>/dev/null; then
  if "$PY" - <<'PYEOF'
import h5py
with h5py.File("cat.h5", "r") as f:
    ids = [x.decode() for x in f["items/id"][:]]
    names = dict(zip(ids, [x.decode("utf-8") for x in f["items/name"][:]]))
    assert names["3"] == "Caf\u00e9 au lait (1993)", names
    assert names["4"] == "American President, The (1995)", names
    assert "price" in f["items"] and "category" in f["items"]
    users = [x.decode() for x in f["users/id"][:]]
    occ = dict(zip(users, [x.decode() for x in f["users/occupation"][:]]))
    assert occ == {"1": "technician", "2": "other", "3": "writer", "4": "technician", "5": "other"}, occ
    assert f.attrs["items_source"].decode().endswith("u.item")
with h5py.File("uo1.h5", "r") as f:  # --user-order category: renumbered users keep their columns
    users = [x.decode() for x in f["users/id"][:]]
    assert users != sorted(users) and f.attrs["user_order"] == b"category", users
    assert dict(zip(users, [x.decode() for x in f["users/occupation"][:]])) == occ
PYEOF
  then pass "the prepared file carries the titles (as UTF-8) and the users' columns, also renumbered"; else fail "catalog contents"; fi
else
  echo "skip - no h5py"
fi
if prep 1 -i "$ML/u.data" -o cat1.h5 --encoding latin1 --items "$ML/u.item" --items-columns id,name \
  --users "$ML/u.user" --users-columns id,age,gender,occupation,zip && cmp -s cat.h5 cat1.h5 &&
  prep 3 -i "$ML/u.data" -o cat3.h5 --encoding latin1 --items "$ML/u.item" --items-columns id,name \
    --users "$ML/u.user" --users-columns id,age,gender,occupation,zip && cmp -s cat.h5 cat3.h5; then
  pass "catalogs: 1, 2 and 3 ranks write the same bytes"
else
  fail "catalogs differ with the rank count" "$(tail -3 log)"
fi
printf 'movieId,title,genres\n1,Toy Story (1995),Animation|Children\n"5","Heat (1995)",Action\n' >movies.csv
expect_ok "items catalog with a header (movieId,title,genres)" -i "$ML/u.data" -o movies.h5 --items movies.csv
grep -q "2 of 6 items described" log && pass "header catalog: 2 of 6 described" || fail "header catalog log" "$(cat log)"

# ---- other layouts -------------------------------------------------------------------------------

printf '# exported by hand\n196 242  3 881250949\n186 302 3 891717742\n\n# the end\n' >blanks.txt
expect_ok "whitespace separated, comment lines" -i blanks.txt -o blanks.h5
grep -q "2 comment lines skipped, whitespace separated" log && pass "log: comments and delimiter" ||
  fail "log of blanks.txt" "$(cat log)"
printf 'sku-1;alice;5\nsku-2;bob;3\nsku-1;bob;4\n' >semi.csv
expect_ok "semicolons with --columns item,user,rating" -i semi.csv -o semi.h5 --columns item,user,rating --export-csv semi
grep -q "semicolon separated" log && pass "semicolons detected" || fail "semicolon detection" "$(cat log)"
grep -q '^alice,sku-1,5$' semi/*.csv && pass "--columns: users and items swapped back" || fail "--columns" "$(cat semi/*.csv)"
printf 'u1|i1|View|2024-01-01\nu1|i2|Purchase|2024-01-02T10:00:00Z\nu1|i3|View|2024-01-03 09:30\n' >dated.psv
expect_ok "events with ISO dates, --delimiter pipe, --split time" -i dated.psv -o dated.h5 --delimiter pipe \
  --split time --holdout-last 1 --export-csv dated
same_csv "dates order the split" dated/test.csv 'user_id,item_id,confidence
u1,i3,1'

# MovieLens-1M's .dat files: "::" separated.
printf '1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n2::661::5::978299000\n' >ratings.dat
printf '661::James and the Giant Peach (1996)::Animation|Children|Musical\n1193::One Flew Over the Cuckoo'"'"'s Nest (1975)::Drama\n' >movies.dat
expect_ok "MovieLens-1M ratings.dat and movies.dat (::)" -i ratings.dat -o ml1m.h5 --items movies.dat \
  --items-columns id,name,category --split time --holdout-last 1 --export-csv ml1m
grep -q "'::' separated" log && pass "'::' detected" || fail "'::' detection" "$(cat log)"
same_csv "ratings.dat: the time split" ml1m/test.csv 'user_id,item_id,confidence
1,661,3
2,661,5'

# ---- HDF5 data set with timestamps ---------------------------------------------------------------
if "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  "$PY" - <<'PYEOF'
import h5py, numpy as np
for name, with_time in (("timed.h5", True), ("untimed.h5", False)):
    with h5py.File(name, "w") as f:
        f.attrs["format"] = np.bytes_("mfrec-dataset")
        f["users/id"] = np.array([b"a", b"b"], dtype="S2")
        f["items/id"] = np.array([b"x", b"y", b"z"], dtype="S2")
        f["events/user"] = np.array([0, 0, 0, 1, 1, 0], dtype=np.int64)
        f["events/item"] = np.array([0, 1, 2, 0, 2, 1], dtype=np.int32)
        f["events/type"] = np.array([0, 4, 1, 0, 0, 0], dtype=np.uint8)
        if with_time:
            f["events/timestamp"] = np.array([30, 10, 20, 5, 1, 40], dtype=np.int64)
PYEOF
  # a: x@30, y@10 (again at 40), z@20 -> test x; b: x@5, z@1 -> test x.
  for np in 1 3; do prep "$np" -i timed.h5 -o "timed$np.h5" --split time --holdout-last 1 --export-csv "timed$np"; done
  same_csv "HDF5 data set: --split time by /events/timestamp" timed3/test.csv 'user_id,item_id,confidence
a,x,1
b,x,1'
  cmp -s timed1.h5 timed3.h5 && pass "HDF5 time split: 1 and 3 ranks the same" || fail "HDF5 time split differs"
  expect_error "HDF5 without timestamps" "untimed.h5: no dataset /events/timestamp: --split time needs" \
    -i untimed.h5 -o out/o.h5 --split time
  expect_error "--items with an HDF5 input" "option --items: is for a CSV input" -i timed.h5 -o out/o.h5 --items movies.csv
fi

# ---- bad input: exit 2 on every rank, one line, nothing left ---------------------------------------

printf 'u1,i1,4\nu1,i2,5\n' >notime.csv
expect_error "time split without timestamps" "notime.csv:1: no timestamp (a fourth field), which --split time needs" \
  -i notime.csv -o out/o.h5 --split time --export-csv out/exp
printf 'user_id,item_id,rating\nu1,i1,4\n' >notime_h.csv
expect_error "time split, header without timestamp" "notime_h.csv:1: the header names no timestamp column" \
  -i notime_h.csv -o out/o.h5 --split time
printf 'u1,i1,4,100\nu1,i2,5,soon\n' >badtime.csv
expect_error "bad timestamp" "badtime.csv:2: timestamp 'soon' is neither an integer nor a date" \
  -i badtime.csv -o out/o.h5 --split time
expect_error "--columns without a timestamp, --split time" "option --columns: names no timestamp column" \
  -i notime.csv -o out/o.h5 --split time --columns user,item,rating
expect_error "--split bogus" "option --split: unknown split 'bogus'" -i notime.csv -o out/o.h5 --split bogus
expect_error "--holdout-last without --split time" "option --holdout-last: only with --split time" \
  -i notime.csv -o out/o.h5 --holdout-last 2
expect_error "--holdout-last 0" "option --holdout-last: must be at least 1" -i "$ML/u.data" -o out/o.h5 --split time \
  --holdout-last 0
expect_error "--holdout-fraction 1" "option --holdout-fraction: must be in (0, 1)" -i "$ML/u.data" -o out/o.h5 \
  --split time --holdout-fraction 1
expect_error "both holdouts" "option --holdout-last: give --holdout-last or --holdout-fraction, not both" \
  -i "$ML/u.data" -o out/o.h5 --split time --holdout-last 1 --holdout-fraction 0.3
expect_error "--test-fraction with --split time" "option --test-fraction: is for --split random" \
  -i "$ML/u.data" -o out/o.h5 --split time --test-fraction 0.3
expect_error "--delimiter ab" "option --delimiter: 'ab' is not one character" -i "$ML/u.data" -o out/o.h5 --delimiter ab
expect_error "--columns unknown name" "option --columns: unknown column 'stars'" -i "$ML/u.data" -o out/o.h5 \
  --columns user,item,stars,timestamp
expect_error "--columns without a value column" "option --columns: must name one value column" \
  -i "$ML/u.data" -o out/o.h5 --columns user,item,-,timestamp
expect_error "--columns count differs from the file" "u.data:1: found 4 fields, --columns names 3" \
  -i "$ML/u.data" -o out/o.h5 --columns user,item,rating
expect_error "--min-value drops everything" "u.data: no events left: all 16 rows are below --min-value 9" \
  -i "$ML/u.data" -o out/o.h5 --min-value 9 --export-csv out/exp
expect_error "--min-value nan" "option --min-value: bad value 'nan'" -i "$ML/u.data" -o out/o.h5 --min-value nan
expect_error "--items-columns without --items" "option --items-columns: only with --items" -i "$ML/u.data" \
  -o out/o.h5 --items-columns id,name
expect_error "--items missing" "option --items: no-such.csv: no such file" -i "$ML/u.data" -o out/o.h5 --items no-such.csv
expect_error "u.item without --items-columns" "u.item:1: the first line names no id column" -i "$ML/u.data" \
  -o out/o.h5 --items "$ML/u.item" --encoding latin1
expect_error "u.item as UTF-8" "u.item:3: field 2 is not valid UTF-8 (byte 0xE9 at byte 4)" -i "$ML/u.data" \
  -o out/o.h5 --items "$ML/u.item" --items-columns id,name
expect_error "--items-columns unknown" "option --items-columns: unknown column 'colour'" -i "$ML/u.data" \
  -o out/o.h5 --items "$ML/u.item" --items-columns id,colour
printf 'item_id,name\n1,a\n2,b\n1,c\n' >dup.csv
expect_error "repeated item id" "dup.csv:4: item id '1' appears again (first on line 2)" -i "$ML/u.data" \
  -o out/o.h5 --items dup.csv --export-csv out/exp
printf 'item_id,price\n1,cheap\n' >price.csv
expect_error "bad price" "price.csv:2: price 'cheap' is not a finite number >= 0" -i "$ML/u.data" -o out/o.h5 --items price.csv
expect_error "--users-columns without id" "option --users-columns: names no id column" -i "$ML/u.data" -o out/o.h5 \
  --users "$ML/u.user" --users-columns age,gender
expect_error "output is the items file" "option --output" -i "$ML/u.data" -o movies.csv --items movies.csv

finish
