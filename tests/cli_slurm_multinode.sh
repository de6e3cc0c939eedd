#!/usr/bin/env bash
# jobs/train.sbatch across nodes: a private 4-node SLURM on this machine (tests/slurm_cluster.sh
# start DIR --nodes 4: each node a network namespace whose only link is a veth on a bridge the
# script creates, with its own slurmd; munged, slurmctld and the file system shared), then
#   1. the nodes: 4 idle, each with one interface at 10.213.X.(10+K)/24, no route beyond that /24,
#      no IPv6; env.sh confines Open MPI and PMIx to that subnet
#   2. train.sbatch -N 4 -n 4 with srun --mpi=pmix: one rank on each node (every node's slurmd
#      launched the step), Open MPI restricted to the self and tcp transports (no shared memory
#      between the nodes), and every node's veth carried the factor exchange
#   3. train.sbatch -N 1 -n 1: the same model (user and item factors to 1e-5) and metrics
#   4. train.sbatch -N 4 -n 4 with mpirun (its daemons started on the nodes by SLURM): the same model;
#      jobs/submit.sh --nodes 4 --ntasks 4: generate, prepare (parallel HDF5 from 4 nodes), train
#      on 2 groups, recommend --all
#   5. stop: no namespace, link, bridge, mount or daemon left; and a cluster whose owner is killed
#      is removed by its watchdog
# Skips (exit 77: a CTest skip) only where SLURM, munge, iproute2 or network namespaces are
# missing or not root (MFREC_REQUIRE_SLURM=1: fail instead). A detached watchdog stops the
# cluster and removes its network if this script is killed. MFREC_SLURM_KEEP=1 keeps the logs.
# fixture: tiny_pipeline
set -u
[ -n "${MFREC_SLURM_KEEP:-}" ] && export MFREC_KEEP=$MFREC_SLURM_KEEP
WORK_PREFIX=mfrec_slurm   # slurm_cluster.sh's free_port looks for other clusters' ports there
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
CLUSTER=$WORK   # slurm.conf, state, logs; the jobs work under $WORK/w*
on_exit 'bash "$SRC/tests/slurm_cluster.sh" stop "$CLUSTER" >/dev/null 2>&1'
show() { for f in "$@"; do [ -f "$f" ] && sed "s#^#    $(basename "$f") | #" "$f" | tail -n 25; done; }
T0=$SECONDS

# --- 1. the cluster
start_out=$(SLURM_CLUSTER_OWNER=$$ SLURM_CLUSTER_TIMEOUT=90 bash "$SRC/tests/slurm_cluster.sh" start "$CLUSTER" --nodes 4 2>&1)
rc=$?
echo "$start_out"
if [ "$rc" -eq 3 ] && [ "${MFREC_REQUIRE_SLURM:-0}" != 1 ]; then
  echo "skip: $(tail -n 1 <<<"$start_out")"
  exit 77
fi
if [ "$rc" -ne 0 ]; then
  fail "start a private 4-node SLURM cluster (exit $rc): $(tail -n 1 <<<"$start_out")"
  show "$CLUSTER"/log/*.log
  finish
fi
pass "a private 4-node SLURM cluster: nodes idle, srun -N4 -n4 true runs"
echo "cluster up in $((SECONDS - T0)) s"
# shellcheck disable=SC1091
. "$CLUSTER/env.sh"
X=$(awk '$1 == "bridge" { sub("mfrb-", "", $2); print $2 }' "$CLUSTER/net.list")
NET=10.213.$X
cp "$CLUSTER/run/saved.pids" "$WORK/daemons.pids"   # munged, slurmctld, slurmd x 4
DEADLINE=$((SECONDS + 420))   # every wait below ends by then (ctest's TIMEOUT is 600 s)

check "slurm.conf: node1..node4 at $NET.11..14, slurmctld at $NET.1" \
  eval "[ \$(grep -cE '^NodeName=node[1-4] NodeAddr=$NET\.1[1-4] ' '$SLURM_CONF') -eq 4 ] && grep -q '^SlurmctldHost=.*($NET.1)\$' '$SLURM_CONF'"
check "env.sh: Open MPI and PMIx on $NET.0/24 only" \
  eval "[ '${OMPI_MCA_btl_tcp_if_include:-}' = $NET.0/24 ] && [ '${OMPI_MCA_oob_tcp_if_include:-}' = $NET.0/24 ] && [ '${PMIX_MCA_ptl_tcp_if_include:-}' = $NET.0/24 ]"
# each node, as a job step sees it: its links, IPv4 addresses, routes and IPv6 addresses
timeout 60 srun -N4 -n4 -t 1 bash -c 'echo "$SLURMD_NODENAME links $(ip -o link | awk -F": " "{print \$2}" | sed "s/@.*//" | sort | tr "\n" " ")"
  echo "$SLURMD_NODENAME addr $(ip -o -4 addr | awk "\$2 != \"lo\" {print \$4}" | tr "\n" " ")"
  echo "$SLURMD_NODENAME route $(ip -4 route | tr "\n" ";")"
  echo "$SLURMD_NODENAME ipv6 $(ip -o -6 addr | awk "\$2 != \"lo\"" | wc -l)"' >"$WORK/nodes.out" 2>&1
sort "$WORK/nodes.out"
nodes_ok=1
for k in 1 2 3 4; do
  grep -qx "node$k links lo mfr${X}n$k " "$WORK/nodes.out" &&
    grep -qx "node$k addr $NET.1$k/24 " "$WORK/nodes.out" &&
    grep -qx "node$k route $NET.0/24 dev mfr${X}n$k proto kernel scope link src $NET.1$k ;" "$WORK/nodes.out" &&
    grep -qx "node$k ipv6 0" "$WORK/nodes.out" || nodes_ok=0
done
check "each node: only lo and its veth, address $NET.1K/24, no route beyond $NET.0/24, no IPv6" [ "$nodes_ok" -eq 1 ]

# --- the jobs: train.sbatch on the tiny fixture, a one-point grid, one group of all the ranks
use_fixture
printf 'alpha = 40\nfactors = 8\nregularization = 10\niterations = 3\n' >"$WORK/tiny.ini"
# Open MPI 4.1 across TCP-only nodes: Debian disables the one-sided components that work over
# plain TCP (osc = ^ucx,pt2pt in /etc/openmpi/openmpi-mca-params.conf), so across nodes
# mfrec_dist's grid does not hand out runs with MPI_Win_allocate: a static schedule (checked
# below). The factors travel by the sparse exchange.
JOB_ENV=(OMPI_MCA_btl=self,tcp MFREC_DATA="$FIXTURE/prep.h5" MFREC_DIST_ARGS="--exchange sparse"
  MFREC_CONFIG="$WORK/tiny.ini" MFREC_GROUPS=1 MFREC_BIN="$BIN")
submit_train() {  # submit_train DIR LAUNCHER SBATCH-ARGS...: prints the job id
  local out=$1 launcher=$2
  shift 2
  mkdir -p "$out"
  env "${JOB_ENV[@]}" MFREC_OUT="$out" MFREC_LAUNCHER="$launcher" \
    sbatch --parsable -t 5 -o "$out/%x-%j.out" "$@" "$SRC/jobs/train.sbatch"
}
wait_job() {  # wait_job ID: until it has left the queue (or DEADLINE); prints its state
  while [ -n "$(squeue -h -j "$1" -o %i 2>/dev/null)" ] && ((SECONDS < DEADLINE)); do sleep 1; done
  scontrol show job -o "$1" 2>/dev/null | sed -n 's/.* JobState=\([A-Z_]*\).*/\1/p'
}
veth_bytes() {  # bytes sent + received on node K's veth (counted on its bridge side)
  local d=/sys/class/net/mfr${X}h$1/statistics
  echo $(($(cat "$d/tx_bytes") + $(cat "$d/rx_bytes")))
}
same_model() {  # same_model A B: factors of two model files equal to 1e-5, same metrics in run.json
  "$PY" - "$1" "$2" <<'PYEOF'
import json, os, sys
import h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
with h5py.File(os.path.join(a, "model.h5"), "r") as f, h5py.File(os.path.join(b, "model.h5"), "r") as g:
    for d in ["user_factors", "item_factors"]:
        x, y = f[d][...], g[d][...]
        diff = float(np.max(np.abs(x - y))) if x.shape == y.shape else float("inf")
        print(f"    {d} {x.shape}: max |difference| {diff:.3g}")
        assert diff <= 1e-5 * max(1.0, float(np.max(np.abs(x)))), d
ra, rb = (json.load(open(os.path.join(p, "run.json"))) for p in (a, b))
for k, v in ra["metrics"].items():
    assert abs(v - rb["metrics"][k]) <= 1e-6 * max(1.0, abs(v)), (k, v, rb["metrics"][k])
PYEOF
}

# --- 2. four nodes, one rank each, srun --mpi=pmix
W4=$WORK/w4
for k in 1 2 3 4; do before[k]=$(veth_bytes "$k"); done
t=$SECONDS
id4=$(submit_train "$W4" srun -N 4 -n 4)
st=$(wait_job "$id4")
for k in 1 2 3 4; do moved[k]=$(($(veth_bytes "$k") - before[k])); done
log4=$W4/mfrec-train-$id4.out
echo "4-node job $id4: $st in $((SECONDS - t)) s; bytes on the veths of node1..4: ${moved[*]}"
check "4 nodes: train job $id4 COMPLETED" [ "$st" = COMPLETED ]
[ "$st" = COMPLETED ] || { show "$log4" "$CLUSTER"/log/slurmd-node*.log; }
check "4 nodes: allocation node[1-4], one task each" \
  eval "scontrol show job -o '$id4' | grep -q ' NodeList=node\[1-4\] ' && scontrol show job -o '$id4' | grep -q ' NumNodes=4 NumCPUs=4 NumTasks=4 '"
check "4 nodes: log says node[1-4], 4 tasks, srun, and 4 ranks in one group" \
  eval "grep -q '^== mfrec-train: job $id4 on node\[1-4\], 4 tasks x 1 threads, launcher srun' '$log4' && grep -q '4 ranks x 1 threads' '$log4' && grep -q 'grid: 1 runs (1 points) on 1 group' '$log4'"
check "4 nodes: the log names the MPI network (btl self,tcp on $NET.0/24)" \
  grep -q "^== mfrec-train: 4 nodes; Open MPI btl self,tcp, TCP on $NET.0/24" "$log4"
step_ok=1
for k in 1 2 3 4; do
  # the step's launch request reaches each node's own slurmd, from the batch script's srun on node1
  grep -q "launch task StepId=$id4.0 request from .* HOST:$NET.11 " "$CLUSTER/log/slurmd-node$k.log" || step_ok=0
done
check "4 nodes: every node's slurmd launched step $id4.0 (srun on node1, $NET.11)" [ "$step_ok" -eq 1 ]
# A 4-node step without MPI (srun -N4 true) moves about 10 KB on each veth; the run's allgathers
# of 3000 x 8 and 2465 x 8 floats over 3 iterations, about 1 MB.
traffic_ok=1
for k in 1 2 3 4; do ((moved[k] > 100000)) || traffic_ok=0; done
check "4 nodes: every node's veth carried > 100 KB during the job (MPI over TCP between the nodes)" [ "$traffic_ok" -eq 1 ]
check "4 nodes: ranks on several nodes: the grid says it schedules statically" \
  grep -q "ranks on several nodes: runs are assigned to groups statically" "$log4"
check "4 nodes: the report says the sparse exchange moved the factors" \
  "$PY" -c "import json,sys; r=json.load(open('$W4/run.json')); sys.exit(not (r['exchange'] == 'sparse' and r['bytes_per_iteration']['exchange']['received']['max'] > 0))"
check "4 nodes: model, report (4 ranks), registry" \
  eval "[ -s '$W4/model.h5' ] && '$PY' -c \"import json,sys; sys.exit(json.load(open('$W4/run.json'))['ranks'] != 4)\" && [ -d '$W4/registry' ]"

# --- 3. one node, one rank: the reference
W1=$WORK/w1
t=$SECONDS
id1=$(submit_train "$W1" srun -N 1 -n 1)
st=$(wait_job "$id1")
echo "1-node job $id1: $st in $((SECONDS - t)) s"
check "1 node: train job $id1 COMPLETED, on one node, without the multi-node line" \
  eval "[ '$st' = COMPLETED ] && grep -q '^== mfrec-train: job $id1 on node[1-4], 1 tasks x 1 threads, launcher srun' '$W1/mfrec-train-$id1.out' && ! grep -q ' nodes; Open MPI' '$W1/mfrec-train-$id1.out'"
if out=$(same_model "$W1" "$W4" 2>&1); then pass "4 nodes x 1 rank = 1 node x 1 rank: factors to 1e-5, same metrics"; echo "$out"
else fail "4 nodes x 1 rank differs from 1 node x 1 rank" "$out"; fi

# --- 4. mpirun inside the 4-node allocation
WM=$WORK/wm
t=$SECONDS
idm=$(submit_train "$WM" mpirun -N 4 -n 4)
st=$(wait_job "$idm")
echo "4-node mpirun job $idm: $st in $((SECONDS - t)) s"
check "mpirun, 4 nodes: job $idm COMPLETED, 4 ranks" \
  eval "[ '$st' = COMPLETED ] && grep -q 'on node\[1-4\], 4 tasks x 1 threads, launcher mpirun' '$WM/mfrec-train-$idm.out' && grep -q '4 ranks x 1 threads' '$WM/mfrec-train-$idm.out'"
[ "$st" = COMPLETED ] || show "$WM/mfrec-train-$idm.out"
if out=$(same_model "$W1" "$WM" 2>&1); then pass "mpirun on 4 nodes = 1 node: factors to 1e-5, same metrics"
else fail "mpirun on 4 nodes differs from 1 node" "$out"; fi
W5=$WORK/w5
t=$SECONDS
env "${JOB_ENV[@]:0:1}" bash "$SRC/jobs/submit.sh" --users 3000 --events 30000 --nodes 4 --ntasks 4 \
  --config "$WORK/tiny.ini" --out "$W5" --bin "$BIN" --time 5 --wait --wait-timeout $((DEADLINE - SECONDS)) \
  >"$WORK/p5.out" 2>"$WORK/p5.err"
rc=$?
echo "4-node pipeline: exit $rc in $((SECONDS - t)) s"
check "submit.sh --nodes 4 --ntasks 4: generate, prepare, train, recommend COMPLETED on node[1-4]" \
  eval "[ $rc -eq 0 ] && [ \$(grep -c ' COMPLETED 0:0\$' '$WORK/p5.out') -eq 4 ] && [ \$(cat '$W5'/mfrec-*.out | grep -c '^== mfrec-[a-z]*: job [0-9]* on node\[1-4\], 4 tasks') -eq 4 ]"
[ "$rc" -eq 0 ] || { cat "$WORK/p5.out" "$WORK/p5.err"; show "$W5"/*.out; }
check "4-node pipeline: recommendations for all 3000 users" \
  eval "[ \$(( \$(wc -l <'$W5/recommendations.csv') - 1 )) -eq 30000 ]"
echo "jobs took $((SECONDS - T0)) s since the start"

# --- 5. shutdown: nothing of the cluster left
left_behind() {  # left_behind DIR X PIDS-FILE: what is left of the cluster (empty: nothing)
  local dir=$1 x=$2 pid
  ip netns list 2>/dev/null | grep -o "^mfrec-$x-[0-9]*" | sed 's/^/netns /'
  ip -o link show 2>/dev/null | grep -oE " (mfrb-$x|mfr${x}h[0-9]+)[@:]" | sed 's/^ /link /; s/[@:]$//'
  grep -F " $dir/" /proc/mounts | awk '{print "mount " $2}'
  while read -r pid; do
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] && echo "pid $pid"
  done <"$3"
}
bash "$SRC/tests/slurm_cluster.sh" stop "$CLUSTER" >"$WORK/stop.out" 2>&1
left=$(left_behind "$CLUSTER" "$X" "$WORK/daemons.pids" | tr '\n' ' ')
check "stop: no namespace, veth, bridge, mount or daemon left${left:+: $left}" [ -z "$left" ]

# a cluster whose owner dies (as a test killed by ctest's timeout) is removed by its watchdog
C2=$WORK/c2
on_exit 'bash "$SRC/tests/slurm_cluster.sh" stop "$C2" >/dev/null 2>&1'
sleep 300 &
owner=$!
if SLURM_CLUSTER_OWNER=$owner SLURM_CLUSTER_TIMEOUT=60 bash "$SRC/tests/slurm_cluster.sh" start "$C2" --nodes 2 >"$WORK/c2.out" 2>&1; then
  x2=$(awk '$1 == "bridge" { sub("mfrb-", "", $2); print $2 }' "$C2/net.list")
  cp "$C2/run/saved.pids" "$WORK/c2.pids"
  up=$(left_behind "$C2" "$x2" "$WORK/c2.pids" | wc -l)   # 2 netns, bridge + 2 veths, 4 daemons
  kill "$owner"
  for _ in $(seq 1 60); do [ -z "$(left_behind "$C2" "$x2" "$WORK/c2.pids")" ] && break; sleep 0.5; done
  left=$(left_behind "$C2" "$x2" "$WORK/c2.pids" | tr '\n' ' ')
  check "owner killed: the watchdog removes the 2-node cluster ($up objects)${left:+, left: $left}" \
    eval "[ '$up' -eq 9 ] && [ -z '$left' ]"
else
  kill "$owner"
  fail "start a 2-node cluster" "$(tail -3 "$WORK/c2.out")"
  bash "$SRC/tests/slurm_cluster.sh" stop "$C2" >/dev/null 2>&1
fi
check "start --nodes 0: usage error (exit 2)" \
  eval "bash '$SRC/tests/slurm_cluster.sh' start '$WORK/c3' --nodes 0 >/dev/null 2>&1; [ \$? -eq 2 ]"
echo "took $((SECONDS - T0)) s"
finish
