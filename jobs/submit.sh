#!/usr/bin/env bash
# Submit mfrec's batch jobs to SLURM, chained with afterok dependencies.
#
#   jobs/submit.sh [pipeline] [options]   generate -> prepare -> train (grid, registry) -> recommend --all
#   jobs/submit.sh scaling [options]      data sets of every size -> a job array of trainer runs
#                                         over --ranks (strong: fixed data; weak: data x ranks)
#
# Options (both):
#   --users N --events N [--items N]   data size (default 100000 users, 800000 events)
#   --nodes N                          nodes per job (default 1)
#   --ntasks N                         MPI tasks per job (default 2; scaling: the largest of --ranks)
#   --cpus-per-task N                  OpenMP threads per task (default 1)
#   --config FILE                      grid of the train job (default configs/demo-grid.ini)
#   --out DIR                          working directory: data, model, registry, logs (default ./mfrec-out)
#   --bin DIR                          the built programs (default <repo>/build)
#   --data FILE                        pipeline: start from this prepared data set (no generate, prepare)
#   --partition P --account A --qos Q  passed to sbatch
#   --time T                           time limit of every job (default: each script's #SBATCH --time)
#   --overcommit                       sbatch -O: more tasks than cores (small machines, tests)
#   --launcher srun|mpirun             how the jobs start MPI programs (default srun --mpi=pmix)
#   --after JOBID                      the first job waits for JOBID (afterok)
#   --wait                             wait for the jobs, print each one's end state, exit 1 unless
#                                      all COMPLETED (polls scontrol; no accounting needed)
#   --wait-timeout S                   give up waiting after S seconds (default 0: never), exit 2
#   --dry-run                          print the sbatch commands, submit nothing
# Scaling only:
#   --ranks LIST                       the ladder of rank counts (default 1,2,4,8)
#   --modes LIST                       strong,weak (default both)
#   --point "ARGS"                     the trained point (mfrec_dist options; default
#                                      "--alpha 40 --factors 32 --regularization 10 --iterations 10")
#
# Prints one line per job, "job NAME ID", on stdout (everything else goes to stderr); the jobs'
# logs are DIR/<job name>-<job id>.out. Afterwards: tools/mfrec_scaling.py DIR/scaling.
set -euo pipefail
jobs_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$jobs_dir/.." && pwd)

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
die() { echo "submit.sh: $*" >&2; exit 2; }

mode=pipeline
case "${1:-}" in
  pipeline | scaling) mode=$1; shift ;;
  -h | --help) usage 0 ;;
esac

users=100000 events=800000 items="" nodes=1 ntasks="" cpus=1
config=$root/configs/demo-grid.ini out=$PWD/mfrec-out bin=$root/build data=""
partition="" account="" qos="" time_limit="" overcommit=0 launcher=${MFREC_LAUNCHER:-srun}
after="" wait=0 wait_timeout=0 dry_run=0
ranks=1,2,4,8 modes=strong,weak point="--alpha 40 --factors 32 --regularization 10 --iterations 10"

while (($#)); do
  opt=$1
  case "$opt" in
    --overcommit) overcommit=1; shift; continue ;;
    --wait) wait=1; shift; continue ;;
    --dry-run) dry_run=1; shift; continue ;;
    -h | --help) usage 0 ;;
  esac
  (($# >= 2)) || die "$opt needs a value"
  val=$2
  shift 2
  case "$opt" in
    --users) users=$val ;;
    --events) events=$val ;;
    --items) items=$val ;;
    --nodes) nodes=$val ;;
    --ntasks) ntasks=$val ;;
    --cpus-per-task) cpus=$val ;;
    --config) config=$val ;;
    --out) out=$val ;;
    --bin) bin=$val ;;
    --data) data=$val ;;
    --partition) partition=$val ;;
    --account) account=$val ;;
    --qos) qos=$val ;;
    --time) time_limit=$val ;;
    --launcher) launcher=$val ;;
    --after) after=$val ;;
    --wait-timeout) wait_timeout=$val ;;
    --ranks) ranks=$val ;;
    --modes) modes=$val ;;
    --point) point=$val ;;
    *) die "unknown option $opt (--help)" ;;
  esac
done

positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, not '$2'"; }
positive --users "$users"
positive --events "$events"
[ -z "$items" ] || positive --items "$items"
positive --nodes "$nodes"
positive --cpus-per-task "$cpus"
[[ "$wait_timeout" =~ ^[0-9]+$ ]] || die "--wait-timeout must be a number of seconds"
[[ "$launcher" =~ ^(srun|mpirun)$ ]] || die "--launcher must be srun or mpirun, not '$launcher'"
[ -x "$bin/mfrec_dist" ] || die "no programs in $bin (--bin: the build directory)"
bin=$(cd "$bin" && pwd)
mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
if ((dry_run == 0)); then
  command -v sbatch >/dev/null || die "sbatch not found: is this a SLURM login node?"
fi

if [ "$mode" = scaling ]; then
  IFS=, read -r -a ladder <<<"$ranks"
  ((${#ladder[@]})) || die "--ranks is empty"
  max=0
  for r in "${ladder[@]}"; do positive --ranks "$r"; ((r > max)) && max=$r; done
  [[ "$modes" =~ ^(strong|weak)(,(strong|weak))?$ ]] || die "--modes: strong, weak or strong,weak"
  ntasks=${ntasks:-$max}
  ((ntasks >= max)) || die "--ntasks $ntasks is below the largest rank count $max"
else
  ntasks=${ntasks:-2}
  if [ -n "$data" ]; then
    [ -f "$data" ] || die "--data $data: no such file"
    data=$(cd "$(dirname "$data")" && pwd)/$(basename "$data")
  fi
  [ -f "$config" ] || die "--config $config: no such file"
  config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
fi
positive --ntasks "$ntasks"

# Every job: the common sbatch options, the settings through the environment (--export=ALL).
sbatch_common=(--parsable --chdir="$out" --nodes="$nodes" --cpus-per-task="$cpus")
[ -n "$partition" ] && sbatch_common+=(--partition="$partition")
[ -n "$account" ] && sbatch_common+=(--account="$account")
[ -n "$qos" ] && sbatch_common+=(--qos="$qos")
[ -n "$time_limit" ] && sbatch_common+=(--time="$time_limit")
((overcommit)) && sbatch_common+=(--overcommit)
export MFREC_OUT="$out" MFREC_BIN="$bin" MFREC_LAUNCHER="$launcher" MFREC_THREADS="$cpus"

names=() ids=()
n_dry=0
submit() {  # submit NAME DEPENDENCY SCRIPT [SBATCH OPTIONS...] -> the job id in $job_id
  local name=$1 dep=$2 script=$3
  shift 3
  local cmd=(sbatch "${sbatch_common[@]}" --ntasks="$ntasks" "$@")
  [ -n "$dep" ] && cmd+=(--dependency="afterok:$dep" --kill-on-invalid-dep=yes)
  cmd+=("$jobs_dir/$script")
  if ((dry_run)); then
    n_dry=$((n_dry + 1))
    job_id="DRY$n_dry"
    echo "[dry run] ${cmd[*]}" >&2
  else
    local err
    if ! job_id=$("${cmd[@]}" 2>"$out/.sbatch.err"); then
      err=$(cat "$out/.sbatch.err")
      echo "submit.sh: sbatch $script failed: ${err:-no message}" >&2
      if ((${#ids[@]})); then
        echo "submit.sh: cancelling the jobs already submitted: ${ids[*]}" >&2
        scancel "${ids[@]}" 2>/dev/null || true
      fi
      exit 1
    fi
    job_id=${job_id%%;*}
    rm -f "$out/.sbatch.err"
  fi
  names+=("$name")
  ids+=("$job_id")
  echo "job $name $job_id"
}

if [ "$mode" = pipeline ]; then
  export MFREC_USERS="$users" MFREC_EVENTS="$events" MFREC_ITEMS="$items" MFREC_CONFIG="$config"
  dep=$after
  if [ -z "$data" ]; then
    submit generate "$dep" generate.sbatch
    submit prepare "$job_id" prepare.sbatch
    dep=$job_id
  else
    export MFREC_DATA="$data"
  fi
  submit train "$dep" train.sbatch
  submit recommend "$job_id" recommend.sbatch
else
  # one data set per size: the strong ladder's (users x 1), and users x r for each weak rung
  mkdir -p "$out/scaling"
  plan=$out/scaling/plan.txt
  : >"$plan"
  declare -A prepared_job=()
  dataset() {  # dataset MULTIPLIER: submits generate + prepare once per size; sets $data_file
    local m=$1 name
    name="scaling-u$((users * m))"
    data_file=$out/${name}_prepared.h5
    if [ -z "${prepared_job[$m]:-}" ]; then
      MFREC_NAME=$name MFREC_USERS=$((users * m)) MFREC_EVENTS=$((events * m)) MFREC_ITEMS=$items \
        submit "generate-x$m" "$after" generate.sbatch
      MFREC_NAME=$name submit "prepare-x$m" "$job_id" prepare.sbatch
      prepared_job[$m]=$job_id
    fi
  }
  deps=()
  for kind in strong weak; do
    [[ ",$modes," == *",$kind,"* ]] || continue
    for r in "${ladder[@]}"; do
      if [ "$kind" = strong ]; then dataset 1; else dataset "$r"; fi
      echo "$kind $r $data_file" >>"$plan"
    done
  done
  for j in "${prepared_job[@]}"; do deps+=("$j"); done
  lines=$(wc -l <"$plan")
  dep=$(IFS=:; echo "${deps[*]}")
  MFREC_SCALING_PLAN=$plan MFREC_SCALING_ARGS=$point \
    submit scaling "$dep" scaling.sbatch --array="0-$((lines - 1))"
fi

((wait)) || exit 0
((dry_run)) && exit 0

# --- wait: poll scontrol until every job has ended (array jobs: every task)
terminal='^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE)$'
job_states() {  # job_states ID: "STATE EXITCODE TASK" per job (array: per task); nothing if unknown
  scontrol show job -o "$1" 2>/dev/null | while read -r line; do
    local st code task=""
    st=$(sed -n 's/.* JobState=\([A-Z_]*\).*/\1/p' <<<"$line")
    code=$(sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p' <<<"$line")
    [[ "$line" =~ \ ArrayTaskId=([^ ]+) ]] && task=_${BASH_REMATCH[1]}
    [ -n "$st" ] && echo "$st ${code:--} $task"
  done
}
start=$SECONDS
while :; do
  pending=0
  for id in "${ids[@]}"; do
    states=$(job_states "$id")
    if [ -z "$states" ]; then continue; fi   # purged (MinJobAge): it ended long ago
    while read -r st _; do [[ "$st" =~ $terminal ]] || pending=1; done <<<"$states"
  done
  ((pending == 0)) && break
  if ((wait_timeout > 0 && SECONDS - start > wait_timeout)); then
    echo "submit.sh: still running after ${wait_timeout}s: ${ids[*]}" >&2
    exit 2
  fi
  sleep 2
done
rc=0
for i in "${!ids[@]}"; do
  states=$(job_states "${ids[$i]}")
  [ -n "$states" ] || states="UNKNOWN -"
  while read -r st code task; do
    echo "end ${names[$i]} ${ids[$i]}${task:-} $st $code"
    [ "$st" = COMPLETED ] || rc=1
  done <<<"$states"
done
exit $rc
