#include "io/opencv_bridge.h"

#include <climits>
#include <string>

#include "core/error.h"

namespace medlens {

cv::Mat plane_view(const Image& image, int64_t z, int64_t c) {
  const Shape& s = image.shape();
  if (z < 0 || z >= s.z || c < 0 || c >= s.c)
    throw UsageError("plane_view: slice " + std::to_string(z) + ", channel " +
                     std::to_string(c) + " is outside an image of " + std::to_string(s.z) +
                     " slices and " + std::to_string(s.c) + " channels");
  if (s.y > INT_MAX || s.x > INT_MAX || s.x > static_cast<int64_t>(SIZE_MAX / sizeof(float)))
    throw UsageError("plane_view: a " + std::to_string(s.x) + "x" + std::to_string(s.y) +
                     " plane does not fit in a cv::Mat");
  // cv::Mat has no const element type; the documented contract is that it aliases the Image.
  float* p = const_cast<float*>(image.data()) + (c * s.z + z) * s.y * s.x;
  return cv::Mat(static_cast<int>(s.y), static_cast<int>(s.x), CV_32FC1, p);
}

std::vector<cv::Mat> plane_views(const Image& image, int64_t z) {
  std::vector<cv::Mat> out;
  for (int64_t c = 0; c < image.channels(); ++c) out.push_back(plane_view(image, z, c));
  return out;
}

Image image_from_mat(const cv::Mat& mat, Geometry geometry, Metadata metadata) {
  if (mat.empty() || mat.dims != 2)
    throw UsageError("image_from_mat: the Mat must be 2-D and not empty");
  const int cn = mat.channels();
  const int64_t rows = mat.rows, cols = mat.cols, plane = rows * cols;
  cv::Mat f;
  mat.convertTo(f, CV_MAKETYPE(CV_32F, cn));  // also makes it continuous
  VoxelBuffer b;
  b.shape = Shape{cn, 1, rows, cols};
  b.data.resize(static_cast<size_t>(plane * cn));
  for (int64_t y = 0; y < rows; ++y) {
    const float* row = f.ptr<float>(static_cast<int>(y));
    for (int64_t x = 0; x < cols; ++x)
      for (int c = 0; c < cn; ++c) b.data[c * plane + y * cols + x] = row[x * cn + c];
  }
  b.geometry = geometry;
  b.metadata = std::move(metadata);
  return Image::from_buffer(std::move(b));
}

}  // namespace medlens
