#!/usr/bin/env bash
# Installs every Debian package medlens, its tests, benchmarks and demo use. Idempotent: it asks
# dpkg first and only calls apt-get for what is missing, so a second run costs a second.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build ccache pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev            # libFuzzer + ASan/UBSan for the parser fuzzers
  # libraries
  libtorch-dev libopenblas0-pthread
  libinsighttoolkit5-dev libgdcm-dev libfftw3-dev uuid-dev
  libdcmtk-dev dcmtk
  libopencv-dev libopenslide-dev libtiff-dev
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libsqlite3-dev libcpp-httplib-dev
  zlib1g-dev libssl-dev
  # tools the tests call
  dicom3tools tesseract-ocr tesseract-ocr-eng
  # oracles and peers for tests and benchmarks (never used at run time)
  python3 python3-numpy python3-torch python3-pydicom python3-nibabel python3-skimage python3-sklearn
  # real images shipped in Debian packages, read by tests
  mricron-data insighttoolkit5-examples
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
