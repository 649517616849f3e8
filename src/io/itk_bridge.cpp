#include "io/itk_bridge.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "core/error.h"

namespace medlens {

namespace {

void check_channel(const Image& image, int64_t channel, const char* fn) {
  if (image.empty()) throw UsageError(std::string(fn) + ": the image is empty");
  if (channel < 0 || channel >= image.channels())
    throw UsageError(std::string(fn) + ": channel " + std::to_string(channel) +
                     " is out of range (the image has " + std::to_string(image.channels()) + ")");
}

// An ITK pixel container over memory we do not own: ITK never frees it.
template <typename ItkImage>
void attach_buffer(ItkImage* itk_image, float* first, int64_t count) {
  auto container = ItkImage::PixelContainer::New();
  container->SetImportPointer(
      first, static_cast<typename ItkImage::PixelContainer::ElementIdentifier>(count),
      /*LetContainerManageMemory=*/false);
  itk_image->SetPixelContainer(container);
}

// Tensor (1, Z, Y, X) over an ITK buffer; the deleter's copy of the smart pointer keeps the ITK
// image (and so the buffer) alive for as long as the tensor.
template <typename Pointer>
at::Tensor view_of(const Pointer& image, int64_t z, int64_t y, int64_t x) {
  float* buffer = image->GetBufferPointer();
  if (buffer == nullptr) throw Error(ErrorKind::kInternal, "from_itk: the ITK image has no buffer");
  Pointer keep = image;
  return at::from_blob(
      buffer, {1, z, y, x}, [keep](void*) mutable { keep = nullptr; },
      at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

ItkImage3::Pointer to_itk3(const Image& image, int64_t channel) {
  check_channel(image, channel, "to_itk3");
  const Shape& s = image.shape();
  const Geometry& g = image.geometry();
  auto out = ItkImage3::New();
  ItkImage3::RegionType region;
  region.SetSize({{static_cast<itk::SizeValueType>(s.x), static_cast<itk::SizeValueType>(s.y),
                   static_cast<itk::SizeValueType>(s.z)}});
  out->SetRegions(region);
  ItkImage3::SpacingType spacing;
  ItkImage3::PointType origin;
  ItkImage3::DirectionType direction;
  for (int i = 0; i < 3; ++i) {
    spacing[i] = g.spacing[i];
    origin[i] = g.origin[i];
    for (int j = 0; j < 3; ++j) direction(i, j) = g.direction[i * 3 + j];
  }
  out->SetSpacing(spacing);
  out->SetOrigin(origin);
  out->SetDirection(direction);
  // const_cast: the ITK image is a view the caller may write through, like Image copies are.
  attach_buffer(out.GetPointer(), const_cast<float*>(image.data()) + channel * s.voxels(),
                s.voxels());
  return out;
}

ItkImage2::Pointer to_itk2(const Image& image, int64_t z, int64_t channel) {
  check_channel(image, channel, "to_itk2");
  const Shape& s = image.shape();
  if (z < 0 || z >= s.z)
    throw UsageError("to_itk2: slice " + std::to_string(z) + " is out of range (the image has " +
                     std::to_string(s.z) + ")");
  const Geometry& g = image.geometry();
  auto out = ItkImage2::New();
  ItkImage2::RegionType region;
  region.SetSize({{static_cast<itk::SizeValueType>(s.x), static_cast<itk::SizeValueType>(s.y)}});
  out->SetRegions(region);
  const Vec3 o = g.index_to_lps({0.0, 0.0, static_cast<double>(z)});
  ItkImage2::SpacingType spacing;
  ItkImage2::PointType origin;
  ItkImage2::DirectionType direction;
  for (int i = 0; i < 2; ++i) {
    spacing[i] = g.spacing[i];
    origin[i] = o[i];
    for (int j = 0; j < 2; ++j) direction(i, j) = g.direction[i * 3 + j];
  }
  const double det = direction(0, 0) * direction(1, 1) - direction(0, 1) * direction(1, 0);
  if (!(std::abs(det) > 1e-6)) direction.SetIdentity();
  out->SetSpacing(spacing);
  out->SetOrigin(origin);
  out->SetDirection(direction);
  attach_buffer(out.GetPointer(),
                const_cast<float*>(image.data()) + (channel * s.z + z) * s.y * s.x, s.y * s.x);
  return out;
}

Image from_itk(const ItkImage3::Pointer& image, Metadata metadata) {
  if (!image) throw Error(ErrorKind::kInternal, "from_itk: null ITK image");
  const auto region = image->GetBufferedRegion();
  const auto size = region.GetSize();
  Geometry g;
  ItkImage3::PointType first;
  image->TransformIndexToPhysicalPoint(region.GetIndex(), first);
  for (int i = 0; i < 3; ++i) {
    g.spacing[i] = image->GetSpacing()[i];
    g.origin[i] = first[i];
    for (int j = 0; j < 3; ++j) g.direction[i * 3 + j] = image->GetDirection()(i, j);
  }
  if (metadata.photometric.empty()) metadata.photometric = "MONOCHROME2";
  return Image(view_of(image, static_cast<int64_t>(size[2]), static_cast<int64_t>(size[1]),
                       static_cast<int64_t>(size[0])),
               g, std::move(metadata));
}

Image from_itk(const ItkImage2::Pointer& image, Metadata metadata) {
  if (!image) throw Error(ErrorKind::kInternal, "from_itk: null ITK image");
  const auto region = image->GetBufferedRegion();
  const auto size = region.GetSize();
  Geometry g;
  ItkImage2::PointType first;
  image->TransformIndexToPhysicalPoint(region.GetIndex(), first);
  for (int i = 0; i < 2; ++i) {
    g.spacing[i] = image->GetSpacing()[i];
    g.origin[i] = first[i];
    for (int j = 0; j < 2; ++j) g.direction[i * 3 + j] = image->GetDirection()(i, j);
  }
  if (metadata.photometric.empty()) metadata.photometric = "MONOCHROME2";
  return Image(view_of(image, 1, static_cast<int64_t>(size[1]), static_cast<int64_t>(size[0])), g,
               std::move(metadata));
}

}  // namespace medlens
