// Image: float32 voxels in a torch tensor laid out (C, Z, Y, X), plus geometry in LPS mm and
// metadata. A 2-D image has Z = 1. Copies share voxels (like torch tensors); operations that
// change voxels return a new Image. This header forward-declares at::Tensor so including it
// costs nothing; include <ATen/ATen.h> (or torch) where the tensor itself is used.
#pragma once

#include <memory>

#include "core/geometry.h"
#include "core/metadata.h"
#include "core/voxel_buffer.h"

namespace at {
class Tensor;
}

namespace medlens {

class Image {
 public:
  Image();
  /// Takes a float32 CPU tensor of rank 4 (C,Z,Y,X), 3 (Z,Y,X) or 2 (Y,X); makes it contiguous.
  /// Throws medlens::Error when the tensor is not floating point, empty, or has another rank,
  /// or when the geometry is invalid.
  Image(const at::Tensor& voxels, Geometry geometry, Metadata metadata);
  /// Adopts the buffer's vector without copying.
  static Image from_buffer(VoxelBuffer&& buffer);

  const at::Tensor& voxels() const;
  /// Pointer to the contiguous voxels (X fastest, then Y, Z, C); valid while this Image lives.
  const float* data() const;
  float* mutable_data();

  const Shape& shape() const { return shape_; }
  int64_t channels() const { return shape_.c; }
  int64_t depth() const { return shape_.z; }
  int64_t height() const { return shape_.y; }
  int64_t width() const { return shape_.x; }
  bool empty() const { return shape_.elements() == 0; }
  bool is_3d() const { return shape_.z > 1; }

  const Geometry& geometry() const { return geometry_; }
  Geometry& geometry() { return geometry_; }
  const Metadata& metadata() const { return metadata_; }
  Metadata& metadata() { return metadata_; }

  /// Same geometry and metadata, new voxels (shape taken from the tensor).
  Image with_voxels(const at::Tensor& voxels) const;
  /// A deep copy: voxels are no longer shared.
  Image clone() const;

 private:
  std::shared_ptr<const at::Tensor> voxels_;
  Shape shape_;
  Geometry geometry_;
  Metadata metadata_;
};

/// Smallest and largest finite voxel value, over all channels.
std::pair<float, float> value_range(const Image& image);

}  // namespace medlens
