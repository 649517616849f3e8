#!/usr/bin/env bash
# Adversarial training, measured: the pneumoniamnist recipe (models/pneumoniamnist/train.json,
# one member, 15 epochs) trained plainly and with PGD (eps 2/255, 3 steps, half of every batch),
# then both attacked with PGD (eps 2/255, 10 steps) on the val split and evaluated clean.
# Writes docs/models/pneumoniamnist/adversarial.json (the README's robust-training table).
# usage: scripts/robust-training.sh [BUILD_DIR]   (DATASETS=/path, default ../shared/datasets)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
medlens="$build/bin/medlens"
manifest="${DATASETS:-../shared/datasets}/pneumoniamnist/manifest.csv"
[ -f "$manifest" ] || { echo "robust-training: $manifest not found; set DATASETS" >&2; exit 3; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--config models/pneumoniamnist/train.json --manifest "$manifest" --members 1 --epochs 15 --quiet)
"$medlens" train "${common[@]}" --out "$work/plain"
"$medlens" train "${common[@]}" --out "$work/adversarial" --adversarial "eps=0.00784313725490196,steps=3,ratio=0.5"
for m in plain adversarial; do
  "$medlens" evaluate --model "$work/$m" --manifest "$manifest" --split val --json > "$work/$m.eval.json"
  "$medlens" attack --model "$work/$m" --manifest "$manifest" --split val --method pgd --eps 0.00784313725490196 \
    --steps 10 --json > "$work/$m.attack.json"
done
mkdir -p docs/models/pneumoniamnist
{
  echo "{"
  for m in plain adversarial; do
    echo "\"$m\": {\"evaluate\": $(cat "$work/$m.eval.json"), \"attack\": $(cat "$work/$m.attack.json")}"
    [ "$m" = plain ] && echo ","
  done
  echo "}"
} > docs/models/pneumoniamnist/adversarial.json
echo "wrote docs/models/pneumoniamnist/adversarial.json"
