#!/usr/bin/python3
"""Plots of an mfrec_dist experiment log (--experiment EXP.h5).

  mfrec_plot.py EXP.h5 --output-dir DIR [--metric map_at_k]

writes
  DIR/metric_vs_iterations.png  the metric against ALS iterations, one line per training run
                                (alpha, factors, regularization, solver), markers at the evaluated
                                iteration counts, the popularity baseline dashed, the best point
                                (the file's, chosen by its select_metric) starred;
  DIR/grid_heatmap.png          the grid as heat maps of factors x regularization, one panel per
                                alpha (and per solver where there are several), each cell at its
                                best iteration count, annotated with the value (and that count).

Reads the layout src/grid.cpp's write_experiment writes: /points/{run,iterations,factors,...},
/points/{metrics,baseline}/<metric>, root attributes format = "mfrec-experiment", k, best,
select_metric. Needs h5py, numpy and matplotlib (Debian: python3-h5py python3-matplotlib), hence
the shebang /usr/bin/python3 rather than whatever python3 comes first on PATH.
Exit status: 0 done, 2 bad input (missing file, not an experiment file, unknown metric), 1 other.
"""
import argparse
import math
import os
import sys

METRICS = ("map_at_k", "map_at_k_seed", "precision_at_k", "recall_at_k", "ndcg_at_k", "auc")
LABELS = {"map_at_k": "MAP@{k}", "map_at_k_seed": "MAP@{k} (seed AP)", "precision_at_k": "precision@{k}",
          "recall_at_k": "recall@{k}", "ndcg_at_k": "NDCG@{k}", "auc": "AUC"}
COLUMNS_INT = ("run", "iterations", "factors", "best")
COLUMNS_FLOAT = ("alpha", "regularization")
PROG = "mfrec_plot"


class InputError(Exception):
    """Bad input: reported on one line, exit status 2."""


def _text(value):
    if hasattr(value, "shape") and getattr(value, "shape", None) == ():
        value = value.item()
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def load_experiment(path, metric):
    """The experiment's points as a dict of numpy arrays (plus 'value' and 'baseline' of the metric)
    and its root attributes. Raises InputError when the file is missing or not an experiment log."""
    import h5py
    import numpy as np

    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not an experiment file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not an experiment file (not HDF5 or unreadable)") from None
    with f:
        fmt = _text(f.attrs["format"]) if "format" in f.attrs else ""
        if fmt != "mfrec-experiment":
            raise InputError(f"{path}: not an experiment file (format attribute is "
                             f"{repr(fmt) if fmt else 'missing'}, want 'mfrec-experiment')")
        known = sorted(f["points/metrics"].keys()) if "points/metrics" in f else []
        if metric not in known:
            raise InputError(f"unknown metric '{metric}' (this file has: {', '.join(known) or 'none'})")
        pts = {}
        try:
            for name in COLUMNS_INT:
                pts[name] = np.asarray(f["points/" + name][:], dtype=np.int64)
            for name in COLUMNS_FLOAT:
                pts[name] = np.asarray(f["points/" + name][:], dtype=np.float64)
            pts["solver"] = np.array([_text(s) for s in f["points/solver"][:]], dtype=object)
            pts["value"] = np.asarray(f["points/metrics/" + metric][:], dtype=np.float64)
            pts["baseline"] = np.asarray(f["points/baseline/" + metric][:], dtype=np.float64)
        except KeyError as e:
            raise InputError(f"{path}: not an experiment file (missing {e.args[0] if e.args else 'a dataset'})") from None
        attrs = {k: (_text(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
    n = len(pts["run"])
    if n == 0:
        raise InputError(f"{path}: the experiment has no points")
    if any(len(v) != n for v in pts.values()):
        raise InputError(f"{path}: not an experiment file (columns of /points differ in length)")
    return pts, attrs


def best_index(pts, attrs):
    """The file's best point (chosen by its select_metric), or -1 if it records none."""
    import numpy as np

    marked = np.flatnonzero(pts["best"] == 1)
    if len(marked):
        return int(marked[0])
    b = attrs.get("best")
    return int(b) if b is not None and 0 <= int(b) < len(pts["run"]) else -1


def top_index(pts):
    """The point with the highest value of the plotted metric (the first of ties), or -1."""
    import numpy as np

    v = pts["value"]
    return -1 if np.all(np.isnan(v)) else int(np.nanargmax(v))


def runs_of(pts):
    """Training runs in id order: (run id, (alpha, factors, regularization, solver), point indices by
    iterations)."""
    import numpy as np

    out = []
    for r in np.unique(pts["run"]):
        idx = np.flatnonzero(pts["run"] == r)
        idx = idx[np.argsort(pts["iterations"][idx], kind="stable")]
        i = idx[0]
        out.append((int(r), (float(pts["alpha"][i]), int(pts["factors"][i]), float(pts["regularization"][i]),
                             str(pts["solver"][i])), idx))
    return out


def grid_cells(pts):
    """The heat map cells: {(alpha, solver): (factors list, regularization list, values[f, l],
    iterations[f, l])}, each cell the run's best value over its evaluated iteration counts (NaN where
    the grid has no such run)."""
    import numpy as np

    factors = sorted({int(x) for x in pts["factors"]})
    regs = sorted({float(x) for x in pts["regularization"]})
    panels = {}
    for _, (a, f, l, s), idx in runs_of(pts):
        key = (a, s)
        if key not in panels:
            panels[key] = (np.full((len(factors), len(regs)), np.nan), np.zeros((len(factors), len(regs)), int))
        vals, its = panels[key]
        v = pts["value"][idx]
        if np.all(np.isnan(v)):
            continue
        j = int(np.nanargmax(v))
        cur = vals[factors.index(f), regs.index(l)]
        if np.isnan(cur) or v[j] > cur:
            vals[factors.index(f), regs.index(l)] = v[j]
            its[factors.index(f), regs.index(l)] = int(pts["iterations"][idx[j]])
    return {k: (factors, regs, vals, its) for k, (vals, its) in sorted(panels.items())}


def _g(x):
    return f"{x:g}"


def _label(metric, attrs):
    k = attrs.get("k")
    return LABELS.get(metric, metric).format(k=int(k) if k is not None else "K")


def _baseline(pts):
    import numpy as np

    b = pts["baseline"][~np.isnan(pts["baseline"])]
    if not len(b):
        return None, False
    return float(np.mean(b)), bool(np.ptp(b) > 1e-12 * max(1.0, abs(float(np.mean(b)))))


def plot_metric_vs_iterations(pts, attrs, metric, path):
    import matplotlib.pyplot as plt
    import numpy as np

    runs = runs_of(pts)
    label = _label(metric, attrs)
    best = best_index(pts, attrs)
    solvers = sorted({r[1][3] for r in runs})
    styles = dict(zip(solvers, ["-", "--", ":", "-."] * 4))
    many = len(runs) > 24
    fig, ax = plt.subplots(figsize=(10 if not many else 8, 6))
    cmap = plt.get_cmap("tab20" if len(runs) > 10 else "tab10")
    for n, (rid, (a, f, l, s), idx) in enumerate(runs):
        name = f"run {rid}: \u03b1={_g(a)} f={f} \u03bb={_g(l)}" + (f" {s}" if len(solvers) > 1 else "")
        ax.plot(pts["iterations"][idx], pts["value"][idx], linestyle=styles[s], marker="o", markersize=4,
                linewidth=1.2, color=cmap(n % cmap.N), label=None if many else name)
    base, varies = _baseline(pts)
    if base is not None:
        ax.axhline(base, color="0.3", linestyle="--", linewidth=1.5,
                   label=f"popularity baseline{' (mean)' if varies else ''}: {base:.4f}")
    if best >= 0:
        sel = attrs.get("select_metric", metric)
        ax.plot([pts["iterations"][best]], [pts["value"][best]], marker="*", markersize=18, color="gold",
                markeredgecolor="black", linestyle="none", zorder=5,
                label=f"best by {sel}: run {pts['run'][best]} at {pts['iterations'][best]} it. "
                      f"({label} {pts['value'][best]:.4f})")
    top = top_index(pts)
    if top >= 0 and best >= 0 and top != best and attrs.get("select_metric", metric) != metric:
        ax.plot([pts["iterations"][top]], [pts["value"][top]], marker="D", markersize=10, markerfacecolor="none",
                markeredgecolor="red", markeredgewidth=2, linestyle="none", zorder=5,
                label=f"highest {label}: run {pts['run'][top]} at {pts['iterations'][top]} it. "
                      f"({pts['value'][top]:.4f})")
    its = np.unique(pts["iterations"])
    ax.set_xticks(its)
    if len(its) == 1:
        ax.set_xlim(its[0] - 1, its[0] + 1)
    ax.set_xlabel("ALS iterations")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{label} against iterations: {len(runs)} run(s), {len(pts['run'])} point(s)"
                 + (f", {attrs['groups']} group(s)" if "groups" in attrs else ""))
    if many:
        ax.legend(loc="best", fontsize=8)
        ax.text(0.01, 0.01, f"{len(runs)} runs: legend of runs left out", transform=ax.transAxes, fontsize=7,
                color="0.4")
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_grid_heatmap(pts, attrs, metric, path):
    import matplotlib.pyplot as plt
    import numpy as np

    cells = grid_cells(pts)
    label = _label(metric, attrs)
    alphas = sorted({k[0] for k in cells})
    solvers = sorted({k[1] for k in cells})
    if len(solvers) > 1:  # rows: solvers, columns: alphas
        nrows, ncols = len(solvers), len(alphas)
        pos = {(a, s): (solvers.index(s), alphas.index(a)) for a, s in cells}
    else:
        ncols = min(len(alphas), 4)
        nrows = math.ceil(len(alphas) / ncols)
        pos = {(a, s): divmod(alphas.index(a), ncols) for a, s in cells}
    factors, regs = next(iter(cells.values()))[:2]
    allv = np.concatenate([c[2].ravel() for c in cells.values()])
    finite = allv[~np.isnan(allv)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if vmax <= vmin:
        vmin, vmax = vmin - 1e-9, vmax + 1e-9
    best = best_index(pts, attrs)
    bkey = None
    if best >= 0:
        bkey = ((float(pts["alpha"][best]), str(pts["solver"][best])),
                factors.index(int(pts["factors"][best])), regs.index(float(pts["regularization"][best])))
    top = top_index(pts)
    tkey = None
    if top >= 0 and top != best and attrs.get("select_metric", metric) != metric:
        tkey = ((float(pts["alpha"][top]), str(pts["solver"][top])),
                factors.index(int(pts["factors"][top])), regs.index(float(pts["regularization"][top])))
        if tkey == bkey:  # another iteration count of the best point's cell: nothing more to mark
            tkey = None
    w = max(3.6, 1.1 * len(regs) + 1.8)
    h = max(3.4, 0.8 * len(factors) + 1.8)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols + 1.4, h * nrows + 0.4), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis")
    its_all = np.unique(pts["iterations"])
    im = None
    for (a, s), (_, _, vals, its) in cells.items():
        ax = axes[pos[(a, s)]]
        im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=vmin, vmax=vmax, origin="lower", aspect="auto")
        ax.set_xticks(range(len(regs)))
        ax.set_xticklabels([_g(x) for x in regs])
        ax.set_yticks(range(len(factors)))
        ax.set_yticklabels([str(x) for x in factors])
        ax.set_xlabel("regularization \u03bb")
        ax.set_ylabel("factors")
        ax.set_title(f"\u03b1 = {_g(a)}" + (f", {s}" if len(solvers) > 1 else ""))
        for i in range(len(factors)):
            for j in range(len(regs)):
                v = vals[i, j]
                if np.isnan(v):
                    ax.text(j, i, "\u2013", ha="center", va="center", color="0.5")
                    continue
                r, g, b, _ = cmap((v - vmin) / (vmax - vmin))
                color = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                txt = f"{v:.4f}" + (f"\n@{its[i, j]} it." if len(its_all) > 1 else "")
                ax.text(j, i, txt, ha="center", va="center", color=color, fontsize=9)
        if bkey and bkey[0] == (a, s):
            ax.add_patch(plt.Rectangle((bkey[2] - 0.5, bkey[1] - 0.5), 1, 1, fill=False, edgecolor="red",
                                       linewidth=3))
        if tkey and tkey[0] == (a, s):
            ax.add_patch(plt.Rectangle((tkey[2] - 0.45, tkey[1] - 0.45), 0.9, 0.9, fill=False, edgecolor="white",
                                       linestyle="--", linewidth=2))
    for ax in axes.ravel():
        if not ax.images:
            ax.set_visible(False)
    title = (f"{label}, best over iterations per cell" if len(its_all) > 1 else
             f"{label} at {its_all[0]} iteration{'s' if its_all[0] != 1 else ''}")
    if best >= 0:
        title += f" (red: best by {attrs.get('select_metric', metric)}"
        title += f"; dashed: highest {label})" if tkey else ")"
    base, varies = _baseline(pts)
    if base is not None:
        title += f"; popularity baseline{' (mean)' if varies else ''} {base:.4f}"
    fig.suptitle(title, fontsize=10)
    fig.colorbar(im, ax=[ax for ax in axes.ravel() if ax.images], label=label, shrink=0.9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="mfrec_plot.py",
        description="Plot an mfrec_dist experiment log (--experiment): the metric against iterations for "
                    "every run (metric_vs_iterations.png) and the grid as factors x regularization heat maps "
                    "per alpha and solver (grid_heatmap.png).",
        epilog="Exit status: 0 written, 2 bad input (missing file, not an experiment file, unknown metric, "
               "bad options), 1 other errors (e.g. cannot write). Example: mfrec_plot.py out/experiment.h5 "
               "--output-dir out/plots --metric ndcg_at_k")
    p.add_argument("experiment", help="experiment log (HDF5) written by mfrec_dist --experiment")
    p.add_argument("--output-dir", "-o", required=True, help="directory of the PNGs (created if missing)")
    p.add_argument("--metric", default="map_at_k", help=f"metric to plot: {', '.join(METRICS)} or another one under "
                                                        "/points/metrics of the file (default: map_at_k)")
    args = p.parse_args(argv)
    try:
        pts, attrs = load_experiment(args.experiment, args.metric)
        try:
            os.makedirs(args.output_dir, exist_ok=True)
        except OSError as e:
            raise InputError(f"{args.output_dir}: cannot create the output directory ({e.strerror})") from None
        import matplotlib
        matplotlib.use("Agg")
        out1 = os.path.join(args.output_dir, "metric_vs_iterations.png")
        out2 = os.path.join(args.output_dir, "grid_heatmap.png")
        plot_metric_vs_iterations(pts, attrs, args.metric, out1)
        plot_grid_heatmap(pts, attrs, args.metric, out2)
    except InputError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"{PROG}: error: {e} (needs h5py, numpy and matplotlib: apt-get install python3-h5py "
              f"python3-matplotlib, and run it with /usr/bin/python3)", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    b = best_index(pts, attrs)
    print(f"{PROG}: {len(pts['run'])} points of {len(runs_of(pts))} runs; wrote {out1} and {out2}")
    if b >= 0:
        print(f"{PROG}: best by {attrs.get('select_metric', args.metric)}: run {pts['run'][b]} (alpha "
              f"{_g(pts['alpha'][b])}, factors {pts['factors'][b]}, regularization {_g(pts['regularization'][b])}, "
              f"{pts['solver'][b]}) at {pts['iterations'][b]} iterations, {args.metric} {pts['value'][b]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
