"""Oracle for medlens's resample: scipy.ndimage.map_coordinates on the same sample positions.

usage: spatial_resample.py IN Z,Y,X ORDER OUT_Z,OUT_Y,OUT_X STEP_Z,STEP_Y,STEP_X OUT

IN is float32 little-endian (Z,Y,X). Output voxel (k,j,i) samples the input at continuous index
(k*STEP_Z, j*STEP_Y, i*STEP_X), the ITK ResampleImageFilter grid for new/old spacing = STEP.
ORDER 1 (linear) clamps to the edge voxel (mode 'nearest'); ORDER 3 is the cubic B-spline with
mirror-symmetric boundaries (mode 'mirror'), the convention of ITK's B-spline decomposition.
Writes OUT as float32 (OUT_Z,OUT_Y,OUT_X).
"""
import sys

import numpy as np
import scipy.ndimage as ndi


def triple(text, kind):
    return [kind(v) for v in text.split(",")]


src, shape, order, out_shape, steps, out = sys.argv[1:7]
a = np.fromfile(src, dtype="<f4").reshape(triple(shape, int)).astype(np.float64)
order = int(order)
grids = [np.arange(n) * s for n, s in zip(triple(out_shape, int), triple(steps, float))]
coords = np.meshgrid(*grids, indexing="ij")
mode = "nearest" if order == 1 else "mirror"
r = ndi.map_coordinates(a, coords, order=order, mode=mode, prefilter=order > 1)
r.astype("<f4").tofile(out)
