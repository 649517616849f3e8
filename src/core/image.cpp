#include "core/image.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace medlens {

Image::Image() : voxels_(std::make_shared<at::Tensor>(at::empty({0, 0, 0, 0}, at::kFloat))) {}

Image::Image(const at::Tensor& voxels, Geometry geometry, Metadata metadata)
    : geometry_(geometry), metadata_(std::move(metadata)) {
  if (!voxels.defined()) throw Error(ErrorKind::kInternal, "Image: undefined tensor");
  if (!at::isFloatingType(voxels.scalar_type()))
    throw Error(ErrorKind::kInternal, "Image: voxels must be floating point");
  at::Tensor t = voxels.to(at::kCPU, at::kFloat).contiguous();
  if (t.dim() == 2) t = t.unsqueeze(0).unsqueeze(0);
  else if (t.dim() == 3) t = t.unsqueeze(0);
  if (t.dim() != 4)
    throw Error(ErrorKind::kInternal,
                "Image: voxels must have rank 2, 3 or 4 (C,Z,Y,X), got " + std::to_string(t.dim()));
  shape_ = {t.size(0), t.size(1), t.size(2), t.size(3)};
  std::string why;
  if (!geometry_.valid(&why)) throw Error(ErrorKind::kBadInput, "invalid geometry: " + why);
  voxels_ = std::make_shared<at::Tensor>(std::move(t));
}

Image Image::from_buffer(VoxelBuffer&& buffer) {
  const Shape s = buffer.shape;
  if (static_cast<int64_t>(buffer.data.size()) != s.elements())
    throw Error(ErrorKind::kInternal, "VoxelBuffer: data size does not match its shape");
  // Move the vector to the heap and let the tensor own it: no copy of the voxels.
  auto* owned = new std::vector<float>(std::move(buffer.data));
  at::Tensor t = at::from_blob(
      owned->data(), {s.c, s.z, s.y, s.x},
      [owned](void*) { delete owned; }, at::TensorOptions().dtype(at::kFloat));
  return Image(t, buffer.geometry, std::move(buffer.metadata));
}

const at::Tensor& Image::voxels() const { return *voxels_; }
const float* Image::data() const { return voxels_->data_ptr<float>(); }
float* Image::mutable_data() { return voxels_->data_ptr<float>(); }

Image Image::with_voxels(const at::Tensor& voxels) const { return Image(voxels, geometry_, metadata_); }

Image Image::clone() const { return Image(voxels_->clone(), geometry_, metadata_); }

std::pair<float, float> value_range(const Image& image) {
  const at::Tensor& v = image.voxels();
  if (v.numel() == 0) return {0.f, 0.f};
  at::Tensor finite = v.masked_select(at::isfinite(v));
  if (finite.numel() == 0) return {0.f, 0.f};
  return {finite.min().item<float>(), finite.max().item<float>()};
}

}  // namespace medlens
