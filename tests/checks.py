"""What the python script tests share: the build directory, a scratch directory, TAP-like
checks and running a built program that must succeed. Environment: MFREC_BIN (the build
directory), MPIEXEC."""
import os
import subprocess
import sys
import tempfile

BIN = os.environ.get("MFREC_BIN", "build")
MPIEXEC = os.environ.get("MPIEXEC", "mpirun")
failures = []


def scratch(name):
    """A new scratch directory under the current one, named after the test."""
    return tempfile.mkdtemp(prefix=name + "_", dir=os.getcwd())


def check(cond, what):
    print(("ok   - " if cond else "FAIL - ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(cwd, *args):
    """Runs build/ARGS[0] with the other args in cwd; exits the test when it fails."""
    r = subprocess.run([os.path.join(BIN, args[0])] + list(args[1:]), cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        sys.exit(f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
