// Parallel-beam CT for axial slices: forward projection (Radon transform) and filtered back
// projection, in millimetres, so corruptions can be made where CT artefacts arise: in the
// sinogram. Include <ATen/ATen.h> where the tensors are used.
#pragma once

#include <cstdint>

namespace at {
class Tensor;
}

namespace medlens {

/// Linear attenuation of water in 1/mm at an effective energy of about 70 keV; HU are defined
/// against it: mu = mu_water * (1 + HU / 1000).
inline constexpr double kMuWater = 0.0193;

/// A parallel-beam scan of slices of ny x nx pixels with pixel spacing (sy, sx) mm: `views`
/// angles evenly over [0, 180) degrees and `bins` detector bins `bin_mm` apart whose middle bin
/// looks through the rotation centre, the slice's centre. The detector spans the slice's
/// diagonal, so nothing in the slice is truncated.
struct ParallelBeam {
  int64_t ny = 0, nx = 0;
  double sy = 1.0, sx = 1.0;
  int64_t views = 360;
  int64_t bins = 0;
  double bin_mm = 1.0;
  /// The beam for a slice: bin_mm is half the finer pixel spacing, bins odd and covering the
  /// diagonal.
  static ParallelBeam for_slice(int64_t ny, int64_t nx, double sy, double sx, int64_t views = 360);
  /// Detector position (mm from the rotation centre) of bin b.
  double bin_position(int64_t b) const { return (static_cast<double>(b) - (bins - 1) / 2.0) * bin_mm; }
};

/// Line integrals of attenuation: mu is float (N, ny, nx) in 1/mm (values outside the slice are
/// taken as 0, i.e. air); returns float (N, views, bins), dimensionless. Joseph's method: each
/// ray is interpolated linearly where it crosses each pixel row (or column, whichever it follows
/// more closely). Parallel over slices and views; deterministic.
at::Tensor forward_project(const at::Tensor& mu, const ParallelBeam& beam);

/// Filtered back projection of a float (N, views, bins) sinogram to (N, ny, nx) in 1/mm, with
/// the ramp filter (Kak & Slaney's band-limited kernel, zero-padded) cut off at the pixels'
/// Nyquist frequency, and linear interpolation between bins.
/// Linear in the sinogram. FBP(forward_project(mu)) reproduces mu up to the filter's blur.
at::Tensor filtered_back_project(const at::Tensor& sinogram, const ParallelBeam& beam);

}  // namespace medlens
