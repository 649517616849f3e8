"""Adds an SR and a SEG that reference a CT series to make a multi-series study.

usage: /usr/bin/python3 make_study.py CT_FOLDER OUT_FOLDER
Writes OUT/sr.dcm (Comprehensive SR: evidence and an IMAGE content item pointing at CT slices)
and OUT/seg.dcm (binary Segmentation of the CT: referenced series, frame of reference and a
source image per frame). Both carry the CT's patient and study identity, and the SR's text
names a person, so de-identification has something to remove.
"""
import glob
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ct_dir, out = sys.argv[1], sys.argv[2]
cts = sorted((pydicom.dcmread(f) for f in glob.glob(ct_dir + "/*")), key=lambda d: int(d.InstanceNumber))
first = cts[0]


def code(value, scheme, meaning):
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def ref(d):
    r = Dataset()
    r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = d.SOPClassUID, d.SOPInstanceUID
    return r


def base(sop_class, modality, number):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = sop_class
    for k in ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
              "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"]:
        setattr(ds, k, getattr(first, k, ""))
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = number
    ds.InstanceNumber = 1
    ds.Manufacturer = "medlens tests"
    ds.ContentDate = first.StudyDate
    ds.ContentTime = "101010"
    ds.InstitutionName = "Saint Canary Hospital"
    return ds


# --- SR ---------------------------------------------------------------------------------------
sr = base("1.2.840.10008.5.1.4.1.1.88.33", "SR", 2000)
sr.ReferencedPerformedProcedureStepSequence = Sequence()
sr.PerformedProcedureCodeSequence = Sequence()
sr.ValueType = "CONTAINER"
sr.ConceptNameCodeSequence = Sequence([code("18748-4", "LN", "Diagnostic Imaging Report")])
sr.ContinuityOfContent = "SEPARATE"
sr.CompletionFlag = "COMPLETE"
sr.VerificationFlag = "UNVERIFIED"
text = Dataset()
text.RelationshipType, text.ValueType = "CONTAINS", "TEXT"
text.ConceptNameCodeSequence = Sequence([code("121071", "DCM", "Finding")])
text.TextValue = "Nodule reviewed by Dr Canary Finch on 2021-03-04"
image = Dataset()
image.RelationshipType, image.ValueType = "CONTAINS", "IMAGE"
image.ConceptNameCodeSequence = Sequence([code("121080", "DCM", "Best illustration of finding")])
image.ReferencedSOPSequence = Sequence([ref(cts[len(cts) // 2])])
sr.ContentSequence = Sequence([text, image])
evidence = Dataset()
evidence.StudyInstanceUID = first.StudyInstanceUID
series = Dataset()
series.SeriesInstanceUID = first.SeriesInstanceUID
series.ReferencedSOPSequence = Sequence([ref(d) for d in cts])
evidence.ReferencedSeriesSequence = Sequence([series])
sr.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
sr.save_as(out + "/sr.dcm", write_like_original=False)

# --- SEG --------------------------------------------------------------------------------------
seg = base("1.2.840.10008.5.1.4.1.1.66.4", "SEG", 3000)
seg.FrameOfReferenceUID = first.FrameOfReferenceUID
seg.PositionReferenceIndicator = ""
seg.ImageType = ["DERIVED", "PRIMARY"]
seg.ContentLabel = "LESION"
seg.ContentDescription = ""
seg.ContentCreatorName = "Finch^Canary"
seg.SeriesDescription = "segmentation"
seg.SamplesPerPixel = 1
seg.PhotometricInterpretation = "MONOCHROME2"
seg.Rows, seg.Columns = first.Rows, first.Columns
seg.BitsAllocated = seg.BitsStored = 1
seg.HighBit = 0
seg.PixelRepresentation = 0
seg.LossyImageCompression = "00"
seg.SegmentationType = "BINARY"
seg.NumberOfFrames = len(cts)
seg.DeviceSerialNumber = "SN-CANARY-1"
seg.SoftwareVersions = "1"
seg.ManufacturerModelName = "tests"
seg.AcquisitionContextSequence = Sequence()
segment = Dataset()
segment.SegmentNumber = 1
segment.SegmentLabel = "lesion"
segment.SegmentAlgorithmType = "MANUAL"
segment.SegmentedPropertyCategoryCodeSequence = Sequence([code("49755003", "SCT", "Morphologically Altered Structure")])
segment.SegmentedPropertyTypeCodeSequence = Sequence([code("4147007", "SCT", "Mass")])
seg.SegmentSequence = Sequence([segment])
ref_series = Dataset()
ref_series.SeriesInstanceUID = first.SeriesInstanceUID
ref_series.ReferencedInstanceSequence = Sequence([ref(d) for d in cts])
seg.ReferencedSeriesSequence = Sequence([ref_series])
dim_org = generate_uid()
seg.DimensionOrganizationSequence = Sequence([Dataset()])
seg.DimensionOrganizationSequence[0].DimensionOrganizationUID = dim_org
dims = []
for pointer, group in [(0x0062000B, 0x0062000A), (0x00200032, 0x00209113)]:
    d = Dataset()
    d.DimensionOrganizationUID = dim_org
    d.DimensionIndexPointer = pointer
    d.FunctionalGroupPointer = group
    dims.append(d)
seg.DimensionIndexSequence = Sequence(dims)
shared = Dataset()
pm = Dataset()
pm.PixelSpacing = first.PixelSpacing
pm.SliceThickness = getattr(first, "SliceThickness", 1)
shared.PixelMeasuresSequence = Sequence([pm])
po = Dataset()
po.ImageOrientationPatient = first.ImageOrientationPatient
shared.PlaneOrientationSequence = Sequence([po])
seg.SharedFunctionalGroupsSequence = Sequence([shared])
frames = []
mask = np.zeros((len(cts), first.Rows, first.Columns), dtype=np.uint8)
for i, d in enumerate(cts):
    mask[i, 4 + i: 12 + i, 6:20] = 1
    f = Dataset()
    deriv = Dataset()
    deriv.DerivationCodeSequence = Sequence([code("113076", "DCM", "Segmentation")])
    src = ref(d)
    src.PurposeOfReferenceCodeSequence = Sequence([code("121322", "DCM", "Source image for image processing operation")])
    deriv.SourceImageSequence = Sequence([src])
    f.DerivationImageSequence = Sequence([deriv])
    fc = Dataset()
    fc.DimensionIndexValues = [1, i + 1]
    f.FrameContentSequence = Sequence([fc])
    pp = Dataset()
    pp.ImagePositionPatient = d.ImagePositionPatient
    f.PlanePositionSequence = Sequence([pp])
    si = Dataset()
    si.ReferencedSegmentNumber = 1
    f.SegmentIdentificationSequence = Sequence([si])
    frames.append(f)
seg.PerFrameFunctionalGroupsSequence = Sequence(frames)
seg.PixelData = np.packbits(mask.reshape(-1), bitorder="little").tobytes()
seg.save_as(out + "/seg.dcm", write_like_original=False)
