#!/usr/bin/env bash
# A private SLURM cluster on this machine, for tests (tests/cli_slurm.sh, tests/cli_slurm_multinode.sh)
# and for trying the jobs/ scripts by hand: Debian's munged, slurmctld and slurmd run as root with
# a private munge key and socket, a generated slurm.conf, free TCP ports and every state, spool,
# pid and log file under one directory. Nothing under /etc or /var is used or changed (beyond
# the namespace names `ip netns` keeps in /run/netns, removed by stop).
#
#   bash tests/slurm_cluster.sh start DIR [--nodes N]
#                                           start the cluster in DIR (created; should be empty)
#                                           and wait until every node is idle and srun works
#   . DIR/env.sh                            then sinfo, sbatch, squeue, srun ... use that cluster
#   bash tests/slurm_cluster.sh stop DIR    cancel all jobs, stop the daemons (and any process
#                                           left with this cluster's SLURM_CONF or in its
#                                           namespaces), remove its network, keep DIR
#   bash tests/slurm_cluster.sh status DIR  sinfo and squeue of that cluster (and its network)
#
# --nodes 1 (default): one node, `hostname -s` at 127.0.0.1, in this machine's network.
# --nodes N (2..16): N nodes node1..nodeN, each a network namespace mfrec-X-K with one veth
#   interface at 10.213.X.(10+K)/24 attached to a bridge mfrb-X (10.213.X.1, this side:
#   slurmctld, and sbatch/srun run here), and its own slurmd (`slurmd -N nodeK` in that namespace,
#   NodeAddr=its address). The nodes share the file system, munged (its socket is a
#   file) and the CPUs; they have no other interface and no route beyond 10.213.X.0/24, and
#   IPv6 is off on every link created, so their traffic cannot leave the bridge. X is a free
#   subnet (or SLURM_CLUSTER_SUBNET=X). DIR/env.sh also tells Open MPI and PMIx to use only
#   that subnet (OMPI_MCA_btl_tcp_if_include, OMPI_MCA_oob_tcp_if_include,
#   PMIX_MCA_ptl_tcp_if_include); DIR/net.list lists what was created.
#
# Exit status of start: 0 ready; 3 a prerequisite is missing (not installed, not root, no
# network namespaces): the caller may skip; 4 the daemons cannot run here (the first line of
# stderr says exactly why, the logs are in DIR/log); 1 anything else. On failure start stops
# (and removes) whatever it started.
# Environment: SLURM_CLUSTER_TIMEOUT (seconds to wait for readiness, default 90),
#              SLURM_CLUSTER_CPUS (CPUs of each node, default: as slurmd -C detects),
#              SLURM_CLUSTER_OWNER (a pid: a detached watchdog stops the cluster when that
#              process is gone, e.g. a test killed on timeout, or after SLURM_CLUSTER_LIFETIME
#              seconds, default 1800).
set -u

die() { local rc=$1; shift; echo "slurm_cluster: $*" >&2; exit "$rc"; }

prerequisites() {
  local missing=() p
  for p in munged slurmctld slurmd slurmd sbatch srun sinfo squeue scontrol scancel; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) || die 3 "missing programs: ${missing[*]} (apt-get install slurm-wlm munge)"
  [ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/proctrack_linuxproc.so ] || ls /usr/lib/*/slurm-wlm/proctrack_linuxproc.so >/dev/null 2>&1 ||
    die 3 "SLURM plugins not found (apt-get install slurm-wlm-basic-plugins)"
  [ "$(id -u)" -eq 0 ] || die 3 "must run as root (SlurmUser=root, slurmd starts jobs as the submitter)"
}

free_port() {  # a TCP port nobody listens on, outside the ephemeral range
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      # also not taken by another private cluster started a moment ago
      grep -qs "Port=$p\$" /tmp/mfrec_slurm.*/slurm.conf 2>/dev/null || { echo "$p"; return 0; }
    fi
  done
  return 1
}

# Processes of this cluster: the daemons (pids saved at start), every process in its network
# namespaces, and whatever carries this cluster's SLURM_CONF in its environment or has a file
# of DIR open (slurmstepd rewrites its environment with its process title, but holds its spool
# socket).
cluster_pids() {
  local dir=$1 f pid d
  local self=" " p=$BASHPID   # this process and its ancestors (the caller) are spared
  while [ -n "$p" ] && [ "$p" != 0 ]; do
    self+="$p "
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)
  done
  {
    for f in "$dir"/run/*.pid "$dir"/run/saved.pids; do
      [ -s "$f" ] && cat "$f"
    done
    net_objects "$dir" netns | while read -r f; do ip netns pids "$f" 2>/dev/null; done
  } | while read -r pid; do [[ "$self" == *" $pid "* ]] || echo "$pid"; done
  {
    for d in /proc/[0-9]*; do
      pid=${d#/proc/}
      [[ "$self" == *" $pid "* ]] && continue
      if tr '\0' '\n' <"$d/environ" | grep -qxF "SLURM_CONF=$dir/slurm.conf" ||
        [ -n "$(find "$d/fd" -maxdepth 1 -lname "$dir/*" -print -quit)" ]; then
        echo "$pid"
      fi
    done
  } 2>/dev/null
}

alive() { local pid; for pid in "$@"; do [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] && echo "$pid"; done; }

# --- the network of a multi-node cluster. DIR/net.list names every object, one "KIND NAME" a
# line, written before the object is made, so that stop removes all of them even after a
# start that was killed half-way.
net_objects() { [ -f "$1/net.list" ] && awk -v k="$2" '$1 == k { print $2 }' "$1/net.list"; }

ipv6_off() {  # ipv6_off [NETNS] IFACE...: no link-local addresses, no IPv6 traffic on them
  local ns=$1 i; shift
  for i in "$@"; do
    if [ -n "$ns" ]; then ip netns exec "$ns" sh -c "echo 1 >/proc/sys/net/ipv6/conf/$i/disable_ipv6"
    else echo 1 >"/proc/sys/net/ipv6/conf/$i/disable_ipv6"; fi
  done 2>/dev/null   # a kernel without IPv6 has no such files: nothing to turn off
}

net_up() {  # net_up DIR NODES: prints the subnet's first three octets (10.213.X)
  local dir=$1 n=$2 x="" k ns hv nv err=$1/log/net.err
  for _ in $(seq 1 60); do   # a /24 this machine does not use, with a bridge name nobody has
    x=${SLURM_CLUSTER_SUBNET:-$((1 + RANDOM % 254))}
    if ! ip -o -4 addr show | grep -q " 10\.213\.$x\." && ! ip -o -4 route show | grep -q "^10\.213\.$x\."; then
      echo "bridge mfrb-$x" >>"$dir/net.list"
      ip link add "mfrb-$x" type bridge 2>"$err" && break
      sed -i '$d' "$dir/net.list"   # not ours: another cluster's bridge, or none
      grep -q 'File exists' "$err" || { stop_cluster "$dir"; die 3 "cannot create a network bridge: $(head -1 "$err")"; }
    fi
    [ -n "${SLURM_CLUSTER_SUBNET:-}" ] && { stop_cluster "$dir"; die 1 "subnet 10.213.$x.0/24 (SLURM_CLUSTER_SUBNET) is in use"; }
    x=""
  done
  [ -n "$x" ] || { stop_cluster "$dir"; die 1 "no free subnet 10.213.X.0/24"; }
  net_make "$dir" "$n" "$x" >>"$dir/log/net.log" 2>"$err" || {
    local why; why=$(head -1 "$err")
    stop_cluster "$dir"
    if grep -qiE 'not permitted|permission denied' <<<"$why"; then die 3 "cannot create network namespaces or links here: $why"; fi
    die 4 "cannot set up the nodes' network: $why"
  }
  echo "10.213.$x"
}

net_make() {  # net_make DIR NODES X: the bridge's address, and per node a namespace and a veth pair
  local dir=$1 n=$2 x=$3 k ns hv nv
  ipv6_off "" "mfrb-$x"
  ip addr add "10.213.$x.1/24" dev "mfrb-$x" && ip link set "mfrb-$x" up || return 1
  for k in $(seq 1 "$n"); do
    ns=mfrec-$x-$k hv=mfr${x}h$k nv=mfr${x}n$k
    echo "netns $ns" >>"$dir/net.list"
    ip netns add "$ns" || return 1
    ip netns exec "$ns" sh -c 'echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null
    echo "veth $hv" >>"$dir/net.list"
    ip link add "$hv" type veth peer name "$nv" netns "$ns" || return 1
    ipv6_off "" "$hv"
    ipv6_off "$ns" "$nv"
    ip link set "$hv" master "mfrb-$x" && ip link set "$hv" up &&
      ip -n "$ns" link set lo up &&   # PMIx clients reach their node's server on loopback
      ip -n "$ns" addr add "10.213.$x.$((10 + k))/24" dev "$nv" && ip -n "$ns" link set "$nv" up || return 1
  done
}

# in_node DIR NETNS COMMAND...: COMMAND in that network namespace, with a /sys of it (programs
# such as UCX list interfaces in /sys/class/net) that still has this machine's cgroup file
# systems (slurmd stops without them; `ip netns exec` mounts a /sys without).
in_node() {
  local dir=$1 ns=$2; shift 2
  mkdir -p "$dir/run/cgroup-$ns"
  nsenter --net="/run/netns/$ns" unshare --mount --propagation private sh -ec '
    mount --rbind /sys/fs/cgroup "$0"; mount -t sysfs sysfs /sys; mount --rbind "$0" /sys/fs/cgroup; umount -l "$0"
    exec "$@"' "$dir/run/cgroup-$ns" "$@"
}

net_down() {  # after every process of the cluster is gone
  local dir=$1 o
  [ -f "$dir/net.list" ] || return 0
  for o in $(net_objects "$dir" veth); do ip link del "$o" 2>/dev/null; done   # and its peer
  for o in $(net_objects "$dir" netns); do ip netns del "$o" 2>/dev/null; done
  for o in $(net_objects "$dir" bridge); do ip link del "$o" 2>/dev/null; done
  for o in $(net_objects "$dir" netns); do [ -e "/run/netns/$o" ] && return 1; done
  for o in $(net_objects "$dir" veth) $(net_objects "$dir" bridge); do [ -e "/sys/class/net/$o" ] && return 1; done
  rm -f "$dir/net.list"
}

stop_cluster() {
  local dir
  dir=$(cd "$1" 2>/dev/null && pwd) || return 0
  [ -f "$dir/slurm.conf" ] || [ -f "$dir/net.list" ] || [ -s "$dir/run/munged.pid" ] || return 0
  export SLURM_CONF="$dir/slurm.conf"
  local ctl=""; [ -s "$dir/run/saved.pids" ] && ctl=$(sed -n 2p "$dir/run/saved.pids")
  if [ -n "$ctl" ] && [ -n "$(alive "$ctl")" ]; then
    local jobs
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2>/dev/null
      for _ in $(seq 1 30); do
        [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
    timeout 10 scontrol shutdown >/dev/null 2>&1   # slurmctld and slurmd
  fi
  # what is left (and munged): TERM, then KILL after 10 s
  local pid pids pass
  for pass in TERM KILL; do
    # shellcheck disable=SC2046
    pids=$(alive $(cluster_pids "$dir" | sort -u))
    [ -z "$pids" ] && break
    [ "$pass" = TERM ] && [ -n "$ctl" ] && sleep 1 && pids=$(alive $pids)
    for pid in $pids; do kill -s "$pass" "$pid" 2>/dev/null; done
    for _ in $(seq 1 40); do
      [ -z "$(alive $pids)" ] && break
      sleep 0.25
    done
  done
  rm -f "$dir"/run/*.pid "$dir/run/saved.pids"
  net_down "$dir" || echo "slurm_cluster: could not remove all of $(tr '\n' ' ' <"$dir/net.list")" >&2
}

start_cluster() {
  local dir=$1 nodes=$2 timeout=${SLURM_CLUSTER_TIMEOUT:-90}
  [[ "$nodes" =~ ^[0-9]+$ ]] && ((nodes >= 1 && nodes <= 16)) || die 2 "--nodes must be 1 to 16, not '$nodes'"
  prerequisites
  if ((nodes > 1)); then
    command -v ip >/dev/null 2>&1 || die 3 "missing program: ip (apt-get install iproute2)"
    command -v nsenter >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 || die 3 "missing programs: nsenter, unshare (util-linux)"
  fi
  mkdir -p "$dir" || die 1 "cannot create $dir"
  dir=$(cd "$dir" && pwd)
  chmod 0700 "$dir"
  mkdir -p "$dir"/{munge,state,spool,run,log}
  chmod 0700 "$dir"/munge
  if [ -n "${SLURM_CLUSTER_OWNER:-}" ]; then
    # detached (its parent, this process, exits): survives a kill of the owner's process tree,
    # and started first, so that even a start killed half-way is cleaned up
    setsid bash "$0" watch "$dir" "$SLURM_CLUSTER_OWNER" </dev/null >>"$dir/log/watchdog.log" 2>&1 &
    echo $! >"$dir/run/watchdog.pid"
  fi

  # --- munge: a private key and socket
  if command -v mungekey >/dev/null 2>&1 || [ -x /usr/sbin/mungekey ]; then
    PATH=$PATH:/usr/sbin mungekey --create --keyfile="$dir/munge/munge.key" --force 2>"$dir/log/mungekey.log" ||
      die 1 "mungekey failed: $(head -1 "$dir/log/mungekey.log")"
  else
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 0400 "$dir/munge/munge.key"
  local sock="$dir/munge/munge.socket"
  # --force: munged refuses a socket directory under a world-writable /tmp without it
  /usr/sbin/munged --force --socket="$sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" >"$dir/log/munged.out" 2>&1 ||
    die 4 "munged does not start: $(grep -m1 -iE 'error|fatal' "$dir/log/munged.out" "$dir/log/munged.log" 2>/dev/null | head -1)"
  for _ in $(seq 1 40); do [ -S "$sock" ] && break; sleep 0.25; done
  if ! echo ok | munge --socket="$sock" 2>"$dir/log/munge-test.err" | unmunge --socket="$sock" >/dev/null 2>>"$dir/log/munge-test.err"; then
    local why; why=$(head -1 "$dir/log/munge-test.err")
    stop_cluster "$dir"
    die 4 "munge credentials do not round-trip on $sock: $why"
  fi

  # --- the nodes' network (multi-node)
  local subnet="" ctl_addr=127.0.0.1
  if ((nodes > 1)); then
    subnet=$(net_up "$dir" "$nodes") || exit $?
    ctl_addr=$subnet.1
  fi

  # --- slurm.conf
  local node cpus detected ctl_port d_port k names=()
  node=$(hostname -s)
  detected=$(/usr/sbin/slurmd -C 2>/dev/null | head -1)
  cpus=${SLURM_CLUSTER_CPUS:-$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$detected")}
  [ -n "$cpus" ] || cpus=$(nproc)
  ctl_port=$(free_port) && d_port=$(free_port) || { stop_cluster "$dir"; die 1 "no free TCP port"; }
  while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
  # one node: the files as they always were; several: one spool, pid and log file per node (%n)
  local per=""; ((nodes > 1)) && per=-%n
  if ((nodes == 1)); then names=("$node"); else for k in $(seq 1 "$nodes"); do names+=("node$k"); done; fi
  cat >"$dir/slurm.conf" <<EOF
# generated by tests/slurm_cluster.sh: a private $( ((nodes == 1)) && echo single-node || echo "$nodes-node") cluster in $dir
ClusterName=mfrectest
SlurmctldHost=$node($ctl_addr)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool${per:+/%n}
MailProg=/bin/true
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd$per.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd$per.log
# the PMIx plugin's client directories (TmpFS/spmix_appdir_UID_JOB.STEP) must differ per node
TmpFS=$( ((nodes > 1)) && echo "$dir/tmp/%n" || echo /tmp)
$( ((nodes > 1)) && echo "TaskProlog=$dir/task_prolog.sh")
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: process tracking through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# reject impossible jobs at submission, cancel jobs whose dependency can never be met
EnforcePartLimits=ALL
DependencyParameters=kill_invalid_depend
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=20
InactiveLimit=0
KillWait=5
MinJobAge=600
EOF
  if ((nodes == 1)); then
    echo "NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1024 State=UNKNOWN"
  else
    for k in $(seq 1 "$nodes"); do echo "NodeName=node$k NodeAddr=$subnet.$((10 + k)) CPUs=$cpus RealMemory=1024 State=UNKNOWN"; done
  fi >>"$dir/slurm.conf"
  echo "PartitionName=debug Nodes=$(IFS=,; echo "${names[*]}") Default=YES MaxTime=30 State=UP" >>"$dir/slurm.conf"
  printf 'export SLURM_CONF=%q\nexport MFREC_SLURM_DIR=%q\n' "$dir/slurm.conf" "$dir" >"$dir/env.sh"
  if ((nodes > 1)); then
    # A TMPDIR per node, as on separate machines: Open MPI's session directories are named by
    # host name (the same on every node here) and job step (the same in other private
    # clusters), and must not be shared with another node's or another cluster's ranks.
    printf '#!/bin/sh\necho "export TMPDIR=%s/tmp/$SLURMD_NODENAME"\n' "$dir" >"$dir/task_prolog.sh"
    chmod 0755 "$dir/task_prolog.sh"
  fi
  if ((nodes > 1)); then
    # MPI and PMIx traffic on the nodes' subnet only (the bridge and the veths), never another interface
    cat >>"$dir/env.sh" <<EOF
export OMPI_MCA_btl_tcp_if_include=$subnet.0/24 OMPI_MCA_oob_tcp_if_include=$subnet.0/24
export PMIX_MCA_ptl_tcp_if_include=$subnet.0/24
EOF
  fi
  export SLURM_CONF="$dir/slurm.conf"

  # --- daemons (they fork into the background and write their pid files)
  /usr/sbin/slurmctld -f "$SLURM_CONF" -i >"$dir/log/slurmctld.out" 2>&1 || {
    local why; why=$(grep -m1 -iE 'fatal|error' "$dir/log/slurmctld.out" "$dir/log/slurmctld.log" 2>/dev/null | head -1)
    stop_cluster "$dir"; die 4 "slurmctld does not start: $why"; }
  local slurmds=() logs=() d=""
  if ((nodes == 1)); then
    slurmds=(slurmd) logs=("$dir/log/slurmd.log")
    /usr/sbin/slurmd -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1
  else
    for k in $(seq 1 "$nodes"); do
      slurmds+=("slurmd-node$k") logs+=("$dir/log/slurmd-node$k.log")
      mkdir -p "$dir/spool/node$k" "$dir/tmp/node$k"
      in_node "$dir" "mfrec-${subnet##*.}-$k" /usr/sbin/slurmd -f "$SLURM_CONF" -N "node$k" \
        >"$dir/log/slurmd-node$k.out" 2>&1 || { d=failed; break; }
    done
    [ "$d" != failed ]
  fi || {
    local why; why=$(grep -m1 -hiE 'fatal|error' "$dir"/log/slurmd*.out "${logs[@]}" 2>/dev/null | head -1)
    stop_cluster "$dir"; die 4 "slurmd does not start: $why"; }

  local f
  for f in munged slurmctld "${slurmds[@]}"; do
    for _ in $(seq 1 40); do [ -s "$dir/run/$f.pid" ] && break; sleep 0.25; done
    cat "$dir/run/$f.pid" 2>/dev/null || echo ""
  done >"$dir/run/saved.pids"   # line 1 munged, 2 slurmctld, 3... slurmd: the daemons remove their own files

  # --- readiness: every node says exactly 'idle' and a step of one task per node runs
  local deadline=$((SECONDS + timeout)) state="" step="" idle
  while ((SECONDS < deadline)); do
    for d in slurmctld "${slurmds[@]}"; do
      if [ -s "$dir/run/$d.pid" ] && ! [ -d "/proc/$(cat "$dir/run/$d.pid")" ]; then
        local why; why=$(grep -m1 -iE 'fatal' "$dir/log/$d.log" 2>/dev/null)
        stop_cluster "$dir"; die 4 "$d exited: ${why:-see $dir/log/$d.log}"
      fi
    done
    state=$(timeout 10 sinfo -h -N -o %T 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')
    idle=$(timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2 == "idle" { print $1 }' | sort -u | wc -l)
    if [ "$idle" -eq "$nodes" ]; then
      if step=$(timeout 30 srun -N"$nodes" -n"$nodes" -t 1 true 2>&1); then
        if ((nodes == 1)); then
          echo "slurm_cluster: $node ready ($cpus CPUs, ports $ctl_port/$d_port, SLURM_CONF=$SLURM_CONF)"
        else
          echo "slurm_cluster: node[1-$nodes] ready ($cpus CPUs each, $subnet.11-$((10 + nodes)) on bridge mfrb-${subnet##*.}" \
            "($subnet.1), ports $ctl_port/$d_port, SLURM_CONF=$SLURM_CONF)"
        fi
        return 0
      fi
    fi
    sleep 1
  done
  local why reason
  reason=$(timeout 10 sinfo -h -N -o %E 2>/dev/null | grep -vx none | head -1)
  why=$(grep -hiE 'fatal|error' "$dir/log/slurmctld.log" "${logs[@]}" 2>/dev/null |
    grep -viE 'state file|backup state|xcpuinfo_hwloc' | head -1)
  stop_cluster "$dir"
  die 4 "$( ((nodes == 1)) && echo "node $node" || echo "nodes node[1-$nodes]") not ready in ${timeout}s (state '${state:-none}'${reason:+, reason '$reason'}${step:+, srun: $(head -1 <<<"$step")}${why:+, log: $why})"
}

cmd=${1:-}
dir=${2:-}
usage="usage: $0 start DIR [--nodes N] | stop DIR | status DIR"
[ -n "$cmd" ] && [ -n "$dir" ] || die 2 "$usage"
case "$cmd" in
  start)
    nodes=1
    case "${3:-}" in
      "") ;;
      --nodes) nodes=${4:-} ;;
      --nodes=*) nodes=${3#--nodes=} ;;
      *) die 2 "$usage" ;;
    esac
    start_cluster "$dir" "$nodes" ;;
  stop) stop_cluster "$dir" ;;
  watch)  # watch DIR OWNER: stop the cluster once OWNER has exited, or after SLURM_CLUSTER_LIFETIME s
    owner=${3:?owner pid}
    end=$((SECONDS + ${SLURM_CLUSTER_LIFETIME:-1800}))
    while [ -d "/proc/$owner" ] && [ -d "$dir" ] && ((SECONDS < end)); do sleep 2; done
    [ -d "$dir" ] && echo "watchdog: owner $owner gone or lifetime over, stopping" && stop_cluster "$dir" ;;
  status)
    export SLURM_CONF="$dir/slurm.conf"
    sinfo; squeue
    for ns in $(net_objects "$dir" netns); do echo "$ns: $(ip -n "$ns" -br -4 addr 2>/dev/null | grep -v '^lo ' | tr -s ' ')"; done ;;
  *) die 2 "$usage" ;;
esac
