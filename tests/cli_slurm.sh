#!/usr/bin/env bash
# The jobs/ scripts on a real SLURM: starts a private single-node cluster on this machine
# (tests/slurm_cluster.sh: Debian's munged, slurmctld and slurmd as root, private key, socket,
# ports, state and logs in a temporary directory), submits with jobs/submit.sh and sbatch,
# waits, checks the jobs' outputs, and always shuts the cluster down.
#   1. the pipeline generate -> prepare -> train (grid, registry) -> recommend --all, srun --mpi=pmix
#   2. a failing train (bad config): FAILED, and the dependent recommend job CANCELLED, not pending
#   3. the mpirun launcher with more tasks than cores (sbatch -O)
#   4. impossible jobs (time over the partition's limit, too many CPUs) refused at submission
#   5. the scaling array (ranks 1,2; strong and weak) and tools/mfrec_scaling.py on its reports
# Skips (exit 0, "0 passed, 0 failed") only where SLURM or munge is not installed or not root
# (MFREC_REQUIRE_SLURM=1: fail instead); a cluster that is installed but cannot start is a
# failure, with the reason. A detached watchdog stops the cluster if this script is killed.
# MFREC_SLURM_KEEP=1 keeps the scratch directory (logs, outputs).
# Needs MFREC_BIN (the build directory); MFREC_SRC (the source tree) defaults to this script's.
set -u
[ -n "${MFREC_SLURM_KEEP:-}" ] && export MFREC_KEEP=$MFREC_SLURM_KEEP
WORK_PREFIX=mfrec_slurm   # slurm_cluster.sh's free_port looks for other clusters' ports there
MFREC_KEEP_SIGKILL_GRACE=1   # signals and checkpoints: keep mpirun's SIGTERM-to-SIGKILL grace
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh" || exit 1
SCRATCH=$WORK
CLUSTER=$SCRATCH   # the cluster's files (slurm.conf, state, logs); the jobs work under $SCRATCH/w*
on_exit 'bash "$SRC/tests/slurm_cluster.sh" stop "$CLUSTER" >/dev/null 2>&1'
show() { for f in "$@"; do [ -f "$f" ] && sed "s#^#    $(basename "$f") | #" "$f" | tail -n 25; done; }

# --- the cluster
set +e
start_out=$(SLURM_CLUSTER_OWNER=$$ SLURM_CLUSTER_TIMEOUT=90 bash "$SRC/tests/slurm_cluster.sh" start "$CLUSTER" 2>&1)
rc=$?
echo "$start_out"
if [ "$rc" -eq 3 ] && [ "${MFREC_REQUIRE_SLURM:-0}" != 1 ]; then
  echo "skip: $(tail -n 1 <<<"$start_out")"
  finish
fi
if [ "$rc" -ne 0 ]; then
  fail "start a private SLURM cluster (exit $rc): $(tail -n 1 <<<"$start_out")"
  show "$CLUSTER"/log/*.log
  finish
fi
pass "a private SLURM cluster: node idle, srun -n1 true runs"
# shellcheck disable=SC1091
. "$CLUSTER/env.sh"
cp "$CLUSTER/run/saved.pids" "$SCRATCH/daemons.pids"   # munged, slurmctld, slurmd
T0=$SECONDS
DEADLINE=$((SECONDS + 480))   # every wait below ends by then (ctest's TIMEOUT is 600 s)
submit=(bash "$SRC/jobs/submit.sh")
run_submit() {  # run_submit STDOUT STDERR SUBMIT-ARGS...: submit.sh with --wait, bounded by DEADLINE
  local out=$1 err=$2 left=$((DEADLINE - SECONDS))
  shift 2
  ((left > 10)) || left=10
  "${submit[@]}" "$@" --bin "$BIN" --time 10 --wait --wait-timeout "$left" >"$out" 2>"$err"
}

# job ID: the id of job NAME in submit.sh's output; state ID: its JobState
job() { awk -v n="$1" '$1 == "job" && $2 == n { print $3 }' "$2"; }
state() { scontrol show job -o "$1" 2>/dev/null | sed -n 's/.* JobState=\([A-Z_]*\).*/\1/p' | sort -u | tr '\n' ' ' | sed 's/ $//'; }
reason() { scontrol show job -o "$1" 2>/dev/null | sed -n 's/.* Reason=\([^ ]*\).*/\1/p' | head -1; }
has_line() { grep -qE -- "$2" "$1" 2>/dev/null; }
log_of() { echo "$1/mfrec-$2-$3.out"; }  # log_of DIR STEP JOBID: named by job id

# --- 1. the pipeline on a small data set and a 2-point grid, 2 tasks
W1=$SCRATCH/w1
mkdir -p "$W1"
printf 'alpha = 10,40\nfactors = 8\nregularization = 10\niterations = 3\n' >"$SCRATCH/tiny.ini"
run_submit "$SCRATCH/p1.out" "$SCRATCH/p1.err" --users 5000 --events 50000 --ntasks 2 \
  --config "$SCRATCH/tiny.ini" --out "$W1"
rc=$?
check "pipeline: submit.sh --wait exits 0" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || { cat "$SCRATCH/p1.out" "$SCRATCH/p1.err"; show "$W1"/*.out; }
check "pipeline: four jobs submitted" [ "$(grep -c '^job ' "$SCRATCH/p1.out")" -eq 4 ]
for step in generate prepare train recommend; do
  id=$(job "$step" "$SCRATCH/p1.out")
  check "pipeline: $step job $id COMPLETED" [ "$(state "$id")" = COMPLETED ]
  log=$(log_of "$W1" "$step" "$id")
  check "pipeline: $step log named by job id, header and done lines" \
    eval "has_line '$log' '^== mfrec-$step: job $id on .*2 tasks x 1 threads, launcher srun' && has_line '$log' '^== mfrec-$step: done in'"
done
id_train=$(job train "$SCRATCH/p1.out")
check "pipeline: dependent jobs are killed when their dependency fails" \
  eval "scontrol show job -o $(job recommend "$SCRATCH/p1.out") | grep -q 'KillOInInvalidDependent=Yes'"
check "pipeline: generate wrote the data set (5000 users, 50000 events)" \
  has_line "$(log_of "$W1" generate "$(job generate "$SCRATCH/p1.out")")" "5000 users, 2465 items, 50000 events .* on 2 ranks"
check "pipeline: prepared data set" [ -s "$W1/retail_prepared.h5" ]
check "pipeline: train searched the grid on 2 groups" has_line "$(log_of "$W1" train "$id_train")" "grid: 2 runs \(2 points\) on 2 group"
check "pipeline: train registered the model" has_line "$(log_of "$W1" train "$id_train")" "registered retail-als version 1 in $W1/registry"
check "pipeline: model, report, experiment log and CSV" \
  eval "[ -s '$W1/model.h5' ] && [ -s '$W1/run.json' ] && [ -s '$W1/experiment.h5' ] && [ -s '$W1/experiment.csv' ]"
check "pipeline: report says 2 ranks and the grid's best point" \
  "$PY" -c "import json,sys; r=json.load(open('$W1/run.json')); sys.exit(not (r['ranks']==2 and r['best']['factors']==8 and len(r['grid'])==2))"
check "pipeline: registry has retail-als:1" eval "'$BIN/mfrec_registry' --registry '$W1/registry' path retail-als:1 >/dev/null"
check "pipeline: recommendations for all 5000 users (top 10)" \
  eval "[ -s '$W1/recommendations.h5' ] && [ \$(( \$(wc -l <'$W1/recommendations.csv') - 1 )) -eq 50000 ]"
check "pipeline: recommend log" has_line "$(log_of "$W1" recommend "$(job recommend "$SCRATCH/p1.out")")" "top 10 for 5000 users"
check "pipeline: submit.sh printed each job's end" [ "$(grep -c ' COMPLETED 0:0$' "$SCRATCH/p1.out")" -eq 4 ]

# --- 2. a failing train: the recommend job is cancelled (kill_invalid_depend), not left pending
W2=$SCRATCH/w2
printf 'alpha = 10\nfactors = 0\nregularization = 10\niterations = 3\n' >"$SCRATCH/bad.ini"
run_submit "$SCRATCH/p2.out" "$SCRATCH/p2.err" --data "$W1/retail_prepared.h5" --ntasks 2 \
  --config "$SCRATCH/bad.ini" --out "$W2"
rc=$?
check "bad config: submit.sh --wait exits 1" [ "$rc" -eq 1 ]
id_t=$(job train "$SCRATCH/p2.out")
id_r=$(job recommend "$SCRATCH/p2.out")
check "bad config: no generate/prepare with --data" [ "$(grep -c '^job ' "$SCRATCH/p2.out")" -eq 2 ]
check "bad config: train job $id_t FAILED" [ "$(state "$id_t")" = FAILED ]
check "bad config: train log has the trainer's error" has_line "$(log_of "$W2" train "$id_t")" "mfrec_dist: error: option --factors"
check "bad config: recommend job $id_r CANCELLED (DependencyNeverSatisfied)" \
  eval "[ '$(state "$id_r")' = CANCELLED ] && [ '$(reason "$id_r")' = DependencyNeverSatisfied ]"
check "bad config: no recommendations" [ ! -e "$W2/recommendations.h5" ]
check "bad config: nothing left in the queue" [ -z "$(squeue -h -o %i)" ]

# --- 3. mpirun inside the allocation, 3 tasks on this node's cores (sbatch -O)
W3=$SCRATCH/w3
run_submit "$SCRATCH/p3.out" "$SCRATCH/p3.err" --data "$W1/retail_prepared.h5" --ntasks 3 --overcommit \
  --launcher mpirun --config "$SCRATCH/tiny.ini" --out "$W3"
rc=$?
check "mpirun, 3 tasks, -O: submit.sh --wait exits 0" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || { cat "$SCRATCH/p3.out" "$SCRATCH/p3.err"; show "$W3"/*.out; }
check "mpirun: train ran 3 ranks through mpirun" \
  eval "has_line '$(log_of "$W3" train "$(job train "$SCRATCH/p3.out")")' 'launcher mpirun' && has_line '$(log_of "$W3" train "$(job train "$SCRATCH/p3.out")")' '3 ranks x 1 threads'"
check "mpirun: recommendations" [ -s "$W3/recommendations.h5" ]

# --- 4. impossible jobs are refused at submission (EnforcePartLimits=ALL), none left pending
W4=$SCRATCH/w4
"${submit[@]}" --data "$W1/retail_prepared.h5" --config "$SCRATCH/tiny.ini" --out "$W4" --bin "$BIN" \
  --time 60 >"$SCRATCH/p4.out" 2>"$SCRATCH/p4.err"
rc=$?
check "time over MaxTime=30: refused (exit 1, sbatch's reason)" \
  eval "[ $rc -eq 1 ] && grep -q 'sbatch train.sbatch failed' '$SCRATCH/p4.err' && ! grep -q '^job ' '$SCRATCH/p4.out'"
ncpu=$(sinfo -h -o %c | head -1)
"${submit[@]}" --data "$W1/retail_prepared.h5" --config "$SCRATCH/tiny.ini" --out "$W4" --bin "$BIN" \
  --time 5 --ntasks $((ncpu + 1)) >"$SCRATCH/p5.out" 2>"$SCRATCH/p5.err"
rc=$?
check "$((ncpu + 1)) tasks on $ncpu CPUs without -O: refused" eval "[ $rc -eq 1 ] && ! grep -q '^job ' '$SCRATCH/p5.out'"
check "refused jobs: nothing left in the queue" [ -z "$(squeue -h -o %i)" ]
check "submit.sh: bad option is a usage error (exit 2)" eval "'${submit[0]}' '${submit[1]}' --users x --out '$W4' --bin '$BIN' >/dev/null 2>&1; [ \$? -eq 2 ]"

# --- 5. the scaling array: ranks 1,2, strong and weak, then the table and the plot
W5=$SCRATCH/w5
run_submit "$SCRATCH/p6.out" "$SCRATCH/p6.err" scaling --users 3000 --events 30000 --ranks 1,2 --out "$W5" \
  --point "--alpha 40 --factors 8 --regularization 10 --iterations 3"
rc=$?
check "scaling: submit.sh --wait exits 0" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || { cat "$SCRATCH/p6.out" "$SCRATCH/p6.err"; show "$W5"/*.out; }
id_s=$(job scaling "$SCRATCH/p6.out")
check "scaling: two data sets (3000 and 6000 users) generated and prepared" \
  eval "[ -s '$W5/scaling-u3000_prepared.h5' ] && [ -s '$W5/scaling-u6000_prepared.h5' ] && [ \$(grep -c '^job \(generate\|prepare\)-x' '$SCRATCH/p6.out') -eq 4 ]"
check "scaling: array job $id_s, 4 tasks, all COMPLETED" \
  eval "[ \$(grep -c '^end scaling ${id_s}_[0-3] COMPLETED' '$SCRATCH/p6.out') -eq 4 ] && [ '$(state "$id_s")' = COMPLETED ]"
check "scaling: array logs named by job id and task" \
  eval "for t in 0 1 2 3; do has_line '$W5/mfrec-scaling-${id_s}_'\$t'.out' 'array task '\$t || exit 1; done"
check "scaling: four reports" eval "ls '$W5'/scaling/{strong,weak}-r{1,2}.json >/dev/null"
check "scaling: weak r2 trained on 6000 users with 2 ranks" \
  "$PY" -c "import json,sys; r=json.load(open('$W5/scaling/weak-r2.json')); sys.exit(not (r['ranks']==2 and r['data']['users']==6000))"
"$PY" "$SRC/tools/mfrec_scaling.py" "$W5/scaling" --plot "$SCRATCH/scaling.png" --csv "$SCRATCH/scaling.csv" >"$SCRATCH/table.out" 2>&1
rc=$?
cat "$SCRATCH/table.out"
check "mfrec_scaling.py: exit 0" [ "$rc" -eq 0 ]
check "mfrec_scaling.py: table rows strong and weak at 1 and 2 ranks, efficiency 1.00 at 1 rank" \
  eval "[ \$(grep -cE '^(strong|weak) .* 1 +1 +[0-9]+ +[0-9]+ +[0-9.]+ +1\.00 +1\.00 ' '$SCRATCH/table.out') -eq 2 ] && [ \$(grep -cE '^(strong|weak) .* 2 +1 +[0-9]+' '$SCRATCH/table.out') -eq 2 ]"
check "mfrec_scaling.py: a PNG" eval "head -c 8 '$SCRATCH/scaling.png' | od -An -c | grep -q 'P   N   G'"
check "mfrec_scaling.py: CSV with 4 rows" [ "$(wc -l <"$SCRATCH/scaling.csv")" -eq 5 ]
echo "jobs took $((SECONDS - T0)) s"

# --- shutdown: no daemon of this cluster left
bash "$SRC/tests/slurm_cluster.sh" stop "$CLUSTER" >/dev/null 2>&1
for attempt in $(seq 1 20); do  # a loaded machine: give an exiting daemon a few seconds
  left=""
  for d in munged slurmctld slurmd; do
    pid=$(sed -n "$(case $d in munged) echo 1 ;; slurmctld) echo 2 ;; slurmd) echo 3 ;; esac)p" "$SCRATCH/daemons.pids" 2>/dev/null)
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] && left="$left $d($pid)"
  done
  [ -z "$left" ] && break
  sleep 0.5
done
check "cluster shut down${left:+: left$left}" [ -z "$left" ]
finish
