#include "io/describe.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/dicom.h"

namespace medlens {
namespace {

ImageSummary summarise(VoxelBuffer&& b, const std::string& path, const std::string& format) {
  ImageSummary s;
  s.path = path;
  s.format = format;
  s.readable = true;
  s.shape = b.shape;
  s.geometry = b.geometry;
  float lo = INFINITY, hi = -INFINITY;
  int64_t non_finite = 0;
  for (float v : b.data) {
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    else ++non_finite;
  }
  s.min_value = std::isfinite(lo) ? lo : 0.f;
  s.max_value = std::isfinite(hi) ? hi : 0.f;
  s.issues = b.metadata.warnings;
  if (non_finite > 0)
    s.issues.push_back(std::to_string(non_finite) +
                       " voxel(s) are NaN or infinite: other commands refuse this image");
  s.metadata = std::move(b.metadata);
  s.metadata.warnings.clear();
  return s;
}

}  // namespace

std::vector<ImageSummary> describe(const std::string& path, const ReadOptions& options) {
  const Format f = detect_format(path);
  if (f != Format::kDicomFolder) {
    ReadOptions o = options;
    o.allow_non_finite = true;  // info reports NaNs instead of refusing to describe
    VoxelBuffer b = read_voxels(path, o);
    return {summarise(std::move(b), path, format_name(f))};
  }
  int skipped = 0;
  std::vector<ImageSummary> out;
  const std::vector<DicomSeriesInfo> series = scan_dicom_folder(path, &skipped);
  int image_index = 0;
  for (const DicomSeriesInfo& s : series) {
    ImageSummary sum;
    if (s.has_pixels) {
      ++image_index;
      ReadOptions o = options;
      o.series = s.series_uid.empty() ? std::to_string(image_index) : s.series_uid;
      o.allow_irregular_series = true;  // describe what is there, flaws included
      o.allow_non_finite = true;
      try {
        sum = summarise(read_dicom_folder(path, o), path, "dicom-series");
      } catch (const InputError& e) {
        sum.error = e.reason();
      }
    } else {
      sum.error = "not an image series (no pixel data)";
    }
    sum.path = path;
    sum.format = "dicom-series";
    sum.files = static_cast<int>(s.files.size());
    sum.metadata.series_uid = s.series_uid;
    sum.metadata.study_uid = s.study_uid;
    sum.metadata.modality = s.modality;
    sum.metadata.series_description = s.description;
    // Series issues first, then what the reader added (without repeating them).
    std::vector<std::string> issues = s.issues;
    for (const auto& w : sum.issues)
      if (std::find(issues.begin(), issues.end(), w) == issues.end()) issues.push_back(w);
    sum.issues = issues;
    if (skipped > 0 && out.empty())
      sum.issues.push_back(std::to_string(skipped) + " non-DICOM file(s) in the folder were skipped");
    out.push_back(std::move(sum));
  }
  return out;
}

}  // namespace medlens
