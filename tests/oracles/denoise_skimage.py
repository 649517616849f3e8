#!/usr/bin/python3
"""Oracle for tests/transforms/denoise_test.cpp: scikit-image / scipy on the same pixels.
Images travel as raw little-endian float32 files, H and W give the shape.

usage:
  denoise_skimage.py ssim A B H W               -> prints "ssim psnr" (data_range 1)
  denoise_skimage.py nlm NOISY CLEAN H W PATCH DIST H_PARAM SIGMA
                                                -> prints the PSNR of denoise_nl_means(fast)
  denoise_skimage.py clahe IN H W OUT CLIP KERNEL
                                                -> equalize_adapthist of IN as uint8 (8-bit
                                                   pixels), kernel 0 = default, float32 to OUT
  denoise_skimage.py equalize IN H W OUT        -> equalize_hist, float32 to OUT
  denoise_skimage.py gaussian IN H W SY SX OUT  -> scipy.ndimage.gaussian_filter (voxel sigmas)
  denoise_skimage.py median IN H W SIZE OUT     -> scipy.ndimage.median_filter, mode nearest
"""
import sys

import numpy as np

# Each mode imports only what it uses: the test binary starts this script several times.


def load(path, h, w):
    return np.fromfile(path, dtype="<f4").reshape(int(h), int(w)).astype(np.float64)


def save(path, a):
    np.asarray(a, dtype="<f4").tofile(path)


mode, args = sys.argv[1], sys.argv[2:]
if mode == "ssim":
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    a, b = load(args[0], *args[2:4]), load(args[1], *args[2:4])
    s = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
    print(f"{s:.10f} {peak_signal_noise_ratio(a, b, data_range=1.0):.10f}")
elif mode == "nlm":
    from skimage.metrics import peak_signal_noise_ratio
    from skimage.restoration import denoise_nl_means
    noisy, clean = load(args[0], *args[2:4]), load(args[1], *args[2:4])
    out = denoise_nl_means(noisy, patch_size=int(args[4]), patch_distance=int(args[5]),
                           h=float(args[6]), sigma=float(args[7]), fast_mode=True)
    print(f"{peak_signal_noise_ratio(clean, out, data_range=1.0):.6f}")
elif mode == "clahe":
    from skimage import exposure
    img = np.round(load(*args[0:3])).astype(np.uint8)
    save(args[3], exposure.equalize_adapthist(img, kernel_size=int(args[5]) or None,
                                              clip_limit=float(args[4])))
elif mode == "equalize":
    from skimage import exposure
    save(args[3], exposure.equalize_hist(load(args[0], *args[1:3]).astype(np.float32)))
elif mode == "gaussian":
    from scipy import ndimage
    save(args[5], ndimage.gaussian_filter(load(args[0], *args[1:3]), (float(args[3]), float(args[4]))))
elif mode == "median":
    from scipy import ndimage
    save(args[4], ndimage.median_filter(load(args[0], *args[1:3]), size=int(args[3]), mode="nearest"))
else:
    sys.exit(f"unknown mode {mode}")
