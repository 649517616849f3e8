"""Oracle for medlens's raster reader: what skimage.io.imread decodes.

usage: skimage_read.py OUTDIR IMAGE...

For the i-th IMAGE writes OUTDIR/i.f32, the values as float32 little-endian in planar order
(channel, row, column), and OUTDIR/i.json: {"shape": skimage's shape, (H,W) or (H,W,C),
"dtype": its dtype}.
"""
import json
import os
import sys

import numpy as np
import skimage.io

out = sys.argv[1]
for i, path in enumerate(sys.argv[2:]):
    a = skimage.io.imread(path)
    planar = a[None] if a.ndim == 2 else np.moveaxis(a, 2, 0)
    np.ascontiguousarray(planar, dtype="<f4").tofile(os.path.join(out, "%d.f32" % i))
    with open(os.path.join(out, "%d.json" % i), "w") as f:
        json.dump({"shape": list(a.shape), "dtype": str(a.dtype)}, f)
