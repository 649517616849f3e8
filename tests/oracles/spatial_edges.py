"""Oracle for medlens's edges: scikit-image's Sobel and Canny on the same voxels.

usage:
  spatial_edges.py sobel IN Z,Y,X OUT [IN Z,Y,X OUT ...]
      skimage.filters.sobel (magnitude sqrt(sum_i sobel_i^2 / ndim), kernels [1 2 1]/4 x
      [1 0 -1], mode 'reflect') as float32, for each (IN, shape, OUT) triple.
  spatial_edges.py canny IN Y,X SIGMA LOW HIGH OUT
      skimage.feature.canny with quantile thresholds, as float32 0/1.

IN is float32 little-endian; a leading Z of 1 is dropped.
"""
import sys

import numpy as np


def load(path, shape):
    a = np.fromfile(path, dtype="<f4").reshape([int(v) for v in shape.split(",")]).astype(np.float64)
    return a[0] if a.ndim == 3 and a.shape[0] == 1 else a


mode = sys.argv[1]
if mode == "sobel":
    import skimage.filters  # imported per mode: skimage.feature alone costs a second

    args = sys.argv[2:]
    for src, shape, out in zip(args[0::3], args[1::3], args[2::3]):
        skimage.filters.sobel(load(src, shape)).astype("<f4").tofile(out)
elif mode == "canny":
    import skimage.feature

    src, shape, sigma, low, high, out = sys.argv[2:8]
    e = skimage.feature.canny(load(src, shape), sigma=float(sigma), low_threshold=float(low),
                              high_threshold=float(high), use_quantiles=True)
    e.astype("<f4").tofile(out)
else:
    sys.exit("unknown mode " + mode)
