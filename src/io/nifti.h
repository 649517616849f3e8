// NIfTI-1/-2 decoding and encoding with zlib (no ITK), torch-free so it can be fuzzed.
// read_nifti() and write_nifti() are declared in io/read.h and io/write.h; this header adds the
// entry points that work on memory and raw voxels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/voxel_buffer.h"
#include "io/write.h"

namespace medlens {

/// Decodes a whole single-file NIfTI-1/-2 image (.nii bytes, or gzip'd .nii bytes) held in
/// memory, exactly as read_nifti() decodes a file; `name` labels errors. Voxels may be NaN/Inf
/// (no check_voxels here). Throws InputError("name: reason") for anything it cannot use.
VoxelBuffer decode_nifti_memory(const uint8_t* data, size_t size, const std::string& name);

/// Writes float32 voxels laid out (C,Z,Y,X) as a single-file NIfTI (.nii, or .nii.gz at
/// options.gzip_level) through AtomicOutput: NIfTI-1, or NIfTI-2 when a dimension exceeds
/// 32767. The torch-free body of write_nifti().
void write_nifti_voxels(const float* data, const Shape& shape, const Geometry& geometry,
                        const Metadata& metadata, const std::string& path,
                        const WriteOptions& options = {});

}  // namespace medlens
