#!/usr/bin/env bash
# A private single-node SLURM cluster on this machine, for tests (tests/cli_slurm.sh) and for
# trying the jobs/ scripts by hand: Debian's munged, slurmctld and slurmd run as root with a
# private munge key and socket, a generated slurm.conf, free TCP ports and every state, spool,
# pid and log file under one directory. Nothing under /etc, /run or /var is used or changed.
#
#   bash tests/slurm_cluster.sh start DIR   start the cluster in DIR (created; should be empty)
#                                           and wait until the node is idle and srun works
#   . DIR/env.sh                            then sinfo, sbatch, squeue, srun ... use that cluster
#   bash tests/slurm_cluster.sh stop DIR    cancel all jobs, stop the daemons (and any process
#                                           left with this cluster's SLURM_CONF), keep DIR
#   bash tests/slurm_cluster.sh status DIR  sinfo and squeue of that cluster
#
# Exit status of start: 0 ready; 3 a prerequisite is missing (not installed, not root): the
# caller may skip; 4 the daemons cannot run here (the first line of stderr says exactly why,
# the logs are in DIR/log); 1 anything else. On failure start stops whatever it started.
# Environment: SLURM_CLUSTER_TIMEOUT (seconds to wait for readiness, default 90),
#              SLURM_CLUSTER_CPUS (CPUs of the node, default: as slurmd -C detects),
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

# Processes of this cluster: the daemons (pids saved at start), and
# whatever carries this cluster's SLURM_CONF in its environment or has a file of DIR open
# (slurmstepd rewrites its environment with its process title, but holds its spool socket).
cluster_pids() {
  local dir=$1 f pid d
  local self=" " p=$BASHPID   # this process and its ancestors (the caller) are spared
  while [ -n "$p" ] && [ "$p" != 0 ]; do
    self+="$p "
    p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)
  done
  for f in "$dir"/run/*.pid "$dir"/run/saved.pids; do
    [ -s "$f" ] && cat "$f"
  done | while read -r pid; do [[ "$self" == *" $pid "* ]] || echo "$pid"; done
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

stop_cluster() {
  local dir
  dir=$(cd "$1" 2>/dev/null && pwd) || return 0
  [ -f "$dir/slurm.conf" ] || return 0
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
}

start_cluster() {
  prerequisites
  local dir=$1 timeout=${SLURM_CLUSTER_TIMEOUT:-90}
  mkdir -p "$dir" || die 1 "cannot create $dir"
  dir=$(cd "$dir" && pwd)
  chmod 0700 "$dir"
  mkdir -p "$dir"/{munge,state,spool,run,log}
  chmod 0700 "$dir"/munge

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

  # --- slurm.conf
  local node cpus detected ctl_port d_port
  node=$(hostname -s)
  detected=$(/usr/sbin/slurmd -C 2>/dev/null | head -1)
  cpus=${SLURM_CLUSTER_CPUS:-$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$detected")}
  [ -n "$cpus" ] || cpus=$(nproc)
  ctl_port=$(free_port) && d_port=$(free_port) || die 1 "no free TCP port"
  while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
  cat >"$dir/slurm.conf" <<EOF
# generated by tests/slurm_cluster.sh: a private single-node cluster in $dir
ClusterName=mfrectest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
MailProg=/bin/true
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
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
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1024 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=30 State=UP
EOF
  printf 'export SLURM_CONF=%q\nexport MFREC_SLURM_DIR=%q\n' "$dir/slurm.conf" "$dir" >"$dir/env.sh"
  export SLURM_CONF="$dir/slurm.conf"

  # --- daemons (they fork into the background and write their pid files)
  /usr/sbin/slurmctld -f "$SLURM_CONF" -i >"$dir/log/slurmctld.out" 2>&1 || {
    local why; why=$(grep -m1 -iE 'fatal|error' "$dir/log/slurmctld.out" "$dir/log/slurmctld.log" 2>/dev/null | head -1)
    stop_cluster "$dir"; die 4 "slurmctld does not start: $why"; }
  /usr/sbin/slurmd -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 || {
    local why; why=$(grep -m1 -iE 'fatal|error' "$dir/log/slurmd.out" "$dir/log/slurmd.log" 2>/dev/null | head -1)
    stop_cluster "$dir"; die 4 "slurmd does not start: $why"; }

  local f
  for f in munged slurmctld slurmd; do
    for _ in $(seq 1 40); do [ -s "$dir/run/$f.pid" ] && break; sleep 0.25; done
    cat "$dir/run/$f.pid" 2>/dev/null || echo ""
  done >"$dir/run/saved.pids"   # line 1 munged, 2 slurmctld, 3 slurmd: the daemons remove their own files

  # --- readiness: the node says exactly 'idle' and a one-task step runs
  local deadline=$((SECONDS + timeout)) state="" step=""
  while ((SECONDS < deadline)); do
    for d in slurmctld slurmd; do
      if [ -s "$dir/run/$d.pid" ] && ! [ -d "/proc/$(cat "$dir/run/$d.pid")" ]; then
        local why; why=$(grep -m1 -iE 'fatal' "$dir/log/$d.log" 2>/dev/null)
        stop_cluster "$dir"; die 4 "$d exited: ${why:-see $dir/log/$d.log}"
      fi
    done
    state=$(timeout 10 sinfo -h -N -n "$node" -o %T 2>/dev/null | head -1)
    if [ "$state" = idle ]; then
      if step=$(timeout 30 srun -N1 -n1 -t 1 true 2>&1); then
        echo "slurm_cluster: $node ready ($cpus CPUs, ports $ctl_port/$d_port, SLURM_CONF=$SLURM_CONF)"
        if [ -n "${SLURM_CLUSTER_OWNER:-}" ]; then
          # detached (its parent, this process, exits): survives a kill of the owner's process tree
          setsid bash "$0" watch "$dir" "$SLURM_CLUSTER_OWNER" </dev/null >>"$dir/log/watchdog.log" 2>&1 &
          echo $! >"$dir/run/watchdog.pid"
        fi
        return 0
      fi
    fi
    sleep 1
  done
  local why reason
  reason=$(timeout 10 sinfo -h -N -n "$node" -o %E 2>/dev/null | head -1)
  [ "$reason" = none ] && reason=""
  why=$(grep -hiE 'fatal|error' "$dir/log/slurmctld.log" "$dir/log/slurmd.log" 2>/dev/null |
    grep -viE 'state file|backup state|xcpuinfo_hwloc' | head -1)
  stop_cluster "$dir"
  die 4 "node $node not ready in ${timeout}s (state '${state:-none}'${reason:+, reason '$reason'}${step:+, srun: $(head -1 <<<"$step")}${why:+, log: $why})"
}

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die 2 "usage: $0 start|stop|status DIR"
case "$cmd" in
  start) start_cluster "$dir" ;;
  stop) stop_cluster "$dir" ;;
  watch)  # watch DIR OWNER: stop the cluster once OWNER has exited, or after SLURM_CLUSTER_LIFETIME s
    owner=${3:?owner pid}
    end=$((SECONDS + ${SLURM_CLUSTER_LIFETIME:-1800}))
    while [ -d "/proc/$owner" ] && [ -f "$dir/slurm.conf" ] && ((SECONDS < end)); do sleep 2; done
    [ -f "$dir/slurm.conf" ] && echo "watchdog: owner $owner gone or lifetime over, stopping" && stop_cluster "$dir" ;;
  status)
    export SLURM_CONF="$dir/slurm.conf"
    sinfo; squeue ;;
  *) die 2 "usage: $0 start|stop|status DIR" ;;
esac
