#!/usr/bin/env bash
# Scale ladder: generate (mfrec_gen), prepare (mfrec_prep) and train (mfrec_dist) at multiples of
# the default data set, on several rank counts: time per phase, seconds per iteration and peak
# memory per rank.
#
#   bash bench/bench_scale.sh [--sizes "1 10 100"] [--ranks "1 2"] [--iterations "3"] [--factors 64]
#                             [--test-fraction "0.0002"] [--build DIR] [--scratch DIR] [--keep]
#                             [--exchange "allgather sparse"] [--eval-users N] [--item-order category] [--user-order category]
#
#   --exchange       the exchange ladder instead: each size is generated and prepared ONCE (on the
#                    first rank count), then mfrec_dist trains it on every rank count with each
#                    --exchange mode given: peak RSS per rank (max and mean), the report's bytes
#                    sent + received per rank per iteration (exchange and allreduce; max and mean
#                    over ranks), and the issue-11 targets checked against the first rank count
#                    (with allgather, when given) and the allgather: RSS(P) <= 1.5 RSS(1)/P + 150 MB,
#                    sparse bytes <= 1/4 of the allgather's. An allgather run whose replicated factors alone would not fit in
#                    the machine's memory (P x 2.5 x (users + items) x f x 4 bytes: two copies and
#                    a margin) is skipped, and says so.
#                    Oversubscribed rank counts (more ranks than cores) give meaningless times;
#                    memory and bytes are exact.
#                    A mode may carry a budget, sparse:MIB, for mfrec_dist's --exchange-memory MIB
#                    (the item half-step in stages holding at most MIB of user rows; sparse alone
#                    leaves mfrec_dist's default). Without an allgather run at that rank count,
#                    the ratio is against the allgather's exact bytes, 2 (P-1)/P (users + items) f 4
#                    per rank per iteration (marked "computed").
#   --eval-users     passed to mfrec_dist when given (evaluate a sample of N test users)
#   --item-order     passed to mfrec_prep (source or category: items grouped by category)  [source]
#   --user-order     passed to mfrec_prep (source or category: users grouped by main category)  [source]
#
#   --sizes          multiples k of the default data set: k*100,000 users, k*2,465 items,
#                    k*800,000 events (users, items and events scaled together)  [1 10 100]
#   --ranks          MPI rank counts; the first is the baseline of the memory ratios  [1 2]
#   --iterations     ALS iterations: one value, or one per size  [3]
#   --factors        latent factors f  [64]
#   --test-fraction  mfrec_prep's held-out share: one value, or one per size  [0.0002]
#                    Not prep's default 0.2: the evaluation ranks every item for every test user,
#                    O(test users x items x f), which grows as size^2 when users and items grow
#                    together: with 0.2 (65 % of the users tested) about 3 s at 1x, 4 to 8 min at
#                    10x and 4 to 9 h at 100x on 2 to 1 ranks here. 0.0002 tests about 100 (1x) to
#                    10,000 (100x) users and trains on 99.98 % of the pairs at every size, so the
#                    sizes stay comparable (1x: 510,808 training non-zeros instead of 408,476).
#   --build          directory holding mfrec_gen, mfrec_prep, mfrec_dist  [$MFREC_BIN, else <repo>/build]
#   --scratch        where the data files go (100x: about 0.7 GB generated + 1.3 GB prepared)
#                    [a fresh directory under $TMPDIR, removed at the end]
#   --keep           keep the data files (default: deleted as soon as a size is measured)
#
# Training: mfrec_dist --factors F --regularization 10 --alpha 40 --solver cg (3 CG steps)
# --threads 1 (ONE OpenMP thread per rank: ranks = cores used) --output "" --report R.json.
# Every program runs once per rank count, each rank under /usr/bin/time (apt-get install time):
# "s" is the slowest rank's process wall time (mpirun's start-up left out), RSS each rank's peak
# resident set. From the report: seconds_per_iteration, data.nnz_train and the phases (each a
# per-rank total over the run; min/mean/max over ranks), shown per iteration.
# Every rank holds both factor matrices in full (the allgather), so mfrec_dist's RSS per rank has
# a part that does not fall with ranks: F = (users + items) x f x 4 bytes (float32 replicas of X and
# Y), plus the rank's own block being solved, F / P. "factors MB" = F x (1 + 1/P): 2F on 1 rank,
# tending to F as ranks are added. The rest (the CSR blocks of train, train_by_item and test, about
# 23 bytes per training non-zero with the row pointers) is split over the ranks.
# The flop model (include/mfrec/als_kernels.hpp, solve_rows_flops, CG with s = 3 steps) in closed
# form, both half-steps: (s+1)(2f^2 rows + 4f nnz) + 10 s f rows, rows = users + items,
# nnz = 2 x nnz_train; "GF/s/rank" = those flops / ranks / solve seconds per iteration.
# The closing projection compares, per iteration, the ring allgather of B = rows x f x 4 bytes at
# BW_GBS GB/s per rank (default 10) with the solve at RATES GFLOP/s per rank (default "5 20 50").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
SIZES="1 10 100" RANKS="1 2" ITERS="3" FACTORS=64 TESTF="0.0002" BUILD="" SCRATCH="" KEEP=0 EXCH="" EVAL_USERS="" ORDER=source UORDER=source
while (($#)); do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --ranks) RANKS="$2"; shift 2 ;;
    --iterations) ITERS="$2"; shift 2 ;;
    --factors) FACTORS="$2"; shift 2 ;;
    --test-fraction) TESTF="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --scratch) SCRATCH="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --exchange) EXCH="$2"; shift 2 ;;
    --eval-users) EVAL_USERS="$2"; shift 2 ;;
    --item-order) ORDER="$2"; shift 2 ;;
    --user-order) UORDER="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "bench_scale: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
BUILD="${BUILD:-${MFREC_BIN:-$root/build}}"
gen="$BUILD/mfrec_gen" prep="$BUILD/mfrec_prep" dist="$BUILD/mfrec_dist"
for p in "$gen" "$prep" "$dist"; do [ -x "$p" ] || { echo "bench_scale: $p not found (--build DIR)" >&2; exit 2; }; done
for s in $SIZES; do [[ "$s" =~ ^[1-9][0-9]*$ ]] || { echo "bench_scale: bad size '$s'" >&2; exit 2; }; done
for r in $RANKS; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || { echo "bench_scale: bad rank count '$r'" >&2; exit 2; }; done
[[ "$FACTORS" =~ ^[1-9][0-9]*$ ]] || { echo "bench_scale: bad --factors '$FACTORS'" >&2; exit 2; }
read -r -a SIZE_A <<<"$SIZES"; read -r -a ITER_A <<<"$ITERS"; read -r -a TESTF_A <<<"$TESTF"
for name in ITER_A TESTF_A; do
  declare -n arr=$name
  if ((${#arr[@]} != 1 && ${#arr[@]} != ${#SIZE_A[@]})); then
    echo "bench_scale: --iterations and --test-fraction take one value or one per size" >&2; exit 2
  fi
  unset -n arr
done
for i in "${ITER_A[@]}"; do [[ "$i" =~ ^[1-9][0-9]*$ ]] || { echo "bench_scale: bad iterations '$i'" >&2; exit 2; }; done
# per_size ARRAY INDEX: the array's value for size number INDEX (or its only value)
per_size() { local -n a=$1; if ((${#a[@]} == 1)); then echo "${a[0]}"; else echo "${a[$2]}"; fi; }
for t in /usr/bin/time jq; do
  if [ ! -x "$t" ] && ! command -v "$t" >/dev/null; then
    echo "bench_scale: $t not found (apt-get install time jq)" >&2; exit 2
  fi
done
BENCH=bench_scale
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

cores=$(nproc)
if [ -n "$EXCH" ]; then
  for m in $EXCH; do [[ "$m" =~ ^(allgather|sparse|sparse:[0-9.]+|auto)$ ]] || { echo "bench_scale: bad --exchange mode '$m'" >&2; exit 2; }; done
  set -- $RANKS
  first_r=$1
  mem_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  echo "== mfrec exchange ladder: sizes '$SIZES' x ranks '$RANKS' x exchange '$EXCH'; f = $FACTORS, iterations '$ITERS'; item order $ORDER, user order $UORDER;" \
    "1 thread per rank; $cores cores, $(free -g | awk '/^Mem:/ {print $2}') GiB ($((mem_kb / 1024)) MB available);" \
    "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  fmtx="%-4s %2s %-10s %5s | %7s | %8s %8s | %10s %10s | %10s %10s | %s\n"
  printf "$fmtx" size rk exchange load s/iter "RSS max" "RSS mean" "exch MB" "exch max" "allred MB" "allred max" "targets"
  declare -A XR XB
  extra=()
  [ -n "$EVAL_USERS" ] && extra=(--eval-users "$EVAL_USERS")
  for idx in "${!SIZE_A[@]}"; do
    s=${SIZE_A[$idx]}
    iters=$(per_size ITER_A "$idx") tf=$(per_size TESTF_A "$idx")
    users=$((s * 100000)) items=$((s * 2465)) events=$((s * 800000))
    run gen "$first_r" "$gen" --users "$users" --items "$items" --events "$events" -o "$work/data_${s}x.h5" -q
    run prep "$first_r" "$prep" -i "$work/data_${s}x.h5" -o "$work/prep_${s}x.h5" --test-fraction "$tf" --item-order "$ORDER" --user-order "$UORDER" -q
    rm -f "$work/data_${s}x.h5"
    for r in $RANKS; do
      for m in $EXCH; do
        need_kb=$(( r * 5 * (users + items) * FACTORS * 4 / 2 / 1024 ))  # 2 copies + 25 %
        if [ "$m" = allgather ] && ((need_kb > mem_kb)); then
          printf "$fmtx" "${s}x" "$r" "$m" - - - - - - - - "skipped: the replicated factors alone need $((need_kb / 1024)) MB"
          continue
        fi
        load=$(cut -d' ' -f1 /proc/loadavg)
        rm -f "$work/report.json"
        budget=()
        [[ "$m" == sparse:* ]] && budget=(--exchange-memory "${m#sparse:}")
        run dist "$r" "$dist" --data "$work/prep_${s}x.h5" --factors "$FACTORS" --regularization 10 --alpha 40 \
          --solver cg --iterations "$iters" --threads 1 --exchange "${m%%:*}" "${budget[@]}" --knn-k 0 --output "" \
          --report "$work/report.json" "${extra[@]}"
        j="$work/report_${s}x_${r}_${m}.json"
        cp "$work/report.json" "$j"
        rss_mean=$(tr '/' '\n' <<<"$RSS_ALL" | awk '{ t += $1 } END { printf "%.0f", t / NR }')
        # bytes per rank per iteration, sent + received: mean and max (of the per-rank maxima)
        b() { jq -r --arg p "$1" '.bytes_per_iteration[$p] | "\((.sent.mean + .received.mean) / 1e6) \((.sent.max + .received.max) / 1e6)"' "$j"; }
        read -r exm exx < <(b exchange)
        read -r arm arx < <(b allreduce)
        XR[$s,$r,$m]=$RSS_MAX XB[$s,$r,$m]=$exx
        tgt=""
        base_rss=${XR[$s,$first_r,allgather]:-${XR[$s,$first_r,$m]:-}}  # the plain run, allgather, when measured
        if [ -n "$base_rss" ] && [ "$r" != "$first_r" ]; then
          lim=$(calc %.0f "1.5 * $base_rss * $first_r / $r + 150")
          tgt+="RSS $RSS_MAX vs limit $lim MB: $( ((RSS_MAX <= lim)) && echo met || echo MISSED)"
        fi
        if [[ "$m" == sparse* ]] && [ -n "${XB[$s,$r,allgather]:-}" ]; then
          ratio=$(calc %.3f "$exx / (${XB[$s,$r,allgather]} + 1e-12)")
          tgt+="${tgt:+; }bytes sparse/allgather $ratio"
        elif [[ "$m" == sparse* ]] && ((r > 1)); then
          ratio=$(calc %.3f "$exx / (2 * ($r - 1) / $r * ($users + $items) * $FACTORS * 4 / 1e6)")
          tgt+="${tgt:+; }bytes sparse/allgather (computed) $ratio"
        fi
        printf "$fmtx" "${s}x" "$r" "$([[ "$m" == *:* ]] && echo "$m" || jq -r .exchange "$j")" "$load" "$(calc %.3f "$(jq .seconds_per_iteration "$j")")" \
          "$RSS_MAX" "$rss_mean" "$(calc %.2f "$exm")" "$(calc %.2f "$exx")" "$(calc %.3f "$arm")" "$(calc %.3f "$arx")" "$tgt"
      done
    done
    [ "$KEEP" -eq 1 ] || rm -f "$work/prep_${s}x.h5"
  done
  echo "(RSS: peak per rank, MB, max and mean over ranks; exch / allred: MB sent + received per rank per"
  echo " iteration, mean over ranks and the busiest rank, from the report's bytes_per_iteration)"
  echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
echo "== mfrec scale ladder: sizes '$SIZES' x ranks '$RANKS'; f = $FACTORS, iterations '$ITERS'; item order $ORDER, user order $UORDER;" \
  "test fraction '$TESTF', 1 thread per rank; $cores cores, $(free -g | awk '/^Mem:/ {print $2}') GiB;" \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); scratch $work"
fmt="%-4s %2s %5s %11s | %6s %6s | %8s %7s %7s %7s %7s | %6s %6s | %9s %11s %13s %8s\n"
printf "$fmt" size rk load nnz_train "gen s" "prep s" "s/iter" solve gram allred allgath "eval s" "dist s" \
  "gen RSS" "prep RSS" "dist RSS MB" "factors"
declare -A GT PT IT NNZ GR PR DR EV ROWS SOLVE PH
for idx in "${!SIZE_A[@]}"; do
  s=${SIZE_A[$idx]}
  iters=$(per_size ITER_A "$idx") tf=$(per_size TESTF_A "$idx")
  users=$((s * 100000)) items=$((s * 2465)) events=$((s * 800000))
  ROWS[$s]=$((users + items))
  for r in $RANKS; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    run gen "$r" "$gen" --users "$users" --items "$items" --events "$events" -o "$work/data_${s}x.h5" -q
    GT[$s,$r]=$T grss=$RSS_ALL GR[$s,$r]=$RSS_MAX
    run prep "$r" "$prep" -i "$work/data_${s}x.h5" -o "$work/prep_${s}x.h5" --test-fraction "$tf" --item-order "$ORDER" --user-order "$UORDER" -q
    PT[$s,$r]=$T prss=$RSS_ALL PR[$s,$r]=$RSS_MAX
    rm -f "$work/report.json"
    run dist "$r" "$dist" --data "$work/prep_${s}x.h5" --factors "$FACTORS" --regularization 10 --alpha 40 \
      --solver cg --iterations "$iters" --threads 1 --output "" --report "$work/report.json"
    dt=$T drss=$RSS_ALL DR[$s,$r]=$RSS_MAX
    floor=$(calc "%.0f" "($users + $items) * $FACTORS * 4 * (1 + 1 / $r) / 1e6")
    cp "$work/report.json" "$work/report_${s}x_${r}.json"
    j="$work/report.json"
    IT[$s,$r]=$(jq '.seconds_per_iteration' "$j") NNZ[$s]=$(jq '.data.nnz_train' "$j")
    EV[$s,$r]=$(jq '.phases.evaluation.max' "$j")
    ph() { jq -r --arg p "$1" --argjson n "$iters" '.phases[$p] | "\(.min / $n) \(.mean / $n) \(.max / $n)"' "$j"; }
    for p in solve gram allreduce exchange; do PH[$s,$r,$p]=$(ph $p); done
    mean() { awk '{ printf "%.3f", $2 }' <<<"${PH[$s,$r,$1]}"; }
    SOLVE[$s,$r]=$(awk '{ print $2 }' <<<"${PH[$s,$r,solve]}")
    printf "$fmt" "${s}x" "$r" "$load" "${NNZ[$s]}" "${GT[$s,$r]}" "${PT[$s,$r]}" "$(calc %.3f "${IT[$s,$r]}")" \
      "$(mean solve)" "$(mean gram)" "$(mean allreduce)" "$(mean exchange)" "$(calc %.2f "${EV[$s,$r]}")" "$dt" \
      "$grss" "$prss" "$drss" "$floor"
  done
  [ "$KEEP" -eq 1 ] || rm -f "$work/data_${s}x.h5" "$work/prep_${s}x.h5"
done
echo "(s/iter from the report; solve, gram, allreduce, allgather: mean over ranks, seconds per iteration;"
echo " eval s: the one evaluation, slowest rank; dist s: whole mfrec_dist process incl. loading;"
echo " RSS: peak per rank in MB, r0/r1/...; factors: (users + items) x f x 4 bytes x (1 + 1/ranks) in MB, per rank)"

echo
echo "== phases per iteration, min / mean / max over ranks (s); solve GFLOP per iteration (model) and GF/s per rank"
fmt3="%-4s %2s | %-23s %-23s %-23s %-23s | %8s %9s\n"
printf "$fmt3" size rk solve gram allreduce exchange "GFLOP/it" "GF/s/rank"
for s in $SIZES; do
  for r in $RANKS; do
    tri() { awk '{ printf "%.3f / %.3f / %.3f", $1, $2, $3 }' <<<"${PH[$s,$r,$1]}"; }
    gf=$(calc %.2f "(4 * (2 * $FACTORS^2 * ${ROWS[$s]} + 4 * $FACTORS * 2 * ${NNZ[$s]}) + 30 * $FACTORS * ${ROWS[$s]}) / 1e9")
    printf "$fmt3" "${s}x" "$r" "$(tri solve)" "$(tri gram)" "$(tri allreduce)" "$(tri exchange)" "$gf" \
      "$(calc %.2f "$gf / $r / ${SOLVE[$s,$r]}")"
  done
done

set -- $RANKS
base=$1
first=${SIZE_A[0]}
echo
echo "== ratios: time per nnz (or per event) against ${first}x on the same rank count; RSS = max RSS(n ranks) / max RSS($base)"
fmt2="%-4s %2s | %12s %12s %13s | %8s %8s %8s\n"
printf "$fmt2" size rk "gen s/event" "prep s/event" "train s/nnz" "gen RSS" "prep RSS" "dist RSS"
for s in $SIZES; do
  for r in $RANKS; do
    printf "$fmt2" "${s}x" "$r" \
      "$(calc %.2f "(${GT[$s,$r]} / $s) / ${GT[$first,$r]}")" \
      "$(calc %.2f "(${PT[$s,$r]} / $s) / ${PT[$first,$r]}")" \
      "$(calc %.2f "(${IT[$s,$r]} / ${NNZ[$s]}) / (${IT[$first,$r]} / ${NNZ[$first]})")" \
      "$(calc %.2f "${GR[$s,$r]} / ${GR[$s,$base]}")" \
      "$(calc %.2f "${PR[$s,$r]} / ${PR[$s,$base]}")" \
      "$(calc %.2f "${DR[$s,$r]} / ${DR[$s,$base]}")"
  done
done

# Projection to a cluster (see docs/benchmarks.md): per iteration every rank receives (P-1)/P of
# B = rows x f x 4 bytes (ring allgather, BW bytes/s per rank) and solves 1/P of the model's flops F
# at R flop/s per rank; the two are equal at P* = 1 + (F / B) x BW / R.
BW_GBS=${BW_GBS:-10} RATES=${RATES:-"5 20 50"}
echo
echo "== projection: allgather bytes vs solve flops per iteration; P* where ring-allgather time = solve time"
echo "   (BW = $BW_GBS GB/s per rank; R = '$RATES' GFLOP/s per rank; env BW_GBS, RATES)"
for s in $SIZES; do
  for f in $FACTORS 200; do
    B=$(calc %.0f "${ROWS[$s]} * $f * 4")
    F=$(calc %.0f "4 * (2 * $f^2 * ${ROWS[$s]} + 4 * $f * 2 * ${NNZ[$s]}) + 30 * $f * ${ROWS[$s]}")
    line=$(printf "%-4s f=%-3s B %8.1f MB  F %8.1f GFLOP  F/B %5.0f flop/byte  P*:" "${s}x" "$f" \
      "$(calc %.6f "$B / 1e6")" "$(calc %.6f "$F / 1e9")" "$(calc %.6f "$F / $B")")
    for R in $RATES; do line+=$(printf "  %5.0f (R=%s)" "$(calc %.6f "1 + ($F / $B) * $BW_GBS / $R")" "$R"); done
    echo "$line"
  done
done
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
