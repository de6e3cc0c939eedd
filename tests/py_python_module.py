#!/usr/bin/python3
"""The Python module (python/mfrec) against mfrec_recommend on the same models.

Builds two tiny models (gen + prep + dist: the default Hu confidence with CG, and the `implicit`
confidence rule with ALS-WR and Cholesky), publishes them to a registry, and checks that the
module gives the same items in the same order, with scores within 1e-5, as mfrec_recommend for
several users (with history, without, unknown), every user's top 20 (the batch job's float32
scores), similar items, fold-in (the light Woodbury path and the direct one, weights, repeats)
and the popular list; registry specs and checksum verification; the implicit layout; errors.

Environment: MFREC_BIN (the build directory). Prints "N passed, M failed"; exits non-zero on
any failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import mfrec  # noqa: E402

BIN = os.environ.get("MFREC_BIN", "build")
TOL = 1e-5
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("PASS: " if ok else "FAIL: ") + name + ("" if ok or not detail else f" ({detail})"), flush=True)


def run(work, *args, rc=0):
    r = subprocess.run([os.path.join(BIN, args[0])] + [str(a) for a in args[1:]], cwd=work,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != rc:
        sys.exit(f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def cli(work, source, *query):
    """mfrec_recommend's JSON answer: (item ids, scores, source)."""
    j = json.loads(run(work, "mfrec_recommend", *source, *query, "--format", "json"))
    return [it["id"] for it in j["items"]], np.array([it["score"] for it in j["items"]], np.float64), j["source"]


def near_ties_only(ids_a, scores_a, ids_b, tol=2e-6):
    """Whether python's order ids_a differs from the program's ids_b only by swapping items whose
    python scores differ by at most tol but are not equal: a float32 near-tie that two summation
    orders may break either way. Exactly equal scores must rank the smaller row first."""
    if sorted(ids_a) != sorted(ids_b):
        return False
    where = {x: k for k, x in enumerate(ids_a)}
    for k, (a, b) in enumerate(zip(ids_a, ids_b)):
        if a != b:
            sa, sb = float(scores_a[k]), float(scores_a[where[b]])
            if sa == sb or abs(sa - sb) > tol:
                return False
    return True


def same(name, got, want_ids, want_scores, want_source=None):
    """Same items in the same order, scores within TOL, and the same source."""
    diff = float(np.max(np.abs(got.scores - want_scores))) if len(want_ids) == len(got.ids) and want_ids else 0.0
    ok = got.ids == want_ids and diff <= TOL and (want_source is None or got.source == want_source)
    if not ok and len(got.ids) == len(want_ids) and diff <= TOL and near_ties_only(got.ids, got.scores, want_ids):
        print(f"note: {name}: order differs only within float32 near-ties")
        ok = True
    check(name, ok, f"python {got.ids[:5]} {got.scores[:5]} {got.source}; cli {want_ids[:5]} {want_scores[:5]} "
                    f"{want_source}; max score diff {diff:g}")


def build(work):
    run(work, "mfrec_gen", "--users", 500, "--events", 6000, "--items", 800, "--seed", 3, "--output", "retail.h5", "-q")
    run(work, "mfrec_prep", "--input", "retail.h5", "--output", "prepared.h5", "-q")
    common = ["--data", "prepared.h5", "--iterations", 4, "--seed", 1, "--threads", 1, "--log-level", "warn"]
    run(work, "mfrec_dist", *common, "--output", "a.h5", "--factors", 8, "--alpha", 10, "--regularization", 1)
    run(work, "mfrec_dist", *common, "--output", "b.h5", "--factors", 12, "--alpha", 20, "--regularization", 0.5,
        "--confidence", "implicit", "--scale-regularization", "--solver", "cholesky")
    reg = os.path.join(work, "registry")
    run(work, "mfrec_registry", "--registry", reg, "publish", "a.h5", "retail-als", "--stage", "production")
    run(work, "mfrec_registry", "--registry", reg, "publish", "b.h5", "retail-als", "--stage", "candidate")
    return reg


def users_of(m):
    indptr = m.seen[0]
    with_history = [m.user_ids[r] for r in range(m.n_users) if indptr[r + 1] > indptr[r]]
    without = [m.user_ids[r] for r in range(m.n_users) if indptr[r + 1] == indptr[r]]
    step = max(1, len(with_history) // 5)
    return with_history[::step][:5], without


def check_model(work, path, tag):
    m = mfrec.load(path)
    src = ["--model", path]
    users, without = users_of(m)
    check(f"{tag}: the model has users without history", len(without) > 0, "none: pick other generator sizes")
    for u in users:
        ids, scores, source = cli(work, src, "--user", u, "-n", 10)
        same(f"{tag}: recommend({u}, 10)", m.recommend(u, 10), ids, scores, source)
    ids, scores, source = cli(work, src, "--user", users[0], "-n", 1000)
    got = m.recommend(users[0], 1000)
    same(f"{tag}: recommend n=1000 (every item not seen, fewer than n)", got, ids, scores, source)
    check(f"{tag}: n=1000 leaves out exactly the seen items", len(got.ids) == m.n_items - len(m.seen_items(users[0])))
    for u in without[:2] + ["no-such-user"]:
        ids, scores, source = cli(work, src, "--user", u, "-n", 10)
        same(f"{tag}: recommend({u}) is the popular list", m.recommend(u, 10), ids, scores, "popular")
        check(f"{tag}: cli says popular for {u}", source == "popular")

    # Every user's top 20 against the batch job's float32 scores (no JSON rounding).
    run(work, "mfrec_recommend", "--model", path, "--all", "--output", f"{tag}_all.h5", "-n", 20)
    with h5py.File(os.path.join(work, f"{tag}_all.h5"), "r") as f:
        items, bscores, fallback = f["/recommendations/items"][()], f["/recommendations/scores"][()], \
            f["/recommendations/fallback"][()]
    bad = []
    for r, u in enumerate(m.user_ids):
        got = m.recommend(u, 20)
        want = [int(i) for i in items[r] if i >= 0]
        ok = list(got.rows) == want and np.allclose(got.scores, bscores[r][:len(want)], rtol=0, atol=TOL) \
            and (got.source == "popular") == bool(fallback[r])
        if not ok and list(got.rows) != want and np.allclose(got.scores, bscores[r][:len(want)], rtol=0, atol=TOL):
            ok = near_ties_only(got.rows.tolist(), got.scores, want, 1e-6)
        if not ok:
            bad.append(u)
    check(f"{tag}: every user's top 20 equals mfrec_recommend --all", not bad, f"{len(bad)} users differ: {bad[:5]}")

    # Similar items: a few items spread over the catalogue, and one nobody trained on (zero
    # factors: every cosine 0, so the order is by row).
    probe = [m.item_ids[i] for i in range(0, m.n_items, m.n_items // 4)]
    cold = [m.item_ids[i] for i in np.flatnonzero(m.popularity_count == 0)[:1]]
    check(f"{tag}: the model has items nobody trained on (exact ties at 0)", bool(cold), "pick other sizes")
    for it in probe + cold:
        ids, scores, source = cli(work, src, "--similar", it, "-n", 10)
        same(f"{tag}: similar_items({it[:8]}, 10)", m.similar_items(it, 10), ids, scores, source)

    # Fold-in: two items (the Woodbury path when factors >= 8), five with weights and a repeat
    # (the direct LLT path).
    pop = m.popular(40).ids
    for hist, w in ((pop[3:5], None), (pop[10:14] + pop[10:11], [1, 2, 5, 1, 3]), (pop[20:21], [0.5])):
        q = ["--history", ",".join(hist)] + (["--weights", ",".join(str(x) for x in w)] if w else [])
        ids, scores, source = cli(work, src, *q, "-n", 15)
        same(f"{tag}: fold_in({len(hist)} items, weights {w})", m.fold_in(hist, w, 15), ids, scores, source)

    ids, scores, source = cli(work, src, "--popular", "-n", 1000)
    same(f"{tag}: popular(1000)", m.popular(1000), ids, scores, source)
    return m


def check_registry(work, reg, a, b):
    for spec, want, version in (("retail-als@production", a, 1), ("retail-als", b, 2), ("retail-als:1", a, 1),
                                ("retail-als@candidate", b, 2)):
        m = mfrec.load(spec, registry=reg)
        u = a.user_ids[3]
        check(f"registry {spec} loads version {version}",
              m.source.version == version and m.source.name == "retail-als" and m.source.spec == spec
              and m.recommend(u, 10).ids == want.recommend(u, 10).ids)
    ids, scores, source = cli(work, ["--registry", reg, "--spec", "retail-als@production"], "--user", a.user_ids[7])
    same("registry: recommend equals mfrec_recommend --registry", mfrec.load("retail-als@production", registry=reg)
         .recommend(a.user_ids[7]), ids, scores, source)

    def raises(name, exc, f):
        try:
            f()
        except exc as e:
            check(name, True)
            return str(e)
        except Exception as e:  # noqa: BLE001 - the wrong kind is a failure, reported
            check(name, False, f"{type(e).__name__}: {e}")
        else:
            check(name, False, "no error")
        return ""

    raises("bad spec", ValueError, lambda: mfrec.load("retail-als@prod", registry=reg))
    raises("bad spec (both : and @)", ValueError, lambda: mfrec.load("retail-als:1@production", registry=reg))
    raises("unknown model", LookupError, lambda: mfrec.load("nope", registry=reg))
    raises("unknown version", LookupError, lambda: mfrec.load("retail-als:9", registry=reg))
    raises("unheld stage", LookupError, lambda: mfrec.load("retail-als@staging", registry=reg))
    raises("missing registry", FileNotFoundError, lambda: mfrec.load("retail-als", registry=os.path.join(work, "x")))
    raises("not a model file", mfrec.ModelError, lambda: mfrec.load(os.path.join(work, "prepared.h5")))
    # A damaged copy fails its checksum, as in mfrec_recommend (which refuses it too).
    bad = os.path.join(work, "damaged")
    shutil.copytree(reg, bad)
    path = os.path.join(bad, "retail-als", "v1.h5")
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    msg = raises("checksum mismatch", mfrec.ModelError, lambda: mfrec.load("retail-als@production", registry=bad))
    check("checksum message names the file and both sums", "checksum mismatch" in msg and path in msg, msg)
    run(work, "mfrec_recommend", "--registry", bad, "--spec", "retail-als@production", "--popular", rc=1)
    check("python's CRC-32 equals the index's", mfrec.file_checksum(os.path.join(reg, "retail-als", "v2.h5"))
          == mfrec.find(reg, "retail-als:2")["checksum"])


def check_api(a):
    u = next(u for u in a.user_ids if a.has_history(a.user_row(u)))
    seen = set(a.seen_items(u).tolist())
    full = a.recommend(u, a.n_items, filter_seen=False)
    filtered = a.recommend(u, 20)
    check("filter_seen=False ranks every item", len(full.ids) == a.n_items and seen <= set(full.rows.tolist()))
    check("filter_seen=False minus the seen items is the filtered list",
          [r for r in full.rows.tolist() if r not in seen][:20] == filtered.rows.tolist())
    check("popular(exclude) leaves the items out and keeps the order",
          a.popular(5, exclude=a.popular(2).ids).ids == a.popular(7).ids[2:])
    x = a.recalculate_user(a.popular(3).ids)
    check("recalculate_user: float32 factors", x.dtype == np.float32 and x.shape == (a.factors,))
    check("item(): the server's details", set(a.item(a.item_ids[0])) == {"id", "name", "category", "style", "price",
                                                                        "description"})

    imp = a.to_implicit()
    check("to_implicit: float32 C-contiguous [users, f] and [items, f]",
          imp.user_factors.dtype == np.float32 and imp.item_factors.dtype == np.float32
          and imp.user_factors.flags.c_contiguous and imp.item_factors.flags.c_contiguous
          and imp.user_factors.shape == (a.n_users, a.factors) and imp.item_factors.shape == (a.n_items, a.factors))
    r = imp.user_index[u]
    scores = imp.item_factors @ imp.user_factors[r]
    data, indices, indptr = imp.user_items
    liked = indices[indptr[r]:indptr[r + 1]]
    top = mfrec.top_n(scores, liked, 20)
    check("to_implicit: user_factors . item_factors^T and user_items give recommend()",
          [imp.item_ids[i] for i in top] == filtered.ids and imp.shape == (a.n_users, a.n_items)
          and imp.item_index[imp.item_ids[5]] == 5 and len(data) == len(indices))
    check("to_implicit: constructor kwargs", imp.kwargs == {"factors": a.factors, "regularization": 1.0, "alpha": 10.0},
          imp.kwargs)
    imp.user_factors[:] = 0
    check("to_implicit returns copies", a.recommend(u, 5).ids == filtered.ids[:5])

    for name, exc, f in (("n=0", ValueError, lambda: a.recommend(u, 0)),
                         ("unknown similar item", KeyError, lambda: a.similar_items("no-such-item")),
                         ("unknown history item", KeyError, lambda: a.fold_in(["no-such-item"])),
                         ("empty history", ValueError, lambda: a.fold_in([])),
                         ("negative weight", ValueError, lambda: a.fold_in(a.popular(2).ids, [1, -1])),
                         ("weights count", ValueError, lambda: a.fold_in(a.popular(2).ids, [1]))):
        try:
            f()
            check(f"error: {name}", False, "no error")
        except exc:
            check(f"error: {name}", True)


def main():
    work = tempfile.mkdtemp(prefix="py_python_module_", dir=os.getcwd())
    reg = build(work)
    a = check_model(work, os.path.join(work, "a.h5"), "hu-cg")
    b = check_model(work, os.path.join(work, "b.h5"), "implicit-alswr")
    check_registry(work, reg, a, b)
    check_api(a)
    print(f"{results['passed']} passed, {results['failed']} failed")
    if results["failed"]:
        print(f"work directory kept: {work}")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
