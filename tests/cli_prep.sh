#!/usr/bin/env bash
# mfrec_prep end to end under mpirun: good inputs (CSV events and triplets, an HDF5 data set, the
# CSV export, the same bytes for 1 and 2 ranks) and every kind of bad input, each of which must
# end with a non-zero exit on every rank within 60 s, one error line naming the file and line,
# the dataset or the option, and no output (nor .partial) left behind.
# Env: MFREC_BIN (build dir), MFREC_SRC, MPIEXEC, MFREC_FIXTURE (the shared tiny data set).
# fixture: tiny_pipeline
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1

# prep NP ARGS...: run mfrec_prep on NP ranks; stdout+stderr in $WORK/log, exit status returned.
prep() {
  local np="$1"
  shift
  run "$np" 60 mfrec_prep "$@"
}

# expect_ok NAME ARGS...: runs on 2 ranks and must succeed.
expect_ok() {
  local name="$1"
  shift
  if prep 2 "$@"; then pass "$name"; else fail "$name (exit $?)" "$(tail -20 log)"; fi
}

# expect_error NAME OUTPUT MESSAGE ARGS...: on 2 ranks, must fail (not by timeout) with exactly one
# "mfrec_prep: error:" line containing MESSAGE, and leave neither OUTPUT nor OUTPUT.partial.
expect_error() {
  local name="$1" out="$2" msg="$3"
  shift 3
  rm -f "$out" "$out.partial"
  prep 2 "$@"
  local rc=$?
  local lines
  lines="$(grep -c '^mfrec_prep: error' log)"
  if [ "$rc" -eq 0 ]; then
    fail "$name: exit 0" "$(tail -5 log)"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    fail "$name: timed out (hang)" "$(tail -5 log)"
  elif [ "$lines" -ne 1 ]; then
    fail "$name: $lines error lines, expected 1" "$(cat log)"
  elif ! grep '^mfrec_prep: error' log | grep -qF -- "$msg"; then
    fail "$name: message does not say '$msg'" "$(grep '^mfrec_prep: error' log)"
  elif [ -e "$out" ] || [ -e "$out.partial" ]; then
    fail "$name: output left behind" "$(ls -l "$out"* 2>&1)"
  else
    pass "$name (exit $rc): $(grep '^mfrec_prep: error' log)"
  fi
}

# ---- inputs ------------------------------------------------------------------------------------

cat >events.csv <<'EOF'
user_id,item_id,event_type,timestamp
alice,sku-1,View,1
"bob, jr",sku-2,Purchase,2
alice,sku-1,AddToCart,3
carol,sku-3,ViewCart,4
dave,sku-2,StartCheckout,5
alice,sku-4,View,6
erin,sku-1,View,7
erin,sku-3,Purchase,8
EOF
printf 'u1,i1,2.5\r\nu2,i1,1\r\nu1,i2,4\r\nu3,i3,0.5\r\n' >triplets.csv

HAVE_H5PY=0
if "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  HAVE_H5PY=1
  # A tiny data set in mfrec_gen's layout, and spoiled copies of it.
  "$PY" - <<'EOF'
import h5py, numpy as np
def make(path, flaw=None):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = np.bytes_("mfrec-dataset")
        f["users/id"] = np.array([b"u%d" % i for i in range(6)], dtype="S8")
        f["items/id"] = np.array([b"item%d" % i for i in range(4)], dtype="S8")
        f["items/price"] = np.arange(4, dtype=np.float32)
        user = np.array([0, 1, 1, 2, 3, 5, 5, 0], dtype=np.int64)
        item = np.array([0, 1, 1, 2, 3, 0, 2, 3], dtype=np.int32)
        kind = np.array([0, 0, 4, 1, 2, 3, 0, 0], dtype=np.uint8)
        if flaw == "item_float": item = item.astype(np.float32)
        if flaw == "user_longer": user = np.append(user, 1)
        if flaw == "item_range": item[5] = 4
        if flaw == "user_negative": user[2] = -1
        if flaw == "type_range": kind[7] = 5
        if flaw == "user_2d": user = user.reshape(2, 4)
        if flaw != "no_events":
            f["events/user"] = user
            f["events/item"] = item
            f["events/type"] = kind
            f["events/timestamp"] = np.arange(len(kind), dtype=np.int64)
        if flaw == "zero":
            for k in ("user", "item", "type"):
                del f["events/" + k]
                f.create_dataset("events/" + k, (0,), dtype=np.int64)
make("good.h5")
for flaw in ("item_float", "user_longer", "item_range", "user_negative", "type_range", "user_2d", "no_events", "zero"):
    make(flaw + ".h5", flaw)
EOF
fi

# ---- good inputs -------------------------------------------------------------------------------

expect_ok "csv events with a header" -i events.csv -o ev.h5 --test-fraction 0.3
if prep 1 -i events.csv -o ev1.h5 --test-fraction 0.3 && cmp -s ev.h5 ev1.h5; then
  pass "csv events: 1 and 2 ranks write the same bytes"
else
  fail "csv events: 1 and 2 ranks differ" "$(tail -5 log)"
fi
expect_ok "csv triplets without a header, CRLF" -i triplets.csv -o tr.h5
expect_ok "csv export" -i events.csv -o ex.h5 --export-csv exported
if [ -f exported/train.csv ] && [ -f exported/test.csv ] && [ "$(head -1 exported/train.csv)" = "user_id,item_id,confidence" ] &&
  ! ls exported | grep -q partial && grep -q '^"bob, jr",sku-2,5$' exported/*.csv; then
  pass "csv export writes train.csv and test.csv with the original ids"
else
  fail "csv export files" "$(ls -l exported; cat exported/*.csv)"
fi
expect_ok "re-import the exported train.csv" -i exported/train.csv -o reimported.h5
mkdir -p sub && cp events.csv sub/ev.csv
expect_ok "default output name" -i sub/ev.csv
if [ -f sub/ev_prepared.h5 ]; then pass "default output is <stem>_prepared.h5"; else fail "default output missing" "$(ls sub)"; fi
if prep 2 --help && grep -q -- '--test-fraction' log; then pass "--help"; else fail "--help" "$(cat log)"; fi

if [ "$HAVE_H5PY" = 1 ]; then
  expect_ok "hdf5 data set" -i good.h5 -o good_prepared.h5 --weights 1,2,3,4,5
  if prep 1 -i good.h5 -o good_1.h5 && cmp -s good_prepared.h5 good_1.h5; then
    pass "hdf5: 1 and 2 ranks write the same bytes"
  else
    fail "hdf5: 1 and 2 ranks differ" "$(tail -5 log)"
  fi
  if "$PY" - <<'EOF'
import h5py, numpy as np, scipy.sparse as sp
with h5py.File("good_prepared.h5", "r") as f:
    assert f.attrs["format"] == b"mfrec-prepared", f.attrs["format"]
    g = f["matrix/train"]; t = f["matrix/test"]
    shape = (int(g.attrs["n_rows"]), int(g.attrs["n_cols"]))
    train = sp.csr_matrix((g["data"][:], g["indices"][:], g["indptr"][:]), shape=shape)
    test = sp.csr_matrix((t["data"][:], t["indices"][:], t["indptr"][:]), shape=shape)
    b = f["matrix/train_by_item"]
    by_item = sp.csr_matrix((b["data"][:], b["indices"][:], b["indptr"][:]), shape=shape[::-1])
    assert (by_item != train.T).nnz == 0
    full = (train + test).toarray()
    expected = np.zeros(shape, dtype=np.float32)
    for u, i, k in zip([0, 1, 1, 2, 3, 5, 5, 0], [0, 1, 1, 2, 3, 0, 2, 3], [0, 0, 4, 1, 2, 3, 0, 0]):
        expected[u, i] += k + 1
    assert (full == expected).all(), (full, expected)
    assert f["users/id"][0] == b"u0" and f["items/id"][3] == b"item3"
EOF
  then pass "hdf5 result read with h5py + scipy: exact confidences, exact transpose"
  else fail "hdf5 result check with h5py"; fi
else
  echo "skip - h5py not available: HDF5 data-set cases"
fi

# A data set from mfrec_gen: the shared fixture's (3,000 users, 30,000 events).
use_fixture
if prep 2 -i "$FIXTURE/data.h5" -o gen_p2.h5 && prep 1 -i "$FIXTURE/data.h5" -o gen_p1.h5 && cmp -s gen_p1.h5 gen_p2.h5; then
  pass "mfrec_gen data set: prepared, same bytes on 1 and 2 ranks"
else
  fail "mfrec_gen data set" "$(tail -5 log)"
fi

# --item-order category: the items sorted by (category, style, input order), the same
# (user, item id, confidence) pairs as the input's order, the same bytes on 1 and 2 ranks.
if prep 2 -i "$FIXTURE/data.h5" -o cat_p2.h5 --item-order category && prep 1 -i "$FIXTURE/data.h5" -o cat_p1.h5 \
  --item-order category && cmp -s cat_p1.h5 cat_p2.h5; then
  pass "--item-order category: same bytes on 1 and 2 ranks"
else
  fail "--item-order category" "$(tail -5 log)"
fi
# --user-order category: users sorted by (the first item of their main category, input order), the
# same (user id, item id, confidence) pairs, the same bytes on 1, 2 and 3 ranks (users move between
# ranks, with their ids).
if prep 2 -i "$FIXTURE/data.h5" -o uo_p2.h5 --user-order category --item-order category && \
   prep 1 -i "$FIXTURE/data.h5" -o uo_p1.h5 --user-order category --item-order category && \
   prep 3 -i "$FIXTURE/data.h5" -o uo_p3.h5 --user-order category --item-order category && \
   cmp -s uo_p1.h5 uo_p2.h5 && cmp -s uo_p1.h5 uo_p3.h5; then
  pass "--user-order category: same bytes on 1, 2 and 3 ranks"
else
  fail "--user-order category" "$(tail -5 log)"
fi
if [ "$HAVE_H5PY" -eq 1 ]; then
  if "$PY" - <<'PY' >log 2>&1; then pass "--item-order, --user-order category: sorted, same pairs by id"; else fail "--item-order / --user-order content" "$(tail -20 log)"; fi
import h5py, numpy as np
def read(path):
    with h5py.File(path, "r") as f:
        iid, uid = f["/items/id"][()], f["/users/id"][()]
        pairs, items = [], [set() for _ in uid]
        for name in ("train", "test"):  # the split hashes the file's indices: compare both together
            m = f["/matrix/" + name]
            ip, ix, v = m["indptr"][()], m["indices"][()], m["data"][()]
            users = np.repeat(np.arange(len(ip) - 1), np.diff(ip))
            pairs += zip(uid[users].tolist(), iid[ix].tolist(), v.tolist())
            for u, i in zip(users.tolist(), ix.tolist()): items[u].add(i)
        return dict(f.attrs), uid, f["/items/category"][()], f["/items/style"][()], items, sorted(pairs)
attrs0, uid0, cat0, sty0, _, by_src = read("gen_p2.h5")
attrs, uid, cat, sty, _, by_cat = read("cat_p2.h5")  # --item-order category
keys = list(zip(cat.tolist(), sty.tolist()))
assert keys == sorted(keys), "items not sorted by (category, style)"
assert sorted(keys) == sorted(zip(cat0.tolist(), sty0.tolist())), "a different set of items"
assert attrs["item_order"] == b"category" and "item_order" not in attrs0, "item_order attribute"
assert by_cat == by_src, "--item-order: not the same (user id, item id, confidence) pairs"
attrs, uid, cat, _, items, by_user = read("uo_p1.h5")  # and --user-order category
assert attrs["user_order"] == b"category" and "user_order" not in attrs0, "user_order attribute"
assert sorted(uid.tolist()) == sorted(uid0.tolist()) and uid.tolist() != uid0.tolist(), "users not renumbered"
assert by_user == by_src, "--user-order: not the same (user id, item id, confidence) pairs"
code = {c: k for k, c in enumerate(sorted(set(cat.tolist())))}  # items are in category order here
def key(its):
    if not its: return len(cat)
    groups = {}
    for i in sorted(its): groups.setdefault(code[cat[i]], []).append(i)
    main = max(groups, key=lambda c: (len(groups[c]), -c))  # most items, then the earlier category
    return groups[main][0]
keys = [key(s) for s in items]
assert keys == sorted(keys), "users not sorted by their main category's first item"
PY
fi
expect_error "--user-order category without categories" opt.h5 "option --user-order: category needs the items' categories" \
  -i events.csv -o opt.h5 --user-order category
expect_error "unknown --user-order" opt.h5 "option --user-order: unknown order 'age'" -i events.csv -o opt.h5 --user-order age
expect_error "--item-order category without categories" opt.h5 "option --item-order: category needs the items' categories" \
  -i events.csv -o opt.h5 --item-order category
expect_error "unknown --item-order" opt.h5 "option --item-order: unknown order 'size'" -i events.csv -o opt.h5 --item-order size

# ---- bad CSV -----------------------------------------------------------------------------------

printf 'user_id,item_id,event_type\nu1,i1,View\nu2,i2\n' >short.csv
expect_error "short csv line" short.h5 "short.csv:3: found 2 fields, the header has 3" -i short.csv -o short.h5
printf 'u1,i1,View\n\nu2,i2\n' >short2.csv
expect_error "short csv line, no header" short.h5 "short2.csv:3: expected 3 fields" -i short2.csv -o short.h5
printf 'u1,i1,View\nu1,"i2,View\n' >quote.csv
expect_error "unterminated quote" quote.h5 "quote.csv:2: unterminated quoted field 2" -i quote.csv -o quote.h5
printf 'u1,i1,View\nu1,i2,View,5,extra\n' >long.csv
expect_error "too many fields" long.h5 "long.csv:2: expected at most 4 fields" -i long.csv -o long.h5
printf 'user_id,item_id,event_type\nu1,i1,View\nu1,i2,Click\n' >type.csv
expect_error "unknown event type" type.h5 "type.csv:3: unknown event type 'Click'" -i type.csv -o type.h5
printf 'u1,i1,1\nu1,i2,-3\n' >neg.csv
expect_error "negative confidence" neg.h5 "neg.csv:2: confidence -3 is negative" -i neg.csv -o neg.h5
printf 'user_id,item_id,confidence\nu1,i1,1\nu1,i2,NaN\n' >nan.csv
expect_error "NaN confidence" nan.h5 "nan.csv:3: confidence 'NaN' is NaN" -i nan.csv -o nan.h5
printf 'u1,i1,1\nu1,i2,lots\n' >word.csv
expect_error "non-numeric confidence" word.h5 "word.csv:2: confidence 'lots' is not a number" -i word.csv -o word.h5 \
  --format csv-triplets
: >empty.csv
expect_error "empty csv" empty.h5 "empty.csv: no events (the file is empty)" -i empty.csv -o empty.h5
printf 'user_id,item_id,event_type\n' >header.csv
expect_error "header only" header.h5 "header.csv: no events (no data lines)" -i header.csv -o header.h5
expect_error "missing input" missing.h5 "option --input: no-such.csv: no such file" -i no-such.csv -o missing.h5
printf 'u1,i1,View\n' >ok.csv
expect_error "csv events forced as triplets" forced.h5 "ok.csv:1: confidence 'View' is not a number" -i ok.csv \
  -o forced.h5 --format csv-triplets

# ---- bad HDF5 ----------------------------------------------------------------------------------

printf 'not an HDF5 file\n' >junk.h5
expect_error "not an HDF5 file" junk_p.h5 "junk.h5: not an HDF5 file" -i junk.h5 -o junk_p.h5
if [ "$HAVE_H5PY" = 1 ]; then
  expect_error "/events/item stored as float" o.h5 "item_float.h5: dataset /events/item has type float, expected integer" \
    -i item_float.h5 -o o.h5
  expect_error "/events/user longer than /events/item" o.h5 \
    "user_longer.h5: dataset /events/user has 9 rows but /events/item has 8" -i user_longer.h5 -o o.h5
  expect_error "item index out of range" o.h5 "item_range.h5: dataset /events/item[5] = 4 is outside [0, 4)" \
    -i item_range.h5 -o o.h5
  expect_error "negative user index" o.h5 "user_negative.h5: dataset /events/user[2] = -1 is outside [0, 6)" \
    -i user_negative.h5 -o o.h5 --batch 3
  expect_error "event type out of range" o.h5 "type_range.h5: dataset /events/type[7] = 5 is outside [0, 5)" \
    -i type_range.h5 -o o.h5
  expect_error "/events/user of rank 2" o.h5 "user_2d.h5: dataset /events/user has 2 dimensions, expected 1" \
    -i user_2d.h5 -o o.h5
  expect_error "no /events" o.h5 "no_events.h5: missing dataset /events/user" -i no_events.h5 -o o.h5
  expect_error "no events" o.h5 "zero.h5: dataset /events/user is empty" -i zero.h5 -o o.h5
  expect_error "a prepared file as input" o.h5 "good_prepared.h5: is already a prepared file" \
    -i good_prepared.h5 -o o.h5
fi

# ---- bad options -------------------------------------------------------------------------------

for f in 0 1 1.5 -0.2; do
  expect_error "--test-fraction $f" opt.h5 "option --test-fraction: must be in (0, 1)" -i events.csv -o opt.h5 \
    --test-fraction "$f"
done
expect_error "negative weight" opt.h5 "option --weights: weights must be finite and non-negative" -i events.csv \
  -o opt.h5 --weights=-1,2,3,4,5
expect_error "wrong number of weights" opt.h5 "option --weights: expected 5 weights" -i events.csv -o opt.h5 \
  --weights 1,2,3
expect_error "bad weight" opt.h5 "option --weights: bad value 'x'" -i events.csv -o opt.h5 --weights 1,x,3,4,5
expect_error "all weights zero" opt.h5 "option --weights: at least one weight must be positive" -i events.csv \
  -o opt.h5 --weights 0,0,0,0,0
expect_error "negative per-type weight" opt.h5 "option --weight-purchase: must be finite and non-negative" \
  -i events.csv -o opt.h5 --weight-purchase=-2
expect_error "unknown format" opt.h5 "option --format: unknown format 'xml'" -i events.csv -o opt.h5 --format xml
expect_error "negative seed" opt.h5 "option --seed: must be >= 0" -i events.csv -o opt.h5 --seed=-1
expect_error "output = input" events.csv.none "option --output: events.csv: is the same file as --input" -i events.csv \
  -o events.csv
expect_error "unknown option" opt.h5 "unrecognised option '--bogus'" -i events.csv -o opt.h5 --bogus

finish
