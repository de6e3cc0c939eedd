#!/usr/bin/env python3
"""The cost model of docs/scaling.md: flops, bytes and memory per rank per ALS iteration, for the
allgather and the sparse exchange, from a prepared file's degree distributions.

  python3 bench/cost_model.py DATA.h5 [--factors 64] [--ranks "1 2 4 8 16"] [--reports DIR] [--exchange-memory MIB]
  python3 bench/cost_model.py DATA.h5 --project 10 --ranks "64 128 256 512 1024" \\
      [--rate 15] [--link-gbs 12.5] [--ranks-per-node 32]

Model (U users, I items, N training non-zeros, f factors, P ranks, s = 3 CG steps):
  flops per rank      F / P,  F = (s+1)(2 f^2 R + 8 f N) + 10 s f R,  R = U + I   (solve_rows_flops)
  allgather           held rows U + I; bytes received 4f (U+I)(1 - 1/P), sent the same (logical)
  sparse              held rows H_u + H_i, where a user of degree d is read by a given rank's item
                      block with probability 1 - (1 - 1/P)^d (its items land in that block with
                      probability 1/P each: blocks are balanced by non-zeros), and likewise an item
                      of degree n by a user block: H_u = sum_u 1 - (1-1/P)^d_u,  H_i = sum_i ...;
                      bytes received 4f (H_u + H_i)(1 - 1/P) (a rank's own rows are not received),
                      sent the same on average
  memory per rank     4f (held + (U+I)/P) + c N / P + m0:  c = 22 bytes per non-zero (train,
                      train_by_item, test, row pointers), + 16 with sparse (the remapped copies of
                      both blocks) and the 32 MiB packing buffer, m0 = the process's fixed part
                      (MPI, HDF5, code), 40 MB here
  sparse, staged      (mfrec_dist --exchange-memory B MiB, when H_u rows exceed B) the item block is
                      solved in stages against one buffer of at most B MiB of user rows, the held
                      items released meanwhile: peak = the larger of the user half-step,
                      4f (H_i + (U+I)/P), and the stages, 4f (U+I)/P + B; plus (22 + 4) N/P (the
                      slot of each item non-zero instead of a renumbered copy; + 8 when a rank reads
                      under 90 % of the items) + m0 + 8 MiB of stage packing buffers. Bytes as
                      unstaged when the users live at once fit B (each received once), more when
                      the buffer must evict (not modelled)
--reports DIR: bench_scale.sh --exchange --keep's report_<size>x_<ranks>_<mode>.json files: the
               model's bytes per rank per iteration next to the measured ones (mean over ranks).
--project K:   the data scaled K times (users, items and non-zeros; each side's degree
               distribution kept), with the time of the solve (RATE GFLOP/s per rank) against the
               time of the exchange (the node's link shared by its ranks).
"""
import argparse, glob, json, os, sys

import h5py
import numpy as np


def degrees(path):
    with h5py.File(path, "r") as f:
        du = np.diff(f["matrix/train/indptr"][...])
        di = np.diff(f["matrix/train_by_item/indptr"][...])
    return du, di


def held(deg, P, scale=1):
    if P == 1:
        return float(np.count_nonzero(deg)) * scale
    return float(np.sum(1.0 - (1.0 - 1.0 / P) ** deg)) * scale


def model(du, di, f, P, scale=1, s=3, budget_mib=0.0):
    U, I = len(du) * scale, len(di) * scale
    N = float(du.sum()) * scale
    R = U + I
    F = (s + 1) * (2 * f * f * R + 8 * f * N) + 10 * s * f * R
    hu, hi = held(du, P, scale), held(di, P, scale)
    row = 4.0 * f
    own = R / P
    out = {
        "U": U, "I": I, "N": N, "flops_rank": F / P,
        "ag_bytes": 2 * row * R * (1 - 1 / P),           # sent + received
        "sp_bytes": 2 * row * (hu + hi) * (1 - 1 / P),
        "ag_mem": row * (R + own) + 22 * N / P + 40e6,
        "sp_mem": row * (hu + hi + own) + 38 * N / P + 40e6 + (32 * 2**20 if P > 1 else 0),
        "held_u": hu, "held_i": hi,
    }
    B = budget_mib * 2**20
    if B > 0 and row * hu > B:  # the item half-step in stages
        blocks = (22 + 4 + (8 if hi < 0.9 * I else 0)) * N / P + 40e6 + 8 * 2**20
        out["sp_mem"] = max(row * (hi + own), row * own + B) + blocks
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--ranks", default="1 2 4 8 16")
    ap.add_argument("--reports")
    ap.add_argument("--project", type=float)
    ap.add_argument("--rate", type=float, default=15.0, help="GFLOP/s per rank (solve)")
    ap.add_argument("--link-gbs", type=float, default=12.5, help="GB/s per node (100 Gb/s Ethernet: 12.5)")
    ap.add_argument("--ranks-per-node", type=int, default=32)
    ap.add_argument("--exchange-memory", type=float, default=0.0,
                    help="mfrec_dist's --exchange-memory MiB for the sparse memory (0: one stage, the default here)")
    a = ap.parse_args()
    du, di = degrees(a.data)
    ranks = [int(x) for x in a.ranks.split()]
    f = a.factors
    scale = a.project or 1
    print(f"# {a.data}: {len(du)} users, {len(di)} items, {int(du.sum())} training non-zeros; f = {f}"
          + (f"; projected x{scale:g}" if a.project else ""))
    hdr = f"{'P':>5} {'GFLOP/rank':>10} {'held u':>11} {'held i':>9} {'allgather MB':>12} {'sparse MB':>10} {'sp/ag':>6} {'RSS ag MB':>10} {'RSS sp MB':>10}"
    if a.project:
        hdr += f" {'solve s':>8} {'ag s':>8} {'sp s':>8}"
    print(hdr)
    for P in ranks:
        m = model(du, di, f, P, scale, budget_mib=a.exchange_memory)
        line = (f"{P:>5} {m['flops_rank'] / 1e9:>10.2f} {m['held_u']:>11.0f} {m['held_i']:>9.0f} "
                f"{m['ag_bytes'] / 1e6:>12.1f} {m['sp_bytes'] / 1e6:>10.1f} {m['sp_bytes'] / max(m['ag_bytes'], 1e-9):>6.3f} "
                f"{m['ag_mem'] / 1e6:>10.0f} {m['sp_mem'] / 1e6:>10.0f}")
        if a.project:
            bw = a.link_gbs * 1e9 / min(P, a.ranks_per_node)  # the node's link shared by its ranks
            solve = m["flops_rank"] / (a.rate * 1e9)
            line += f" {solve:>8.3f} {m['ag_bytes'] / 2 / bw:>8.3f} {m['sp_bytes'] / 2 / bw:>8.3f}"
        print(line)
    if a.reports:
        print("\n# measured (report bytes_per_iteration, sent + received, mean over ranks) against the model")
        print(f"{'file':<32} {'measured MB':>11} {'model MB':>9} {'error':>7}")
        for path in sorted(glob.glob(os.path.join(a.reports, "report_*x_*_*.json"))):
            r = json.load(open(path))
            P, mode = int(r["ranks"]), r["exchange"]
            e = r["bytes_per_iteration"]["exchange"]
            meas = (e["sent"]["mean"] + e["received"]["mean"]) / 1e6
            fac = int(r["best"]["factors"])
            m = model(du, di, fac, P)
            pred = (m["sp_bytes"] if mode == "sparse" else m["ag_bytes"]) / 1e6
            err = (pred - meas) / meas if meas > 0 else 0.0
            print(f"{os.path.basename(path):<32} {meas:>11.2f} {pred:>9.2f} {err:>+7.1%}")


if __name__ == "__main__":
    sys.exit(main())
