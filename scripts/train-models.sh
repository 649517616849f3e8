#!/usr/bin/env bash
# `make models`: retrains the default models from their recipes (models/NAME/train.json) on
# the full datasets. Reads ../shared/datasets by default, or DATASETS=/path.
# usage: scripts/train-models.sh [BUILD_DIR] [NAME...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
datasets=${DATASETS:-../shared/datasets}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(pneumoniamnist busi brain-lesion)
# brain-lesion needs no external data set: synthetic lesions in the installed ch2 template
# (mricron-data) with a synthetic second contrast, 240 windows of 48^3 voxels at 2 mm. The
# one-channel ablation (T1 only) is trained by the same recipe; the tests compare the two.
train_brain_lesion() {
  local t=/usr/share/mricron/templates data
  data=$(mktemp -d)
  "$build/bin/medlens" synth-lesions --background "$t/ch2.nii.gz" --region "$t/ch2bet.nii.gz" --spacing-mm 2 \
    --second-contrast t2-like --size '48;48;48' --count 240 --seed 2026 --normal-fraction 0.2 \
    --lesions-per-image '1;2' --radius-mm '4;10' --out "$data/windows"
  for model in brain-lesion brain-lesion-t1only; do
    echo "== training models/$model from synthetic lesions in ch2"
    rm -rf "models/$model.training"
    MEDLENS_THREADS=${MEDLENS_THREADS:-$(nproc)} "$build/bin/medlens" train --config "models/$model/train.json" \
      --manifest "$data/windows/manifest.csv" --out "models/$model.training"
    find "models/$model.training" -maxdepth 1 -type f -exec cp {} "models/$model/" \;
    mkdir -p "docs/models/$model"
    mv "models/$model/training_curve.png" "docs/models/$model/training_curve.png"
    rm -rf "models/$model.training"
  done
  rm -rf "$data"
}

for name in "${names[@]}"; do
  if [ "$name" = brain-lesion ]; then
    train_brain_lesion
    continue
  fi
  manifest="$datasets/$name/manifest.csv"
  if [ ! -f "$manifest" ]; then
    echo "train-models: $manifest not found; set DATASETS to the folder holding $name/manifest.csv" >&2
    exit 3
  fi
  echo "== training models/$name from $manifest"
  work="models/$name.training"
  rm -rf "$work"
  "$build/bin/medlens" train --config "models/$name/train.json" --manifest "$manifest" --out "$work"
  # Ship the bundle (card, weights, OOD reference, curves and plots); checkpoints stay out of git.
  find "$work" -maxdepth 1 -type f -exec cp {} "models/$name/" \;
  # The training curve is documentation, not something inference needs: it lives in docs/ so
  # the bundle stays under 10 MB.
  mkdir -p "docs/models/$name"
  mv "models/$name/training_curve.png" "docs/models/$name/training_curve.png"
  rm -rf "$work"
  # Trust fit on the shipped bundle: temperature, abstention threshold, OOD reference (ood.pt).
  # busi's three ResNet-18s leave ~400 kB of the 10 MB budget: a 32-component OOD reference.
  components=64
  [ "$name" = busi ] && components=32
  "$build/bin/medlens" calibrate --model "models/$name" --manifest "$manifest" --components "$components"
  "$build/bin/medlens" evaluate --model "models/$name" --manifest "$manifest" --split val
done
