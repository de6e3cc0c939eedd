#!/usr/bin/env bash
# One command for a fresh Debian 12 machine (as root, or with sudo):
#   bash tools/setup.sh demo   install what is missing, build, run the default job end to end
#   bash tools/setup.sh test   install what is missing, build, run the whole test suite
#   bash tools/setup.sh build  install what is missing and build
# Environment: BUILD_DIR (default build), JOBS (default: the number of cores),
#              RANKS (ranks of the demo job, default 2), MFREC_ARCH (-march value, default native:
#              built here to run here; AVX2/FMA make the solvers ~2x faster; MFREC_ARCH= for none).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}

packages=(build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools libeigen3-dev
  libboost-program-options-dev libspdlog-dev nlohmann-json3-dev libyaml-cpp-dev
  libcpp-httplib-dev libhnswlib-dev libgtest-dev libbenchmark-dev libopenblas-dev wrk
  python3 python3-h5py python3-numpy python3-matplotlib
  slurm-wlm munge iproute2 time jq)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
MFREC_ARCH=${MFREC_ARCH-native}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DMFREC_ARCH="$MFREC_ARCH" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"

# Open MPI refuses to run as root unless told; more ranks than cores need oversubscription.
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1

case "$mode" in
  build) ;;
  test) cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS" ;;
  demo) exec bash tools/demo.sh "$BUILD_DIR" ;;
  *) echo "usage: $0 [demo|test|build]" >&2; exit 2 ;;
esac
