"""Oracle: what nibabel reads from NIfTI files, for medlens's NIfTI tests.

Usage: nibabel_dump.py OUTDIR FILE...

For the i-th FILE (0-based) writes OUTDIR/i.json and, when nibabel can load the voxels,
OUTDIR/i.f32: the values as little-endian float32 in medlens's (C,Z,Y,X) order, X fastest
(nibabel's Fortran order). Colour (RGB24/RGBA32) samples become channels: channel =
volume * samples + colour. Files nibabel cannot load get {"ok": false, "error": ...}; complex
files are reported with "complex": true. Exits 0 unless the arguments are wrong.
"""
import gzip
import json
import os
import struct
import sys

import nibabel as nib
import numpy as np


def sizeof_hdr(path):
    opener = gzip.open if open(path, 'rb').read(2) == b'\x1f\x8b' else open
    with opener(path, 'rb') as f:
        head = f.read(4)
    if len(head) < 4:
        raise ValueError('file too short')
    le, be = struct.unpack('<i', head)[0], struct.unpack('>i', head)[0]
    return 540 if 540 in (le, be) else 348


def image_class(path):
    lower = path.lower()
    pair = lower.endswith(('.hdr', '.img', '.hdr.gz', '.img.gz'))
    v2 = sizeof_hdr(path) == 540
    if pair:
        return nib.Nifti2Pair if v2 else nib.Nifti1Pair
    return nib.Nifti2Image if v2 else nib.Nifti1Image


def medlens_values(img):
    """Values and (C, Z, Y, X) shape as medlens lays them out."""
    dtype = img.get_data_dtype()
    if dtype.fields:
        raw = np.asanyarray(img.dataobj)
        raw = raw.reshape(raw.shape + (1,) * max(0, 3 - raw.ndim), order='F')
        arr = np.stack([raw[name].astype(np.float32) for name in dtype.names], axis=3)
    else:
        arr = img.get_fdata().astype(np.float32)
        arr = arr.reshape(arr.shape + (1,) * max(0, 3 - arr.ndim), order='F')
    x, y, z = arr.shape[:3]
    c = int(np.prod(arr.shape[3:], dtype=np.int64)) if arr.ndim > 3 else 1
    return arr.ravel(order='F'), [c, z, y, x]


def dump(path, out_prefix):
    try:
        img = image_class(path).from_filename(path)
        hdr = img.header
        dtype = hdr.get_data_dtype()
        if dtype.kind == 'c':
            return {'ok': False, 'complex': True, 'error': f'complex dtype {dtype}'}
        affine = np.asarray(img.affine, dtype=np.float64)
        values, shape = medlens_values(img)
    except Exception as e:  # noqa: BLE001 - any failure means "nibabel cannot load it"
        return {'ok': False, 'error': f'{type(e).__name__}: {e}'}
    values.astype('<f4').tofile(out_prefix + '.f32')
    zooms = [float(z) for z in hdr.get_zooms()[:3]]
    zooms += [1.0] * (3 - len(zooms))
    sform, scode = hdr.get_sform(coded=True)
    try:  # an unused qform may be invalid while the sform is fine
        qform, qcode = hdr.get_qform(coded=True)
    except Exception:  # noqa: BLE001
        qform, qcode = None, int(hdr['qform_code'])
    return {
        'ok': True,
        'shape': shape,
        'nibabel_shape': [int(s) for s in img.shape],
        'affine': affine.ravel().tolist(),
        'zooms': zooms,
        'column_norms': np.sqrt((affine[:3, :3] ** 2).sum(axis=0)).tolist(),
        'dtype': str(dtype),
        'xyzt_units': int(hdr['xyzt_units']),
        'qform_code': int(qcode),
        'sform_code': int(scode),
        'qform': None if qform is None else np.asarray(qform).ravel().tolist(),
        'sform': None if sform is None else np.asarray(sform).ravel().tolist(),
        'descrip': hdr['descrip'].item().decode('latin-1'),
    }


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    for i, path in enumerate(sys.argv[2:]):
        prefix = os.path.join(out_dir, str(i))
        result = dump(path, prefix)
        result['path'] = path
        with open(prefix + '.json', 'w') as f:
            json.dump(result, f)


if __name__ == '__main__':
    main()
