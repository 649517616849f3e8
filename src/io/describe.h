// What `medlens info` reports: one summary per image (a file) or per series (a folder).
#pragma once

#include <string>
#include <vector>

#include "core/geometry.h"
#include "core/metadata.h"
#include "io/read.h"

namespace medlens {

struct ImageSummary {
  std::string path;          ///< file or folder
  std::string format;        ///< format_name()
  int files = 1;             ///< files making up this image (DICOM series)
  bool readable = false;     ///< voxels were read; otherwise `error` says why
  std::string error;
  Shape shape;
  Geometry geometry;
  float min_value = 0, max_value = 0;
  Metadata metadata;
  std::vector<std::string> issues;  ///< series problems and reader warnings
};

/// Summaries of everything at `path`: one for a file; for a folder one per DICOM series
/// (series that cannot be read as a volume are listed with their reason). Throws InputError
/// only when nothing at `path` can be described.
std::vector<ImageSummary> describe(const std::string& path, const ReadOptions& options = {});

}  // namespace medlens
