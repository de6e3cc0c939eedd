# Shared by the bench/*.sh scripts (sourced): MPI environment, a scratch folder, and `run`,
# which times a program on N ranks, each rank under /usr/bin/time.
# Before sourcing: BENCH (the script's name), SCRATCH (parent folder, may be empty), KEEP (0/1).

if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1

if [ -n "$SCRATCH" ]; then mkdir -p "$SCRATCH"; work=$(mktemp -d "$SCRATCH/$BENCH.XXXXXX")
else work=$(mktemp -d); fi
cleanup() { if [ "$KEEP" -eq 0 ]; then rm -rf "$work"; else echo "$BENCH: files kept in $work"; fi; }
trap cleanup EXIT

# run NAME RANKS PROG ARGS...: runs PROG on RANKS ranks, each under /usr/bin/time; sets
# T (seconds, slowest rank), RSS_MAX (MB, largest rank) and RSS_ALL ("r0/r1/..." in MB).
run() {
  local name=$1 n=$2; shift 2
  rm -f "$work/$name".time.*
  if ! mpirun --bind-to none -n "$n" sh -c \
      'exec /usr/bin/time -f "%e %M" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$work/$name.time" "$@" \
      >"$work/$name.log" 2>&1; then
    echo "$BENCH: $name failed on $n ranks:" >&2; tail -20 "$work/$name.log" >&2; exit 1
  fi
  local i t m
  T=0 RSS_MAX=0 RSS_ALL=""
  for ((i = 0; i < n; i++)); do
    read -r t m < <(tail -1 "$work/$name.time.$i")
    T=$(awk -v a="$T" -v b="$t" 'BEGIN { print (b > a) ? b : a }')
    m=$(( (m + 512) / 1024 ))
    ((m > RSS_MAX)) && RSS_MAX=$m
    RSS_ALL="${RSS_ALL:+$RSS_ALL/}$m"
  done
}
