#!/usr/bin/env bash
# Builds the parser fuzz targets with clang (libFuzzer + AddressSanitizer + UBSan) and runs each
# for a bounded time on a seed corpus of real files. Any crash, leak or UB report fails.
# usage: scripts/fuzz.sh [BUILD_DIR] [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
seconds=${2:-20}

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEDLENS_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$build" -j "$(nproc)"

corpus="$build/corpus"
rm -rf "$corpus" "$build"/fuzz_*-{crash,leak,timeout,oom,slow-unit}-*
mkdir -p "$corpus/dicom" "$corpus/nifti" "$corpus/npz" "$corpus/manifest" "$corpus/raster"
# Seeds: small real files from the packages the tests already use.
find /usr/lib/python3/dist-packages/pydicom/data/test_files -maxdepth 1 -name '*.dcm' -size -64k \
  -exec cp {} "$corpus/dicom/" \;
find /usr/lib/python3/dist-packages/nibabel/tests/data -maxdepth 1 \( -name '*.nii' -o -name '*.nii.gz' \) \
  -size -64k -exec cp {} "$corpus/nifti/" \;
/usr/bin/python3 - "$corpus/npz" <<'PY'
import sys, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
np.savez(out + "/plain.npz", train_images=rng.integers(0, 255, (2, 8, 8), dtype=np.uint8),
         train_labels=np.array([[0], [1]]))
np.savez_compressed(out + "/deflate.npz", images=rng.random((3, 4, 4), dtype=np.float32))
PY

cp data/samples/*/manifest.csv "$corpus/manifest/" 2>/dev/null || true
# Small real rasters of each format: vendored PNGs, and JPEG/TIFF/BMP made from one of them.
pngs=(data/samples/pneumoniamnist/*.png)
cp "${pngs[@]:0:8}" "$corpus/raster/"
/usr/bin/python3 - "$corpus/raster" <<'PY'
import glob, sys
from skimage import io
out = sys.argv[1]
img = io.imread(sorted(glob.glob(out + "/*.png"))[0])
io.imsave(out + "/seed.jpg", img, quality=90, check_contrast=False)
io.imsave(out + "/seed.tif", img, check_contrast=False)
io.imsave(out + "/seed.bmp", img, check_contrast=False)
PY
printf 'path,label,split,T2\n"a,1.png",benign,train,t2/a.png\n"b\r\nc.png",x,val,\n' > "$corpus/manifest/quoted.csv"

# Oversized allocations (a length field claiming gigabytes) fail as in production instead of
# being reported as out-of-memory: DCMTK allocates with nothrow and reports the failure.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:max_allocation_size_mb=2048
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for target in "$build"/fuzz/fuzz_*; do
  name=$(basename "$target")
  kind=${name#fuzz_}
  seeds="$corpus/$kind"
  [ -d "$seeds" ] || seeds="$corpus/$kind"
  mkdir -p "$seeds"
  echo "fuzz: $name for ${seconds}s"
  if ! "$target" "$seeds" -max_total_time="$seconds" -rss_limit_mb=3072 -malloc_limit_mb=4096 -timeout=20 \
       -print_final_stats=1 -artifact_prefix="$build/$name-" 2> "$build/$name.log"; then
    echo "fuzz: $name FAILED; last lines of $build/$name.log:" >&2
    tail -n 40 "$build/$name.log" >&2
    # CI shows the end of the output: repeat the report's head (the frames that name the culprit)
    # and the input itself, so a finding on another machine can be reproduced here.
    echo "fuzz: $name report, first frames:" >&2
    grep -m1 -A 24 -E "ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error" "$build/$name.log" >&2 || true
    for artifact in "$build/$name"-*; do
      [ -f "$artifact" ] && [ "$(stat -c %s "$artifact")" -le 16384 ] || continue
      echo "fuzz: $artifact (base64; decode with base64 -d):" >&2
      base64 -w 0 "$artifact" >&2
      echo >&2
    done
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/$name.log" | sed "s/^/fuzz: $name /"
  fi
done
exit $status
