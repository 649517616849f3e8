// DICOM reading beyond read.h: header scans of files and folders, and series diagnostics.
// Torch-free; DCMTK stays inside the .cpp files.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/geometry.h"
#include "core/voxel_buffer.h"

namespace medlens {

/// What one DICOM file says about itself, read without its pixel data.
struct DicomFileHeader {
  std::string path;
  std::string sop_class_uid, sop_instance_uid, study_uid, series_uid, frame_of_reference_uid;
  std::string modality, series_description, transfer_syntax;
  int series_number = 0, instance_number = 0;
  int rows = 0, columns = 0, frames = 1, samples_per_pixel = 1;
  bool has_pixels = false;
  std::optional<Vec3> position;                 ///< ImagePositionPatient
  std::optional<std::array<double, 6>> orientation;  ///< ImageOrientationPatient
  std::optional<std::array<double, 2>> pixel_spacing;  ///< row, column spacing in mm
  double gantry_tilt = 0.0;                      ///< GantryDetectorTilt, degrees
  double echo_time = 0.0, temporal_position = 0.0;
};

/// One series found in a folder, with what is wrong with it as a volume.
struct DicomSeriesInfo {
  std::string series_uid, modality, description, study_uid;
  int series_number = 0;
  bool has_pixels = false;
  std::vector<std::string> files;   ///< sorted along the slice normal when geometry allows
  int rows = 0, columns = 0, frames_per_file = 1, samples_per_pixel = 1;
  std::vector<std::string> issues;  ///< mixed stacks, duplicates, missing slices, tilt, ...
  bool blocking = false;            ///< an issue that stops it being read as one volume
};

/// Reads the header of one file (stops at the pixel data). Throws InputError if not DICOM.
DicomFileHeader read_dicom_header(const std::string& path);

/// Finds every DICOM file under `folder` (recursively) and groups them into series sorted
/// along the slice normal, with their issues. Non-DICOM files are skipped; `skipped` (if
/// given) receives how many. Throws InputError when the folder cannot be read or holds no
/// DICOM file.
std::vector<DicomSeriesInfo> scan_dicom_folder(const std::string& folder, int* skipped = nullptr);

/// Human name of a transfer syntax UID, e.g. "JPEG 2000 Image Compression (Lossless Only)".
std::string transfer_syntax_name(const std::string& uid);

}  // namespace medlens
