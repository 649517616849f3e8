#!/usr/bin/python3
"""Peer for bench/lesions: medlens's 3-D U-Net (nn/unet.cpp: residual blocks, instance norm,
leaky ReLU, max-pool down, transposed-conv up) written in plain PyTorch with medlens's parameter
names, and the simple sliding window people write around it: Gaussian importance (sigma =
window/8, floored at 1e-3 per axis), windows spread evenly with half overlap, a weight volume
for normalisation.

usage: peer_lesions.py DATA.pt THREADS BATCH SIZE [OUT.f32]

DATA.pt (written by bench_lesions) holds the network's architecture numbers (arch.*), medlens's
weights (net.*) and the input volumes (input.SIZE, (2, S, S, S)). After one warm-up batch, runs
the sliding window once on input.SIZE and prints 'params N' and 'sw_SIZE seconds peak_mb'; with
OUT.f32, also writes the probabilities there (raw float32, (K, S, S, S)) for bench_lesions to
compare with its own.
"""
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, 1, 1, bias=False)
        self.norm1 = nn.InstanceNorm3d(cout, affine=True)
        self.conv2 = nn.Conv3d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.InstanceNorm3d(cout, affine=True)
        self.skip = nn.Conv3d(cin, cout, 1, 1, 0, bias=False)

    def forward(self, x):
        y = F.leaky_relu(self.norm1(self.conv1(x)), 0.01)
        y = self.norm2(self.conv2(y)) + self.skip(x)
        return F.leaky_relu(y, 0.01)


class UNet(nn.Module):
    def __init__(self, in_channels, out_channels, depth, width):
        super().__init__()
        w = lambda l: width * (1 << min(l, 4))
        self.depth = depth
        for l in range(depth + 1):
            setattr(self, f"enc{l}", Block(in_channels if l == 0 else w(l - 1), w(l)))
        for l in range(depth - 1, -1, -1):
            setattr(self, f"up{l}", nn.ConvTranspose3d(w(l + 1), w(l), 2, 2))
            setattr(self, f"dec{l}", Block(2 * w(l), w(l)))
        self.head0 = nn.Conv3d(w(0), out_channels, 1)

    def forward(self, x):
        skips = []
        for l in range(self.depth + 1):
            if l:
                x = F.max_pool3d(x, 2)
            x = getattr(self, f"enc{l}")(x)
            skips.append(x)
        for l in range(self.depth - 1, -1, -1):
            x = getattr(self, f"dec{l}")(torch.cat([getattr(self, f"up{l}")(x), skips[l]], 1))
        return self.head0(x)


def starts(size, window, overlap=0.5):
    span = size - window
    if span == 0:
        return [0]
    step = max(1.0, window * (1 - overlap))
    n = math.ceil(span / step - 1e-9) + 1
    return [round(i * span / (n - 1)) for i in range(n)]


def gaussian(window):
    x = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-x * x / (2 * (window / 8) ** 2))
    return (g / g.max()).clamp_min(1e-3).float()


def sliding_window(net, x, window, batch):
    """Softmax probabilities (K, D, H, W) of `net` over volume x (C, D, H, W) >= window."""
    g = gaussian(window)
    imp = g[:, None, None] * g[None, :, None] * g[None, None, :]
    grid = [(z, y, w) for z in starts(x.shape[1], window) for y in starts(x.shape[2], window)
            for w in starts(x.shape[3], window)]
    out, weight = None, torch.zeros(x.shape[1:])
    for lo in range(0, len(grid), batch):
        part = grid[lo:lo + batch]
        xb = torch.stack([x[:, z:z + window, y:y + window, w:w + window] for z, y, w in part])
        p = torch.softmax(net(xb), 1) * imp
        if out is None:
            out = torch.zeros((p.shape[1],) + tuple(x.shape[1:]))
        for (z, y, w), pi in zip(part, p):
            out[:, z:z + window, y:y + window, w:w + window] += pi
            weight[z:z + window, y:y + window, w:w + window] += imp
    return out / weight


def main():
    data, threads, batch, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    archive = torch.jit.load(data).state_dict()
    a = {k[len("arch."):]: int(v.item()) for k, v in archive.items() if k.startswith("arch.")}
    net = UNet(a["in_channels"], a["out_channels"], a["depth"], a["width"])
    net.load_state_dict({k[len("net."):]: v for k, v in archive.items() if k.startswith("net.")})
    net.eval()
    print(f"params {sum(p.numel() for p in net.parameters())}", flush=True)
    x, p = archive[f"input.{size}"], a["patch"]
    with torch.inference_mode():
        net(x[None, :, :p, :p, :p].repeat(batch, 1, 1, 1, 1))
        t = time.perf_counter()
        out = sliding_window(net, x, p, batch)
        s = time.perf_counter() - t
    print(f"sw_{size} {s:.6f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0:.1f}", flush=True)
    if len(sys.argv) > 5:
        out.contiguous().numpy().tofile(sys.argv[5])


if __name__ == "__main__":
    main()
