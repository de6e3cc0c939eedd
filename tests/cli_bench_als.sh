#!/usr/bin/env bash
# bench_als --input (issue 13, mfrec_dist against bench_als on the same data): it times the
# training matrix of a prepared file, read as mfrec_dist reads it, with the parameters given;
# a file that is not a prepared one, or a bad value, is one line and exit 2.
# Env: MFREC_BIN (build dir), MPIEXEC, MFREC_FIXTURE (the shared tiny data set).
# fixture: tiny_pipeline
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
use_fixture

ALS=(timeout 300 "$BIN/bench_als" --threads 1 --factors 8 --iters 1)
if "${ALS[@]}" --input "$FIXTURE/prep.h5" --solvers cg,chol --regularization 5 --alpha 20 --cg-steps 2 \
    >out.txt 2>err.txt; then
  pass "bench_als --input a prepared file"
else
  fail "bench_als --input a prepared file (exit $?)" "$(tail -5 err.txt out.txt)"
fi
# The matrix line names the shape and non-zeros of /matrix/train; one table row per solver.
check "the matrix timed is /matrix/train (shape, non-zeros)" "$PY" - "$FIXTURE/prep.h5" <<'PYEOF'
import re, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    g = f["/matrix/train"]
    want = (int(g.attrs["n_rows"]), int(g.attrs["n_cols"]), int(g.attrs["nnz"]))
    by_item = f["/matrix/train_by_item/indptr"][:]
out = open("out.txt").read()
m = re.search(r"^matrix (\d+) x (\d+), (\d+) non-zeros \(largest item (\d+)\), read from ", out, re.M)
assert m, out[:300]
got = tuple(int(x) for x in m.groups()[:3])
assert got == want, (got, want)
assert int(m.group(4)) == int((by_item[1:] - by_item[:-1]).max()), m.group(4)
rows = [l.split()[:2] for l in out.splitlines() if re.match(r"^(cg|cholesky)\s+8\s", l)]
assert rows == [["cg", "8"], ["cholesky", "8"]], rows
PYEOF

expect_error() {  # NAME PATTERN ARGS...: exit 2 and PATTERN in the one line on stderr
  local name="$1" pattern="$2" rc
  shift 2
  "${ALS[@]}" "$@" >out.txt 2>err.txt
  rc=$?
  if [ "$rc" -eq 2 ] && grep -q -- "$pattern" err.txt && [ "$(grep -c . err.txt)" -le 2 ] && [ ! -s out.txt ]; then
    pass "$name"
  else
    fail "$name (exit $rc)" "$(head -5 err.txt out.txt)"
  fi
}
expect_error "a data set that is not prepared: names the file and /matrix/train" \
  "data.h5: missing matrix /matrix/train" --input "$FIXTURE/data.h5"
expect_error "a missing file: names it" "nope.h5" --input nope.h5
expect_error "--cg-steps 0 is refused" "out-of-range" --input "$FIXTURE/prep.h5" --cg-steps 0
finish
