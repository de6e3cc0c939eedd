#!/usr/bin/python3
"""tools/mfrec_plot.py on a real experiment log: the shared tiny data set (tests/fixture.sh:
mfrec_gen 3,000 users, 30,000 events -> mfrec_prep) -> `mpirun -n 2 mfrec_dist --groups 2` over
a 2x2x2 grid evaluated at 2 and 4 iterations (--experiment) -> mfrec_plot.py. Checks both PNGs
(signature, IHDR size, file size, not blank), that the heat map cells are the per-run best of the log, a synthetic log with two
solvers and an incomplete grid, and the error cases (one line on stderr, exit 2, nothing written).

Environment: MFREC_BIN (build directory), MFREC_SRC (source tree), MPIEXEC (mpirun),
MFREC_FIXTURE (the tiny data set). Prints "N passed, M failed" and exits non-zero on any failure.
"""
# fixture: tiny_pipeline
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

import fixture

BIN = os.environ.get("MFREC_BIN", "build")
SRC = os.environ.get("MFREC_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MPIEXEC = os.environ.get("MPIEXEC", "mpirun")
PLOT = os.path.join(SRC, "tools", "mfrec_plot.py")
PNGS = ("metric_vs_iterations.png", "grid_heatmap.png")
METRICS = ("map_at_k", "map_at_k_seed", "precision_at_k", "recall_at_k", "ndcg_at_k", "auc")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
           OMPI_MCA_mpi_yield_when_idle="1", MPLBACKEND="Agg")
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("PASS: " if ok else "FAIL: ") + name + ("" if ok or not detail else f" ({detail})"), flush=True)


def program(args, cwd, mpi=0, timeout=120):
    cmd = ([MPIEXEC, "--oversubscribe", "--bind-to", "none", "-n", str(mpi)] if mpi else []) + \
          [os.path.join(BIN, args[0])] + args[1:]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def plot(args, cwd):
    return subprocess.run(["/usr/bin/python3", PLOT] + args, cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=120)


def png_info(path):
    """(width, height, bit depth, colour type) from the PNG signature and IHDR chunk, or None."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBB", head[16:26])


def check_pngs(tag, out, min_w=500, min_h=200):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg

    for name in PNGS:
        path = os.path.join(out, name)
        if not os.path.isfile(path):
            check(f"{tag}: {name} written", False, path)
            continue
        size = os.path.getsize(path)
        info = png_info(path)
        check(f"{tag}: {name} is a PNG", info is not None)
        if info is None:
            continue
        w, h = info[0], info[1]
        check(f"{tag}: {name} dimensions {w}x{h}", w >= min_w and h >= min_h and w <= 8000 and h <= 8000)
        check(f"{tag}: {name} size {size} bytes", size > 10000, size)
        img = mpimg.imread(path)
        check(f"{tag}: {name} decodes to its header's size", img.shape[:2] == (h, w), img.shape)
        colours = len(np.unique(img.reshape(-1, img.shape[-1])[::7], axis=0))
        check(f"{tag}: {name} is not blank ({colours} colours)", colours > 20, colours)


def write_synthetic(path, solvers=("cg", "cholesky"), alphas=(1.0, 10.0, 40.0), factors=(4, 8, 16),
                    regs=(0.1, 1.0), iterations=(3,), drop=((40.0, 16, 1.0),), fmt="mfrec-experiment"):
    """An experiment log in write_experiment's layout, with made-up metrics and some runs left out
    (an incomplete grid). Returns the points as a dict."""
    rows = []
    run = 0
    for a in alphas:
        for f in factors:
            for lam in regs:
                for s in solvers:
                    if (a, f, lam) in drop:
                        continue
                    for it in iterations:
                        v = 0.01 * f / (1 + lam) + 0.001 * it + (0.002 if s == "cholesky" else 0) + 0.0001 * a
                        rows.append((run, it, f, a, lam, s, v))
                    run += 1
    n = len(rows)
    col = {k: [r[i] for r in rows] for i, k in enumerate(("run", "iterations", "factors", "alpha",
                                                           "regularization", "solver", "value"))}
    best = int(np.argmax(col["value"]))
    with h5py.File(path, "w") as f:
        for k in ("run", "iterations", "factors"):
            f["points/" + k] = np.array(col[k], dtype=np.int64)
        for k in ("group", "ranks", "threads"):
            f["points/" + k] = np.ones(n, dtype=np.int64)
        f["points/best"] = np.array([int(i == best) for i in range(n)], dtype=np.int64)
        for k in ("alpha", "regularization"):
            f["points/" + k] = np.array(col[k], dtype=np.float64)
        for k in ("seconds", "seconds_per_iteration"):
            f["points/" + k] = np.full(n, 0.5)
        f["points/solver"] = np.array([s.encode() for s in col["solver"]], dtype="S8")
        for view in ("metrics", "system", "baseline"):
            for m in METRICS:
                f[f"points/{view}/{m}"] = np.full(n, 0.005) if view == "baseline" else np.array(col["value"])
        f.attrs["format"] = np.bytes_(fmt)
        f.attrs["format_version"] = np.int64(1)
        f.attrs["select_metric"] = np.bytes_("map_at_k")
        f.attrs["groups"] = np.int64(1)
        f.attrs["k"] = np.int64(20)
        f.attrs["best"] = np.int64(best)
    col["best"] = best
    return col


def check_error(tag, args, cwd, needle, out):
    r = plot(args + ["--output-dir", out], cwd)
    lines = r.stderr.strip().splitlines()
    check(f"{tag}: exit 2", r.returncode == 2, (r.returncode, r.stderr[-500:]))
    check(f"{tag}: one line on stderr", len(lines) == 1 and lines[0].startswith("mfrec_plot: error:"), r.stderr[-500:])
    check(f"{tag}: says why", needle in r.stderr, r.stderr[-300:])
    check(f"{tag}: no traceback", "Traceback" not in r.stderr)
    check(f"{tag}: no PNG written", not any(os.path.exists(os.path.join(out, p)) for p in PNGS))


def main():
    sys.path.insert(0, os.path.join(SRC, "tools"))
    import mfrec_plot

    with tempfile.TemporaryDirectory(prefix="py_plot_") as tmp:
        os.symlink(os.path.join(fixture.tiny_pipeline(tmp), "prep.h5"), os.path.join(tmp, "prepared.h5"))
        for args, mpi in ((["mfrec_dist", "--data", "prepared.h5", "--output", "model.h5", "--experiment", "exp.h5",
                            "--alpha", "1,10", "--factors", "4,8", "--regularization", "1,10", "--iterations", "2,4",
                            "--groups", "2", "--threads", "1", "--log-level", "warn"], 2),):
            r = program(args, tmp, mpi)
            check(f"{args[0]} ran", r.returncode == 0, r.stderr[-2000:])
            if r.returncode != 0:
                return
        exp = os.path.join(tmp, "exp.h5")

        # The real log: default metric, then another one.
        r = plot(["exp.h5", "--output-dir", "plots"], tmp)
        check("mfrec_plot.py ran", r.returncode == 0, r.stderr[-2000:])
        check("reports the best point", "best by map_at_k: run" in r.stdout, r.stdout)
        check_pngs("real grid", os.path.join(tmp, "plots"))
        r = plot([exp, "--output-dir", os.path.join(tmp, "ndcg", "nested"), "--metric", "ndcg_at_k"], tmp)
        check("--metric ndcg_at_k into a new nested directory", r.returncode == 0, r.stderr[-2000:])
        check_pngs("ndcg", os.path.join(tmp, "ndcg", "nested"))

        # What the heat map shows: each cell is its run's best over the evaluated iteration counts.
        pts, attrs = mfrec_plot.load_experiment(exp, "map_at_k")
        with h5py.File(exp, "r") as f:
            value = f["points/metrics/map_at_k"][:]
            runs = f["points/run"][:]
            alpha, fac, reg = f["points/alpha"][:], f["points/factors"][:], f["points/regularization"][:]
            best = int(f.attrs["best"])
            check("16 points, 8 runs", len(value) == 16 and len(np.unique(runs)) == 8, len(value))
        cells = mfrec_plot.grid_cells(pts)
        check("one panel per alpha", sorted(cells) == [(1.0, "cg"), (10.0, "cg")], sorted(cells))
        ok = True
        for (a, _), (fs, ls, vals, its) in cells.items():
            for i, fv in enumerate(fs):
                for j, lv in enumerate(ls):
                    sel = (alpha == a) & (fac == fv) & (reg == lv)
                    ok &= bool(sel.any()) and abs(vals[i, j] - value[sel].max()) < 1e-12 and its[i, j] in (2, 4)
        check("heat map cells = per-run maximum of the log", ok)
        check("best point as recorded", mfrec_plot.best_index(pts, attrs) == best, (mfrec_plot.best_index(pts, attrs), best))
        check("best point is the top of map_at_k", value[best] == value.max())

        # A synthetic log: two solvers (a 2x3 panel layout), a missing cell, one iteration count.
        syn = os.path.join(tmp, "synthetic.h5")
        col = write_synthetic(syn)
        r = plot([syn, "--output-dir", "syn"], tmp)
        check("synthetic: two solvers, incomplete grid", r.returncode == 0, r.stderr[-2000:])
        check_pngs("synthetic", os.path.join(tmp, "syn"))
        pts, attrs = mfrec_plot.load_experiment(syn, "map_at_k")
        cells = mfrec_plot.grid_cells(pts)
        check("synthetic: 6 panels", len(cells) == 6, sorted(cells))
        vals = cells[(40.0, "cg")][2]
        check("synthetic: the missing run is an empty cell", int(np.isnan(vals).sum()) == 1, vals)
        check("synthetic: best point", mfrec_plot.best_index(pts, attrs) == col["best"])
        r = plot([syn, "--output-dir", "syn_auc", "--metric", "auc"], tmp)
        check("synthetic: --metric auc", r.returncode == 0, r.stderr[-2000:])

        # --help
        r = plot(["--help"], tmp)
        check("--help", r.returncode == 0 and "--output-dir" in r.stdout and "--metric" in r.stdout, r.stdout[-500:])

        # Errors: one line, exit 2, nothing drawn.
        err = os.path.join(tmp, "err")
        check_error("missing file", [os.path.join(tmp, "nope.h5")], tmp, "no such file", err)
        check_error("a data set, not an experiment", [os.path.join(tmp, "prepared.h5")], tmp,
                    "not an experiment file", err)
        with open(os.path.join(tmp, "text.h5"), "w") as fh:
            fh.write("not HDF5\n")
        check_error("not HDF5", [os.path.join(tmp, "text.h5")], tmp, "not an experiment file", err)
        write_synthetic(os.path.join(tmp, "wrongfmt.h5"), fmt="mfrec-model")
        check_error("wrong format attribute", [os.path.join(tmp, "wrongfmt.h5")], tmp, "mfrec-model", err)
        with h5py.File(os.path.join(tmp, "partial.h5"), "w") as f:
            f.attrs["format"] = np.bytes_("mfrec-experiment")
            f["points/metrics/map_at_k"] = np.zeros(3)
        check_error("experiment without its columns", [os.path.join(tmp, "partial.h5")], tmp,
                    "not an experiment file", err)
        check_error("unknown metric", [exp, "--metric", "rmse"], tmp, "unknown metric 'rmse'", err)
        r = plot([exp], tmp)
        check("--output-dir is required", r.returncode == 2 and "--output-dir" in r.stderr, r.stderr[-300:])


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure, reported like the others
        check("no exception", False, repr(e))
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] or not results["passed"] else 0)
