"""The shared tiny pipeline for the Python script tests (tests/fixture.sh builds it; the CTest
fixture "tiny_pipeline" builds it once per ctest run and passes its directory in MFREC_FIXTURE).
A test that declares the line `# fixture: tiny_pipeline` gets it from ctest; run by hand, it is
built into the test's own scratch directory. Read only: copy a file before changing it."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


FILES = ("data.h5", "prep.h5", "model.h5")


def ready(d):
    return all(os.path.isfile(os.path.join(d, f)) and os.path.getsize(os.path.join(d, f)) > 0 for f in FILES)


def tiny_pipeline(work):
    """The fixture directory: data.h5 (3,000 users, 30,000 events), prep.h5 and model.h5."""
    d = os.environ.get("MFREC_FIXTURE", "")
    if d and ready(d):
        return d
    d = os.path.join(work, "fixture")
    r = subprocess.run(["bash", os.path.join(HERE, "fixture.sh"), d], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not ready(d):
        sys.exit(f"building the tiny fixture failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return d
