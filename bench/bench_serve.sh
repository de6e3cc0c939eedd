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
# Needs wrk (apt-get install wrk) and python3-h5py (to pick user ids).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)"
THREADS=${THREADS:-8} CONNECTIONS=${CONNECTIONS:-8} WRK_THREADS=${WRK_THREADS:-1}
DURATION=${DURATION:-10} N=${N:-20} USERS=${USERS:-5000}
MODEL=${MODEL:-$root/out/model.h5}
command -v wrk >/dev/null || { echo "bench_serve: wrk not found (apt-get install wrk)" >&2; exit 2; }
((DURATION >= 1 && DURATION <= 300)) || { echo "bench_serve: DURATION must be 1..300 s" >&2; exit 2; }
((CONNECTIONS >= 1 && CONNECTIONS <= 256)) || { echo "bench_serve: CONNECTIONS must be 1..256" >&2; exit 2; }

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
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

"$bin/mfrec_serve" --model "$MODEL" --host 127.0.0.1 --port 0 --port-file "$work/port" --threads "$THREADS" \
  --poll-seconds 0 --log-level warn >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 1 600); do [ -s "$work/port" ] && break; kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
[ -s "$work/port" ] || { echo "bench_serve: the server did not start:" >&2; cat "$work/serve.err" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$work/port")"
curl -sf "$url/healthz" >/dev/null || { echo "bench_serve: /healthz failed" >&2; exit 1; }

echo "== mfrec_serve: $MODEL, $THREADS threads; $(nproc) cores; wrk $WRK_THREADS thread(s), $CONNECTIONS connections"
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d2s --timeout 2s -s "$work/users.lua" "$url" >/dev/null  # warm-up
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 2s --latency -s "$work/users.lua" "$url" \
  | tee "$work/wrk.txt"

rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt")
p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.txt")
server_q=$(curl -sf "$url/metrics?format=json" | /usr/bin/python3 -c '
import json, sys
m = json.load(sys.stdin)["latency_seconds"]["GET /recommendations"]
print("server handler time: mean %.1f us, p50 <= %s s, p99 <= %s s over %d requests"
      % (m["mean"] * 1e6, m["p50_le"], m["p99_le"], m["count"]))')
echo
echo "GET /recommendations (n=$N): $rps requests/s, p50 $p50, p99 $p99 (client side, wrk)"
echo "$server_q"
[ -z "$errors" ] || { echo "bench_serve: errors: $errors" >&2; exit 1; }
