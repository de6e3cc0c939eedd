#!/usr/bin/env bash
# Throughput and peak memory of the data pipeline: mfrec_gen (synthetic data set) then mfrec_prep
# (training matrices) under mpirun, for multiples of the default size and several rank counts.
#
#   bash bench/bench_data.sh [--sizes "1 10 100"] [--ranks "1 2"] [--build DIR] [--scratch DIR] [--keep]
#
#   --sizes    multiples of the default data set (100,000 users, 2,465 items, 800,000 events);
#              size k is k*100,000 users, k*2,465 items, k*800,000 events  [1 10 100]
#   --ranks    MPI rank counts; the first is the baseline of the ratio table  [1 2]
#   --build    directory holding mfrec_gen and mfrec_prep  [$MFREC_BIN, else <repo>/build]
#   --scratch  where the data files go (100x needs about 1.8 GB: 0.7 GB generated + 1.1 GB prepared)
#              [a fresh directory under $TMPDIR, removed at the end]
#   --keep     keep the data files (default: each run's files are deleted as soon as it is measured)
#
# Each rank runs under /usr/bin/time (apt-get install time): "seconds" is the wall time of the
# slowest rank's process (mpirun's own start-up, about 0.3 to 0.5 s, is left out), "RSS" is each
# rank's maximum resident set size. events/s = events / seconds. "load" is the 1-minute load
# average just before the run (the numbers are only as good as the machine is quiet).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
SIZES="1 10 100" RANKS="1 2" BUILD="" SCRATCH="" KEEP=0
while (($#)); do
  case "$1" in
    --sizes) SIZES="$2"; shift 2 ;;
    --ranks) RANKS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --scratch) SCRATCH="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_data: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
BUILD="${BUILD:-${MFREC_BIN:-$root/build}}"
gen="$BUILD/mfrec_gen" prep="$BUILD/mfrec_prep"
for p in "$gen" "$prep"; do [ -x "$p" ] || { echo "bench_data: $p not found (--build DIR)" >&2; exit 2; }; done
for s in $SIZES; do [[ "$s" =~ ^[1-9][0-9]*$ ]] || { echo "bench_data: bad size '$s'" >&2; exit 2; }; done
for r in $RANKS; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || { echo "bench_data: bad rank count '$r'" >&2; exit 2; }; done
if [ ! -x /usr/bin/time ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq time >/dev/null || { echo "bench_data: could not install time" >&2; exit 2; }
  else
    echo "bench_data: /usr/bin/time not found (apt-get install time)" >&2; exit 2
  fi
fi
BENCH=bench_data
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.0f", b / 1e6 }'; }
rate() { awk -v e="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.2fM", e / t / 1e6; else print "-" }'; }

cores=$(nproc)
echo "== mfrec data pipeline: sizes '$SIZES' x ranks '$RANKS'; $cores cores, $(free -g | awk '/^Mem:/ {print $2}') GiB;" \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); scratch $work"
fmt="%-5s %5s %5s | %8s %9s | %8s %9s | %14s %14s | %7s %8s\n"
printf "$fmt" size ranks load "gen s" "gen ev/s" "prep s" "prep ev/s" "gen RSS MB" "prep RSS MB" "data MB" "prep MB"
declare -A GT PT GR PR
for s in $SIZES; do
  users=$((s * 100000)) items=$((s * 2465)) events=$((s * 800000))
  for r in $RANKS; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    run gen "$r" "$gen" --users "$users" --items "$items" --events "$events" -o "$work/data_${s}x.h5" -q
    gt=$T grss=$RSS_ALL GR[$s,$r]=$RSS_MAX
    run prep "$r" "$prep" -i "$work/data_${s}x.h5" -o "$work/prep_${s}x.h5" -q
    pt=$T prss=$RSS_ALL PR[$s,$r]=$RSS_MAX
    GT[$s,$r]=$gt PT[$s,$r]=$pt
    printf "$fmt" "${s}x" "$r" "$load" "$gt" "$(rate "$events" "$gt")" "$pt" "$(rate "$events" "$pt")" \
      "$grss" "$prss" "$(mb "$work/data_${s}x.h5")" "$(mb "$work/prep_${s}x.h5")"
    [ "$KEEP" -eq 1 ] || rm -f "$work/data_${s}x.h5" "$work/prep_${s}x.h5"
  done
done

set -- $RANKS
base=$1; shift
if (($#)); then
  echo
  echo "== against $base rank(s), same invocation: speed-up = time($base) / time(n); RSS = max RSS(n) / max RSS($base)"
  fmt2="%-5s %5s | %12s %12s | %12s %12s\n"
  printf "$fmt2" size ranks "gen speed-up" "prep speed-up" "gen RSS" "prep RSS"
  for s in $SIZES; do
    for r in "$@"; do
      printf "$fmt2" "${s}x" "$r" \
        "$(awk -v a="${GT[$s,$base]}" -v b="${GT[$s,$r]}" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')" \
        "$(awk -v a="${PT[$s,$base]}" -v b="${PT[$s,$r]}" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')" \
        "$(awk -v a="${GR[$s,$base]}" -v b="${GR[$s,$r]}" 'BEGIN { printf "%.2f", (a > 0) ? b / a : 0 }')" \
        "$(awk -v a="${PR[$s,$base]}" -v b="${PR[$s,$r]}" 'BEGIN { printf "%.2f", (a > 0) ? b / a : 0 }')"
    done
  done
fi
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
