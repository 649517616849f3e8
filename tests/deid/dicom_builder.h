// Builds small DICOM images for the de-identification tests with DCMTK: an 8-bit grey or RGB
// picture (OpenCV matrix) as an ultrasound or secondary-capture instance with patient identity,
// and reads the pixels of one back.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <cstring>
#include <string>

namespace medlens::deid::test_util {

struct ImageSpec {
  std::string sop_class = UID_UltrasoundImageStorage;
  std::string modality = "US";
  std::string burned_in_annotation = "YES";  ///< "" leaves it out
  std::string patient_name = "Finch^Canary";
  std::string patient_id = "MRN-CANARY-77";
  std::string patient_age;
  std::string study_date = "20210304";
  std::string series_date;
  std::string acquisition_date;
};

/// Writes `image` (CV_8UC1 or CV_8UC3) as a DICOM file.
inline void write_dicom_image(const cv::Mat& image, const std::string& path, const ImageSpec& spec = {}) {
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  char uid[100];
  ds->putAndInsertString(DCM_SOPClassUID, spec.sop_class.c_str());
  ds->putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
  ds->putAndInsertString(DCM_StudyInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_STUDY_UID_ROOT));
  ds->putAndInsertString(DCM_SeriesInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT));
  ds->putAndInsertString(DCM_Modality, spec.modality.c_str());
  ds->putAndInsertString(DCM_PatientName, spec.patient_name.c_str());
  ds->putAndInsertString(DCM_PatientID, spec.patient_id.c_str());
  ds->putAndInsertString(DCM_StudyDate, spec.study_date.c_str());
  if (!spec.series_date.empty()) ds->putAndInsertString(DCM_SeriesDate, spec.series_date.c_str());
  if (!spec.acquisition_date.empty()) ds->putAndInsertString(DCM_AcquisitionDate, spec.acquisition_date.c_str());
  if (!spec.patient_age.empty()) ds->putAndInsertString(DCM_PatientAge, spec.patient_age.c_str());
  ds->putAndInsertString(DCM_InstitutionName, "Saint Canary Hospital");
  if (!spec.burned_in_annotation.empty())
    ds->putAndInsertString(DCM_BurnedInAnnotation, spec.burned_in_annotation.c_str());
  const int spp = image.channels();
  ds->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(image.rows));
  ds->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(image.cols));
  ds->putAndInsertUint16(DCM_SamplesPerPixel, static_cast<Uint16>(spp));
  ds->putAndInsertString(DCM_PhotometricInterpretation, spp == 3 ? "RGB" : "MONOCHROME2");
  if (spp == 3) ds->putAndInsertUint16(DCM_PlanarConfiguration, 0);
  ds->putAndInsertUint16(DCM_BitsAllocated, 8);
  ds->putAndInsertUint16(DCM_BitsStored, 8);
  ds->putAndInsertUint16(DCM_HighBit, 7);
  ds->putAndInsertUint16(DCM_PixelRepresentation, 0);
  const cv::Mat c = image.isContinuous() ? image : image.clone();  // RGB order for 3 channels
  ds->putAndInsertUint8Array(DCM_PixelData, c.data, static_cast<unsigned long>(c.total() * c.elemSize()));
  const OFCondition st = file.saveFile(path.c_str(), EXS_LittleEndianExplicit);
  ASSERT_TRUE(st.good()) << st.text();
}

/// The 8-bit pixels of a DICOM file written by write_dicom_image (or its de-identified copy).
inline cv::Mat read_dicom_image(const std::string& path) {
  DcmFileFormat file;
  EXPECT_TRUE(file.loadFile(path.c_str()).good()) << path;
  DcmDataset* ds = file.getDataset();
  Uint16 rows = 0, cols = 0, spp = 1;
  ds->findAndGetUint16(DCM_Rows, rows);
  ds->findAndGetUint16(DCM_Columns, cols);
  ds->findAndGetUint16(DCM_SamplesPerPixel, spp);
  const Uint8* data = nullptr;
  unsigned long n = 0;
  EXPECT_TRUE(ds->findAndGetUint8Array(DCM_PixelData, data, &n).good()) << path;
  cv::Mat out(rows, cols, spp == 3 ? CV_8UC3 : CV_8UC1);
  if (data && n >= out.total() * out.elemSize()) std::memcpy(out.data, data, out.total() * out.elemSize());
  return out;
}

}  // namespace medlens::deid::test_util
