#!/usr/bin/python3
"""Oracle for tests/io/dicom_test.cpp: decodes every file in pydicom's test_files with pydicom
and numpy alone (numpy + RLE handlers, both pure numpy), applies the same value rules medlens
documents (MONOCHROME1 inverted on the stored range, YBR_FULL to RGB, Modality LUT rescale,
RT dose grid scaling), and writes, per decodable file, raw float32 in (C,Z,Y,X) order plus one
JSON index of every file and what pydicom made of it.

A second pass decodes the JPEG-family files with Pillow (pydicom's pillow handler) so the test
can check medlens's lossy decodes are close to an independent decoder.

usage: pydicom_dump.py OUT_DIR
"""
import glob
import json
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.pixel_data_handlers import numpy_handler, pillow_handler, rle_handler
from pydicom.pixel_data_handlers.util import apply_modality_lut, convert_color_space

warnings.simplefilter("ignore")
out_dir = sys.argv[1]
src = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")


def to_czyx(ds, arr):
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1))
    if spp == 1:
        arr = arr.reshape(frames, arr.shape[-2], arr.shape[-1])[None]
    else:
        arr = arr.reshape(frames, arr.shape[-3], arr.shape[-2], spp).transpose(3, 0, 1, 2)
    return arr


def values(ds, arr):
    pi = str(ds.get("PhotometricInterpretation", ""))
    if pi in ("YBR_FULL", "YBR_FULL_422"):
        arr = convert_color_space(arr, pi, "RGB")
    arr = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr
    if pi == "MONOCHROME1":
        bits = int(ds.BitsStored)
        if int(ds.PixelRepresentation) == 1:
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            lo, hi = 0, (1 << bits) - 1
        arr = lo + hi - arr
    out = apply_modality_lut(arr, ds).astype(np.float64)
    if ds.get("Modality") == "RTDOSE" and "DoseGridScaling" in ds:
        out = out * float(ds.DoseGridScaling)
    return to_czyx(ds, out.astype(np.float32))


index = {}
for path in sorted(glob.glob(os.path.join(src, "*"))):
    if os.path.isdir(path):
        continue
    name = os.path.basename(path)
    entry = {"status": "unreadable"}
    try:
        ds = pydicom.dcmread(path, force=True)
        meta = getattr(ds, "file_meta", None)
        entry["transfer_syntax"] = str(getattr(meta, "TransferSyntaxUID", "") or "")
        if "PixelData" not in ds:
            entry["status"] = "no-pixels"
        else:
            pydicom.config.pixel_data_handlers = [numpy_handler, rle_handler]
            try:
                v = values(ds, ds.pixel_array)
                entry["status"] = "decoded"
                entry["shape"] = list(v.shape)
                v.tofile(os.path.join(out_dir, name + ".f32"))
            except Exception as e:  # noqa: BLE001 - the oracle records why
                entry["status"] = "not-decodable"
                entry["why"] = str(e)[:120]
                pydicom.config.pixel_data_handlers = [pillow_handler]
                try:
                    ds2 = pydicom.dcmread(path, force=True)
                    v = values(ds2, ds2.pixel_array)
                    entry["pillow_shape"] = list(v.shape)
                    v.tofile(os.path.join(out_dir, name + ".pillow.f32"))
                except Exception:  # noqa: BLE001
                    pass
    except Exception as e:  # noqa: BLE001
        entry["why"] = str(e)[:120]
    index[name] = entry

with open(os.path.join(out_dir, "index.json"), "w") as f:
    json.dump({"folder": src, "files": index}, f, indent=1)
