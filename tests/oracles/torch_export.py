#!/usr/bin/python3
"""Oracle for tests/nn/torchscript_test.cpp: builds a small CNN in PyTorch with a `features`
and a `head` submodule, traces it with torch.jit.trace, saves it, and writes its outputs for a
fixed input so medlens can be checked against PyTorch itself.

usage: torch_export.py OUT_DIR
"""
import sys

import numpy as np
import torch
import torch.nn as nn

out = sys.argv[1]
torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))

    def forward(self, x):
        return self.head(self.features(x))


net = Net()
# Non-trivial batch-norm statistics, as a trained model has.
with torch.no_grad():
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
net.eval()
x = torch.rand(3, 1, 28, 28)
traced = torch.jit.trace(net, x)
traced.save(f"{out}/model.ts")
with torch.no_grad():
    y = net(x)
    f = net.features(x)
np.asarray(x, dtype=np.float32).tofile(f"{out}/input.f32")
np.asarray(y, dtype=np.float32).tofile(f"{out}/logits.f32")
np.asarray(f, dtype=np.float32).tofile(f"{out}/features.f32")
