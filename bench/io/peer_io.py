#!/usr/bin/python3
"""Peer for bench/io: the same reads done the usual Python way. A series is read with
pydicom, sorted along the slice normal, stacked and rescaled to float32 (what medlens does);
a .nii.gz is read with nibabel into float32. Prints 'name seconds peak_mb' per task (best of
several runs, like Google Benchmark's steady state).

usage: peer_io.py MR_FOLDER CT_FOLDER NIFTI
"""
import os
import resource
import sys
import time

import nibabel as nib
import numpy as np
import pydicom


def read_series(folder):
    slices = [pydicom.dcmread(os.path.join(folder, f)) for f in os.listdir(folder)]
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda s: float(np.dot(normal, np.array(s.ImagePositionPatient, dtype=float))))
    vol = np.empty((len(slices), slices[0].Rows, slices[0].Columns), dtype=np.float32)
    for k, s in enumerate(slices):
        slope = float(getattr(s, "RescaleSlope", 1.0))
        intercept = float(getattr(s, "RescaleIntercept", 0.0))
        vol[k] = s.pixel_array.astype(np.float32) * slope + intercept
    return vol


def read_nifti(path):
    return nib.load(path).get_fdata(dtype=np.float32)


def best(fn, arg, seconds=2.0):
    times = []
    start = time.perf_counter()
    while not times or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t)
    return min(times)


mr, ct, nii = sys.argv[1:4]
for name, fn, arg in (("read_series_mr_181", read_series, mr),
                      ("read_series_ct_160x512", read_series, ct),
                      ("read_nifti_gz_8.7M", read_nifti, nii)):
    s = best(fn, arg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"{name} {s:.6f} {peak:.1f}", flush=True)
