#!/usr/bin/python3
"""Scaling study of mfrec_dist: run reports (--report JSON) -> a table and a plot of efficiency
against ranks.

    tools/mfrec_scaling.py OUT/scaling                      # the reports of jobs/submit.sh scaling
    tools/mfrec_scaling.py --plot eff.png --csv eff.csv a.json b.json ...

Each report is one trainer run (keys ranks, threads, seconds, seconds_per_iteration,
phases{name:{min,mean,max}}, data{users,items,nnz_train}, best{...}). Its kind of scaling is
--mode, else the word 'strong' or 'weak' in its file name (jobs/scaling.sbatch writes
strong-r4.json, weak-r4.json) or folder, else strong. Series:
  strong  one per data set (users, items, train non-zeros): fixed work, more ranks;
          speedup S = T(p0) / T(p), efficiency E = S * p0 / p
  weak    one per data per rank (users / ranks): work grows with the ranks;
          efficiency E = T(p0) / T(p), scaled speedup E * p / p0
with p0 the series' smallest rank count and T the time per ALS iteration of the trained point
(--time total: the whole run, data loading and evaluation included). Repeated runs of the same
point of a series: the fastest counts. Phases (maximum over ranks, seconds): solve, gram and the
communication (allgather + allreduce); imbalance = solve max / mean.
Exit status: 0 done, 1 no usable report or a bad file, 2 bad usage.
Needs only Debian's python3 (and python3-matplotlib for the plot; Agg backend, no display).
"""
import argparse
import csv
import json
import math
import os
import re
import sys

TIME_KEYS = {"iteration": "seconds_per_iteration", "total": "seconds"}
MODE_RE = re.compile(r"(?:^|[^a-z])(strong|weak)(?:[^a-z]|$)")


def fail(message, status=1):
    print(f"mfrec_scaling: {message}", file=sys.stderr)
    sys.exit(status)


def report_files(paths):
    for path in paths:
        if os.path.isdir(path):
            found = []
            for folder, _, names in os.walk(path):
                found += [os.path.join(folder, n) for n in names if n.endswith(".json")]
            yield from sorted(found)
        elif os.path.isfile(path):
            yield path
        else:
            fail(f"{path}: no such file or directory")


def number(value, what, path):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(f"{path}: {what} is not a number")
    return value


def load(path, forced_mode, time_key):
    try:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: not a JSON report ({e})")
    if not isinstance(r, dict) or "ranks" not in r or "data" not in r:
        return None  # some other JSON file in the folder (not a trainer report)
    data = r.get("data") or {}
    phases = r.get("phases") or {}

    def phase(name, stat="max"):
        p = phases.get(name) or {}
        return float(p.get(stat, 0.0) or 0.0)

    mode = forced_mode
    if mode is None:
        for part in (os.path.basename(path).lower(), os.path.basename(os.path.dirname(path)).lower()):
            m = MODE_RE.search(part)
            if m:
                mode = m.group(1)
                break
    ranks = int(number(r.get("ranks"), "ranks", path))
    if ranks < 1:
        fail(f"{path}: ranks {ranks}")
    t = number(r.get(time_key), time_key, path)
    if t <= 0:
        fail(f"{path}: {time_key} is {t}")
    solve_mean = phase("solve", "mean")
    return {
        "file": path,
        "mode": mode or "strong",
        "ranks": ranks,
        "threads": int(r.get("threads") or 1),
        "users": int(data.get("users", 0)),
        "items": int(data.get("items", 0)),
        "nnz": int(data.get("nnz_train", 0)),
        "time": float(t),
        "seconds": float(r.get("seconds") or 0.0),
        "solve": phase("solve"),
        "gram": phase("gram"),
        "comm": phase("exchange") + phase("allgather") + phase("allreduce"),  # "allgather": older reports
        "imbalance": phase("solve") / solve_mean if solve_mean > 0 else float("nan"),
        "point": r.get("best") or {},
    }


def series_key(run):
    if run["mode"] == "strong":
        return ("strong", f"{run['users']} users, {run['nnz']} nnz")
    per_rank = round(run["users"] / run["ranks"])
    return ("weak", f"{per_rank} users/rank")


def analyse(runs):
    series = {}
    for run in runs:
        series.setdefault(series_key(run), {}).setdefault(run["ranks"], []).append(run)
    rows = []
    for (mode, label), by_ranks in sorted(series.items()):
        points = []
        for ranks in sorted(by_ranks):
            best = min(by_ranks[ranks], key=lambda x: x["time"])
            points.append(dict(best, repeats=len(by_ranks[ranks])))
        base = points[0]
        for p in points:
            ratio = base["time"] / p["time"]
            if mode == "strong":
                p["speedup"] = ratio
                p["efficiency"] = ratio * base["ranks"] / p["ranks"]
            else:
                p["efficiency"] = ratio
                p["speedup"] = ratio * p["ranks"] / base["ranks"]  # scaled speedup
            p["series"] = label
            rows.append(p)
        threads = {p["threads"] for p in points}
        if len(threads) > 1:
            print(f"mfrec_scaling: warning: {mode} series '{label}' mixes thread counts {sorted(threads)}",
                  file=sys.stderr)
    return rows


COLUMNS = [("mode", "{:<6}"), ("series", "{:<24}"), ("ranks", "{:>5}"), ("threads", "{:>7}"),
           ("users", "{:>9}"), ("nnz", "{:>10}"), ("time", "{:>10.4f}"), ("speedup", "{:>7.2f}"),
           ("efficiency", "{:>10.2f}"), ("solve", "{:>8.3f}"), ("gram", "{:>8.3f}"),
           ("comm", "{:>8.3f}"), ("imbalance", "{:>9.2f}"), ("repeats", "{:>7}")]


def print_table(rows, time_label):
    heads = {"time": time_label, "solve": "solve s", "gram": "gram s", "comm": "comm s"}
    line = []
    for name, fmt in COLUMNS:
        width = int(re.search(r"(\d+)", fmt).group(1))
        align = "<" if "<" in fmt else ">"
        line.append(f"{heads.get(name, name):{align}{width}}")
    print(" ".join(line))
    for row in rows:
        print(" ".join(fmt.format(row[name]) for name, fmt in COLUMNS))


def write_csv(rows, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        names = [n for n, _ in COLUMNS] + ["file"]
        w.writerow(names)
        for row in rows:
            w.writerow([row[n] for n in names])


def plot(rows, path, time_label):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("the plot needs matplotlib (apt-get install python3-matplotlib), or pass --no-plot")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    all_ranks = sorted({r["ranks"] for r in rows})
    top = 1.1
    for mode, style in (("strong", "o-"), ("weak", "s--")):
        labels = sorted({r["series"] for r in rows if r["mode"] == mode})
        for label in labels:
            pts = [r for r in rows if r["mode"] == mode and r["series"] == label]
            xs = [p["ranks"] for p in pts]
            ys = [p["efficiency"] for p in pts]
            top = max(top, max(ys) * 1.1)
            ax.plot(xs, ys, style, label=f"{mode}: {label}")
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1, label="ideal")
    if len(all_ranks) > 1:
        ax.set_xscale("log", base=2)
    ax.set_xticks(all_ranks)
    ax.set_xticklabels([str(r) for r in all_ranks])
    ax.set_ylim(0, top)
    ax.set_xlabel("MPI ranks")
    ax.set_ylabel("parallel efficiency")
    ax.set_title(f"mfrec_dist scaling ({time_label})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("paths", nargs="+", help="report files (JSON) or folders of them")
    ap.add_argument("--mode", choices=["strong", "weak"], help="the kind of every report (default: from the file name)")
    ap.add_argument("--time", choices=sorted(TIME_KEYS), default="iteration",
                    help="iteration: seconds per ALS iteration (default); total: the whole run")
    ap.add_argument("--plot", default="scaling.png", help="PNG of efficiency against ranks (default scaling.png)")
    ap.add_argument("--no-plot", action="store_true", help="table only")
    ap.add_argument("--csv", help="also write the table as CSV")
    args = ap.parse_args()

    time_key = TIME_KEYS[args.time]
    runs = [r for r in (load(p, args.mode, time_key) for p in report_files(args.paths)) if r]
    if not runs:
        fail("no mfrec_dist reports in " + " ".join(args.paths))
    rows = analyse(runs)
    time_label = "s/iter" if args.time == "iteration" else "seconds"
    print_table(rows, time_label)
    if args.csv:
        write_csv(rows, args.csv)
        print(f"table: {args.csv}")
    if not args.no_plot:
        plot(rows, args.plot, time_label)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
