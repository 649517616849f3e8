// Zero-copy hand-off between medlens::Image and ITK's itk::Image, so any ITK filter can run on
// medlens images. Only this header and the .cpp files that use it pull in ITK.
#pragma once

#include <itkImage.h>

#include <cstdint>

#include "core/image.h"

namespace medlens {

using ItkImage3 = itk::Image<float, 3>;
using ItkImage2 = itk::Image<float, 2>;

/// One channel of `image` as a 3-D ITK image that points at the Image's own voxels (no copy;
/// writes through either side are seen by the other). The Image's voxels must outlive the ITK
/// image. Geometry (LPS, same convention as ITK) is copied. UsageError for a bad channel.
ItkImage3::Pointer to_itk3(const Image& image, int64_t channel = 0);

/// Slice `z` of one channel as a 2-D ITK image sharing the Image's voxels (no copy; the Image
/// must outlive it). Geometry: in-plane spacing, the slice's origin and the upper-left 2x2 of
/// the direction (identity when that block is singular, e.g. a sagittal plane): lossy for
/// oblique volumes. UsageError for a bad slice or channel.
ItkImage2::Pointer to_itk2(const Image& image, int64_t z = 0, int64_t channel = 0);

/// A one-channel Image viewing the ITK image's buffer (no copy): the tensor keeps the ITK image
/// alive. Origin is that of the buffered region's first voxel. Throws medlens::Error when the
/// ITK image has no buffer or an invalid geometry.
Image from_itk(const ItkImage3::Pointer& image, Metadata metadata = {});
/// As above for a 2-D ITK image: Z = 1, its 2x2 direction embedded in 3x3.
Image from_itk(const ItkImage2::Pointer& image, Metadata metadata = {});

}  // namespace medlens
