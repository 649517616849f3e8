#!/usr/bin/python3
"""Compare training recipes by stratified k-fold cross-validation on a manifest's train split,
without touching val (docs/MODELS.md, "Recipe comparison without val").

  recipe_cv.py folds MANIFEST OUTDIR [--k 4] [--seed 424242]   write fold manifests
  recipe_cv.py summary OUTDIR RECIPE...                         pooled metrics and paired bootstraps

The runs themselves are scripts/recipe-cv.sh. A benchmark-side script (python3 with scikit-learn
is a test/bench dependency, never a run-time one).
"""
import csv, glob, json, os, random, sys
import numpy as np
from sklearn.metrics import roc_auc_score


def folds(manifest, out, k=4, seed=424242):
    base = os.path.dirname(os.path.abspath(manifest))
    rows = [r for r in csv.DictReader(open(manifest)) if r["split"] == "train"]
    by = {}
    for r in rows:
        by.setdefault(r["label"], []).append(r)
    rng, fold = random.Random(seed), {}
    for label, rs in sorted(by.items()):
        rng.shuffle(rs)
        for i, r in enumerate(rs):
            fold[r["path"]] = i % k
    os.makedirs(out, exist_ok=True)
    for f in range(k):
        with open(f"{out}/fold{f}.csv", "w", newline="") as a, open(f"{out}/fold{f}_val.csv", "w", newline="") as b:
            wa, wb = csv.writer(a), csv.writer(b)
            wa.writerow(["path", "label", "split"])
            wb.writerow(["path", "label"])
            for r in rows:
                p = os.path.join(base, r["path"])
                held = fold[r["path"]] == f
                wa.writerow([p, r["label"], "val" if held else "train"])
                if held:
                    wb.writerow([p, r["label"]])


def ece(P, y, bins=15):
    conf, right, e = P.max(1), P.argmax(1) == y, 0.0
    for b in range(bins):
        m = (conf > b / bins) & (conf <= (b + 1) / bins)
        if m.any():
            e += m.mean() * abs(right[m].mean() - conf[m].mean())
    return e


def pooled(out, recipe, classes):
    P = {}
    for f in sorted(glob.glob(f"{out}/{recipe}_[0-9]*.jsonl")):
        for line in open(f):
            j = json.loads(line)
            P[j["input"]] = [j["probabilities"][c] for c in classes]
    keys = sorted(P)
    labels = {r["path"]: r["label"] for f in glob.glob(f"{out}/fold*_val.csv") for r in csv.DictReader(open(f))}
    return keys, np.array([P[k] for k in keys]), np.array([classes.index(labels[k]) for k in keys])


def summary(out, recipes):
    card = json.load(open(glob.glob(f"{out}/{recipes[0]}_0/card.json")[0]))
    classes, pos = card["classes"], card["classes"].index(card["positive_class"])
    res = {r: pooled(out, r, classes) for r in recipes}
    for r, (keys, P, y) in res.items():
        pred = P.argmax(1)
        bal = np.mean([(pred[y == c] == c).mean() for c in range(len(classes))])
        print(f"{r}: n={len(y)} {classes[pos]} AUC {roc_auc_score(y == pos, P[:, pos]):.3f} accuracy {(pred == y).mean():.3f} "
              f"balanced {bal:.3f} macro AUC {roc_auc_score(y, P, multi_class='ovr'):.3f} ECE {ece(P, y):.3f} "
              f"predicted {np.bincount(pred, minlength=len(classes)).tolist()} true {np.bincount(y, minlength=len(classes)).tolist()}")
    rng = np.random.default_rng(0)
    ka, A, y = res[recipes[0]]
    for r in recipes[1:]:
        kb, B, _ = res[r]
        assert ka == kb, f"{r} and {recipes[0]} were not run on the same folds"
        da, dc = [], []
        for _ in range(2000):
            i = rng.integers(0, len(y), len(y))
            da.append((B[i].argmax(1) == y[i]).mean() - (A[i].argmax(1) == y[i]).mean())
            dc.append(roc_auc_score(y[i] == pos, B[i][:, pos]) - roc_auc_score(y[i] == pos, A[i][:, pos]))
        print(f"{r} - {recipes[0]}: accuracy {np.mean(da):+.3f} (95% CI {np.percentile(da, 2.5):+.3f} to "
              f"{np.percentile(da, 97.5):+.3f}), AUC {np.mean(dc):+.3f} ({np.percentile(dc, 2.5):+.3f} to {np.percentile(dc, 97.5):+.3f})")


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "folds":
        k = int(a[a.index("--k") + 1]) if "--k" in a else 4
        seed = int(a[a.index("--seed") + 1]) if "--seed" in a else 424242
        folds(a[1], a[2], k, seed)
    elif len(a) >= 3 and a[0] == "summary":
        summary(a[1], a[2:])
    else:
        sys.exit(__doc__)
