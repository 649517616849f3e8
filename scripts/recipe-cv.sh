#!/bin/bash
# Stratified k-fold comparison of training recipes on a manifest's train split (val untouched):
#   scripts/recipe-cv.sh BUILD MANIFEST OUTDIR RECIPE.json...
# Each recipe is trained as one member per fold (K=4, two runs at a time, one thread each),
# predicts its held-out fold, and scripts/recipe_cv.py pools the held-out predictions and
# bootstraps each recipe's difference from the first. docs/MODELS.md has the busi results.
set -euo pipefail
build=$1 manifest=$2 out=$3; shift 3
medlens=$(realpath "$build")/bin/medlens
here=$(dirname "$(realpath "$0")")
/usr/bin/python3 "$here/recipe_cv.py" folds "$manifest" "$out"
names=()
for recipe in "$@"; do
  name=$(basename "$recipe" .json); names+=("$name")
  /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j["members"]=1; json.dump(j,open(sys.argv[2],"w"),indent=1)' \
    "$recipe" "$out/$name.json"
done
export medlens out
run() {
  MEDLENS_THREADS=1 "$medlens" train --config "$out/$1.json" --manifest "$out/fold$2.csv" --out "$out/$1_$2" --quiet \
    > "$out/$1_$2.log" 2>&1
  MEDLENS_THREADS=1 "$medlens" predict --model "$out/$1_$2" --manifest "$out/fold$2_val.csv" --json > "$out/$1_$2.jsonl"
}
export -f run
for f in 0 1 2 3; do for n in "${names[@]}"; do echo "$n $f"; done; done | xargs -P2 -L1 bash -c 'run $0 $1'
/usr/bin/python3 "$here/recipe_cv.py" summary "$out" "${names[@]}"
