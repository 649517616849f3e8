#!/usr/bin/python3
"""Peer for bench/nn: the same ResNet-18 in plain PyTorch (python3-torch; torchvision is not
needed), with medlens's parameter names (stem.*, layer1..4.*, fc.*) so weights move both ways.

Modes (bench_nn runs each; all print 'name seconds [peak_mb]' lines unless stated):

  loop DATA.pt THREADS
      One epoch of AdamW on preloaded tensors, batches of 64 taken in order (bench_nn wrote the
      data already shuffled, with medlens's initial weights and reference logits), then
      inference (no grad, batch 32) on the first 1,000 images. Prints train_loop and infer
      seconds, the first batch's loss, and the largest difference between this network's
      eval-mode logits and medlens's on the same weights (architecture check).

  train MANIFEST OUT_DIR THREADS
      End to end, what `medlens train` does for one epoch: read the PNGs named in the manifest,
      preprocess (resize to 64x64 bilinear, z-score), train one epoch (class-weighted
      cross-entropy, AdamW, medlens's warm-up learning rate), validate (loss, AUC), fit a
      temperature on the validation logits and save the weights. Timed by bench_nn from outside
      (startup included); prints a summary line.

  predict BUNDLE MANIFEST THREADS
      End to end, what `medlens predict --json` does: load a medlens bundle (card.json and
      weights.pt), read each PNG, apply the card's preprocessing, batch 32, softmax with the
      card's temperature, print one JSON line per image. Timed by bench_nn from outside.
"""
import csv
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


# ---- the network -------------------------------------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    """medlens's ResNet (nn/resnet.cpp) for the options a card's architecture gives."""

    def __init__(self, in_channels=1, num_classes=2, blocks=(2, 2, 2, 2), width=64, small_input=False,
                 dropout=0.0, stage_dropout=0.0, dims=2, **_):
        super().__init__()
        if dims != 2 or stage_dropout:
            raise SystemExit("peer_nn: only 2-D ResNets without stage dropout are mirrored")
        if small_input:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU())
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        cin = width
        for s, n in enumerate(blocks):
            cout = width << s
            setattr(self, f"layer{s + 1}",
                    nn.Sequential(*[BasicBlock(cin if b == 0 else cout, cout, 2 if b == 0 and s > 0 else 1)
                                    for b in range(n)]))
            cin = cout
        self.stages = len(blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        y = self.stem(x)
        for s in range(self.stages):
            y = getattr(self, f"layer{s + 1}")(y)
        return self.fc(self.dropout(y.flatten(2).mean(2)))


def load_medlens_weights(net, path):
    """A medlens weights file (torch::serialize archive, float16 or float32) into `net`."""
    saved = torch.jit.load(path).state_dict()
    own = net.state_dict()
    missing = [k for k in own if k not in saved]
    if missing:
        raise SystemExit(f"peer_nn: {path} lacks {missing[:3]}")
    net.load_state_dict({k: saved[k].to(own[k].dtype) for k in own})


# ---- preprocessing (the card's pipeline; zscore and resize are what bench_nn uses) ---------

def read_png(path):
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32).copy())  # (H, W)


def preprocess(img, steps):
    x = img[None, None]  # (1, C=1, H, W)
    for s in steps:
        op = s["op"]
        if op == "resize":
            size = s.get("size", [0, 0])
            h, w = (size[1] or x.shape[2]), (size[0] or x.shape[3])
            if s.get("mode", "linear") != "linear":
                raise SystemExit("peer_nn: only linear resize is mirrored")
            if (h, w) != tuple(x.shape[2:]):
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        elif op == "zscore":
            if "threshold" in s:
                raise SystemExit("peer_nn: zscore with a threshold is not mirrored")
            sd = x.std().item()
            x = (x - x.mean()) / (sd if sd > 1e-12 else 1.0)
        else:
            raise SystemExit(f"peer_nn: preprocessing op '{op}' is not mirrored")
    return x[0]  # (C, H, W)


def read_manifest(path):
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if not os.path.isabs(r["path"]):
            r["path"] = os.path.join(base, r["path"])
    return rows


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---- modes --------------------------------------------------------------------------------

def mode_loop(data_path):
    archive = torch.jit.load(data_path).state_dict()
    x, y = archive["data.x"], archive["data.y"].long()
    net = ResNet(in_channels=x.shape[1], num_classes=2, dropout=0.2)
    net.load_state_dict({k[len("init."):]: v for k, v in archive.items() if k.startswith("init.")})
    with torch.no_grad():
        net.eval()
        diff = (net(x[:64]) - archive["ref.logits"]).abs().max().item()
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    batch, n = 64, x.shape[0]
    first = None
    t = time.perf_counter()
    for lo in range(0, n, batch):
        xb, yb = x[lo:lo + batch], y[lo:lo + batch]
        opt.zero_grad()
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        v = loss.item()
        first = v if first is None else first
    s = time.perf_counter() - t
    print(f"train_loop {s:.6f} {peak_mb():.1f}")
    net.eval()
    m = min(n, 1000)
    with torch.no_grad():
        t = time.perf_counter()
        for lo in range(0, m, 32):
            net(x[lo:lo + 32])
        s = time.perf_counter() - t
    print(f"infer {s:.6f} {peak_mb():.1f}")
    print(f"first_loss {first:.6f}")
    print(f"logit_maxdiff {diff:.3e}")


def auc(scores, labels):
    pos = [s for s, l in zip(scores, labels) if l == 1]
    neg = [s for s, l in zip(scores, labels) if l == 0]
    if not pos or not neg:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return (ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def mode_train(manifest, out):
    steps = [{"op": "resize", "size": [64, 64], "mode": "linear"}, {"op": "zscore"}]
    rows = read_manifest(manifest)
    classes = sorted({r["label"] for r in rows})

    def load(split):
        sel = [r for r in rows if r["split"] == split]
        x = torch.stack([preprocess(read_png(r["path"]), steps) for r in sel])
        y = torch.tensor([classes.index(r["label"]) for r in sel])
        return x, y

    xt, yt = load("train")
    xv, yv = load("val")
    counts = torch.bincount(yt, minlength=len(classes)).double()
    weight = (len(yt) / (len(classes) * counts)).float()
    torch.manual_seed(0)
    net = ResNet(in_channels=1, num_classes=len(classes), dropout=0.2)
    base_lr, batch = 1e-3, 64
    opt = torch.optim.AdamW(net.parameters(), lr=base_lr, weight_decay=1e-4)
    order = torch.randperm(len(yt))
    per_epoch = (len(yt) + batch - 1) // batch
    net.train()
    loss_sum = 0.0
    for b in range(per_epoch):
        idx = order[b * batch:(b + 1) * batch]
        for g in opt.param_groups:  # medlens's cosine schedule starts with a warm-up epoch
            g["lr"] = base_lr * (0.1 + 0.9 * b / per_epoch)
        opt.zero_grad()
        loss = F.cross_entropy(net(xt[idx]), yt[idx], weight=weight)
        loss.backward()
        opt.step()
        loss_sum += loss.item()
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(xv[s:s + batch]) for s in range(0, len(yv), batch)])
    val_loss = F.cross_entropy(logits, yv).item()
    val_auc = auc(torch.softmax(logits, 1)[:, 1].tolist(), yv.tolist())
    # Temperature scaling on the validation logits (medlens: golden-section search on log T;
    # here the usual PyTorch recipe, LBFGS on log T).
    log_t = torch.zeros(1, requires_grad=True)
    lbfgs = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)

    def closure():
        lbfgs.zero_grad()
        l = F.cross_entropy(logits / log_t.exp(), yv)
        l.backward()
        return l

    lbfgs.step(closure)
    os.makedirs(out, exist_ok=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()},
               os.path.join(out, "weights.pt"))
    print(f"train loss {loss_sum / per_epoch:.4f} val loss {val_loss:.4f} val auc {val_auc:.4f} "
          f"T {log_t.exp().item():.3f}", file=sys.stderr)


def mode_predict(bundle, manifest):
    with open(os.path.join(bundle, "card.json")) as f:
        card = json.load(f)
    arch = {k: v for k, v in card["architecture"].items() if k != "name"}
    net = ResNet(**arch)
    load_medlens_weights(net, os.path.join(bundle, card.get("weights", "weights.pt")))
    net.eval()
    steps = card["preprocessing"]["transforms"]
    temperature = card.get("calibration", {}).get("temperature", 1.0)
    classes = card["classes"]
    model = f"{card['name']}@{card['version']}"
    paths = [r["path"] for r in read_manifest(manifest)]
    out = sys.stdout
    with torch.inference_mode():
        for s in range(0, len(paths), 32):
            part = paths[s:s + 32]
            x = torch.stack([preprocess(read_png(p), steps) for p in part])
            probs = torch.softmax(net(x) / temperature, 1).double()
            for p, row in zip(part, probs.tolist()):
                k = max(range(len(row)), key=row.__getitem__)
                out.write(json.dumps({"input": p, "model": model, "probabilities": dict(zip(classes, row)),
                                      "label": classes[k], "status": "ok"}) + "\n")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(int(args[-1]))
    if mode == "loop":
        mode_loop(args[0])
    elif mode == "train":
        mode_train(args[0], args[1])
    elif mode == "predict":
        mode_predict(args[0], args[1])
    else:
        raise SystemExit(f"peer_nn: unknown mode {mode}")


if __name__ == "__main__":
    main()
