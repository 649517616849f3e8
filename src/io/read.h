// Reading any supported image into medlens's model. Readers are torch-free and produce a
// VoxelBuffer; read_image() adds the checks every format shares and wraps it in an Image.
// Every reader throws medlens::InputError ("PATH: reason") for input it cannot use and never
// allocates more than max_voxels() values on the word of a header.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/voxel_buffer.h"

namespace medlens {

class Image;

enum class Format {
  kUnknown, kDicom, kDicomFolder, kNifti, kNrrd, kMetaImage, kRaster, kNpz, kWsi
};
const char* format_name(Format f);

/// Decides the format from the file's first bytes, falling back to its extension.
/// Folders are kDicomFolder. Throws InputError when the path cannot be opened.
Format detect_format(const std::string& path);

struct ReadOptions {
  /// Accept voxels that are NaN or infinite (otherwise the file is refused).
  bool allow_non_finite = false;
  /// Accept a DICOM series with missing slices or uneven spacing (otherwise refused).
  bool allow_irregular_series = false;
  /// For a folder holding several series: which one (SeriesInstanceUID, or its 1-based
  /// position in describe()'s list). Empty: the folder must hold exactly one.
  std::string series;
  /// Whole-slide: pyramid level (-1: the finest level that fits in max_wsi_pixels) and an
  /// optional region {x, y, width, height} in that level's pixels.
  int wsi_level = -1;
  std::optional<std::array<int64_t, 4>> wsi_region;
  int64_t max_wsi_pixels = int64_t{4096} * 4096;
  /// .npz: array name (empty: the first image-like array) and index along its first axis
  /// when the array holds a stack (N,H,W[,C]).
  std::string npz_key;
  int64_t npz_index = 0;
};

/// Reads any supported file or folder. Throws InputError for unusable input.
VoxelBuffer read_voxels(const std::string& path, const ReadOptions& options = {});
Image read_image(const std::string& path, const ReadOptions& options = {});

// Per-format readers (read_voxels dispatches to these; they may be called directly).
VoxelBuffer read_dicom_file(const std::string& path, const ReadOptions& options = {});
VoxelBuffer read_dicom_folder(const std::string& folder, const ReadOptions& options = {});
VoxelBuffer read_nifti(const std::string& path, const ReadOptions& options = {});
VoxelBuffer read_itk(const std::string& path, const ReadOptions& options = {});   // NRRD, MHA
VoxelBuffer read_raster(const std::string& path, const ReadOptions& options = {}); // PNG,...
VoxelBuffer read_npz(const std::string& path, const ReadOptions& options = {});
VoxelBuffer read_wsi(const std::string& path, const ReadOptions& options = {});

/// Sets ITK's default thread count to medlens's (MEDLENS_THREADS or the machine's cores), so
/// ITK filters follow the same setting as LibTorch. Idempotent.
void init_itk_threads();

/// Refuses (InputError naming `path`) a buffer with NaN/Inf voxels unless allowed, an invalid
/// geometry, or a shape that disagrees with its data. Shared by every reader.
void check_voxels(const VoxelBuffer& buffer, const std::string& path, bool allow_non_finite);

}  // namespace medlens
