// The torch-free hand-off between a decoder and an Image: float32 voxels (C,Z,Y,X), geometry
// and metadata. Decoders fill one of these so they can be fuzzed and tested without LibTorch;
// Image::from_buffer adopts the vector without copying.
#pragma once

#include <cstdint>
#include <vector>

#include "core/geometry.h"
#include "core/metadata.h"

namespace medlens {

struct VoxelBuffer {
  Shape shape;
  std::vector<float> data;  ///< shape.elements() values, X fastest, then Y, Z, C
  Geometry geometry;
  Metadata metadata;
};

/// n zeroed floats for voxels, backed by transparent huge pages where the kernel allows (under
/// the common "madvise" policy this turns ~8000 page faults per 32 MB into ~16, several times
/// faster to fill; numpy does the same for its arrays).
std::vector<float> float_buffer(size_t n);

/// Asks for huge pages on [p, p + n) before it is first touched; a no-op for small ranges.
void advise_huge_pages(const void* p, size_t n);

/// The largest number of values a reader allocates (default 2^29, about 2 GiB of float32),
/// overridable with the environment variable MEDLENS_MAX_VOXELS. Headers that claim more are
/// refused before any allocation.
int64_t max_voxels();

}  // namespace medlens
