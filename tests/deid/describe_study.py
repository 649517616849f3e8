"""Prints, as JSON, what the multi-series test checks of every DICOM file under a folder:
identifiers, every referenced UID at any depth, and a hash of the decoded pixels.

usage: /usr/bin/python3 describe_study.py FOLDER
"""
import hashlib
import json
import os
import sys

import pydicom

REFS = {"ReferencedSOPInstanceUID": "sop", "SeriesInstanceUID": "series", "StudyInstanceUID": "study",
        "FrameOfReferenceUID": "frame", "ReferencedFrameOfReferenceUID": "frame"}


def walk(ds, out, depth):
    for e in ds:
        if e.VR == "SQ":
            for item in e.value:
                walk(item, out, depth + 1)
        elif depth > 0 and e.keyword in REFS and e.value:
            out.append([REFS[e.keyword], str(e.value)])


files = {}
for root, _, names in os.walk(sys.argv[1]):
    for n in sorted(names):
        path = os.path.join(root, n)
        ds = pydicom.dcmread(path)
        refs = []
        walk(ds, refs, 0)
        info = {k: str(ds.get(k, "")) for k in ["SOPInstanceUID", "SOPClassUID", "SeriesInstanceUID",
                                               "StudyInstanceUID", "FrameOfReferenceUID", "PatientID",
                                               "PatientName", "AccessionNumber", "Modality",
                                               "InstanceNumber", "StudyDate"]}
        info["refs"] = refs
        if "PixelData" in ds:
            info["pixels"] = hashlib.sha256(ds.pixel_array.tobytes()).hexdigest()
        files[os.path.relpath(path, sys.argv[1])] = info
print(json.dumps(files, indent=1))
