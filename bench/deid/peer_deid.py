#!/usr/bin/python3
"""Peer for bench/deid: Basic Profile de-identification done the usual Python way with pydicom,
with the same Table E.1-1 rows medlens uses (parsed from src/deid/profile_table.inc) and the
same keyed pseudonyms (HMAC-SHA-256 UIDs as 2.25.<decimal>, patient ID and accession number
as hex). Compound actions resolve as medlens resolves a Type 3 attribute (X/... removes, Z/D
empties), Patient ID stays present. Private attributes, curves and overlays are removed; the
markers are added; a new file meta and preamble are written. Prints 'name seconds peak_mb'
(best of three runs over the study).

usage: peer_deid.py PROFILE_TABLE_INC STUDY_FOLDER OUT_FOLDER KEY_FILE
"""
import hashlib
import hmac
import os
import re
import resource
import shutil
import sys
import time

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

table, study, out, key_file = sys.argv[1:5]
KEY = open(key_file, "rb").read()

ROW = re.compile(r'^\{0x([0-9A-F]{4}), 0x([0-9A-F]{4}), 0x([0-9A-F]{4}), 0x([0-9A-F]{4}), "[^"]*", "([^"]+)"')
exact, masked = {}, []
for line in open(table):
    m = ROW.match(line)
    if not m:
        continue
    g, e, gm, em = (int(m.group(i), 16) for i in range(1, 5))
    action = m.group(5)
    if gm == 0x0001:
        continue  # the private row: handled below
    if gm == 0xFFFF and em == 0xFFFF:
        exact[(g << 16) | e] = action
    else:
        masked.append((g, e, gm, em, action))


def action_of(tag):
    a = exact.get(tag)
    if a is not None:
        return a
    g, e = tag >> 16, tag & 0xFFFF
    for rg, re_, gm, em, act in masked:
        if (g & gm) == rg and (e & em) == re_:
            return act
    return None


def mac(domain, value):
    return hmac.new(KEY, (domain + ":" + value).encode(), hashlib.sha256).digest()


uid_cache = {}


def uid(v):
    if v.startswith("1.2.840.10008."):
        return v
    if v not in uid_cache:
        uid_cache[v] = "2.25." + str(int.from_bytes(mac("uid", v)[:16], "big"))
    return uid_cache[v]


CLASS_UIDS = {0x00080016, 0x00081150, 0x00020002, 0x00020010}


def clean(ds, nested):
    for elem in list(ds):
        tag = int(elem.tag)
        if elem.tag.is_private or (tag >> 16) in range(0x5000, 0x5020) or (tag >> 16) in range(0x6000, 0x6020):
            del ds[elem.tag]
            continue
        if elem.keyword == "PatientID":
            elem.value = mac("patient-id", str(elem.value)).hex().upper()[:24] if elem.value else ""
            continue
        if elem.keyword == "PatientName":
            elem.value = mac("patient-id", str(ds.get("PatientID", elem.value))).hex().upper()[:24]
            continue
        if elem.keyword == "AccessionNumber":
            elem.value = mac("accession", str(elem.value)).hex().upper()[:16] if elem.value else ""
            continue
        a = action_of(tag)
        if a is None:
            if elem.VR == "SQ":
                for item in elem.value:
                    clean(item, True)
            elif elem.VR == "UI" and tag not in CLASS_UIDS and elem.value:
                elem.value = uid(str(elem.value))
            continue
        if nested and "/" in a:
            a = "Z" if a == "X/Z" else "D"
        if a in ("X", "X/Z", "X/D", "X/Z/D", "X/Z/U*"):
            del ds[elem.tag]
        elif a in ("Z", "Z/D"):
            elem.value = Sequence() if elem.VR == "SQ" else ""
        elif a == "U":
            elem.value = uid(str(elem.value)) if elem.VR == "UI" and elem.value else elem.value
        elif a == "D":
            if elem.VR == "SQ":
                for item in elem.value:
                    clean(item, True)
            elif elem.VR == "UI":
                elem.value = uid(str(elem.value))
            elif elem.VR == "DA":
                elem.value = "19000101"
            elif elem.VR == "TM":
                elem.value = "000000"
            elif elem.VR in ("DS", "IS"):
                elem.value = "0"
            else:
                elem.value = "ANONYMIZED"


def deidentify(path, out_dir):
    ds = pydicom.dcmread(path)
    clean(ds, False)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Basic Application Confidentiality Profile"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    folder = os.path.join(out_dir, ds.StudyInstanceUID, ds.SeriesInstanceUID)
    os.makedirs(folder, exist_ok=True)
    ds.save_as(os.path.join(folder, ds.SOPInstanceUID + ".dcm"), write_like_original=False)


files = sorted(os.path.join(r, f) for r, _, names in os.walk(study) for f in names)
best = None
for _ in range(3):
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    for f in files:
        deidentify(f, out)
    elapsed = time.perf_counter() - t
    best = elapsed if best is None else min(best, elapsed)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(f"deid_study_200 {best:.6f} {peak:.1f}")
