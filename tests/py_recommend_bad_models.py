#!/usr/bin/env python3
"""Broken model files are refused the same way by the batch job, single queries and the server.

Each bad model is a good one changed with h5py: user-factor rows that do not match the user ids
(the batch once wrote 4,999 of 5,000 users), a popularity index out of range (once written into
every fallback row, read past the array), a NaN or infinite factor (once served as "score":
null). Each program must exit non-zero with one error line naming the file and the dataset, and
leave no output. Environment: MFREC_BIN (the build directory), MPIEXEC."""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

from checks import BIN, MPIEXEC, check, failures, scratch
from checks import run as run_in

WORK = scratch("py_recommend_bad_models")


def run(*args):
    run_in(WORK, *args)


def bad_copy(name, change):
    path = os.path.join(WORK, name)
    shutil.copyfile(os.path.join(WORK, "model.h5"), path)
    with h5py.File(path, "r+") as f:
        change(f)
    return name


def drop_last_user_row(f):
    uf = f["user_factors"][:-1]
    del f["user_factors"]
    f["user_factors"] = uf


def set_value(dataset, index, value):
    def change(f):
        d = f[dataset]
        a = d[:]
        a[index] = value
        d[...] = a
    return change


def expect_refused(what, cmd, pattern, outputs=()):
    """cmd exits non-zero within 10 s, with exactly one error line (of the program's) holding
    pattern, and none of outputs exists."""
    prog = "mfrec_serve" if "mfrec_serve" in " ".join(cmd) else "mfrec_recommend"
    try:
        r = subprocess.run(["timeout", "10"] + cmd, cwd=WORK, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        check(False, f"{what}: no answer")
        return
    errors = [line for line in r.stderr.splitlines() if line.startswith(prog + ": error")]
    left = [p for p in outputs for q in (p, p + ".partial") if os.path.exists(os.path.join(WORK, q))]
    ok = r.returncode not in (0, 124) and len(errors) == 1 and pattern in errors[0] and not left
    check(ok, f"{what}: refused naming {pattern!r}")
    if not ok:
        print(f"    rc {r.returncode}, left {left}\n    | " + "\n    | ".join(r.stderr.splitlines()), flush=True)


def main():
    run("mfrec_gen", "--users", "300", "--events", "4000", "--output", "retail.h5", "-q")
    run("mfrec_prep", "--input", "retail.h5", "--output", "prepared.h5", "-q")
    run("mfrec_dist", "--data", "prepared.h5", "--output", "model.h5", "--factors", "4", "--iterations", "2",
        "--threads", "1", "--log-level", "warn")
    with h5py.File(os.path.join(WORK, "model.h5"), "r") as m:
        n_items = m["item_factors"].shape[0]
        user = m["users/id"][5].decode()

    cases = [
        (bad_copy("rows.h5", drop_last_user_row), "/user_factors"),
        (bad_copy("rank.h5", set_value("popularity/ranking", 0, n_items)), "/popularity/ranking"),
        (bad_copy("negrank.h5", set_value("popularity/ranking", 3, -1)), "/popularity/ranking"),
        (bad_copy("nan.h5", set_value("user_factors", (7, 1), np.nan)), "/user_factors"),
        (bad_copy("inf.h5", set_value("item_factors", (n_items - 1, 0), np.inf)), "/item_factors"),
    ]
    recommend = os.path.join(BIN, "mfrec_recommend")
    for model, dataset in cases:
        # Single queries, on one process.
        for mode in (["--user", user], ["--popular"], ["--sample", "2"]):
            expect_refused(f"{model} {mode[0]}", [recommend, "--model", model] + mode, dataset)
        # The batch job, on several ranks: nothing written.
        for np_ in ("2", "3"):
            expect_refused(f"{model} --all on {np_} ranks",
                           [MPIEXEC, "--oversubscribe", "--bind-to", "none", "-n", np_, recommend, "--model", model,
                            "--all", "-o", "out.h5", "--csv", "out.csv"],
                           dataset, outputs=("out.h5", "out.csv"))
        # The server does not start on it.
        expect_refused(f"{model} mfrec_serve", [os.path.join(BIN, "mfrec_serve"), "--model", model, "--port", "0",
                                                "--port-file", "port"], dataset, outputs=("port",))
        # The file is named too.
        expect_refused(f"{model} names the file", [recommend, "--model", model, "--popular"], model)

    if failures:
        print(f"{len(failures)} failed; files in {WORK}")
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("all passed")


if __name__ == "__main__":
    main()
