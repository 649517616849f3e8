// Writing images. Every writer writes to a temporary name beside the destination and renames
// it into place only when complete, so a failure never leaves a partial output.
#pragma once

#include <optional>
#include <string>

#include "core/metadata.h"

namespace medlens {

class Image;

struct WriteOptions {
  /// Display window for 8-bit outputs (PNG/JPEG/BMP) in the image's units. Unset: the image's
  /// own default window, else its value range.
  std::optional<Window> window;
  /// DICOM: modality of the written series ("MR", "CT") or "SC" for Secondary Capture; empty
  /// takes the image's modality (MR/CT) and falls back to SC.
  std::string dicom_modality;
  /// NIfTI: gzip level 1..9 for .nii.gz.
  int gzip_level = 6;
};

/// Writes by the destination's extension: .nii/.nii.gz, .mha/.mhd, .nrrd/.nhdr, .png, .jpg,
/// .tif/.tiff, .bmp, .dcm (one file: a 2-D image or a multi-frame SC), or a path ending in
/// "/" or an existing folder (a DICOM series, one file per slice).
void write_image(const Image& image, const std::string& path, const WriteOptions& options = {});

void write_nifti(const Image& image, const std::string& path, const WriteOptions& options = {});
void write_itk(const Image& image, const std::string& path, const WriteOptions& options = {});
void write_raster(const Image& image, const std::string& path, const WriteOptions& options = {});
void write_dicom_file(const Image& image, const std::string& path, const WriteOptions& options = {});
void write_dicom_series(const Image& image, const std::string& folder,
                        const WriteOptions& options = {});

/// Maps a value through a window to 0..255 (DICOM PS3.3 C.11.2.1.2 linear function).
unsigned char apply_window(float value, const Window& window);

}  // namespace medlens
