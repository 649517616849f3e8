#!/usr/bin/python3
"""Oracle for tests/metrics: reads 'label p0 p1 ... pK-1' rows from a file, prints sklearn's
metrics as JSON (roc_auc positive-vs-rest for the last class, macro OvR AUC, accuracy, balanced
accuracy, macro F1, multi-class Brier)."""
import json
import sys

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

rows = np.loadtxt(sys.argv[1])
y = rows[:, 0].astype(int)
p = rows[:, 1:]
k = p.shape[1]
pred = p.argmax(1)
onehot = np.eye(k)[y]
out = {
    "auc_last": roc_auc_score(y == k - 1, p[:, -1]),
    "auc_ovr_macro": roc_auc_score(y, p, multi_class="ovr", average="macro") if k > 2 else roc_auc_score(y, p[:, 1]),
    "accuracy": accuracy_score(y, pred),
    "balanced_accuracy": balanced_accuracy_score(y, pred),
    "macro_f1": f1_score(y, pred, average="macro"),
    "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
}
print(json.dumps(out))
