#!/usr/bin/python3
"""Bad values for every option of every program, generated from the programs' own option lists.

For mfrec_gen, mfrec_prep, mfrec_dist and mfrec_recommend (under `mpirun --oversubscribe
--bind-to none`) and mfrec_serve (one process, no MPI) this reads `PROG --list-options` (JSON:
name, type, has_default, default, role, doc) and, on top of a valid base command line per
program (on the shared tiny data set), sets one option at a time to a bad value chosen by its
type and path role:
  numbers (int, int64, uint64, double, float) and strings: "abc", "-1", "0", a huge value
  bool: "abc"; flag: "--NAME=abc"
  input file/dir: a missing path, a directory where a file is needed and the reverse
  output file: a missing directory (/nonexistent/dir/x), a path under a file, a directory, a
      place root cannot write (/proc/...), the same path as an input
  output dir: a file, a path under a file, a place root cannot create (/proc/...), an input
Every case must exit non-zero (a value that is legitimately valid is on the ALLOW list below,
with the reason, and may exit 0), print exactly one line matching "error" on stderr that names
the option (--NAME) or the path, print no MPI_Abort banner, end within TIMEOUT seconds (else a
HANG) and leave no new file in the output directory, in the directories it was pointed at, nor
change an input. Every case runs on 2 ranks; the path cases (and --config) also on 3 ranks: a
file system check made on one rank is where ranks disagree, while a number is parsed and checked
the same way on every rank (the 3-rank subset keeps the run at about 2 to 4 minutes on 2 busy
cores). A table of the failures is printed; exit status 1 if there is any.

Environment: MFREC_BIN (build directory), MPIEXEC, MFREC_FIXTURE (tests/fixture.sh's data set),
MFREC_OPTIONS_ONLY (optional: a program name, to run one program's cases), MFREC_OPTIONS_JOBS
(cases run at once, default 4), MFREC_KEEP=1 (keep the failed cases' directories).
A case that times out is run once more before it is called a HANG (a loaded machine is slow, a
hang is not)."""
# fixture: tiny_pipeline
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import fixture

BIN = os.environ.get("MFREC_BIN", "build")
MPIEXEC = os.environ.get("MPIEXEC", "mpirun")
TIMEOUT = 10
POSITIONAL = "(positional)"
NUMBER_KINDS = ("wrong type", "negative", "zero", "out of range")
JOBS = int(os.environ.get("MFREC_OPTIONS_JOBS", "4"))  # a case mostly waits for mpirun to start and end
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1",
           # no 1 s SIGTERM-to-SIGKILL grace after a rank exits non-zero (see tests/lib.sh)
           OMPI_MCA_odls_base_sigkill_timeout="0")

# The valid base command line of each program: {in} is the case's copy of the fixture's files,
# {out} its (empty) output directory. Options given here are replaced by a case's value; "drop":
# options of the base left out when a case sets another (the model file when a case names a
# registry to load from instead).
PROGRAMS = {
    "mfrec_gen": dict(mpi=True, inputs=[], flags=["quiet"],
                      base={"users": "200", "events": "2000", "output": "{out}/gen.h5"}),
    "mfrec_prep": dict(mpi=True, inputs=["data.h5"], flags=["quiet"],
                       base={"input": "{in}/data.h5", "output": "{out}/prep.h5"}),
    "mfrec_dist": dict(mpi=True, inputs=["prep.h5"], flags=[],
                       base={"data": "{in}/prep.h5", "output": "{out}/model.h5", "factors": "4", "iterations": "1",
                             "threads": "1", "log-level": "warn"}),
    "mfrec_recommend": dict(mpi=True, inputs=["model.h5"], flags=["all"], drop={"registry": ["model"]},
                            base={"model": "{in}/model.h5", "output": "{out}/recs.h5", "threads": "1",
                                  "log-level": "warn"}),
    "mfrec_serve": dict(mpi=False, inputs=["model.h5"], flags=[], drop={"registry": ["model"]},
                        base={"model": "{in}/model.h5", "host": "127.0.0.1", "port": "0",
                              "port-file": "{out}/port", "threads": "1", "poll-seconds": "0",
                              "log-level": "warn"}),
}

# Values that are legitimately valid (the case may exit 0): (program or "*", option, value or
# "*") -> why. Everything else must be refused.
ALLOW = {
    ("*", "threads", "0"): "documented: 0 = automatic",
    ("*", "seed", "0"): "seeds are >= 0",
    ("mfrec_gen", "end-time", "0"): "unix time 0 is a valid end of the window",
    ("mfrec_gen", "deflate", "0"): "documented range 0 .. 9",
    ("mfrec_prep", "weight-view", "0"): "per-type weights are non-negative: 0 drops that type",
    ("mfrec_prep", "weight-add-to-cart", "0"): "per-type weights are non-negative",
    ("mfrec_prep", "weight-view-cart", "0"): "per-type weights are non-negative",
    ("mfrec_prep", "weight-start-checkout", "0"): "per-type weights are non-negative",
    ("mfrec_prep", "weight-purchase", "0"): "per-type weights are non-negative",
    ("mfrec_prep", "comment", "*"): "any text is a valid comment marker (lines starting with it are skipped)",
    ("mfrec_prep", "min-value", "-1"): "a threshold below every value keeps them all: valid",
    ("mfrec_prep", "min-value", "0"): "a threshold of 0 drops negative values only: valid",
    ("mfrec_dist", "knn-k", "0"): "documented: 0 = no kNN baseline",
    ("mfrec_dist", "eval-users", "0"): "documented: 0 = every test user",
    ("mfrec_dist", "loss-every", "0"): "documented: 0 = never",
    ("mfrec_dist", "checkpoint-every", "0"): "documented: 0 = only on signals and at the end",
    ("mfrec_dist", "regularization", "0"): "lambda = 0 is unregularised ALS, a valid (if unwise) choice",
    ("mfrec_dist", "alpha", "0"): "alpha = 0 gives confidence 1 everywhere (hu): valid, if useless",
    ("mfrec_dist", "alpha", "99999999999999999999"): "1e20 is a finite double; no upper bound is documented",
    ("mfrec_dist", "regularization", "99999999999999999999"): "1e20 is a finite double; no upper bound documented",
    ("mfrec_dist", "exchange-memory", "0"): "documented: 0 = no limit (one stage)",
    ("mfrec_dist", "exchange-memory", "99999999999999999999"): "1e20 MiB is a finite budget: one stage, valid",
    ("mfrec_dist", "eval-memory", "0"): "documented: 0 = no limit (every item gathered at once)",
    ("mfrec_dist", "model-name", "*"): "any name: it is only used with --registry (checked there)",
    ("mfrec_recommend", "user", "*"): "an unknown user gets the popular list (documented behaviour)",
    ("mfrec_recommend", "sample", "0"): "zero sample users: none printed",
    ("mfrec_serve", "host", "0"): "'0' is an IPv4 address (0.0.0.0, as inet_aton reads it)",
    ("mfrec_serve", "port", "0"): "documented: 0 = any free port",
    ("mfrec_serve", "poll-seconds", "0"): "documented: 0 = only on SIGHUP",
}


def allowed(prog, opt, value):
    for p in (prog, "*"):
        for v in (value, "*"):
            if (p, opt, v) in ALLOW:
                return ALLOW[(p, opt, v)]
    return None


def list_options(prog):
    r = subprocess.run([os.path.join(BIN, prog), "--list-options"], capture_output=True, text=True, timeout=30,
                       env=ENV)
    if r.returncode != 0:
        raise RuntimeError(f"{prog} --list-options: exit {r.returncode}: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)


def cases_for(prog, opt, inputs):
    """(value, kind) pairs for one option; "{in}", "{case}" are filled per case."""
    t, role, name = opt["type"], opt.get("role", ""), opt["name"]
    if name in ("help", "version", "list-options"):
        return []
    if t == "flag":
        return [("=abc", "flag with a value")]
    if t == "bool":
        return [("abc", "wrong type")]
    if t == "path" or role:
        if role == "input-file":
            return [("{case}/missing.h5", "missing input"), ("{case}/adir", "directory as input file")]
        if role == "input-dir":
            return [("{case}/missing.d", "missing input"), ("{case}/afile", "file as input directory")]
        same = [("{in}/" + f, "same path as an input") for f in inputs[:1]]
        if role == "output-file":
            return [("/nonexistent/dir/x", "missing output directory"), ("{case}/afile/x", "output under a file"),
                    ("{case}/adir", "directory as output file"), ("/proc/mfrec-test.out", "unwritable output")] + same
        if role == "output-dir":
            return [("{case}/afile", "file as output directory"), ("{case}/afile/x", "output under a file"),
                    ("/proc/mfrec-test.d", "unwritable output")] + same
    huge = "1e999" if t in ("double", "float") else "99999999999999999999"
    return [("abc", "wrong type"), ("-1", "negative"), ("0", "zero"), (huge, "out of range")]


def snapshot(d):
    """Files (relative path -> (size, mtime)) under d."""
    out = {}
    for root, dirs, files in os.walk(d):
        for f in dirs + files:
            p = os.path.join(root, f)
            st = os.lstat(p)
            out[os.path.relpath(p, d)] = (st.st_size, st.st_mtime_ns) if f in files else "dir"
    return out


def run_case(fix, prog, spec, np_, opt_name, value, kind, index):
    case = tempfile.mkdtemp(prefix=f"{index:04d}_", dir=WORK)
    ind, outd = os.path.join(case, "in"), os.path.join(case, "out")
    os.makedirs(ind)
    os.makedirs(outd)
    os.makedirs(os.path.join(case, "adir"))
    with open(os.path.join(case, "afile"), "w") as f:
        f.write("a file\n")
    for f in spec["inputs"]:
        shutil.copy(os.path.join(fix, f), ind)
    fill = lambda s: s.replace("{in}", ind).replace("{out}", outd).replace("{case}", case)
    args = {k: fill(v) for k, v in spec["base"].items() if k not in spec.get("drop", {}).get(opt_name, [])}
    flags = list(spec["flags"])
    value = fill(value)
    extra = []
    if opt_name == POSITIONAL:
        extra = [value]
    elif opt_name is not None:
        if value.startswith("="):  # a flag given a value
            flags = [f for f in flags if f != opt_name]
            extra = [f"--{opt_name}{value}"]
        else:
            args.pop(opt_name, None)
            flags = [f for f in flags if f != opt_name]
            extra = [f"--{opt_name}={value}"]  # '=': a value starting with '-' is not an option
    argv = [os.path.join(BIN, prog)] + [f"--{k}={v}" for k, v in args.items()] + [f"--{f}" for f in flags] + extra
    if spec["mpi"]:
        argv = [MPIEXEC, "--oversubscribe", "--bind-to", "none", "-n", str(np_)] + argv
    before_in = snapshot(ind)
    before_case = snapshot(case)
    t0 = time.monotonic()
    with open(os.path.join(case, "stdout"), "w") as so, open(os.path.join(case, "stderr"), "w") as se:
        p = subprocess.Popen(argv, cwd=case, env=ENV, stdout=so, stderr=se, start_new_session=True)
        rc, served = None, False
        while time.monotonic() - t0 < TIMEOUT:
            rc = p.poll()
            if rc is not None:
                break
            if not spec["mpi"] and "http://" in open(os.path.join(case, "stdout")).read():
                served = True  # mfrec_serve is listening: the value was accepted
                break
            time.sleep(0.05)
        if rc is None:
            os.killpg(p.pid, signal.SIGTERM if served else signal.SIGKILL)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    seconds = time.monotonic() - t0
    err = open(os.path.join(case, "stderr"), errors="replace").read()
    out = open(os.path.join(case, "stdout"), errors="replace").read()
    res = dict(prog=prog, np=np_ if spec["mpi"] else 1, option=opt_name or "(base)",
               value=value.replace(case, "$CASE"), kind=kind, rc=rc, seconds=seconds, problems=[])
    pr = res["problems"]
    if opt_name is None:  # the base command: must succeed
        if rc != 0 and not served:
            pr.append(f"base command failed (exit {rc}): {err.strip()[-300:]}")
        shutil.rmtree(case, ignore_errors=True)
        return res
    why = allowed(prog, opt_name, value)
    if rc is None and not served:
        pr.append(f"HANG: still running after {TIMEOUT} s")
    elif rc == 0 or served:
        if not why:
            pr.append("accepted (exit 0)" if rc == 0 else "accepted (the server started)")
    else:
        lines = [l for l in err.splitlines() if re.search("error", l, re.I)]
        named = [l for l in lines if f"--{opt_name}" in l or value in l or value.replace(case, ".") in l]
        if len(lines) != 1:
            pr.append(f"{len(lines)} error lines" + (f": {lines[:3]}" if lines else f"; stderr: {err.strip()[-200:]!r}"))
        elif not named:
            pr.append(f"the error does not name --{opt_name} or the path: {lines[0].strip()[:200]}")
    if "MPI_ABORT" in err.upper() or "MPI_ABORT" in out.upper():
        pr.append("MPI_Abort banner")
    if not (rc == 0 or served):
        new = sorted(snapshot(outd))
        if new:
            pr.append(f"left files in the output directory: {new[:4]}")
        after = snapshot(case)
        stray = sorted(k for k in set(after) - set(before_case)
                       if k.split(os.sep)[0] not in ("in", "out", "stdout", "stderr"))
        if stray:
            pr.append(f"left files behind: {stray[:4]}")
    if snapshot(ind) != before_in:
        pr.append("CHANGED AN INPUT FILE")
    if not pr:
        shutil.rmtree(case, ignore_errors=True)
    else:
        res["log"] = (err.strip().splitlines() or [""])[-1][:160]
    return res


def run_twice_if_hung(*args):
    r = run_case(*args)
    if any(p.startswith("HANG") for p in r["problems"]):
        r = run_case(*args)
        r["problems"] = [p + " (twice)" if p.startswith("HANG") else p for p in r["problems"]]
    return r


def main():
    fix = fixture.tiny_pipeline(WORK)
    only = os.environ.get("MFREC_OPTIONS_ONLY")
    jobs = []  # (prog, spec, np, option, value, kind)
    setup_failures = []
    for prog, spec in PROGRAMS.items():
        if only and prog != only:
            continue
        if not os.path.exists(os.path.join(BIN, prog)):
            setup_failures.append(f"{prog}: not built")
            continue
        try:
            opts = list_options(prog)
        except (RuntimeError, ValueError) as e:
            setup_failures.append(str(e))
            continue
        ranks = (2, 3) if spec["mpi"] else (1,)
        for np_ in ranks:
            jobs.append((prog, spec, np_, None, "", "base"))
        # Not in the option list: the INI file of every program, and a stray positional argument.
        extra = [("config", "{case}/missing.ini", "missing input"), ("config", "{case}/adir", "directory as input file"),
                 (POSITIONAL, "stray", "stray argument")]
        generated = [(o["name"], v, k) for o in opts for v, k in cases_for(prog, o, spec["inputs"])]
        for name, value, kind in generated + extra:
            for np_ in ranks:
                # 3 ranks: the path cases only (numbers are checked alike on every rank)
                if np_ == 3 and kind in NUMBER_KINDS + ("flag with a value", "stray argument"):
                    continue
                jobs.append((prog, spec, np_, name, value, kind))
    t0 = time.monotonic()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
        futs = [pool.submit(run_twice_if_hung, fix, prog, spec, np_, name, value, kind, i)
                for i, (prog, spec, np_, name, value, kind) in enumerate(jobs)]
        for f in futs:
            r = f.result()
            results.append(r)
            status = "FAIL" if r["problems"] else "ok  "
            print(f"{status} {r['prog']} -n {r['np']} --{r['option']}={r['value']!r} ({r['kind']}): "
                  f"exit {r['rc']}, {r['seconds']:.1f} s" + (f": {'; '.join(r['problems'])}" if r["problems"] else ""),
                  flush=True)
    failures = [r for r in results if r["problems"]]
    print(f"\n{len(results)} cases in {time.monotonic() - t0:.0f} s, {len(failures)} failed"
          + (f", {len(setup_failures)} set-up failures" if setup_failures else ""))
    for s in setup_failures:
        print("SET-UP FAILURE:", s)
    if failures:
        print(f"\n{'program':16} {'np':>2}  {'option':20} {'value':28} {'case':26} problem")
        for r in failures:
            print(f"{r['prog']:16} {r['np']:>2}  --{r['option']:18} {r['value'][-28:]:28} {r['kind']:26} "
                  f"{'; '.join(r['problems'])}")
    if os.environ.get("MFREC_KEEP") == "1":
        print(f"\nthe failed cases' directories are kept under {WORK}")
    return 1 if failures or setup_failures else 0


if __name__ == "__main__":
    WORK = tempfile.mkdtemp(prefix="cli_options_")
    try:
        status = main()
    finally:
        if os.environ.get("MFREC_KEEP") != "1":
            shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(status)
