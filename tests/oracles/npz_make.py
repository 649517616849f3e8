"""Oracle for medlens's .npz reader: writes .npz archives with numpy (np.savez and
np.savez_compressed, as MedMNIST does) plus hand-made zips, and what numpy says they hold.

usage: npz_make.py OUTDIR

OUTDIR/manifest.json:
  "archives": {file: [{"name", "shape", "dtype"}...]}  numpy's listing (str(dtype))
  "cases": [{"file", "key", "index", "shape": [C,Z,Y,X], "raw", "label"}]  images to read,
           raw = float32 little-endian (C,Z,Y,X) dump of what numpy holds
  "bad": [{"file", "why"}]  archives a reader must refuse
"""
import io
import json
import os
import sys
import zipfile

import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(20240601)
archives, cases, bad = {}, [], []


def u8(*shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


medmnist = {
    "train_images": u8(6, 28, 28), "train_labels": rng.integers(0, 2, (6, 1), dtype=np.uint8),
    "val_images": u8(3, 28, 28), "val_labels": rng.integers(0, 2, (3, 1), dtype=np.uint8),
    "test_images": u8(2, 28, 28), "test_labels": rng.integers(0, 2, (2, 1), dtype=np.uint8),
}
rgb = {"train_images": u8(4, 28, 28, 3),
       "train_labels": rng.integers(0, 9, (4, 1), dtype=np.uint8)}
dtypes = {
    "f32": rng.normal(size=(3, 16, 20)).astype(np.float32),
    "i16": rng.integers(-30000, 30000, (2, 10, 12), dtype=np.int16),
    "be_i2": rng.integers(-3000, 3000, (10, 12)).astype(">i2"),
    "be_f4": rng.normal(size=(4, 4)).astype(">f4"),
    "f8": rng.normal(size=(5, 7)) * 1e3,
    "f16": rng.normal(size=(2, 3, 4)).astype(np.float16),
    "boolean": rng.integers(0, 2, (4, 6)).astype(bool),
    "u16": rng.integers(0, 65536, (9, 11), dtype=np.uint16),
    "u32": rng.integers(0, 1 << 24, (5, 5), dtype=np.uint32),
    "i64": rng.integers(-(1 << 24), 1 << 24, (3, 3), dtype=np.int64),
    "i8": rng.integers(-128, 128, (3, 8, 8), dtype=np.int8),
    "fortran": np.asfortranarray(rng.normal(size=(3, 5, 7)).astype(np.float32)),
    "fortran_rgb": np.asfortranarray(u8(2, 6, 5, 3)),
    "rgb_single": u8(8, 9, 3),
    "grey_stack1": u8(2, 6, 5, 1),
    "volumes": rng.integers(-1000, 1000, (2, 4, 5, 6), dtype=np.int16),
    "labels_only": np.arange(5),
}


def to_czyx(a):
    """numpy's image (after picking the index) in medlens's (C,Z,Y,X) layout."""
    if a.ndim == 2:
        return a[None, None]
    if a.ndim == 3 and a.shape[2] in (1, 3):  # (H,W,C)
        return np.moveaxis(a, 2, 0)[:, None]
    if a.ndim == 3:  # (D,H,W)
        return a[None]
    raise ValueError(a.shape)


def add_case(file, arrays, key, index, label=None):
    a = arrays[key]
    stack = a.ndim == 4 or (a.ndim == 3 and a.shape[2] != 3)
    img = to_czyx(a[index] if stack else a)
    raw = "case%d.f32" % len(cases)
    np.ascontiguousarray(img, dtype="<f4").tofile(os.path.join(out, raw))
    cases.append({"file": file, "key": key, "index": index, "shape": list(img.shape),
                  "raw": raw, "label": label})


def listing(path):
    with np.load(path) as z:
        return [{"name": k, "shape": list(z[k].shape), "dtype": str(z[k].dtype)} for k in z.files]


for name, save in (("plain", np.savez), ("compressed", np.savez_compressed)):
    for group, arrays in (("medmnist", medmnist), ("rgb", rgb), ("dtypes", dtypes)):
        file = "%s_%s.npz" % (group, name)
        save(os.path.join(out, file), **arrays)
        archives[file] = listing(os.path.join(out, file))
    lab = lambda a, i: " ".join(str(int(v)) for v in a[i].ravel())
    for key, index in (("", 0), ("train_images", 5), ("val_images", 2), ("test_images", 1)):
        k = key or "train_images"
        add_case("medmnist_%s.npz" % name, medmnist, k, index, lab(medmnist[k.replace("images", "labels")], index))
        cases[-1]["key"] = key
    add_case("rgb_%s.npz" % name, rgb, "train_images", 3, lab(rgb["train_labels"], 3))
    for key in dtypes:
        if key == "labels_only":
            continue
        a = dtypes[key]
        stack = a.ndim == 4 or (a.ndim == 3 and a.shape[2] != 3)
        add_case("dtypes_%s.npz" % name, dtypes, key, a.shape[0] - 1 if stack else 0)

# The same arrays through zip64 records: shrink zipfile's limits so that every central
# directory entry carries a zip64 extra field and the archive a zip64 end record.
zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 16, 1
np.savez_compressed(os.path.join(out, "zip64.npz"), **medmnist)
zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = (1 << 31) - 1, (1 << 16) - 1
archives["zip64.npz"] = listing(os.path.join(out, "zip64.npz"))
add_case("zip64.npz", medmnist, "test_images", 1)

# .npy format versions 2.0 and 3.0 (4-byte header length), written by numpy itself.
with zipfile.ZipFile(os.path.join(out, "versions.npz"), "w") as z:
    for version, key in (((1, 0), "v1"), ((2, 0), "v2"), ((3, 0), "v3")):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, dtypes["i16"], version=version)
        z.writestr(key + ".npy", buf.getvalue())
archives["versions.npz"] = listing(os.path.join(out, "versions.npz"))
for key in ("v1", "v2", "v3"):
    add_case("versions.npz", {key: dtypes["i16"]}, key, 1)

# Archives with valid zip structure (correct CRCs) but bad .npy content.
def npy_bytes(header, data=b"", version=1):
    header = header + " " * ((-len(header) - 11) % 64) + "\n" if version == 1 else header
    pre = b"\x93NUMPY" + bytes([version, 0])
    size = len(header).to_bytes(2 if version == 1 else 4, "little")
    return pre + size + header.encode() + data


bad_npys = {
    "garbage_header": npy_bytes("{'descr': '<f4' 'shape': (2, 2)}", b"\0" * 16),
    "missing_key": npy_bytes("{'descr': '<f4', 'shape': (2, 2), }", b"\0" * 16),
    "complex_dtype": npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2), }", b"\0" * 32),
    "structured": npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 2), }", b"\0" * 16),
    "negative_dim": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2), }", b"\0" * 16),
    "overflow_shape": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", b"\0" * 16),
    "short_data": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (100, 100), }", b"\0" * 40),
    "bad_magic": b"\x93NUMPX\x01\x00" + npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", b"\0" * 16)[8:],
    "bad_version": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", b"\0" * 16, version=1).replace(b"NUMPY\x01", b"NUMPY\x07", 1),
    "huge_header_len": b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{}",
    "not_an_image": npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }", b"\0" * 28),
}
for why, blob in bad_npys.items():
    file = "bad_%s.npz" % why
    with zipfile.ZipFile(os.path.join(out, file), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("images.npy", blob)
    bad.append({"file": file, "why": why})

# Header spacing numpy does not write but a parser must accept: no spaces, no trailing comma,
# double quotes, Python 2 longs, key order changed.
odd = npy_bytes('{"shape":(3,4),"fortran_order":False,"descr":"<u2"}',
                np.arange(12, dtype="<u2").tobytes())
odd2 = npy_bytes("{ 'descr' : '|u1' , 'fortran_order' : False , 'shape' : ( 2 , 3 , 4 , ) , }",
                 np.arange(24, dtype="u1").tobytes())
odd3 = npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2L, 5L), }",
                 np.arange(10, dtype="<i4").tobytes())
with zipfile.ZipFile(os.path.join(out, "odd_headers.npz"), "w") as z:
    z.writestr("tight.npy", odd)
    z.writestr("spaced.npy", odd2)
    z.writestr("longs.npy", odd3)
odd_arrays = {"tight": np.arange(12, dtype="<u2").reshape(3, 4),
              "spaced": np.arange(24, dtype="u1").reshape(2, 3, 4),
              "longs": np.arange(10, dtype="<i4").reshape(2, 5)}
archives["odd_headers.npz"] = [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)}
                               for k, v in odd_arrays.items()]
add_case("odd_headers.npz", odd_arrays, "tight", 0)
add_case("odd_headers.npz", odd_arrays, "spaced", 1)
add_case("odd_headers.npz", odd_arrays, "longs", 0)

# Real-world archives from skimage (an older numpy's writer), by absolute path.
skdata = "/usr/lib/python3/dist-packages/skimage/data/"
for file in ("chessboard_GRAY_U8.npz", "chessboard_RGB_U8.npz"):
    with np.load(skdata + file) as z:
        arrays = {k: z[k] for k in z.files}
    archives[skdata + file] = listing(skdata + file)
    add_case(skdata + file, arrays, "arr_0", 0)
    cases[-1]["key"] = ""

with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump({"archives": archives, "cases": cases, "bad": bad}, f, indent=1)
