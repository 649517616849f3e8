// NumPy .npz archives (a zip of .npy arrays), as MedMNIST ships them: train_images (N,28,28)
// uint8, train_labels (N,1), ... Our own zip reader (stored and deflate, zip64, CRC-32 checked)
// and .npy parser, torch- and OpenCV-free so the fuzz target links only this. read_npz (read.h)
// maps the file and calls decode_npz_memory, so both share every check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/voxel_buffer.h"

namespace medlens {

/// One array of an .npz: member name without ".npy", dtype as numpy's str(array.dtype) prints
/// it ("uint8", "float32", ">i2" for big-endian), and shape.
struct NpyArrayInfo {
  std::string name, dtype;
  std::vector<int64_t> shape;
};

/// The arrays of an .npz file in archive order, read from their .npy headers only (array data
/// is neither inflated nor CRC-checked). Throws InputError for a bad archive or header.
std::vector<NpyArrayInfo> list_npz(const std::string& path);

/// list_npz over bytes in memory; `name` only labels error messages.
std::vector<NpyArrayInfo> list_npz_memory(const uint8_t* data, size_t size,
                                          const std::string& name);

/// Decodes one image from .npz bytes in memory. `key`: the array name (empty: the first array
/// named "*_images" or "images", else the first with two or more dimensions). `index`: which
/// image of a stack, along the first axis. Shapes: (H,W) grey, (H,W,3) RGB, (N,H,W) grey
/// stack, (N,H,W,3) RGB stack, (N,H,W,1) grey stack, (N,D,H,W) stack of volumes.
/// Verifies the chosen member's CRC-32. Throws InputError("name: reason") for anything bad and
/// never allocates more than max_voxels() values on a header's word. `name` labels errors.
VoxelBuffer decode_npz_memory(const uint8_t* data, size_t size, const std::string& name,
                              const std::string& key, int64_t index);

}  // namespace medlens
