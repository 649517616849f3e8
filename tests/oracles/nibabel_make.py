"""Oracle input: NIfTI files written with nibabel's header classes, for medlens's NIfTI tests.

Usage: nibabel_make.py OUTDIR

Writes a matrix of small files into OUTDIR covering every datatype medlens reads, both byte
orders, NIfTI-1 and -2, .nii/.nii.gz and .hdr/.img pairs, scaling, sform/qform/fallback affines,
colour, 1-D/2-D/5-D shapes, extensions and the header quirks nibabel fixes on load. Prints the
file names written, one per line (for a pair, the .hdr). The expected values come from
nibabel_dump.py reading these files, not from this script.
"""
import gzip
import io
import os
import sys

import nibabel as nib
import numpy as np

RNG = np.random.default_rng(20240611)


def rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def affine(zooms, angles=(0.0, 0.0, 0.0), flip=False, origin=(-40.5, 22.25, 13.0)):
    a = np.eye(4)
    r = rotation(*angles)
    if flip:
        r = r @ np.diag([1, 1, -1])
    a[:3, :3] = r @ np.diag(zooms)
    a[:3, 3] = origin
    return a


def sample_values(dtype, shape):
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind in 'iu':
        info = np.iinfo(dt)
        v = RNG.integers(info.min, info.max, size=n, dtype=dt, endpoint=True)
        v[:2] = [info.min, info.max]
    else:
        v = (RNG.standard_normal(n) * 1000).astype(dt)
        specials = [np.nan, np.inf, -np.inf, -0.0, 1e-40, 3e38]
        if dt == np.float64:
            specials += [1e300, 1e-320]
        v[:len(specials)] = specials
    return v.reshape(shape, order='F')


def header_class(version, pair):
    return {(1, False): nib.Nifti1Header, (1, True): nib.nifti1.Nifti1PairHeader,
            (2, False): nib.Nifti2Header, (2, True): nib.nifti2.Nifti2PairHeader}[(version, pair)]


def write(out_dir, name, arr, dtype, endian='<', version=1, pair=False, gz=False,
          qform=None, sform=None, qcode=1, scode=1, zooms=None, slope=None, inter=None,
          fields=None, extension=None):
    hdr = header_class(version, pair)(endianness=endian)
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(arr.shape)
    hdr.set_zooms(zooms if zooms is not None else (1.0,) * arr.ndim)
    if qform is not None:
        hdr.set_qform(qform, code=qcode)
    if sform is not None:
        hdr.set_sform(sform, code=scode)
    hdr['xyzt_units'] = 10
    hdr['descrip'] = f'medlens oracle {name}'.encode()
    if slope is not None:
        hdr['scl_slope'] = slope
    if inter is not None:
        hdr['scl_inter'] = inter
    if extension is not None:
        hdr.extensions.append(nib.nifti1.Nifti1Extension(6, extension))
    for key, value in (fields or {}).items():
        hdr[key] = value
    stored = np.dtype(dtype).newbyteorder(endian) if np.dtype(dtype).fields is None else dtype
    data = np.asarray(arr, dtype=stored).tobytes(order='F')
    buf = io.BytesIO()
    hdr.write_to(buf)
    opener = gzip.compress if gz else (lambda b: b)
    suffix = '.gz' if gz else ''
    if pair:
        with open(os.path.join(out_dir, name + '.hdr' + suffix), 'wb') as f:
            f.write(opener(buf.getvalue()))
        with open(os.path.join(out_dir, name + '.img' + suffix), 'wb') as f:
            f.write(opener(b'\0' * int(hdr['vox_offset']) + data))
        return name + '.hdr' + suffix
    head = buf.getvalue()
    head += b'\0' * (int(hdr['vox_offset']) - len(head))
    with open(os.path.join(out_dir, name + '.nii' + suffix), 'wb') as f:
        f.write(opener(head + data))
    return name + '.nii' + suffix


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    names = []
    shape = (5, 4, 3)
    oblique = affine((0.9, 1.1, 2.5), (0.3, -0.2, 0.5))
    flipped = affine((1.2, 0.8, 3.0), (-0.1, 0.4, 0.25), flip=True)
    modes = ['sform', 'qform', 'both', 'fallback']
    dtypes = ['uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64',
              'float32', 'float64']
    k = 0
    for dtype in dtypes:
        for endian in '<>':
            for version in (1, 2):
                for gz in (False, True):
                    mode = modes[(k + k // 8) % 4]
                    scaled = k % 3 == 0
                    k += 1
                    kw = {}
                    if mode in ('sform', 'both'):
                        kw['sform'] = oblique
                    if mode == 'qform':
                        kw['qform'], kw['sform'], kw['scode'] = flipped, None, 0
                    if mode == 'both':
                        kw['qform'] = flipped
                    if mode == 'fallback':
                        kw['zooms'] = (0.9, 1.1, 2.5)
                    if scaled:
                        kw['slope'], kw['inter'] = (2.5, -7.25) if dtype[0] in 'iu' else (0.5, 3.0)
                    name = f'{dtype}_{"le" if endian == "<" else "be"}_v{version}_{mode}'
                    names.append(write(out, name, sample_values(dtype, shape), dtype, endian,
                                       version, gz=gz, **kw))
    # Pairs: plain and gzip'd (nibabel pairs .hdr.gz with .img.gz).
    names.append(write(out, 'pair_int16', sample_values('int16', shape), 'int16', '<', 1,
                       pair=True, sform=oblique, slope=0.25, inter=1.0))
    names.append(write(out, 'pair_float32_be_v2', sample_values('float32', shape), 'float32', '>',
                       2, pair=True, gz=True, qform=flipped))
    # Colour, 3-D and 4-D.
    for dtype, label in ((nib.nifti1.data_type_codes.dtype[128], 'rgb24'),
                         (nib.nifti1.data_type_codes.dtype[2304], 'rgba32')):
        for shp in ((4, 3, 2), (4, 3, 2, 2)):
            arr = np.zeros(shp, dtype=dtype)
            for f in dtype.names:
                arr[f] = RNG.integers(0, 255, size=shp, endpoint=True)
            names.append(write(out, f'{label}_{len(shp)}d', arr, dtype, sform=oblique))
    # Shapes: 1-D, 2-D (fallback), 5-D, and NIfTI-2 beyond int16 dims.
    names.append(write(out, 'vector_1d', sample_values('float32', (7,)), 'float32',
                       zooms=(2.0,)))
    names.append(write(out, 'plane_2d', sample_values('uint8', (6, 5)), 'uint8',
                       zooms=(0.5, 0.25)))
    names.append(write(out, 'series_5d', sample_values('int16', (3, 4, 2, 2, 3)), 'int16',
                       sform=oblique))
    names.append(write(out, 'wide_v2', sample_values('uint8', (40000, 2, 1)), 'uint8', version=2,
                       gz=True, sform=affine((0.25, 0.25, 1.0))))
    # Header quirks nibabel fixes or interprets on load.
    names.append(write(out, 'ext_comment', sample_values('int16', shape), 'int16', sform=oblique,
                       extension=b'a comment extension, padded by nibabel'))
    names.append(write(out, 'slope_zero', sample_values('int16', shape), 'int16', sform=oblique,
                       slope=0.0, inter=5.0))
    names.append(write(out, 'slope_nan', sample_values('int16', shape), 'int16', sform=oblique,
                       slope=np.nan, inter=5.0))
    names.append(write(out, 'qfac_zero', sample_values('int16', shape), 'int16', qform=oblique,
                       scode=0, fields={'pixdim': [0, 0.9, 1.1, 2.5, 1, 1, 1, 1], 'sform_code': 0}))
    names.append(write(out, 'bad_sform_code', sample_values('int16', shape), 'int16',
                       qform=flipped, sform=oblique, fields={'sform_code': 9}))
    names.append(write(out, 'quat_180', sample_values('int16', shape), 'int16', qform=oblique,
                       fields={'quatern_b': 0.0, 'quatern_c': 0.0, 'quatern_d': 1.0,
                               'sform_code': 0}))
    names.append(write(out, 'plane_2d_qform_zero_pixdim3', sample_values('int16', (6, 5)), 'int16',
                       qform=affine((0.5, 0.25, 1.0), (0.0, 0.0, 0.3)),
                       fields={'pixdim': [1, 0.5, 0.25, 0, 1, 1, 1, 1], 'sform_code': 0}))
    names.append(write(out, 'freesurfer_vector', sample_values('float32', (40, 1, 1)), 'float32',
                       sform=affine((1.0, 1.0, 1.0)),
                       fields={'dim': [3, -1, 1, 1, 1, 1, 1, 1], 'glmin': 40}))
    names.append(write(out, 'units_meters', sample_values('int16', shape), 'int16',
                       sform=affine((0.0009, 0.0011, 0.0025), (0.1, 0.0, 0.0),
                                    origin=(-0.04, 0.02, 0.01)),
                       fields={'xyzt_units': 1 | 8}))
    names.append(write(out, 'units_microns', sample_values('int16', shape), 'int16',
                       sform=affine((900.0, 1100.0, 2500.0)), fields={'xyzt_units': 3}))
    # What nibabel refuses (or medlens does not read): medlens must refuse these too.
    names.append(write(out, 'complex64', (RNG.standard_normal(shape) + 1j).astype('complex64'),
                       'complex64', sform=oblique))
    names.append(write(out, 'bad_quaternion', sample_values('int16', shape), 'int16',
                       qform=oblique, fields={'quatern_b': 0.9, 'quatern_c': 0.9,
                                              'quatern_d': 0.0, 'sform_code': 0}))
    names.append(write(out, 'bad_inter', sample_values('int16', shape), 'int16', sform=oblique,
                       slope=2.0, inter=np.inf))
    print('\n'.join(names))


if __name__ == '__main__':
    main()
