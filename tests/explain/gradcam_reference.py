#!/usr/bin/python3
"""Reference for tests/explain/torch_reference_test.cpp: builds a small CNN in PyTorch with a
`features` and a `head` submodule, traces it with torch.jit.trace, and computes Grad-CAM for
the class with more positive evidence (target.txt: a or b) at the output of `features` with PyTorch autograd (Selvaraju et al. 2017: channel
weights = spatial mean of d logit / d activation; map = ReLU(sum_k w_k A_k)), upsampled to the
input with the receptive-field-aligned linear interpolation medlens documents (cell k of an axis
downsampled by s centred on input voxel s*k; past the last centre, the last cell's value).

usage: gradcam_reference.py OUT_DIR
writes OUT_DIR/model.ts, target.txt, input.f32 (1x1x32x32), cam.f32 (32x32), cam_low.f32 (8x8)
"""
import sys

import numpy as np
import torch
import torch.nn as nn

out = sys.argv[1]
torch.manual_seed(5)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))

    def forward(self, x):
        return self.head(self.features(x))


net = Net()
with torch.no_grad():
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    # Head weights of both signs and unit scale, so each class's map has positive and negative
    # parts (the ReLU matters).
    net.head[2].weight.normal_()
net.eval()
x = torch.rand(1, 1, 32, 32)
torch.jit.trace(net, x).save(f"{out}/model.ts")



def gradcam(target):
    act = net.features(x)
    act.retain_grad()
    net.head(act)[0, target].backward()
    weights = act.grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * act).sum(1))[0].detach().numpy().astype(np.float64)


# The class whose map has more positive evidence (a random network may have none for one).
cams = [gradcam(0), gradcam(1)]
target = int(cams[1].sum() > cams[0].sum())
cam = cams[target]
with open(f"{out}/target.txt", "w") as f:
    f.write("ab"[target])


def aligned_weights(n, size):
    w = np.zeros((size, n))
    for p in range(size):
        u = min(p * n / size, n - 1)
        i = int(u)
        f = u - i
        w[p, i] += 1 - f
        if f > 0:
            w[p, min(i + 1, n - 1)] += f
    return w


wy = aligned_weights(cam.shape[0], 32)
wx = aligned_weights(cam.shape[1], 32)
up = wy @ cam @ wx.T
np.asarray(x, dtype=np.float32).tofile(f"{out}/input.f32")
up.astype(np.float32).tofile(f"{out}/cam.f32")
cam.astype(np.float32).tofile(f"{out}/cam_low.f32")
