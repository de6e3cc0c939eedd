#!/usr/bin/env bash
# The ANN index end to end on the tiny fixture (2,465 items): mfrec_registry build-index --model and
# publish --ann, mfrec_recommend and mfrec_serve with --ann on against --ann off (with --ann-ef
# above the catalogue's size the graph search visits every item, so they must agree: the
# plumbing is tested here, the recall of the default ef in test_ann),
# --ann auto leaving the default catalogue on exact search, and the one-line errors for a missing,
# corrupt or mismatched index (in the server too: it does not start).
# fixture: tiny_pipeline
set -u
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
use_fixture
cp "$FIXTURE/model.h5" model.h5

# one_error PROGRAM PATTERN COMMAND...: non-zero exit within 20 s, exactly one "PROGRAM: error" line
# on stderr, containing PATTERN.
one_error() {
  local prog=$1 pattern=$2 rc
  shift 2
  timeout 20 "$@" >out.txt 2>err.txt
  rc=$?
  [ "$rc" -ne 0 ] && ! timed_out "$rc" && [ "$(grep -c "^$prog: error" err.txt)" -eq 1 ] &&
    grep "^$prog: error" err.txt | grep -q -- "$pattern"
}
json_items() { "$PY" -c 'import json,sys; print(" ".join(x["id"] for x in json.load(sys.stdin)["items"]))'; }

# ---- mfrec_recommend ----------------------------------------------------------------------------
R=("$BIN/mfrec_recommend" --model model.h5 --format json)
check "recommend: --ann on without an index: one error line naming it and build-index" \
  one_error mfrec_recommend "model.ann: no ANN index.*build-index" "${R[@]}" --user "$("$PY" -c "
import h5py; print(h5py.File('model.h5')['/users/id'][0].decode())")" --ann on
user=$("$PY" -c "import h5py; print(h5py.File('model.h5')['/users/id'][5].decode())")
item=$("$PY" -c "import h5py; print(h5py.File('model.h5')['/items/id'][10].decode())")
check "recommend: --ann auto on the default catalogue (2,465 items) is exact search, without an index" \
  bash -c "\"\$@\" --user $user --log-level info 2>auto.err >/dev/null && ! grep -q ANN auto.err" _ "${R[@]}"
check "build-index --model writes model.ann" "$BIN/mfrec_registry" build-index --model model.h5 -q
check "build-index: the index file exists" test -s model.ann

for q in "--user $user" "--similar $item" "--history $item"; do
  # shellcheck disable=SC2086
  on=$("${R[@]}" $q --ann on --ann-ef 3000 --log-level info 2>err.txt | json_items)
  # shellcheck disable=SC2086
  off=$("${R[@]}" $q --ann off | json_items)
  if [ -n "$on" ] && [ "$on" = "$off" ] && grep -q "ANN index model.ann" err.txt; then
    pass "recommend $q: --ann on (index used) answers as --ann off"
  else
    fail "recommend $q: --ann on vs off" "on:  $on"$'\n'"off: $off"$'\n'"$(cat err.txt)"
  fi
done
# shellcheck disable=SC2086
check "recommend: --ann auto with a low threshold uses the index" \
  bash -c "\"\$@\" --user $user --ann-threshold 100 --log-level info 2>&1 >/dev/null | grep -q 'ANN index model.ann:'" _ "${R[@]}"
seen_ok=$("${R[@]}" --user "$user" --ann on -n 50 | "$PY" -c "
import json, sys, h5py
f = h5py.File('model.h5'); ids = [i.decode() for i in f['/items/id'][:]]
users = [u.decode() for u in f['/users/id'][:]]; u = users.index('$user')
ip, ix = f['/seen/indptr'][:], f['/seen/indices'][:]
seen = {ids[i] for i in ix[ip[u]:ip[u + 1]]}
got = [x['id'] for x in json.load(sys.stdin)['items']]
print('yes' if len(got) == 50 and not seen & set(got) and seen else 'no')")
check "recommend --ann on: none of the user's seen items among 50" test "$seen_ok" = yes

# Errors: a corrupt index, another model's index, bad options.
cp model.ann good.ann
corrupt() {  # corrupt FILE: one byte of its last graph changed
  "$PY" -c "
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(-50, 2); b = f.read(1); f.seek(-50, 2); f.write(bytes([b[0] ^ 0x5A]))" "$1"
}
corrupt model.ann
check "recommend: a corrupt index: one error line (checksum mismatch)" \
  one_error mfrec_recommend "checksum mismatch" "${R[@]}" --user "$user" --ann on
check "recommend: a corrupt index is an error in auto mode too" \
  one_error mfrec_recommend "checksum mismatch" "${R[@]}" --user "$user" --ann-threshold 1
check "recommend: --ann off never reads the index" bash -c "\"\$@\" --user $user --ann off >/dev/null" _ "${R[@]}"
"$BIN/mfrec_dist" --data "$FIXTURE/prep.h5" --output other.h5 --factors 8 --iterations 1 --threads 1 \
  --log-level warn >/dev/null 2>&1 && "$BIN/mfrec_registry" build-index --model other.h5 -q
check "recommend: another model's index (--ann-index): one error line (other item factors)" \
  one_error mfrec_recommend "other item factors" "${R[@]}" --user "$user" --ann on --ann-index other.ann
cp good.ann model.ann
check "recommend: --ann yes refused" one_error mfrec_recommend "option --ann" "${R[@]}" --user "$user" --ann yes
check "recommend: --ann-ef 0 refused" one_error mfrec_recommend "option --ann-ef" "${R[@]}" --user "$user" --ann-ef 0
check "recommend: --ann-threshold 0 refused" \
  one_error mfrec_recommend "option --ann-threshold" "${R[@]}" --user "$user" --ann-threshold 0
check "recommend: --ann with --all refused (the batch is exact)" \
  one_error mfrec_recommend "option --ann" "$BIN/mfrec_recommend" --model model.h5 --all --output r.h5 --ann on
check "recommend: --ann-index with --registry refused" \
  one_error mfrec_recommend "option --ann-index" "$BIN/mfrec_recommend" --registry . --user "$user" --ann-index model.ann

# ---- registry -------------------------------------------------------------------------------------
check "publish --ann" "$BIN/mfrec_registry" --registry reg publish model.h5 m --ann --stage production -q
check "publish --ann: the index beside the model" test -s reg/m/v1.ann
check "publish --ann: index.json records its checksum" "$PY" -c "
import json, zlib
e = json.load(open('reg/index.json'))['models'][0]
assert e['ann']['file'] == 'm/v1.ann', e
assert e['ann']['checksum'] == 'crc32:%08x' % zlib.crc32(open('reg/m/v1.ann', 'rb').read()), e"
check "publish: --ann-m without --ann refused" \
  one_error mfrec_registry "option --ann-m" "$BIN/mfrec_registry" --registry reg publish model.h5 m --ann-m 8
reg_on=$("$BIN/mfrec_recommend" --registry reg --spec m@production --format json --user "$user" --ann on \
  --ann-ef 3000 | json_items)
check "recommend --registry --ann on answers as the model file" test "$reg_on" = "$("${R[@]}" --user "$user" | json_items)"

# ---- mfrec_serve --------------------------------------------------------------------------------
# serve NAME ARGS...: a server in the background; its base URL in $url.
serve() {
  local name=$1
  shift
  "$BIN/mfrec_serve" --port 0 --port-file "$name.port" --threads 2 --poll-seconds 0 --log-level warn "$@" \
    >"$name.out" 2>"$name.err" &
  for _ in $(seq 1 300); do [ -s "$name.port" ] && break; sleep 0.1; done
  url="http://127.0.0.1:$(cat "$name.port" 2>/dev/null)"
}
serve exact --model model.h5 --ann off
url_exact=$url
serve ann --registry reg --spec m@production --ann on --ann-ef 3000
url_ann=$url
check "serve --ann on: /healthz says ann search" \
  bash -c "curl -sf '$url_ann/healthz' | grep -q '\"search\":\"ann\"'"
check "serve --ann off: /healthz says exact search" \
  bash -c "curl -sf '$url_exact/healthz' | grep -q '\"search\":\"exact\"'"
same=yes
for path in "/recommendations?user_id=$user&n=20" "/items/$item/similar?n=20" "/popular?n=5"; do
  a=$(curl -sf "$url_ann$path" | json_items)
  b=$(curl -sf "$url_exact$path" | json_items)
  [ -n "$a" ] && [ "$a" = "$b" ] || { same=no; echo "  $path: ann [$a] exact [$b]"; }
done
a=$(curl -sf -X POST -d "{\"items\": [\"$item\"], \"n\": 10}" "$url_ann/recommendations" | json_items)
b=$(curl -sf -X POST -d "{\"items\": [\"$item\"], \"n\": 10}" "$url_exact/recommendations" | json_items)
[ -n "$a" ] && [ "$a" = "$b" ] || same=no
check "serve: --ann on answers top N, similar items and fold-in as --ann off" test "$same" = yes
cp good.ann bad.ann
corrupt bad.ann
check "serve --ann on with a corrupt index: no server, one error line" \
  one_error mfrec_serve "checksum mismatch" "$BIN/mfrec_serve" --model model.h5 --port 0 --ann on --ann-index bad.ann
rm -f model.ann
check "serve --ann on without an index: no server, one error line" \
  one_error mfrec_serve "no ANN index" "$BIN/mfrec_serve" --model model.h5 --port 0 --ann on
check "serve: --ann-index with --registry refused" \
  one_error mfrec_serve "option --ann-index" "$BIN/mfrec_serve" --registry reg --port 0 --ann-index good.ann
finish
