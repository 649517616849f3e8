// Writing PNG, JPEG, TIFF and BMP through OpenCV's codecs: 8-bit (windowed) or 16-bit
// (whole numbers that fit), written atomically. Reading is in raster_read.cpp.

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/error.h"
#include "core/image.h"
#include "io/file_util.h"
#include "io/raster_format.h"
#include "io/write.h"

namespace medlens {

using raster::Kind;
using raster::kind_from_extension;
using raster::label_of;
using raster::cv_reason;

void write_raster(const Image& image, const std::string& path, const WriteOptions& options) {
  const Kind kind = kind_from_extension(path);
  if (kind == Kind::kUnknown)
    throw UsageError("cannot tell the raster format of '" + path +
                     "': use .png, .jpg, .tif or .bmp");
  const std::string label = label_of(kind);
  if (image.empty()) throw InputError(path, "nothing to write: the image is empty");
  if (image.depth() > 1)
    throw UsageError(label + " holds one 2-D slice but the image has " +
                     std::to_string(image.depth()) +
                     " slices: write NIfTI (.nii.gz) or a DICOM series (a folder path ending "
                     "in /) instead, or pick a slice first");
  const int64_t cn = image.channels();
  if (cn != 1 && cn != 3)
    throw UsageError(label + " holds 1 (grey) or 3 (RGB) channels; the image has " +
                     std::to_string(cn));
  const int64_t rows = image.height(), cols = image.width(), plane = rows * cols;
  if (rows > INT32_MAX / 4 || cols > INT32_MAX / 4)
    throw UsageError(label + " cannot hold an image of " + std::to_string(cols) + "x" +
                     std::to_string(rows) + " pixels");

  const float* v = image.data();
  bool integers = true;
  float top = 0;
  for (int64_t i = 0; i < cn * plane && integers; ++i) {
    integers = v[i] >= 0.f && v[i] <= 65535.f && v[i] == std::floor(v[i]);  // false for NaN
    top = std::max(top, v[i]);
  }
  const bool eight_bit_format = kind == Kind::kJpeg || kind == Kind::kBmp;
  const bool windowed = options.window.has_value() || eight_bit_format || !integers;
  const int depth = windowed || top <= 255.f ? CV_8U : CV_16U;

  Window w{128, 256};  // identity on 0..255 integers (apply_window maps v to v)
  if (options.window) {
    w = *options.window;
  } else if (image.metadata().window) {
    w = *image.metadata().window;
  } else if (!(integers && top <= 255.f)) {
    // The value range, lowest value to 0 and highest to 255.
    const auto [lo, hi] = value_range(image);
    w = Window{(static_cast<double>(lo) + hi) / 2 + 0.5, static_cast<double>(hi) - lo + 1};
  }

  cv::Mat out(static_cast<int>(rows), static_cast<int>(cols),
              CV_MAKETYPE(depth, static_cast<int>(cn)));
  for (int64_t y = 0; y < rows; ++y) {
    for (int64_t c = 0; c < cn; ++c) {
      const float* src = v + c * plane + y * cols;
      const int64_t dc = cn == 3 ? 2 - c : 0;  // RGB planes into BGR pixels
      if (depth == CV_8U) {
        uint8_t* row = out.ptr<uint8_t>(static_cast<int>(y));
        for (int64_t x = 0; x < cols; ++x)
          row[x * cn + dc] = windowed ? apply_window(src[x], w) : static_cast<uint8_t>(src[x]);
      } else {
        uint16_t* row = out.ptr<uint16_t>(static_cast<int>(y));
        for (int64_t x = 0; x < cols; ++x) row[x * cn + dc] = static_cast<uint16_t>(src[x]);
      }
    }
  }

  std::vector<int> params;
  if (kind == Kind::kJpeg) params = {cv::IMWRITE_JPEG_QUALITY, 95};
  AtomicOutput output(path);
  bool ok = false;
  try {
    ok = cv::imwrite(output.temp_path(), out, params);
  } catch (const cv::Exception& e) {
    throw InputError(path, "cannot write " + label + ": " + cv_reason(e));
  }
  if (!ok) throw InputError(path, "cannot write " + label + ": the encoder failed");
  output.commit();
}

}  // namespace medlens
