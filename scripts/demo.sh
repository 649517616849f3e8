#!/usr/bin/env bash
# `make demo`: runs medlens on the bundled samples and says where the output is.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$build/bin/medlens"
out=out/demo
rm -rf "$out"
mkdir -p "$out"

# The main job: the default models on a chest X-ray and a breast ultrasound image.
chest=data/samples/pneumoniamnist/val_00001.png
echo "== medlens analyze $chest  (default model: models/pneumoniamnist)"
"$bin" analyze "$chest" --out "$out/chest"
echo
us=data/samples/busi/malignant_67.png
echo "== medlens analyze $us --model models/busi"
"$bin" analyze "$us" --model models/busi --out "$out/busi"
echo
sample=data/samples/busi/malignant_105.png
echo "== medlens analyze $sample --model models/busi  (an image the model is unsure about)"
"$bin" analyze "$sample" --model models/busi --out "$out/busi-unsure"
echo
brain=data/samples/brain-lesion
echo "== medlens analyze $brain/t1.nii.gz --channel contrast2=$brain/contrast2.nii.gz  (default model: models/brain-lesion)"
"$bin" analyze "$brain/t1.nii.gz" --channel "contrast2=$brain/contrast2.nii.gz" --out "$out/brain"
echo
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
echo "  open $(pwd)/$out/chest/report.html, $(pwd)/$out/busi/report.html, $(pwd)/$out/busi-unsure/report.html"
echo "  and $(pwd)/$out/brain/report.html (lesions listed with their size in mm, overlays and masks)"
ls -1 "$out"
