#!/usr/bin/env bash
# Load benchmark of mfrec_serve: wrk against GET /recommendations on loopback, bounded in time
# and connections, printing throughput and p50/p99 latency (client side, wrk) plus the server's
# own handler-time quantiles (GET /metrics).
#
#   bash bench/bench_serve.sh [BUILD_DIR]
#
# Environment (defaults in brackets):
#   MODEL        model file to serve [out/model.h5, made by tools/demo.sh; built here if missing]
#   THREADS      server worker threads [8, the server's default]
#   CONNECTIONS  concurrent keep-alive connections [8] (keep <= THREADS: httplib gives each
#                connection a worker thread for as long as it stays open)
#   WRK_THREADS  wrk threads [1]
#   DURATION     seconds of the measured run [10] (after a 2 s warm-up)
#   N            items per response [20]
#   USERS        distinct user ids drawn at random per request [5000]
#   ANN          compare: two servers on the same model in the same run, --ann off (exact) and
#                --ann on (the model's ANN index, built first with mfrec_registry build-index
#                --model when MODEL's .ann is missing); recall@N of the ANN answers against the
#                exact ones (RECALL_USERS users, as many similar-item queries), then each server
#                under the same wrk load [off: one server, its default --ann]
#   ANN_EF       --ann-ef of the ANN server [the server's default]
#   RECALL_USERS queries compared for recall [500]
# The 100x catalogue without training one (synthetic factors; see docs/benchmarks.md):
#   build/bench_ann --model-out /tmp/big.h5 --users 20000      # 246,500 items x 64 factors
#   MODEL=/tmp/big.h5 ANN=compare bash bench/bench_serve.sh build
# Needs wrk (apt-get install wrk) and python3-h5py (to pick user ids).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
THREADS=${THREADS:-8} CONNECTIONS=${CONNECTIONS:-8} WRK_THREADS=${WRK_THREADS:-1}
DURATION=${DURATION:-10} N=${N:-20} USERS=${USERS:-5000}
ANN=${ANN:-off} ANN_EF=${ANN_EF:-} RECALL_USERS=${RECALL_USERS:-500}
[ "$ANN" = off ] || [ "$ANN" = compare ] || { echo "bench_serve: ANN must be off or compare" >&2; exit 2; }
MODEL=${MODEL:-$root/out/model.h5}
command -v wrk >/dev/null || { echo "bench_serve: wrk not found (apt-get install wrk)" >&2; exit 2; }
((DURATION >= 1 && DURATION <= 300)) || { echo "bench_serve: DURATION must be 1..300 s" >&2; exit 2; }
((CONNECTIONS >= 1 && CONNECTIONS <= 256)) || { echo "bench_serve: CONNECTIONS must be 1..256" >&2; exit 2; }

work=$(mktemp -d)
servers=()
cleanup() {
  for s in "${servers[@]}"; do
    if kill -0 "$s" 2>/dev/null; then kill -TERM "$s"; wait "$s" || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -f "$MODEL" ]; then
  echo "== $MODEL not found: building the default model (tools/demo.sh's data and parameters)"
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  mkdir -p "$(dirname "$MODEL")"
  mpi=(mpirun --oversubscribe --bind-to none -n 2)
  "${mpi[@]}" "$bin/mfrec_gen" --output "$work/retail.h5" -q
  "${mpi[@]}" "$bin/mfrec_prep" --input "$work/retail.h5" --output "$work/prepared.h5" -q
  "${mpi[@]}" "$bin/mfrec_dist" --data "$work/prepared.h5" --output "$MODEL" --log-level warn >/dev/null
fi

# The request script: a random user of the first USERS users per request.
/usr/bin/python3 - "$MODEL" "$USERS" "$N" >"$work/users.lua" <<'EOF'
import sys, h5py
ids = [u.decode() for u in h5py.File(sys.argv[1], "r")["/users/id"][: int(sys.argv[2])]]
print("local ids = {" + ",".join('"%s"' % i for i in ids) + "}")
print('request = function() return wrk.format("GET", "/recommendations?n=%s&user_id=" .. ids[math.random(#ids)]) end'
      % sys.argv[3])
EOF


# start NAME ARGS...: a server on MODEL (any free port); its URL in $url_NAME.
start() {
  local name=$1 pid u
  shift
  "$bin/mfrec_serve" --model "$MODEL" --host 127.0.0.1 --port 0 --port-file "$work/$name.port" \
    --threads "$THREADS" --poll-seconds 0 --log-level warn "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  servers+=("$pid")
  for _ in $(seq 1 1200); do [ -s "$work/$name.port" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  [ -s "$work/$name.port" ] || { echo "bench_serve: the $name server did not start:" >&2; cat "$work/$name.err" >&2; exit 1; }
  printf -v "url_$name" "http://127.0.0.1:%s" "$(cat "$work/$name.port")"
  u="url_$name"
  curl -sf "${!u}/healthz" >/dev/null || { echo "bench_serve: /healthz of the $name server failed" >&2; exit 1; }
}

# measure NAME URL: wrk against URL; a summary line (client side, and the server's handler time).
measure() {
  local name=$1 url=$2 what rps p50 p99 errors server_q
  what=$(curl -sf "$url/healthz" | /usr/bin/python3 -c '
import json, sys
m = json.load(sys.stdin)["model"]
print("%d items, %d factors, %s search" % (m["items"], m["factors"], m.get("search", "exact")))')
  echo "== $name: mfrec_serve ($what), $THREADS threads; $(nproc) cores; wrk $WRK_THREADS thread(s), $CONNECTIONS connections"
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d2s --timeout 2s -s "$work/users.lua" "$url" >/dev/null  # warm-up
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 2s --latency -s "$work/users.lua" "$url" \
    | tee "$work/$name.wrk"
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/$name.wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$work/$name.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$work/$name.wrk")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/$name.wrk")
  server_q=$(curl -sf "$url/metrics?format=json" | /usr/bin/python3 -c '
import json, sys
m = json.load(sys.stdin)["latency_seconds"]["GET /recommendations"]
print("server handler time: mean %.1f us, p50 <= %s s, p99 <= %s s over %d requests"
      % (m["mean"] * 1e6, m["p50_le"], m["p99_le"], m["count"]))')
  summary+="$name ($what): GET /recommendations (n=$N): $rps requests/s, p50 $p50, p99 $p99 (client side, wrk)"$'\n'
  summary+="  $server_q"$'\n'
  [ -z "$errors" ] || { echo "bench_serve: $name: errors: $errors" >&2; exit 1; }
}

summary=""
if [ "$ANN" = off ]; then
  start serve
  measure serve "$url_serve"
else
  index="${MODEL%.h5}.ann"
  [ "$index" != "$MODEL" ] || index="$MODEL.ann"
  if [ ! -f "$index" ]; then
    echo "== $index not found: building it (mfrec_registry build-index --model)"
    start_s=$(date +%s)
    "$bin/mfrec_registry" build-index --model "$MODEL" -q
    echo "   built in $(($(date +%s) - start_s)) s"
  fi
  start exact --ann off
  start ann --ann on ${ANN_EF:+--ann-ef "$ANN_EF"}
  # Recall@N of the ANN server's answers against the exact server's: the same users, the same items.
  /usr/bin/python3 - "$MODEL" "$RECALL_USERS" "$N" "$url_exact" "$url_ann" >"$work/recall.txt" <<'EOF'
import json, sys, urllib.request, h5py
model, count, n, exact, ann = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
with h5py.File(model, "r") as f:
    users = [u.decode() for u in f["/users/id"][:count]]
    item_ids = f["/items/id"]
    items = [item_ids[(k * 7919) % item_ids.shape[0]].decode() for k in range(count)]
def ids(base, path):
    with urllib.request.urlopen(base + path) as r:
        return [x["id"] for x in json.load(r)["items"]]
for what, paths in (("top-N", ["/recommendations?n=%d&user_id=%s" % (n, u) for u in users]),
                    ("similar items", ["/items/%s/similar?n=%d" % (i, n) for i in items])):
    hit = total = 0
    for p in paths:
        a, e = ids(ann, p), ids(exact, p)
        hit += len(set(a) & set(e))
        total += len(e)
    print("recall@%d of %s, ANN server vs exact server over %d queries: %.4f" % (n, what, len(paths), hit / total))
EOF
  cat "$work/recall.txt"
  measure exact "$url_exact"
  measure ann "$url_ann"
  summary+=$(cat "$work/recall.txt")$'\n'
fi
echo
printf "%s" "$summary"
