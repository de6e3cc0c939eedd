#!/usr/bin/env bash
# mfrec_registry end to end: publish, list, show, promote, path; concurrent publishers (several
# processes at once); crashes mid-publish; corrupted files; bad input (one-line error, non-zero
# exit, nothing lost). Needs MFREC_BIN (the build directory) and python3 with h5py for the tiny
# model files.
set -u
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
REGISTRY="$BIN/mfrec_registry"
REG="$WORK/reg"

# expect_error NAME RC PATTERN CMD...: exits with RC, prints exactly one line on stderr that
# contains PATTERN, and nothing on stdout.
expect_error() {
  local name=$1 want_rc=$2 pattern=$3
  shift 3
  "$@" >"$WORK/out" 2>"$WORK/err"
  local rc=$? lines
  lines=$(wc -l <"$WORK/err")
  if [ "$rc" -eq "$want_rc" ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$WORK/err" && [ ! -s "$WORK/out" ]; then
    pass "$name"
  else
    fail "$name (rc $rc, want $want_rc; $lines stderr lines; want '$pattern')"
    sed 's/^/    | /' "$WORK/err" "$WORK/out"
  fi
}

# make_models PATH:MAP:BASELINE:SEED...: tiny files with the attributes mfrec's model reader needs.
make_models() {
  "$PY" - "$@" <<'EOF'
import sys
import h5py
import numpy as np
for arg in sys.argv[1:]:
    path, map_k, base, seed = arg.split(":")
    map_k, base, seed = float(map_k), float(base), int(seed)
    with h5py.File(path, "w") as f:
        f["user_factors"] = np.array([[0.5, 1.5], [seed, 2.0]], dtype=np.float32)
        a = f.attrs
        for k, v in {"format": "mfrec-model", "program_version": "0.1.0-cli-test",
                     "created": "2024-01-02T03:04:05Z", "confidence": "hu", "solver": "cg",
                     "dataset": "retail_prepared.h5", "dataset_fingerprint": "0011aabb"}.items():
            a[k] = v
        for k, v in {"format_version": 1, "factors": 2, "scale_regularization": 0, "cg_steps": 3,
                     "iterations": 15, "seed": seed, "k": 20}.items():
            a[k] = np.int64(v)
        a["regularization"] = 0.1
        a["alpha"] = 40.0
        f.create_group("metrics").attrs["map_at_k"] = map_k
        f.create_group("metrics/system").attrs["seconds"] = 1.0
        f.create_group("metrics/baseline").attrs["map_at_k"] = base
EOF
}

json_count() {  # number of entries in `list --json`
  "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

if ! "$PY" -c 'import h5py' 2>/dev/null; then
  fail "python3 with h5py is needed to write the test models"
  finish
fi
models=(good.h5:0.12:0.05:1 good2.h5:0.13:0.05:2 weak.h5:0.01:0.05:3)
for i in $(seq 1 18); do models+=("m$i.h5:0.1:0.05:$((100 + i))"); done
if ! make_models "${models[@]}"; then
  fail "could not write the test models"
  finish
fi

# --- help and the ordinary path --------------------------------------------------------------
"$REGISTRY" --help >help.txt 2>&1
check "--help exits 0 and documents every command" \
  bash -c "grep -q 'list' help.txt && grep -q 'show SPEC' help.txt && grep -q 'promote SPEC STAGE' help.txt \
           && grep -q 'path SPEC' help.txt && grep -q 'publish MODEL NAME' help.txt && grep -q -- '--registry' help.txt \
           && grep -q -- '--stage' help.txt && grep -q 'NAME@STAGE' help.txt"

"$REGISTRY" --registry "$REG" publish good.h5 retail-als >pub1.txt 2>pub1.err
check "publish creates the registry and prints the version" grep -q "published retail-als:1 " pub1.txt
"$REGISTRY" --registry "$REG" publish good2.h5 retail-als -q >/dev/null 2>&1
"$REGISTRY" --registry "$REG" publish weak.h5 retail-als --stage none -q >/dev/null 2>&1
check "index.json and INDEX.md are written" test -s "$REG/index.json" -a -s "$REG/INDEX.md"
"$REGISTRY" --registry "$REG" list >list.txt 2>&1
check "list prints a table with the columns" \
  bash -c "head -1 list.txt | grep -q 'NAME  *VERSION  *STAGES  *MAP@K  *BASELINE-MAP@K  *CREATED  *FILE'"
check "list shows three versions" test "$(grep -c '^retail-als ' list.txt)" -eq 3
check "list shows MAP@K and the baseline" grep -q ' 0.1300  *0.0500 ' list.txt
check "the candidate label moved to version 2" \
  bash -c "grep -E '^retail-als +1 +- ' list.txt >/dev/null && grep -E '^retail-als +2 +candidate ' list.txt >/dev/null \
           && grep -E '^retail-als +3 +- ' list.txt >/dev/null"
"$REGISTRY" --registry "$REG" show retail-als:2 >show.txt 2>&1
check "show prints the entry with parameters, metrics, fingerprint and version" \
  bash -c "grep -q '\"checksum\": \"crc32:' show.txt && grep -q '\"factors\": 2' show.txt \
           && grep -q '\"dataset_fingerprint\": \"0011aabb\"' show.txt && grep -q '\"program_version\"' show.txt \
           && grep -q '\"path\": \"$REG/retail-als/v2.h5\"' show.txt"
check "path prints the verified absolute path" test "$("$REGISTRY" --registry "$REG" path retail-als@candidate 2>/dev/null)" = "$REG/retail-als/v2.h5"
check "path of the latest version" test "$("$REGISTRY" --registry "$REG" path retail-als 2>/dev/null)" = "$REG/retail-als/v3.h5"
check "the registered file is a byte copy" cmp -s good2.h5 "$REG/retail-als/v2.h5"

"$REGISTRY" --registry "$REG" promote retail-als:1 production >prom1.txt 2>&1
check "promote labels version 1 production" grep -q "retail-als:1 is now production" prom1.txt
"$REGISTRY" --registry "$REG" promote retail-als@candidate production >prom2.txt 2>&1
check "promote moves production from version 1 to version 2" grep -q "retail-als:2 is now production (was retail-als:1)" prom2.txt
check "production resolves to version 2" test "$("$REGISTRY" --registry "$REG" path retail-als@production 2>/dev/null)" = "$REG/retail-als/v2.h5"
"$REGISTRY" --registry "$REG" promote retail-als:3 production >prom3.txt 2>prom3.err
check "promoting a model that does not beat the baseline warns" grep -q "does not beat the popularity baseline" prom3.err
"$REGISTRY" --registry "$REG" promote retail-als:2 production -q >/dev/null 2>&1

# --- bad input: one line, non-zero exit, nothing lost ------------------------------------------
cp "$REG/index.json" index.before
echo "I am a file" >afile
expect_error "registry path that is a file" 2 "option --registry: .*is a file" "$REGISTRY" --registry afile list
check "the file is untouched" test "$(cat afile)" = "I am a file"
expect_error "publish into a registry path that is a file" 2 "is a file" "$REGISTRY" --registry afile publish good.h5 x
expect_error "registry that does not exist (not created by list)" 2 "does not exist" "$REGISTRY" --registry "$WORK/nope" list
check "list did not create the registry" test ! -e "$WORK/nope"
expect_error "unknown model" 1 "unknown model 'nosuch'" "$REGISTRY" --registry "$REG" show nosuch
expect_error "unknown version" 1 "has no version 42" "$REGISTRY" --registry "$REG" path retail-als:42
expect_error "unknown stage in a spec" 1 "unknown stage 'prod'" "$REGISTRY" --registry "$REG" path retail-als@prod
expect_error "unknown stage to promote to" 1 "unknown stage 'golden'" "$REGISTRY" --registry "$REG" promote retail-als:1 golden
expect_error "no version holds the stage" 1 "has the stage 'staging'" "$REGISTRY" --registry "$REG" show retail-als@staging
expect_error "promote an unknown model" 1 "unknown model" "$REGISTRY" --registry "$REG" promote nosuch production
expect_error "bad spec" 1 "bad model spec" "$REGISTRY" --registry "$REG" show retail-als:x
expect_error "publish a file that is not a model" 1 "notamodel.txt" bash -c "echo hello >notamodel.txt; '$REGISTRY' --registry '$REG' publish notamodel.txt retail-als"
expect_error "publish a missing file" 1 "does not exist" "$REGISTRY" --registry "$REG" publish missing.h5 retail-als
expect_error "publish with an invalid name" 1 "invalid model name" "$REGISTRY" --registry "$REG" publish good.h5 ../up
expect_error "publish with an unknown stage" 1 "unknown stage" "$REGISTRY" --registry "$REG" publish good.h5 retail-als --stage golden
expect_error "no command" 2 "no command given" "$REGISTRY" --registry "$REG"
expect_error "unknown command" 2 "unknown command 'frobnicate'" "$REGISTRY" --registry "$REG" frobnicate
expect_error "missing argument" 2 "takes 1 argument" "$REGISTRY" --registry "$REG" show
expect_error "--stage outside publish" 2 "option --stage" "$REGISTRY" --registry "$REG" list --stage production
check "index.json unchanged by every bad command" cmp -s index.before "$REG/index.json"
check "no stray files after the bad commands" \
  test "$(cd "$REG" && find . -type f | sort | tr '\n' ' ')" = "./.lock ./INDEX.md ./index.json ./retail-als/v1.h5 ./retail-als/v2.h5 ./retail-als/v3.h5 "

# --- a corrupted model file is refused ---------------------------------------------------------
cp "$REG/retail-als/v1.h5" v1.backup
printf '\x55' | dd of="$REG/retail-als/v1.h5" bs=1 seek=200 count=1 conv=notrunc 2>/dev/null
if cmp -s v1.backup "$REG/retail-als/v1.h5"; then
  printf '\xaa' | dd of="$REG/retail-als/v1.h5" bs=1 seek=200 count=1 conv=notrunc 2>/dev/null
fi
expect_error "a corrupted model is refused" 1 "checksum mismatch" "$REGISTRY" --registry "$REG" path retail-als:1
cp v1.backup "$REG/retail-als/v1.h5"
check "the restored model verifies again" "$REGISTRY" --registry "$REG" path retail-als:1 -q

# --- crashes mid-publish ------------------------------------------------------------------------
for point in after-copy after-model-rename before-index-rename; do
  cp "$REG/index.json" index.before
  MFREC_REGISTRY_FAULT=$point "$REGISTRY" --registry "$REG" publish good.h5 retail-als -q >/dev/null 2>&1
  rc=$?
  check "crash at $point: the process died (rc $rc)" test "$rc" -eq 70
  check "crash at $point: index.json as it was" cmp -s index.before "$REG/index.json"
done
"$REGISTRY" --registry "$REG" publish good.h5 retail-als >after.txt 2>&1
# The crashes after the model's rename left v4.h5 and v5.h5 without index entries: their numbers
# are not reused.
check "the next publish after the crashes works (version 6)" grep -q "published retail-als:6 " after.txt
check "the orphaned file is not listed" test "$("$REGISTRY" --registry "$REG" list --json 2>/dev/null | json_count)" -eq 4
check "no temporary files of the crashed processes are left" \
  test -z "$(find "$REG" -name '*.tmp')"
expect_error "the unindexed version is unknown" 1 "has no version 4" "$REGISTRY" --registry "$REG" path retail-als:4
check "the versions are 1, 2, 3 and 6" test "$("$REGISTRY" --registry "$REG" list 2>/dev/null | awk 'NR > 1 {printf "%s ", $2}')" = "1 2 3 6 "

# --- concurrent publishers: 6 processes x 3 models, all at once -------------------------------
CREG="$WORK/creg"
for j in 1 2 3 4 5 6; do
  (
    for k in 1 2 3; do
      i=$(((j - 1) * 3 + k))
      "$REGISTRY" --registry "$CREG" publish "m$i.h5" shop -q >"pub-$j-$k.txt" 2>&1 || echo "job $j publish $k failed" >>failures.txt
    done
  ) &
done
wait
check "every concurrent publish succeeded" test ! -s failures.txt
[ -s failures.txt ] && cat failures.txt pub-*.txt | sed 's/^/    | /'
check "all 18 versions are listed" test "$("$REGISTRY" --registry "$CREG" list --json 2>/dev/null | json_count)" -eq 18
"$REGISTRY" --registry "$CREG" list --json >clist.json 2>/dev/null
check "versions 1..18, each once, with distinct files" "$PY" -c '
import json, sys
e = json.load(open("clist.json"))
assert sorted(x["version"] for x in e) == list(range(1, 19)), e
assert len({x["file"] for x in e}) == 18
assert sum("candidate" in x["stages"] for x in e) == 1
'
check "the 18 checksums match the 18 sources" "$PY" -c '
import json, zlib
e = json.load(open("clist.json"))
src = {"crc32:%08x" % (zlib.crc32(open("m%d.h5" % i, "rb").read()) & 0xffffffff) for i in range(1, 19)}
assert {x["checksum"] for x in e} == src
'
all_verified=1
for v in $(seq 1 18); do
  "$REGISTRY" --registry "$CREG" path "shop:$v" -q >/dev/null 2>&1 || { all_verified=0; echo "    | shop:$v does not verify"; }
done
check "every version's path verifies" test "$all_verified" -eq 1
check "no temporary files left by the concurrent publishers" test -z "$(find "$CREG" -name '*.tmp')"

finish
