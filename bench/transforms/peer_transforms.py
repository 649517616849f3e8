#!/usr/bin/python3
"""Peer for bench/transforms: the same operations done with scikit-image (numpy where
scikit-image has none), on the volume bench_transforms wrote. Prints 'name seconds peak_mb'
per task: the best of a few runs, one run for the slow ones.

  clahe_256cube      equalize_adapthist on each of the 256 slices (defaults: kernel 1/8,
                     clip 0.01, 256 bins), as medlens's per-slice CLAHE
  nlm_slice_256      denoise_nl_means(fast_mode=True) on slice 128, patch 5, distance 6
  nlm_block_64       the same on the 64^3 block [96:160]^3, patch 5, distance 4
  diffusion_256cube  5 iterations of Perona-Malik (exponential conductance, 6 neighbours,
                     time step 1/7) in numpy: scikit-image and scipy have no anisotropic
                     diffusion, so this is the usual hand-written stand-in, a simpler PDE
  resample_256cube   skimage.transform.rescale(order=1, anti_aliasing=False) by 1.25 (320^3)

usage: peer_transforms.py VOL_F32 NOISE_SD
"""
import resource
import sys
import time

import numpy as np
from skimage import exposure, transform
from skimage.restoration import denoise_nl_means


def best(fn, seconds):
    times = []
    start = time.perf_counter()
    while not times or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def clahe(vol):
    return np.stack([exposure.equalize_adapthist(s) for s in vol])


def perona_malik(vol, iterations=5, kappa=0.1, dt=1.0 / 7):
    out = vol.astype(np.float32, copy=True)
    for _ in range(iterations):
        flux = np.zeros_like(out)
        for axis in range(3):
            d = np.diff(out, axis=axis)
            f = np.exp(-(d / kappa) ** 2) * d
            lo = [slice(None)] * 3
            hi = [slice(None)] * 3
            lo[axis] = slice(None, -1)
            hi[axis] = slice(1, None)
            flux[tuple(lo)] += f
            flux[tuple(hi)] -= f
        out += dt * flux
    return out


vol = np.fromfile(sys.argv[1], dtype="<f4").reshape(256, 256, 256)
sd = float(sys.argv[2])
block = np.ascontiguousarray(vol[96:160, 96:160, 96:160])
tasks = (
    ("clahe_256cube", lambda: clahe(vol), 0),
    ("nlm_slice_256", lambda: denoise_nl_means(vol[128], patch_size=5, patch_distance=6, h=0.8 * sd,
                                               sigma=sd, fast_mode=True), 2.0),
    ("nlm_block_64", lambda: denoise_nl_means(block, patch_size=5, patch_distance=4, h=0.8 * sd,
                                              sigma=sd, fast_mode=True), 0),
    ("diffusion_256cube", lambda: perona_malik(vol), 0),
    ("resample_256cube", lambda: transform.rescale(vol, 1.25, order=1, anti_aliasing=False), 0),
)
for name, fn, seconds in tasks:
    s = best(fn, seconds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"{name} {s:.6f} {peak:.1f}", flush=True)
