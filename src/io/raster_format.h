// What the raster reader (raster_read.cpp, torch-free) and writer (raster.cpp) share: the
// formats, their names, and OpenCV's error text. Internal to io/.
#pragma once

#include <opencv2/core.hpp>

#include <string>

namespace medlens::raster {

enum class Kind { kPng, kJpeg, kTiff, kBmp, kUnknown };

/// "PNG", "JPEG", ... for messages ("image" when unknown).
const char* label_of(Kind k);
/// From the file name's extension (case-insensitive); kUnknown otherwise.
Kind kind_from_extension(const std::string& path);
/// OpenCV's error text without its source location, on one line.
std::string cv_reason(const cv::Exception& e);

}  // namespace medlens::raster
