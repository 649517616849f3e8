// What an image is, beyond its voxels: modality, how to display it, where it came from, and
// what the reader noticed. Torch-free.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace medlens {

/// A display window in output units (e.g. HU): values in [center - width/2, center + width/2]
/// map to black..white.
struct Window {
  double center = 0.0;
  double width = 1.0;
  bool operator==(const Window&) const = default;
};

struct Metadata {
  std::string modality;            ///< DICOM code: CT, MR, CR, DX, MG, US, PT, SM, OT, ...
  std::string photometric;         ///< MONOCHROME2 or RGB after reading (inversions applied)
  std::string body_part;           ///< BodyPartExamined, upper case, may be empty
  std::string units;               ///< "HU", "Gy", "" when unknown
  std::optional<Window> window;    ///< default window from the source, in output units
  double rescale_slope = 1.0;      ///< the slope already applied to the stored values
  double rescale_intercept = 0.0;  ///< the intercept already applied
  std::string study_uid, series_uid, frame_of_reference_uid;
  std::vector<std::string> sop_uids;  ///< one per slice/frame, in Z order
  std::string series_description;
  std::string source_path;         ///< file or folder read
  std::string source_format;       ///< "dicom", "nifti", "nrrd", "metaimage", "png", ...
  std::string transfer_syntax;     ///< DICOM transfer syntax UID, when applicable
  std::vector<std::string> warnings;          ///< what the reader noticed (uneven spacing, ...)
  std::map<std::string, std::string> tags;    ///< other key attributes, by DICOM keyword
  /// Patient and study identity (PatientName, PatientID, PatientBirthDate, PatientSex,
  /// PatientAge, StudyDate, StudyTime, AccessionNumber, StudyID, ReferringPhysicianName), kept
  /// apart so writers can carry it and nothing prints or logs it.
  std::map<std::string, std::string> identity;
};

}  // namespace medlens
