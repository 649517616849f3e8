#!/usr/bin/env bash
# `make demo`: runs medlens on the bundled samples and says where the output is.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$build/bin/medlens"
out=out/demo
rm -rf "$out"
mkdir -p "$out"

sample=data/samples/busi/malignant_105.png
echo "== medlens info $sample"
"$bin" info "$sample"
echo
echo "== medlens convert: PNG -> DICOM Secondary Capture, NIfTI, windowed PNG"
"$bin" convert "$sample" "$out/malignant_105.dcm"
"$bin" convert "$sample" "$out/malignant_105.nii.gz"
"$bin" convert "$out/malignant_105.dcm" "$out/malignant_105_windowed.png" --window 100,160
"$bin" info "$out/malignant_105.dcm" --json > "$out/malignant_105.info.json"
echo
echo "demo output: $(pwd)/$out"
ls -1 "$out"
