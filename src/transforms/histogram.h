// Histogram methods: global equalisation and CLAHE, both with output in [0, 1] as
// scikit-image's equalize_hist and equalize_adapthist.
#pragma once

#include <array>

#include "transforms/transform.h"

namespace medlens {

/// Global histogram equalisation per channel: `bins` equal bins over the channel's value range,
/// each value mapped to the normalised cumulative histogram interpolated at bin centres
/// (skimage.exposure.equalize_hist).
TransformPtr make_histogram_equalize(int bins = 256);

/// Contrast-limited adaptive histogram equalisation, a port of skimage.exposure.
/// equalize_adapthist (Zuiderveld's contextual regions with bilinear interpolation of their
/// mappings, 2^14 grey levels, the same clipping and redistribution), run per 2-D slice and per
/// channel. Each channel is first scaled from its whole-volume range to [0, 1] so slices stay
/// comparable, and the result is scaled to [0, 1] the same way.
struct ClaheOptions {
  double clip_limit_ = 0.01;              ///< fraction of a region's voxels; 0 = no clipping (AHE)
  std::array<int, 2> kernel_size_{0, 0};  ///< region size in voxels (x, y); 0 = 1/8 of the slice
  int bins_ = 256;
  ClaheOptions& clip_limit(double v) { clip_limit_ = v; return *this; }
  ClaheOptions& kernel_size(int x, int y) { kernel_size_ = {x, y}; return *this; }
  ClaheOptions& bins(int v) { bins_ = v; return *this; }
};
TransformPtr make_clahe(const ClaheOptions& options = {});

}  // namespace medlens
