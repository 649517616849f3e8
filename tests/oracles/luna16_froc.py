#!/usr/bin/python3
"""Oracle for tests/metrics/detection_test: the FROC of the LUNA16 evaluation script
(noduleCADEvaluationLUNA16.py: computeFROC with sklearn's roc_curve, missed lesions listed and
excluded, FP rate = fpr * false-positive candidates / images), read at 1/8 .. 8 FPs per image
with np.interp as that script does. Arguments: one or more triples FILE LESIONS IMAGES, FILE
holding 'image score hit' rows (hit -1 = false positive). Prints {"sensitivity_at", "cpm"} per
triple, one a line."""
import json
import sys

import numpy as np
from sklearn.metrics import roc_curve


def froc_at_rates(rows, lesions, images):
    # One entry per lesion hit (its best score), one per false positive; missed lesions excluded.
    best = {}
    gt, prob = [], []
    for image, score, hit in rows:
        if hit < 0:
            gt.append(0.0)
            prob.append(score)
        else:
            key = (int(image), int(hit))
            best[key] = max(best.get(key, -np.inf), score)
    for score in best.values():
        gt.append(1.0)
        prob.append(score)
    detected = len(best)

    fpr, tpr, _ = roc_curve(gt, prob)
    if sum(gt) == len(gt):
        fps = np.zeros(len(fpr))
    else:
        fps = fpr * (len(prob) - detected) / images
    sens = tpr * detected / lesions
    rates = [0.125, 0.25, 0.5, 1, 2, 4, 8]
    at = [float(np.interp(r, fps, sens)) for r in rates]
    return {"sensitivity_at": at, "cpm": float(np.mean(at))}


args = sys.argv[1:]
for k in range(0, len(args), 3):
    rows = np.loadtxt(args[k], ndmin=2)
    print(json.dumps(froc_at_rates(rows, int(args[k + 1]), int(args[k + 2]))))
