"""Oracle for medlens's morphology and components: scipy.ndimage on the same voxels.

usage:
  spatial_morphology.py grey IN Z,Y,X SX,SY,SZ RADIUS OUTDIR
      Flat grey-scale erode/dilate/open/close with the ball {d : sum (d_a * s_a)^2 <= r^2}
      (tolerance 1e-9 relative, as medlens); voxels outside the image take no part (erosion
      cval=+inf, dilation cval=-inf). Writes OUTDIR/{erode,dilate,open,close}.f32.
  spatial_morphology.py label IN Z,Y,X THRESHOLD OUT.json
      ndimage.label of IN > THRESHOLD with face and full connectivity: component sizes sorted
      largest first, and the bounding box (x0,y0,z0,x1,y1,z1 inclusive) of the largest.
  spatial_morphology.py fill IN Z,Y,X THRESHOLD OUT
      ndimage.binary_fill_holes of IN > THRESHOLD (face connectivity), float32 0/1.

IN is float32 little-endian (Z,Y,X); a 2-D image has Z = 1 and is processed in 2-D.
"""
import json
import os
import sys

import numpy as np
import scipy.ndimage as ndi


def load(path, shape):
    a = np.fromfile(path, dtype="<f4").reshape([int(v) for v in shape.split(",")])
    return a[0] if a.shape[0] == 1 else a


def ball(spacing, radius, ndim):
    s = spacing[:ndim][::-1]  # array axes run (z,) y, x
    r2 = radius * radius * (1 + 1e-9)
    reach = [int(np.floor(radius / v * np.sqrt(1 + 1e-9))) for v in s]
    grids = np.meshgrid(*[np.arange(-n, n + 1) * v for n, v in zip(reach, s)], indexing="ij")
    return sum(g * g for g in grids) <= r2


mode = sys.argv[1]
if mode == "grey":
    src, shape, spacing, radius, out = sys.argv[2:7]
    a = load(src, shape).astype(np.float64)
    fp = ball([float(v) for v in spacing.split(",")], float(radius), a.ndim)
    erode = lambda x: ndi.grey_erosion(x, footprint=fp, mode="constant", cval=np.inf)
    dilate = lambda x: ndi.grey_dilation(x, footprint=fp, mode="constant", cval=-np.inf)
    results = {"erode": erode(a), "dilate": dilate(a), "open": dilate(erode(a)), "close": erode(dilate(a))}
    for name, r in results.items():
        r.astype("<f4").tofile(os.path.join(out, name + ".f32"))
elif mode == "label":
    src, shape, threshold, out = sys.argv[2:6]
    m = load(src, shape) > float(threshold)
    result = {}
    for name, rank in (("faces", 1), ("full", m.ndim)):
        labels, count = ndi.label(m, ndi.generate_binary_structure(m.ndim, rank))
        sizes = np.bincount(labels.ravel())[1:]
        order = np.argsort(-sizes, kind="stable")
        box = ndi.find_objects(labels)[order[0]]
        lo = [s.start for s in box][::-1] + [0] * (3 - m.ndim)
        hi = [s.stop - 1 for s in box][::-1] + [0] * (3 - m.ndim)
        result[name] = {"sizes": sizes[order].tolist(), "box": lo + hi}
    with open(out, "w") as f:
        json.dump(result, f)
elif mode == "fill":
    src, shape, threshold, out = sys.argv[2:6]
    m = load(src, shape) > float(threshold)
    ndi.binary_fill_holes(m).astype("<f4").tofile(out)
else:
    sys.exit("unknown mode " + mode)
