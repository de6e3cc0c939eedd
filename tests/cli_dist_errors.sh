#!/usr/bin/env bash
# mfrec_dist refuses bad paths and bad data before any work, the same way on every rank:
# each case runs under mpirun -n 2 and -n 3 with a 10 s timeout and must exit non-zero (no
# hang), print exactly one error line naming the option (or the file and dataset), and leave
# nothing behind in the working directory. Then a job stopped with SIGTERM sent to mpirun itself
# (jobs/train.sbatch with MFREC_LAUNCHER=mpirun) exits 75 and resumes.
# Env: MFREC_BIN (build dir), MFREC_SRC (source dir), MPIEXEC.
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1

# Its own data set: 600 users, a fifth of the shared fixture's, keeps the 10 s cases fast.
run 2 300 mfrec_gen --users 600 --events 6000 --output data.h5 || fail "generate" "$(tail log)"
run 2 300 mfrec_prep --input data.h5 --output in.h5 || fail "prepare" "$(tail log)"
rm -f data.h5
touch afile

# Bad prepared files, each made from in.h5 with h5py.
"$PY" - <<'PYEOF' || fail "make the bad files"
import shutil, h5py, numpy as np

def variant(name, change):
    shutil.copy("in.h5", name)
    with h5py.File(name, "r+") as f:
        change(f)

def replace(f, path, values):
    attrs = dict(f[path].attrs)
    del f[path]
    f[path] = values
    for k, v in attrs.items():
        f[path].attrs[k] = v

def not_transpose(f):  # same shape and non-zeros, the values of train_by_item shuffled
    d = f["matrix/train_by_item/data"][...]
    d[:] = d[::-1] + np.arange(len(d), dtype=np.float32) % 3
    f["matrix/train_by_item/data"][...] = d

def format_attr(f):
    f.attrs["format"] = np.bytes_("not-mfrec")

def repeated_column(f):  # a row whose first two columns are the same
    ptr, ix = f["matrix/train/indptr"][...], f["matrix/train/indices"][...]
    r = int(np.argmax(np.diff(ptr) >= 2))
    ix[ptr[r] + 1] = ix[ptr[r]]
    f["matrix/train/indices"][...] = ix

def unsorted(f):  # every row's columns reversed, values with them: sorted on read
    for m in ["train", "train_by_item", "test"]:
        ptr = f[f"matrix/{m}/indptr"][...]
        ix, d = f[f"matrix/{m}/indices"][...], f[f"matrix/{m}/data"][...]
        for r in range(len(ptr) - 1):
            ix[ptr[r]:ptr[r + 1]] = ix[ptr[r]:ptr[r + 1]][::-1].copy()
            d[ptr[r]:ptr[r + 1]] = d[ptr[r]:ptr[r + 1]][::-1].copy()
        f[f"matrix/{m}/indices"][...] = ix
        f[f"matrix/{m}/data"][...] = d

def empty_matrix(rows, cols):
    def change(f):
        for m, (nr, nc) in {"train": (rows, cols), "train_by_item": (cols, rows), "test": (rows, cols)}.items():
            replace(f, f"matrix/{m}/indptr", np.zeros(nr + 1, dtype=np.int64))
            replace(f, f"matrix/{m}/indices", np.zeros(0, dtype=np.int32))
            replace(f, f"matrix/{m}/data", np.zeros(0, dtype=np.float32))
            g = f[f"matrix/{m}"]
            g.attrs["n_rows"], g.attrs["n_cols"], g.attrs["nnz"] = np.int64(nr), np.int64(nc), np.int64(0)
    return change

with h5py.File("in.h5", "r") as f:
    n_users, n_items = f["matrix/train"].attrs["n_rows"], f["matrix/train"].attrs["n_cols"]
variant("bad_transpose.h5", not_transpose)
variant("bad_format.h5", format_attr)
variant("bad_repeated.h5", repeated_column)
variant("unsorted.h5", unsorted)
variant("no_nonzeros.h5", empty_matrix(int(n_users), int(n_items)))
variant("no_users.h5", empty_matrix(0, int(n_items)))
variant("no_items.h5", empty_matrix(int(n_users), 0))
PYEOF

DIST=(--factors 4 --iterations 2 --threads 1)
snapshot() { find . -mindepth 1 | grep -v -e '^\./log$' | sort; }
before="$(snapshot)"

# expect_error NAME PATTERN ARGS...: under 2 and 3 ranks, a non-zero exit within 10 s, one
# "mfrec_dist: error" line that matches PATTERN, and the directory as it was.
expect_error() {
  local name="$1" pattern="$2"
  shift 2
  local np rc lines
  for np in 2 3; do
    run "$np" 10 mfrec_dist "$@"
    rc=$?
    lines="$(grep -c "mfrec_dist: error" log)"
    if timed_out "$rc"; then
      fail "$name (-n $np): hangs" "$(tail -5 log)"
    elif [ "$rc" -eq 0 ]; then
      fail "$name (-n $np): exit 0" "$(tail -5 log)"
    elif [ "$lines" -ne 1 ] || ! grep "mfrec_dist: error" log | grep -q -- "$pattern"; then
      fail "$name (-n $np): exit $rc, $lines error lines, expected one matching '$pattern'" "$(grep -v '^\[' log | head -8)"
    elif [ "$(snapshot)" != "$before" ]; then
      fail "$name (-n $np): left files behind" "$(diff <(echo "$before") <(snapshot))"
    else
      pass "$name (-n $np): exit $rc, one line naming $pattern"
    fi
    comm -13 <(echo "$before") <(snapshot) | xargs -r rm -rf
  done
}

# Outputs that would replace the input or another output.
expect_error "--output is the input" "option --output" --data in.h5 -o in.h5 "${DIST[@]}"
expect_error "--report is the input" "option --report" --data in.h5 --output "" --report in.h5 "${DIST[@]}"
expect_error "--experiment is the input" "option --experiment" --data in.h5 --output "" --experiment in.h5 "${DIST[@]}"
expect_error "--summary-csv is the input" "option --summary-csv" --data in.h5 --output "" --summary-csv in.h5 "${DIST[@]}"
expect_error "--summary-csv is --report" "option --summary-csv" --data in.h5 --output "" --report r.json --summary-csv r.json "${DIST[@]}"
expect_error "--checkpoint-dir is the input" "option --checkpoint-dir" --data in.h5 --output m.h5 --checkpoint-dir in.h5 "${DIST[@]}"
: > afile.x.ckpt; before="$(snapshot)"
expect_error "derived checkpoint dir is a file" "option --checkpoint-dir" --data in.h5 --output afile.x --checkpoint-every 1 "${DIST[@]}"
rm -f afile.x.ckpt; before="$(snapshot)"
# The registry, checked on rank 0 only before: the other ranks hung.
expect_error "--registry is a file" "option --registry" --data in.h5 --output m.h5 --registry afile "${DIST[@]}"
if [ "$(id -u)" -ne 0 ]; then
  mkdir ro && chmod 555 ro && before="$(snapshot)"
  expect_error "--registry is read-only" "option --registry" --data in.h5 --output m.h5 --registry ro "${DIST[@]}"
fi
# An output directory that is missing: nothing is trained, so no model is left behind.
expect_error "--report in a missing directory" "option --report" --data in.h5 --output m.h5 --report nodir/r.json "${DIST[@]}"
expect_error "--summary-csv in a missing directory" "option --summary-csv" --data in.h5 --output m.h5 --summary-csv nodir/s.csv "${DIST[@]}"
# A failure after the model is written (the registry refuses the name): the model, the summary
# and the registry directory this run created are removed.
expect_error "late failure: bad --model-name" "model name" --data in.h5 --output m.h5 --summary-csv s.csv --registry reg --model-name bad/name "${DIST[@]}"
expect_error "--seed -1" "seed" --data in.h5 --output m.h5 --seed -1 "${DIST[@]}"

# Data that would train garbage silently, or fail without naming the dataset.
expect_error "train_by_item is not the transpose" "bad_transpose.h5.*train_by_item" --data bad_transpose.h5 --output m.h5 "${DIST[@]}"
expect_error "format attribute" "bad_format.h5.*format" --data bad_format.h5 --output m.h5 "${DIST[@]}"
expect_error "a column twice in a row" "bad_repeated.h5.*matrix/train" --data bad_repeated.h5 --output m.h5 "${DIST[@]}"
expect_error "no non-zeros" "no_nonzeros.h5.*no non-zeros" --data no_nonzeros.h5 --output m.h5 "${DIST[@]}"
expect_error "no users" "no_users.h5.*no users" --data no_users.h5 --output m.h5 "${DIST[@]}"
expect_error "no items" "no_items.h5.*no items" --data no_items.h5 --output m.h5 "${DIST[@]}"

# Unsorted columns within rows are sorted on read: the same model as the sorted file.
if run 2 60 mfrec_dist --data in.h5 --output "" --report a.json "${DIST[@]}" &&
   run 3 60 mfrec_dist --data unsorted.h5 --output "" --report b.json "${DIST[@]}" &&
   "$PY" -c '
import json
a, b = json.load(open("a.json"))["metrics"], json.load(open("b.json"))["metrics"]
assert all(abs(a[k] - b[k]) <= 1e-6 for k in a), (a, b)'; then
  pass "unsorted columns are sorted on read (same metrics)"
else
  fail "unsorted columns" "$(tail -5 log)"
fi

# SIGTERM sent to mpirun itself, with the rest of the job (what a time limit does to every
# process of the job): mpirun exits 1 whatever the ranks did; jobs/train.sbatch still exits 75,
# the documented status, when the ranks left checkpoints (cli_checkpoint.sh tests the resume).
cat > grid.ini <<'INI'
factors = 4
iterations = 100000
INI
mkdir -p out
# mpirun keeps its 1 s SIGTERM-to-SIGKILL grace here (lib.sh sets 0): the ranks checkpoint on SIGTERM.
env -u OMPI_MCA_odls_base_sigkill_timeout \
  MFREC_LAUNCHER=mpirun MFREC_BIN="$BIN" MFREC_OUT="$WORK/out" MFREC_DATA="$WORK/in.h5" MFREC_CONFIG="$WORK/grid.ini" \
  MFREC_CHECKPOINT_EVERY=5 MFREC_THREADS=1 setsid bash "$SRC/jobs/train.sbatch" >job.log 2>&1 &
job=$!
for _ in $(seq 300); do
  [ -n "$(ls out/checkpoints/*.h5 2>/dev/null)" ] && break
  sleep 0.1
done
sleep 0.5
if pgrep -g "$job" -x mpirun >/dev/null; then
  kill -TERM -- -"$job"  # every process of the job, mpirun included, as slurmstepd does
  wait "$job"
  rc=$?
  if [ "$rc" -eq 75 ] && [ ! -e out/model.h5 ] && ls out/checkpoints/run-*.h5 >/dev/null 2>&1; then
    pass "SIGTERM to mpirun and the job: train.sbatch exits 75 with checkpoints, no model"
  else
    fail "SIGTERM to mpirun and the job: exit $rc (expected 75)" "$(tail -8 job.log)"
  fi
else
  fail "SIGTERM to mpirun: no mpirun in the job" "$(tail -5 job.log)"
fi
kill -KILL -- -"$job" 2>/dev/null

finish
