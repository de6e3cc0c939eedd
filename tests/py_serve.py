#!/usr/bin/env python3
"""mfrec_serve end to end: the real server on a loopback port, driven over HTTP.

Trains two small models, publishes the first to a registry as production, starts the server on
it and checks every endpoint, the error answers (400, 404, 413), that malformed, slow or hostile
requests neither crash nor stall it, that it follows the production label to the second model
without failing requests in flight, reloads on SIGHUP, and exits cleanly on SIGTERM.
Environment: MFREC_BIN (the build directory), MPIEXEC (unused: everything runs on one rank),
MFREC_FIXTURE (the shared tiny data set, tests/fixture.sh: 3,000 users, 30,000 events)."""
# fixture: tiny_pipeline
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import h5py

import fixture

BIN = os.environ.get("MFREC_BIN", "build")
WORK = tempfile.mkdtemp(prefix="py_serve_", dir=os.getcwd())
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def run(*args, **kw):
    r = subprocess.run([os.path.join(BIN, args[0])] + list(args[1:]), cwd=WORK, capture_output=True, text=True,
                       timeout=kw.get("timeout", 300))
    if r.returncode != kw.get("rc", 0):
        sys.exit(f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


class Server:
    def __init__(self, *args):
        self.port_file = os.path.join(WORK, f"port{time.monotonic_ns()}")
        self.log = open(os.path.join(WORK, "serve.log"), "a")
        self.proc = subprocess.Popen([os.path.join(BIN, "mfrec_serve"), "--port", "0", "--port-file", self.port_file]
                                     + list(args), cwd=WORK, stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.time() + 60
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit(f"mfrec_serve did not start (exit {self.proc.poll()}); see {self.log.name}")
            time.sleep(0.05)
        self.port = int(open(self.port_file).read())
        self.banner = self.proc.stdout.readline()

    def request(self, method, path, body=None, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            ctype = r.getheader("Content-Type", "")
            return r.status, (json.loads(data) if ctype.startswith("application/json") else data.decode())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, obj=None, raw=None):
        body = raw if raw is not None else json.dumps(obj)
        return self.request("POST", path, body=body, headers={"Content-Type": "application/json"})

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def main():
    # Two small models on the synthetic data (different seeds), published to a registry.
    prepared = os.path.join(fixture.tiny_pipeline(WORK), "prep.h5")
    for seed in (1, 2):
        run("mfrec_dist", "--data", prepared, "--output", f"model{seed}.h5", "--factors", "16", "--alpha", "10",
            "--regularization", "1", "--iterations", "6", "--seed", str(seed), "--threads", "1",
            "--log-level", "warn")
    reg = os.path.join(WORK, "registry")
    run("mfrec_registry", "--registry", reg, "publish", "model1.h5", "retail-als", "--stage", "production", "-q")

    with h5py.File(os.path.join(WORK, "model1.h5"), "r") as m:
        user_ids = [u.decode() for u in m["/users/id"][:]]
        item_ids = [i.decode() for i in m["/items/id"][:]]
        indptr, indices = m["/seen/indptr"][:], m["/seen/indices"][:]
        ranking = m["/popularity/ranking"][:]
    seen = {user_ids[u]: {item_ids[i] for i in indices[indptr[u]:indptr[u + 1]]} for u in range(len(user_ids))}
    users = [u for u in user_ids if seen[u]][:50]
    popular_ids = [item_ids[i] for i in ranking[:20]]

    s = Server("--registry", reg, "--spec", "retail-als@production", "--threads", "4", "--poll-seconds", "0.5",
               "--max-body", "4096", "--max-history", "50")
    try:
        check("http://127.0.0.1:" in s.banner, f"binds 127.0.0.1 by default: {s.banner!r}")
        st, h = s.get("/healthz")
        check(st == 200 and h["status"] == "ok" and h["model"]["version"] == 1 and h["model"]["name"] == "retail-als",
              f"healthz: {st} {h}")
        check(h["model"]["users"] == len(user_ids) and h["model"]["items"] == len(item_ids), "healthz sizes")

        # A known user: 20 by default, details, nothing already seen, best first.
        u = users[0]
        st, r = s.get(f"/recommendations?user_id={u}")
        check(st == 200 and r["user_id"] == u and r["known_user"] is True and r["source"] == "model", f"user: {st}")
        check(r["count"] == 20 and len(r["items"]) == 20, "default n is 20")
        first = r["items"][0]
        check(all(k in first for k in ("rank", "id", "name", "category", "style", "price", "description", "score")),
              f"item details: {first}")
        check(not ({it["id"] for it in r["items"]} & seen[u]), "seen items are left out")
        scores = [it["score"] for it in r["items"]]
        check(scores == sorted(scores, reverse=True), "ranked by score")
        for u in users[1:10]:
            st, r = s.get(f"/recommendations?user_id={u}&n=7")
            check(st == 200 and len(r["items"]) == 7 and not ({it["id"] for it in r["items"]} & seen[u]),
                  f"user {u}")
        # No user, an unknown user: the popular list, marked.
        st, r = s.get("/recommendations")
        check(st == 200 and r["source"] == "popular" and r["user_id"] is None, "no user_id: popular")
        check([it["id"] for it in r["items"]] == popular_ids, "popular order")
        st, r = s.get("/recommendations?user_id=no-such-user&n=5")
        check(st == 200 and r["source"] == "popular" and r["known_user"] is False and len(r["items"]) == 5,
              "unknown user: popular")
        st, r = s.get("/recommendations?user_id=%ff%fe&n=2")
        check(st == 200 and r["known_user"] is False, f"invalid UTF-8 in user_id: answered ({st})")
        st, r = s.get("/popular?n=3")
        check(st == 200 and [it["id"] for it in r["items"]] == popular_ids[:3], "GET /popular")
        st, r = s.get("/recommendations?n=1000")
        check(st == 200 and r["count"] == 1000, "n = 1000 is allowed")

        # Similar items and item details.
        it = item_ids[5]
        st, r = s.get(f"/items/{it}/similar?n=4")
        check(st == 200 and r["item"]["id"] == it and len(r["items"]) == 4 and r["source"] == "similar"
              and it not in {x["id"] for x in r["items"]}, f"similar: {st}")
        check(all(-1.0001 <= x["score"] <= 1.0001 for x in r["items"]), "cosine scores")
        st, r = s.get(f"/items/{it}")
        check(st == 200 and r["id"] == it and "popularity" in r, "item details")
        st, r = s.get("/items/no-such-item/similar")
        check(st == 404 and "error" in r, f"unknown item: 404 ({st})")
        st, r = s.get("/items/no-such-item")
        check(st == 404, "unknown item details: 404")

        # Fold-in from a history.
        hist = sorted(seen[users[0]])[:5]
        st, r = s.post("/recommendations", {"items": hist, "n": 10})
        check(st == 200 and r["source"] == "fold-in" and len(r["items"]) == 10 and r["history"] == hist,
              f"fold-in: {st} {r if st != 200 else ''}")
        check(not ({x["id"] for x in r["items"]} & set(hist)), "fold-in leaves out the history")
        st, r2 = s.post("/recommendations?n=3", {"items": [{"id": hist[0], "weight": 5}, hist[1]]})
        check(st == 200 and len(r2["items"]) == 3, "weighted history, n from the query")

        # Bad requests: JSON errors with the right status, never a crash.
        for path in ("/recommendations?n=0", "/recommendations?n=1001", "/recommendations?n=abc",
                     "/recommendations?n=-3", "/recommendations?n=2.5", "/recommendations?n=", "/recommendations?user_id=",
                     "/recommendations?n=99999999999999999999", "/popular?n=0", f"/items/{it}/similar?n=x",
                     "/recommendations?user_id=" + "x" * 300):
            st, r = s.get(path)
            check(st == 400 and isinstance(r, dict) and "error" in r, f"{path}: 400 ({st})")
        bad_bodies = ["not json", "[1, 2]", "{}", '{"items": "abc"}', '{"items": []}', '{"items": [1, 2]}',
                      '{"items": [{"weight": 2}]}', json.dumps({"items": [hist[0]], "n": 0}),
                      json.dumps({"items": [hist[0]], "n": "5"}), json.dumps({"items": [{"id": hist[0], "weight": -1}]}),
                      json.dumps({"items": [{"id": hist[0], "weight": "heavy"}]}),
                      json.dumps({"items": item_ids[:51]}), "[" * 2000 + "]" * 2000, '{"items": ["a"' + ",1" * 10]
        for body in bad_bodies:
            st, r = s.post("/recommendations", raw=body)
            check(st == 400 and "error" in r, f"POST {body[:40]!r}: 400 ({st})")
        st, r = s.post("/recommendations", {"items": [hist[0], "no-such-item"]})
        check(st == 404 and r.get("unknown_items") == ["no-such-item"], f"unknown history item: 404 ({st})")
        st, r = s.post("/recommendations", raw=json.dumps({"items": item_ids[:40], "pad": "x" * 5000}))
        check(st == 413 and "error" in r, f"oversized body: 413 ({st})")
        st, r = s.get("/no/such/endpoint")
        check(st == 404 and "error" in r, "unknown endpoint: JSON 404")
        st, r = s.request("DELETE", "/recommendations")
        check(st in (400, 404, 405) and "error" in r, f"DELETE: JSON error ({st})")

        # Hostile connections: garbage, a half-sent request held open, a client that vanishes.
        for raw in (b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"\x00\xff" * 100):
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
                c.sendall(raw)
                try:
                    c.recv(4096)
                except OSError:
                    pass
        slow = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(2)]
        for c in slow:
            c.sendall(b"GET /recommendations?user_id=")  # and never finish
        t0 = time.time()
        st, _ = s.get("/healthz")
        check(st == 200 and time.time() - t0 < 2, "served while slow clients hold connections")
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.sendall(b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"items\"")
            c.close()
        for c in slow:
            c.close()
        check(s.proc.poll() is None, "still running after hostile connections")

        # Concurrent load, then the production label moves to version 2 while requests fly.
        errors, done, count = [], threading.Event(), [0]
        lock = threading.Lock()

        def hammer(k):
            i = k
            while not done.is_set():
                try:
                    st, r = s.get(f"/recommendations?user_id={users[i % len(users)]}&n=10")
                    if st != 200 or len(r["items"]) != 10:
                        errors.append((st, r))
                except Exception as e:  # a dropped connection counts as a failure
                    errors.append(repr(e))
                with lock:
                    count[0] += 1
                i += 7

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)
        run("mfrec_registry", "--registry", reg, "publish", "model2.h5", "retail-als", "--stage", "production", "-q")
        deadline, version = time.time() + 30, 1
        while time.time() < deadline and version != 2:
            time.sleep(0.2)
            version = s.get("/healthz")[1]["model"]["version"]
        time.sleep(1)
        done.set()
        for t in threads:
            t.join()
        check(version == 2, "follows the production label to version 2")
        check(not errors, f"no request failed during the reload ({len(errors)} of {count[0]}: {errors[:3]})")
        check(count[0] > 50, f"requests served during the reload: {count[0]}")
        print(f"{count[0]} requests during the reload, none failed", flush=True)
        st, r = s.get(f"/recommendations?user_id={users[0]}&n=3")
        check(r["model"] == "retail-als:2", f"responses name the new model: {r['model']}")

        # SIGHUP: a forced reload (same version), counted in the metrics.
        st, m = s.get("/metrics?format=json")
        before = m["reloads"]
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline and m["reloads"] == before:
            time.sleep(0.2)
            m = s.get("/metrics?format=json")[1]
        check(m["reloads"] == before + 1, f"SIGHUP reloads ({before} -> {m['reloads']})")
        check(m["requests"]["GET /recommendations"]["200"] >= count[0], "request counts")
        check(m["requests"]["POST /recommendations"]["400"] == len(bad_bodies), "400 counts")
        check(m["latency_seconds"]["GET /recommendations"]["count"] > 0, "latencies")
        st, text = s.get("/metrics")
        check(st == 200 and 'mfrec_requests_total{endpoint="GET /recommendations",status="200"}' in text
              and "mfrec_request_seconds_bucket" in text and "mfrec_model_version 2" in text, "Prometheus text")

        # A rollback to version 1 is followed too.
        run("mfrec_registry", "--registry", reg, "promote", "retail-als:1", "production", "-q")
        deadline = time.time() + 20
        while time.time() < deadline and s.get("/healthz")[1]["model"]["version"] != 1:
            time.sleep(0.2)
        check(s.get("/healthz")[1]["model"]["version"] == 1, "follows a rollback to version 1")

        # A damaged file under the label: the reload fails its checksum, version 1 keeps serving.
        failed_before = s.get("/metrics?format=json")[1]["reload_failures"]
        with open(os.path.join(reg, "retail-als", "v2.h5"), "r+b") as f:
            f.seek(-16, os.SEEK_END)
            f.write(b"\xff" * 16)
        run("mfrec_registry", "--registry", reg, "promote", "retail-als:2", "production", "-q")
        deadline = time.time() + 20
        m = s.get("/metrics?format=json")[1]
        while time.time() < deadline and m["reload_failures"] == failed_before:
            time.sleep(0.2)
            m = s.get("/metrics?format=json")[1]
        time.sleep(1.5)  # a few more polls: the failed version is not retried over and over
        m = s.get("/metrics?format=json")[1]
        check(m["reload_failures"] == failed_before + 1, f"damaged model: one failed reload ({m['reload_failures']})")
        st, r = s.get(f"/recommendations?user_id={users[0]}&n=3")
        check(st == 200 and r["model"] == "retail-als:1", "still serving version 1")
    finally:
        rc = s.stop()
    check(rc == 0, f"SIGTERM: clean exit (rc {rc})")

    # A model file instead of the registry, reloaded when it is replaced; a busy port is an error.
    shutil.copy(os.path.join(WORK, "model1.h5"), os.path.join(WORK, "served.h5"))
    s = Server("--model", "served.h5", "--threads", "2", "--poll-seconds", "0.5")
    try:
        st, h = s.get("/healthz")
        check(st == 200 and h["model"]["path"] == "served.h5", "serves a model file")
        before = s.get(f"/recommendations?user_id={users[0]}")[1]["items"]
        shutil.copy(os.path.join(WORK, "model2.h5"), os.path.join(WORK, "served.tmp"))
        os.replace(os.path.join(WORK, "served.tmp"), os.path.join(WORK, "served.h5"))
        deadline = time.time() + 20
        while time.time() < deadline and s.get("/metrics?format=json")[1]["reloads"] == 0:
            time.sleep(0.2)
        check(s.get("/metrics?format=json")[1]["reloads"] == 1, "reloads a replaced model file")
        after = s.get(f"/recommendations?user_id={users[0]}")[1]["items"]
        check(before != after, "the replaced file answers")
        r = subprocess.run([os.path.join(BIN, "mfrec_serve"), "--model", "model1.h5", "--port", str(s.port)],
                           cwd=WORK, capture_output=True, text=True, timeout=60)
        check(r.returncode != 0 and "cannot bind" in r.stderr, f"port in use: {r.returncode} {r.stderr[-200:]}")
    finally:
        check(s.stop(signal.SIGINT) == 0, "SIGINT: clean exit")
    r = subprocess.run([os.path.join(BIN, "mfrec_serve"), "--registry", os.path.join(WORK, "none"), "--port", "0"],
                       cwd=WORK, capture_output=True, text=True, timeout=60)
    check(r.returncode == 2 and "registry" in r.stderr, f"missing registry: exit 2 ({r.returncode} {r.stderr[-200:]})")
    r = subprocess.run([os.path.join(BIN, "mfrec_serve"), "--threads", "0"], cwd=WORK, capture_output=True, text=True)
    check(r.returncode == 2, "bad option: exit 2")

    if failures:
        print(f"{len(failures)} check(s) failed; files in {WORK}")
        return 1
    if not os.environ.get("MFREC_KEEP"):
        shutil.rmtree(WORK, ignore_errors=True)
    print("py_serve: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
