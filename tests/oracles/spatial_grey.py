"""Oracle for medlens's grey: skimage.color.rgb2gray on the image as skimage decodes it.

usage: spatial_grey.py IMAGE OUTDIR

Writes OUTDIR/rgb.f32 (the decoded RGB values, float32 planar (3,H,W)), OUTDIR/grey.f32
(rgb2gray of those values as float64, so no rescaling to [0,1], stored as float32 (H,W)) and
OUTDIR/shape.txt ("H W").
"""
import os
import sys

import numpy as np
import skimage.color
import skimage.io

path, out = sys.argv[1:3]
rgb = skimage.io.imread(path)[..., :3].astype(np.float64)
grey = skimage.color.rgb2gray(rgb)
np.ascontiguousarray(np.moveaxis(rgb, 2, 0), dtype="<f4").tofile(os.path.join(out, "rgb.f32"))
grey.astype("<f4").tofile(os.path.join(out, "grey.f32"))
with open(os.path.join(out, "shape.txt"), "w") as f:
    f.write("%d %d" % grey.shape)
