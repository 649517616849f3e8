// Image <-> OpenCV without going through files. Include this only where OpenCV is wanted: it
// pulls in <opencv2/core.hpp>. Everything else in medlens stays free of OpenCV headers.
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "core/geometry.h"
#include "core/image.h"
#include "core/metadata.h"

namespace medlens {

/// A CV_32FC1 header (rows = height, cols = width) over slice z, channel c of the image's own
/// voxels: no copy. It is valid only while the Image's voxels live (any Image sharing them),
/// and writing through it changes those voxels in every Image that shares them.
/// Throws UsageError when z or c is out of range or the plane is too large for cv::Mat.
cv::Mat plane_view(const Image& image, int64_t z, int64_t c);

/// plane_view for every channel of slice z, in channel order (RGB stays RGB: no BGR swap).
std::vector<cv::Mat> plane_views(const Image& image, int64_t z);

/// Copies a 2-D Mat of any depth and channel count into a new planar float32 Image
/// (C = channels, Z = 1, Y = rows, X = cols). Channels keep OpenCV's order: a Mat from
/// cv::imread is BGR, so channel 0 is blue (swap it first if RGB is wanted). Geometry and
/// metadata are taken as given. Throws UsageError for an empty or non-2-D Mat.
Image image_from_mat(const cv::Mat& mat, Geometry geometry = {}, Metadata metadata = {});

}  // namespace medlens
