#!/usr/bin/env bash
# mfrec_dist against bench_als on the same data: how much of a training iteration is spent
# outside the solver kernels. Generates and prepares one data set (mfrec_gen, mfrec_prep), then,
# for every factor count and solver, alternates over several rounds
#   A  bench_als --input PREPARED --threads T         the kernels alone (gram + both half-steps),
#                                                     median of the iterations after one warm-up
#   B  mpirun -n 1 --bind-to none mfrec_dist --threads T   one process, T threads
#   C  mpirun -n 2 mfrec_dist --threads 1               the README's launch (a rank a core)
# on the same file, factors, solver, regularization, alpha, CG steps and iterations, and prints
# each one's seconds per iteration, mfrec_dist's phase times per iteration and the ratios
# mfrec_dist / bench_als (of the medians over the rounds, and each round's own).
#
#   bash bench/bench_dist_vs_als.sh [--size K] [--factors "64 128 200"] [--solvers "cg cholesky"]
#                                   [--iterations 5] [--rounds 3] [--threads T] [--build DIR]
#                                   [--scratch DIR] [--keep] [--data PREPARED.h5] [--other-build DIR]
#
#   --size        K x the default data set: K*100,000 users, K*2,465 items, K*800,000 events  [1]
#   --iterations  ALS iterations of each run  [5]
#   --rounds      rounds of A, B, C (alternated; the order reverses every other round)  [3]
#   --threads     T, the threads of A and B  [the online CPUs]
#   --data        an existing prepared file instead of generating one (--size is then ignored)
#   --build       directory with mfrec_gen, mfrec_prep, mfrec_dist, bench_als  [$MFREC_BIN, else <repo>/build]
#   --other-build another build's mfrec_dist (e.g. with a change under test), run as B is, as D
#                 in the same rounds: "D s/it", its exchange phase and D/A
#   --scratch     where the data files go  [a fresh directory under $TMPDIR, removed at the end]
#
# mfrec_dist's figure is its report's seconds_per_iteration: the mean over all its iterations,
# the first included ("s/it"); "med" is the median of its logged per-iteration times after the
# first, the statistic bench_als reports. Its phases (report `phases`, totals over the run, max
# over ranks) are shown per iteration; "other" = s/it - gram - allreduce - solve - exchange: time
# in iterate() outside the timed phases. For C, its allreduce and exchange per iteration (the
# slowest rank's): what the two ranks move plus the time one waits there for the other.
# mfrec_dist runs with --output "" --knn-k 0 --eval-users 100 (its evaluation is outside the
# iteration times anyway).
# A benchmark: it prints figures and asserts nothing about them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
SIZE=1 FACTORS="64 128 200" SOLVERS="cg cholesky" ITERS=5 ROUNDS=3 THREADS=$(getconf _NPROCESSORS_ONLN) BUILD="" SCRATCH="" KEEP=0 DATA=""
OTHER=""
while (($#)); do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --factors) FACTORS="$2"; shift 2 ;;
    --solvers) SOLVERS="$2"; shift 2 ;;
    --iterations) ITERS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --scratch) SCRATCH="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --other-build) OTHER="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_dist_vs_als: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
BUILD="${BUILD:-${MFREC_BIN:-$root/build}}"
gen="$BUILD/mfrec_gen" prep="$BUILD/mfrec_prep" dist="$BUILD/mfrec_dist" als="$BUILD/bench_als"
for p in "$gen" "$prep" "$dist" "$als"; do
  [ -x "$p" ] || { echo "bench_dist_vs_als: $p not found (--build DIR)" >&2; exit 2; }
done
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "bench_dist_vs_als: bad $1 '$2'" >&2; exit 2; }; }
posint --size "$SIZE"; posint --iterations "$ITERS"; posint --rounds "$ROUNDS"; posint --threads "$THREADS"
for f in $FACTORS; do posint --factors "$f"; done
for s in $SOLVERS; do
  [[ "$s" =~ ^(cg|cholesky)$ ]] || { echo "bench_dist_vs_als: bad solver '$s' (cg, cholesky)" >&2; exit 2; }
done
[ -z "$OTHER" ] || [ -x "$OTHER/mfrec_dist" ] || { echo "bench_dist_vs_als: $OTHER/mfrec_dist not found (--other-build)" >&2; exit 2; }
[ -z "$DATA" ] || [ -f "$DATA" ] || { echo "bench_dist_vs_als: --data $DATA not found" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench_dist_vs_als: jq not found (apt-get install jq)" >&2; exit 2; }
BENCH=bench_dist_vs_als
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=1  # mfrec sets its threads itself; bench_als by --threads

median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

if [ -z "$DATA" ]; then
  DATA="$work/prepared_${SIZE}x.h5"
  users=$((SIZE * 100000)) items=$((SIZE * 2465)) events=$((SIZE * 800000))
  mpirun --bind-to none -n 2 "$gen" --users "$users" --items "$items" --events "$events" -o "$work/data.h5" -q
  mpirun --bind-to none -n 2 "$prep" -i "$work/data.h5" -o "$DATA" -q
  rm -f "$work/data.h5"
fi

echo "== mfrec_dist against bench_als on $(basename "$DATA") (size ${SIZE}x unless --data), f '$FACTORS'," \
  "solvers '$SOLVERS', $ITERS iterations, $ROUNDS rounds; $(getconf _NPROCESSORS_ONLN) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'));" \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   A: bench_als --threads $THREADS; B: mpirun -n 1 --bind-to none mfrec_dist --threads $THREADS;" \
  "C: mpirun -n 2 mfrec_dist --threads 1"

# A: bench_als's s/iter, gram, users, items (the table row of this solver and f).
run_als() {  # f solver
  local s=$2; [ "$s" = cholesky ] && s=chol
  "$als" --input "$DATA" --threads "$THREADS" --factors "$1" --solvers "$s" --iters "$ITERS" >"$work/als.log" 2>&1 ||
    { echo "bench_dist_vs_als: bench_als failed:" >&2; tail -5 "$work/als.log" >&2; exit 1; }
  awk -v f="$1" '$2 == f && ($1 == "cg" || $1 == "cholesky") { print $3, $5, $6, $7 }' "$work/als.log"
}
# B, C: the report's s/iter, the median logged iteration after the first, phases per iteration.
run_dist() {  # program ranks threads f solver [mpirun args...]
  local prog=$1 n=$2 t=$3 f=$4 s=$5; shift 5
  rm -f "$work/report.json"
  mpirun -n "$n" "$@" "$prog" --data "$DATA" --threads "$t" --factors "$f" --solver "$s" --iterations "$ITERS" \
    --regularization 10 --alpha 40 --cg-steps 3 --knn-k 0 --eval-users 100 --output "" \
    --report "$work/report.json" >"$work/dist.log" 2>&1 ||
    { echo "bench_dist_vs_als: mfrec_dist failed:" >&2; tail -5 "$work/dist.log" >&2; exit 1; }
  local med
  med=$(sed -n 's/.* iteration \([0-9]*\)\/[0-9]*: \([0-9.]*\) s.*/\1 \2/p' "$work/dist.log" |
        awk '$1 > 1 { print $2 }' | tr '\n' ' ' | median)
  jq -r --arg med "$med" --argjson it "$ITERS" '.phases as $p |
    def ph(n): (($p[n].max // 0) / $it);
    "\(.seconds_per_iteration) \($med) \(ph("gram")) \(ph("allreduce")) \(ph("solve")) \(ph("exchange"))"' "$work/report.json"
}

fmt="%-8s %4s %5s | %7s | %7s %7s %6s %6s | %6s %6s %6s %6s %6s | %7s %6s %6s %6s"
fmtd=" | %7s %6s %6s"  # D, with --other-build
head=$(printf "$fmt" solver f round "A s/it" "B s/it" "B med" "B/A" "Bmed/A" gram allred solve exch other "C s/it" allred exch "C/A")
[ -n "$OTHER" ] && head+=$(printf "$fmtd" "D s/it" exch "D/A")
echo "$head | load"
declare -A RA RB RBM RC RD RAT RATM RCT RDT PG PR PS PE PO CR CE DE
for s in $SOLVERS; do
  for f in $FACTORS; do
    for ((r = 1; r <= ROUNDS; r++)); do
      order="A B C${OTHER:+ D}"; ((r % 2 == 0)) && order="${OTHER:+D }C B A"
      load=$(cut -d' ' -f1 /proc/loadavg)
      d=1 dex=0
      for p in $order; do
        case $p in
          A) read -r a _ _ _ < <(run_als "$f" "$s") ;;
          B) read -r b bm g ar so ex < <(run_dist "$dist" 1 "$THREADS" "$f" "$s" --bind-to none) ;;
          C) read -r c _ _ car _ cex < <(run_dist "$dist" 2 1 "$f" "$s") ;;
          D) read -r d _ _ _ _ dex < <(run_dist "$OTHER/mfrec_dist" 1 "$THREADS" "$f" "$s" --bind-to none) ;;
        esac
      done
      o=$(calc %.4f "$b - $g - $ar - $so - $ex")
      k="$s,$f"
      RA[$k]+="$a " RB[$k]+="$b " RBM[$k]+="$bm " RC[$k]+="$c " RD[$k]+="$d "
      RAT[$k]+="$(calc %.4f "$b / $a") " RATM[$k]+="$(calc %.4f "$bm / $a") " RCT[$k]+="$(calc %.4f "$c / $a") "
      RDT[$k]+="$(calc %.4f "$d / $a") "
      PG[$k]+="$g " PR[$k]+="$ar " PS[$k]+="$so " PE[$k]+="$ex " PO[$k]+="$o " CR[$k]+="$car " CE[$k]+="$cex " DE[$k]+="$dex "
      line=$(printf "$fmt" "$s" "$f" "$r" "$(calc %.4f "$a")" "$(calc %.4f "$b")" "$(calc %.4f "$bm")" \
        "$(calc %.3f "$b / $a")" "$(calc %.3f "$bm / $a")" "$(calc %.4f "$g")" "$(calc %.4f "$ar")" \
        "$(calc %.4f "$so")" "$(calc %.4f "$ex")" "$o" "$(calc %.4f "$c")" "$(calc %.4f "$car")" "$(calc %.4f "$cex")" \
        "$(calc %.3f "$c / $a")")
      [ -n "$OTHER" ] && line+=$(printf "$fmtd" "$(calc %.4f "$d")" "$(calc %.4f "$dex")" "$(calc %.3f "$d / $a")")
      echo "$line | $load"
    done
  done
done
echo
echo "== medians over the $ROUNDS rounds (ratios: of the medians; in brackets the median of the rounds' own ratios)"
fmtm="%-8s %4s | %7s | %7s %7s %13s %13s | %6s %6s %6s %6s %6s | %7s %6s %6s %13s"
fmtmd=" | %7s %6s %13s"
head=$(printf "$fmtm" solver f "A s/it" "B s/it" "B med" "B/A" "Bmed/A" gram allred solve exch other "C s/it" allred exch "C/A")
[ -n "$OTHER" ] && head+=$(printf "$fmtmd" "D s/it" exch "D/A")
echo "$head"
m() { median <<<"$1"; }
for s in $SOLVERS; do
  for f in $FACTORS; do
    k="$s,$f"
    a=$(m "${RA[$k]}") b=$(m "${RB[$k]}") bm=$(m "${RBM[$k]}") c=$(m "${RC[$k]}") d=$(m "${RD[$k]}")
    line=$(printf "$fmtm" "$s" "$f" "$(calc %.4f "$a")" "$(calc %.4f "$b")" "$(calc %.4f "$bm")" \
      "$(calc %.3f "$b / $a") ($(calc %.3f "$(m "${RAT[$k]}")"))" \
      "$(calc %.3f "$bm / $a") ($(calc %.3f "$(m "${RATM[$k]}")"))" \
      "$(calc %.4f "$(m "${PG[$k]}")")" "$(calc %.4f "$(m "${PR[$k]}")")" "$(calc %.4f "$(m "${PS[$k]}")")" \
      "$(calc %.4f "$(m "${PE[$k]}")")" "$(calc %.4f "$(m "${PO[$k]}")")" \
      "$(calc %.4f "$c")" "$(calc %.4f "$(m "${CR[$k]}")")" "$(calc %.4f "$(m "${CE[$k]}")")" \
      "$(calc %.3f "$c / $a") ($(calc %.3f "$(m "${RCT[$k]}")"))")
    [ -n "$OTHER" ] && line+=$(printf "$fmtmd" "$(calc %.4f "$d")" "$(calc %.4f "$(m "${DE[$k]}")")" \
      "$(calc %.3f "$d / $a") ($(calc %.3f "$(m "${RDT[$k]}")"))")
    echo "$line"
  done
done
echo "(A: bench_als, median of $ITERS iterations after a warm-up; B: mfrec_dist 1 rank x $THREADS threads, s/it its"
echo " report's seconds_per_iteration (mean of all $ITERS), med the median logged iteration after the first,"
echo " phases per iteration; C: mfrec_dist 2 ranks x 1 thread, its report's seconds_per_iteration and its"
if [ -n "$OTHER" ]; then
  echo " allreduce and exchange per iteration, max over the ranks: data moved plus the wait for the slower rank;"
  echo " D: $OTHER/mfrec_dist as B, its seconds_per_iteration and exchange phase per iteration)"
else
  echo " allreduce and exchange per iteration, max over the ranks: data moved plus the wait for the slower rank)"
fi
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
