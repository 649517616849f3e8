#include "io/write.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/image.h"
#include "io/file_util.h"
#include "io/nifti.h"

namespace fs = std::filesystem;

namespace medlens {

unsigned char apply_window(float value, const Window& w) {
  // PS3.3 C.11.2.1.2.1: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, clamped; w >= 1.
  const double width = std::max(1.0, w.width);
  if (!std::isfinite(value)) return 0;
  const double lo = w.center - 0.5 - (width - 1) / 2, hi = w.center - 0.5 + (width - 1) / 2;
  if (value <= lo) return 0;
  if (value > hi) return 255;
  const double y = ((value - (w.center - 0.5)) / (width - 1) + 0.5) * 255.0;
  return static_cast<unsigned char>(std::clamp(std::lround(y), 0L, 255L));
}

// The NIfTI codec is torch-free (it is fuzzed without LibTorch); this is its Image entry.
void write_nifti(const Image& image, const std::string& path, const WriteOptions& options) {
  if (image.empty()) throw InputError(path, "nothing to write: the image is empty");
  write_nifti_voxels(image.data(), image.shape(), image.geometry(), image.metadata(), path, options);
}

void write_image(const Image& image, const std::string& path, const WriteOptions& options) {
  if (image.empty()) throw InputError(path, "nothing to write: the image is empty");
  std::error_code ec;
  const bool folder = (!path.empty() && path.back() == '/') || fs::is_directory(path, ec);
  if (folder) return write_dicom_series(image, path, options);
  const std::string ext = extension_of(path);
  if (ext == ".nii" || ext == ".nii.gz") return write_nifti(image, path, options);
  if (ext == ".mha" || ext == ".mhd" || ext == ".nrrd" || ext == ".nhdr")
    return write_itk(image, path, options);
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".tif" ||
      ext == ".tiff")
    return write_raster(image, path, options);
  if (ext == ".dcm") return write_dicom_file(image, path, options);
  throw UsageError("cannot tell the output format of '" + path +
                   "': use .nii, .nii.gz, .mha, .nrrd, .png, .jpg, .tif, .bmp, .dcm, or a "
                   "folder path ending in /");
}

}  // namespace medlens
