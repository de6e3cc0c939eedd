#!/usr/bin/env python3
"""The seed's showcase, measured: on the synthetic data, a user's top 20 falls mostly in the
categories of their persona (electronics/outdoors/footwear users get electronics, outdoors and
footwear), far above what random items would give. Also drives mfrec_recommend's other modes.

Pipeline: mfrec_gen (20,000 users, 200,000 events) -> mfrec_prep -> mfrec_dist -> mfrec_recommend
--all under MPI (HDF5 + CSV), then a sample of users of every persona.
Environment: MFREC_BIN (the build directory), MPIEXEC."""
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BIN = os.environ.get("MFREC_BIN", "build")
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
WORK = tempfile.mkdtemp(prefix="py_persona_", dir=os.getcwd())
SAMPLE = 150  # users per persona
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def run(args, rc=0, mpi=0):
    cmd = ([MPIEXEC, "--oversubscribe", "--bind-to", "none", "-n", str(mpi)] if mpi else []) + \
          [os.path.join(BIN, args[0])] + args[1:]
    r = subprocess.run(cmd, cwd=WORK, capture_output=True, text=True, timeout=400)
    if r.returncode != rc:
        sys.exit(f"{' '.join(cmd)}: exit {r.returncode}, expected {rc}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def categories_of(persona):
    # "electronics_outdoors_footwear" or "food service:pizza_cold dispensed:fountain-carbonated_..."
    return {part.split(":")[0] for part in persona.split("_")}


def main():
    run(["mfrec_gen", "--users", "20000", "--events", "200000", "--output", "retail.h5", "-q"])
    run(["mfrec_prep", "--input", "retail.h5", "--output", "prepared.h5", "-q"])
    run(["mfrec_dist", "--data", "prepared.h5", "--output", "model.h5", "--factors", "32", "--alpha", "10",
         "--regularization", "1", "--iterations", "10", "--log-level", "warn"], mpi=2)
    r = run(["mfrec_recommend", "--model", "model.h5", "--all", "--output", "recs.h5", "--csv", "recs.csv",
             "--threads", "1"], mpi=2)
    print(r.stdout.strip(), flush=True)

    with h5py.File(os.path.join(WORK, "retail.h5"), "r") as d:
        personas = [p.decode() for p in d["/users/persona"][:]]
        data_users = [u.decode() for u in d["/users/id"][:]]
        category = np.array([c.decode() for c in d["/items/category"][:]])
        data_items = [i.decode() for i in d["/items/id"][:]]
    with h5py.File(os.path.join(WORK, "recs.h5"), "r") as f:
        rec_users = [u.decode() for u in f["/users/id"][:]]
        rec_items = [i.decode() for i in f["/items/id"][:]]
        items = f["/recommendations/items"][:]
        fallback = f["/recommendations/fallback"][:]
        check(f.attrs["n"] == 20 and items.shape == (len(rec_users), 20), "20 per user")
    item_cat = dict(zip(data_items, category))
    rec_cat = np.array([item_cat[i] for i in rec_items])
    row_of = {u: k for k, u in enumerate(rec_users)}
    check(len(rec_users) <= len(data_users), "users")
    share_of_catalog = {c: float(np.mean(category == c)) for c in set(category)}

    # The CSV holds the same lists.
    with open(os.path.join(WORK, "recs.csv")) as fh:
        rows = list(csv.DictReader(fh))
    check(len(rows) == int((items >= 0).sum()), "CSV rows")
    check(rows[0]["user_id"] == rec_users[0] and rows[0]["item_id"] == rec_items[items[0, 0]], "CSV first row")

    by_persona = {}
    for u, p in zip(data_users, personas):
        k = row_of.get(u)
        if k is not None and not fallback[k]:
            by_persona.setdefault(p, []).append(k)
    rng = random.Random(7)
    print(f"{'persona':64s} {'users':>5s} {'top-20 share':>12s} {'random':>7s}")
    shares = {}
    for p in sorted(by_persona):
        rows_p = by_persona[p] if len(by_persona[p]) <= SAMPLE else rng.sample(by_persona[p], SAMPLE)
        cats = categories_of(p)
        hits = [np.mean([rec_cat[i] in cats for i in items[k] if i >= 0]) for k in rows_p]
        share, random_share = float(np.mean(hits)), sum(share_of_catalog.get(c, 0) for c in cats)
        shares[p] = (share, random_share)
        print(f"{p[:64]:64s} {len(rows_p):5d} {share:12.3f} {random_share:7.3f}", flush=True)
        check(len(rows_p) >= 50, f"{p}: enough users ({len(rows_p)})")
        if ":" in p:  # c-store personas: a handful of items in tiny categories
            check(share >= 10 * random_share, f"{p}: share {share:.3f} vs random {random_share:.3f}")
        else:
            check(share >= 0.5 and share >= 2.5 * random_share, f"{p}: share {share:.3f} vs random {random_share:.3f}")
    web = [p for p in shares if ":" not in p]
    check(len(web) == 16, f"16 web personas ({len(web)})")
    for showcase in ("electronics_outdoors_footwear", "furniture_homedecor_housewares"):
        check(showcase in shares and shares[showcase][0] >= 0.6,
              f"showcase {showcase}: most of the top 20 in its categories ({shares.get(showcase)})")

    # Single users agree with the batch; their JSON carries the item details.
    for p in ("electronics_outdoors_footwear", "furniture_homedecor_housewares"):
        for k in by_persona[p][:3]:
            u = rec_users[k]
            j = json.loads(run(["mfrec_recommend", "--model", "model.h5", "--user", u, "--format", "json"]).stdout)
            check(j["user_id"] == u and j["known_user"] and j["source"] == "model", f"--user {u}")
            check([it["id"] for it in j["items"]] == [rec_items[i] for i in items[k]], f"--user {u} == --all")
            check(all(it["category"] == item_cat[it["id"]] for it in j["items"]), "categories")
    out = run(["mfrec_recommend", "--model", "model.h5", "--user", rec_users[by_persona["electronics_outdoors_footwear"][0]],
               "-n", "5"]).stdout
    print(out)
    check("history:" in out and len(out.strip().splitlines()) == 2 + 5, "text output")

    # Unknown users: the popular list, marked as such.
    j = json.loads(run(["mfrec_recommend", "--model", "model.h5", "--user", "no-such-user", "--format", "json"]).stdout)
    pop = json.loads(run(["mfrec_recommend", "--model", "model.h5", "--popular", "--format", "json"]).stdout)
    check(j["source"] == "popular" and j["known_user"] is False and j["items"] == pop["items"], "unknown user")
    check(pop["count"] == 20, "popular 20")

    # Similar items: mostly the same category; fold-in from an electronics/outdoors history.
    elec = [i for i, c in zip(data_items, category) if c == "electronics"][:3]
    j = json.loads(run(["mfrec_recommend", "--model", "model.h5", "--similar", elec[0], "--format", "json"]).stdout)
    check(j["item"]["id"] == elec[0] and elec[0] not in [it["id"] for it in j["items"]], "--similar")
    same = np.mean([it["category"] == "electronics" for it in j["items"]])
    check(same >= 0.5, f"similar items mostly electronics ({same:.2f})")
    outd = [i for i, c in zip(data_items, category) if c == "outdoors"][:3]
    hist = elec + outd
    j = json.loads(run(["mfrec_recommend", "--model", "model.h5", "--history", ",".join(hist), "--weights",
                        "1,1,5,1,2,1", "--format", "json"]).stdout)
    check(j["source"] == "fold-in" and not (set(hist) & {it["id"] for it in j["items"]}), "--history")
    share = np.mean([it["category"] in ("electronics", "outdoors", "footwear") for it in j["items"]])
    check(share >= 0.5, f"fold-in from electronics/outdoors history stays near them ({share:.2f})")

    # The README's closing sample: a few users and the popular list.
    out = run(["mfrec_recommend", "--model", "model.h5", "--sample", "3", "-n", "5"]).stdout
    check(out.count("User ") == 3 and "most popular items" in out, "--sample")

    # The registry: by stage and by version, the same answers.
    run(["mfrec_registry", "--registry", "registry", "publish", "model.h5", "retail-als", "--stage", "production", "-q"])
    u = rec_users[by_persona["electronics_outdoors_footwear"][0]]
    a = json.loads(run(["mfrec_recommend", "--registry", "registry", "--user", u, "--format", "json"]).stdout)
    b = json.loads(run(["mfrec_recommend", "--registry", "registry", "--spec", "retail-als:1", "--user", u,
                        "--format", "json"]).stdout)
    check(a["items"] == b["items"] and a["model"] == "retail-als:1", "--registry by stage and version")
    run(["mfrec_recommend", "--registry", "registry", "--spec", "retail-als@staging", "--popular"], rc=1)
    # Under MPI, a registry error on rank 0 reaches every rank: an exit, not a hang.
    run(["mfrec_recommend", "--registry", "no-such-registry", "--all", "--output", "x.h5"], rc=2, mpi=2)
    r = subprocess.run([MPIEXEC, "--oversubscribe", "--bind-to", "none", "-n", "2", os.path.join(BIN, "mfrec_recommend"),
                        "--registry", "registry", "--spec", "nope@production", "--all", "--output", "x.h5"],
                       cwd=WORK, capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and "nope" in r.stderr, f"unknown spec under MPI: exit {r.returncode}")

    # Bad options: exit 2 with a message, no crash.
    for args in (["--model", "model.h5"], ["--model", "model.h5", "--popular", "--user", "x"],
                 ["--model", "model.h5", "--popular", "-n", "0"], ["--model", "model.h5", "--popular", "-n", "1001"],
                 ["--model", "model.h5", "--similar", "no-such-item"], ["--model", "model.h5", "--history", "a,b"],
                 ["--model", "model.h5", "--history", elec[0], "--weights", "1,2"],
                 ["--model", "model.h5", "--all"], ["--model", "model.h5", "--popular", "--format", "xml"]):
        r = run(["mfrec_recommend"] + args, rc=2)
        check("error" in r.stderr, f"{args}: message")
    run(["mfrec_recommend", "--model", "missing.h5", "--popular"], rc=1)

    if failures:
        print(f"{len(failures)} check(s) failed; files in {WORK}")
        return 1
    if not os.environ.get("MFREC_KEEP"):
        shutil.rmtree(WORK, ignore_errors=True)
    print("py_persona_share: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
