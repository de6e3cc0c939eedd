#!/usr/bin/python3
"""A data set made by `mpirun -n 2 mfrec_gen`, read with h5py alone: names, shapes, dtypes,
strings and attributes as docs/generator.md describes them.

Environment: MFREC_BIN (build directory), MPIEXEC (mpirun). Prints "N passed, M failed" and
exits non-zero on any failure.
"""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

USERS, EVENTS, ITEMS = 2000, 15000, 500
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("PASS: " if ok else "FAIL: ") + name + ("" if ok or not detail else f" ({detail})"))


def text(value):
    """An attribute or string element as str (h5py gives fixed-length strings as bytes)."""
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode("ascii") if isinstance(value, (bytes, np.bytes_)) else str(value)


def main():
    binary = os.path.join(os.environ["MFREC_BIN"], "mfrec_gen")
    mpiexec = os.environ.get("MPIEXEC", "mpirun")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "retail.h5")
        cmd = [mpiexec, "--oversubscribe", "--bind-to", "none", "-n", "2", binary, "-q",
               "--users", str(USERS), "--events", str(EVENTS), "--items", str(ITEMS), "--seed", "5", "-o", path]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        check("mfrec_gen ran", run.returncode == 0, run.stderr[-2000:])
        if run.returncode != 0:
            return
        with h5py.File(path, "r") as f:
            check_file(f)


def check_file(f):
    check("groups", sorted(f.keys()) == ["events", "items", "users"], sorted(f.keys()))
    expected = {
        "users": {"id": "S", "gender": "S", "age": np.int16, "persona": "S", "discount_persona": "S", "channel": "S"},
        "items": {"id": "S", "name": "S", "category": "S", "style": "S", "description": "S",
                  "gender_affinity": "S", "price": np.float32},
        "events": {"user": np.int64, "item": np.int32, "type": np.uint8, "timestamp": np.int64,
                   "discount": np.uint8},
    }
    rows = {"users": USERS, "items": ITEMS, "events": EVENTS}
    for group, datasets in expected.items():
        check(f"/{group} datasets", sorted(f[group].keys()) == sorted(datasets), sorted(f[group].keys()))
        for name, dtype in datasets.items():
            d = f[group][name]
            check(f"/{group}/{name} shape", d.shape == (rows[group],), d.shape)
            if dtype == "S":
                check(f"/{group}/{name} is a fixed-length string", d.dtype.kind == "S", d.dtype)
            else:
                check(f"/{group}/{name} dtype", d.dtype == np.dtype(dtype), d.dtype)

    attrs = {k: f.attrs[k] for k in f.attrs}
    check("format attribute", text(attrs.get("format", b"")) == "mfrec-dataset", attrs.get("format"))
    for key, want in [("n_users", USERS), ("n_items", ITEMS), ("n_events", EVENTS), ("seed", 5),
                      ("format_version", 1), ("end_time", 1609459200)]:
        check(f"attribute {key}", key in attrs and int(attrs[key]) == want, attrs.get(key))
    check("generator attribute", text(attrs.get("generator", b"")) == "mfrec_gen")
    names = text(f["events/type"].attrs["names"]).split(",")
    check("event type names", names == ["View", "AddToCart", "ViewCart", "StartCheckout", "Purchase"], names)

    ids = [text(x) for x in f["users/id"][:]]
    check("user ids are decimal indices", ids == [str(i) for i in range(USERS)], ids[:5])
    gender = {text(x) for x in f["users/gender"][:]}
    check("genders", gender == {"M", "F"}, gender)
    channel = [text(x) for x in f["users/channel"][:]]
    web = channel.count("web") / USERS
    check("90% web users", set(channel) == {"web", "c-store"} and abs(web - 0.9) < 0.03, web)
    persona = [text(x) for x in f["users/persona"][:]]
    check("web personas name three categories",
          all(len(p.split("_")) == 3 and (":" in p) == (c == "c-store") for p, c in zip(persona, channel)))
    discount = {text(x) for x in f["users/discount_persona"][:]}
    check("discount personas", discount == {"discount_indifferent", "all_discounts", "lower_priced_products"},
          discount)
    age = f["users/age"][:]
    check("ages in [18, 100]", age.min() >= 18 and age.max() <= 100, (age.min(), age.max()))

    item_ids = [text(x) for x in f["items/id"][:]]
    check("item ids unique", len(set(item_ids)) == ITEMS)
    categories = {text(x) for x in f["items/category"][:]}
    check("20 categories in the subset", len(categories) == 20, sorted(categories))
    check("descriptions decode", all(isinstance(text(x), str) for x in f["items/description"][:]))
    price = f["items/price"][:]
    check("prices positive", (price > 0).all())

    ev = {k: f["events"][k][:] for k in f["events"]}
    check("users in range and ordered", ev["user"].min() >= 0 and ev["user"].max() < USERS
          and (np.diff(ev["user"]) >= 0).all())
    check("items in range", ev["item"].min() >= 0 and ev["item"].max() < ITEMS)
    check("types in 0..4", ev["type"].max() <= 4)
    check("discount 0/1", set(np.unique(ev["discount"])) <= {0, 1})
    share = np.bincount(ev["type"], minlength=5) / EVENTS
    check("view share about 86%", abs(share[0] - 1 / 1.16) < 0.015, share)
    end = int(attrs["end_time"])
    ts = ev["timestamp"]
    check("timestamps in the 90 days before end_time", ts.min() >= end - 90 * 86400 and ts.max() < end)
    same_user = np.diff(ev["user"]) == 0
    check("timestamps increase within a user", (np.diff(ts)[same_user] > 0).all())


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure, reported like the others
        check("no exception", False, repr(e))
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] or not results["passed"] else 0)
