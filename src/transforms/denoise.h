// Denoising filters: Gaussian, median, bilateral, non-local means, curvature anisotropic
// diffusion, the Anscombe variance-stabilising pair for Poisson noise, and SRAD for speckle.
// All work on 2-D and 3-D images, channel by channel (NLM shares its weights across channels),
// keep geometry and metadata, and take physical sizes in mm scaled by each axis's spacing.
#pragma once

#include <array>
#include <cstdint>

#include "transforms/transform.h"

namespace medlens {

/// Index i mirrored into [0, n) as numpy.pad(mode="reflect"): (d c b | a b c d | c b a).
int64_t reflect_index(int64_t i, int64_t n);

/// Robust noise standard deviation: median |finest diagonal Haar wavelet coefficient| / 0.6745
/// (Donoho & Johnstone), over 2x2 blocks per slice for 2-D images, 2x2x2 blocks for volumes,
/// over all channels. The estimate behind the filters' automatic parameters.
double estimate_noise_sd(const Image& image);

/// Gaussian smoothing with a standard deviation in mm per axis (x, y, z; z is ignored for 2-D
/// images), kernel truncated at 4 sigma, mirrored ("reflect") borders as scipy.ndimage.
TransformPtr make_gaussian_blur(std::array<double, 3> sigma_mm);

/// Median over a box of (2r+1) voxels per axis, borders replicated. radius_mm > 0 replaces
/// the voxel radius with round(radius_mm / spacing) per axis.
struct MedianOptions {
  int radius_ = 1;
  double radius_mm_ = 0.0;
  MedianOptions& radius(int r) { radius_ = r; return *this; }
  MedianOptions& radius_mm(double mm) { radius_mm_ = mm; return *this; }
};
TransformPtr make_median(const MedianOptions& options = {});

/// Bilateral filter: Gaussian weights in space (sigma in mm, window +-2 sigma) times Gaussian
/// weights in intensity (sigma_range in intensity units; 0 = twice estimate_noise_sd, and an
/// image whose estimate is 0 is returned unchanged). Borders replicated.
struct BilateralOptions {
  double sigma_spatial_ = 1.0;
  double sigma_range_ = 0.0;
  BilateralOptions& sigma_spatial(double mm) { sigma_spatial_ = mm; return *this; }
  BilateralOptions& sigma_range(double v) { sigma_range_ = v; return *this; }
};
TransformPtr make_bilateral(const BilateralOptions& options = {});

/// Non-local means (Buades et al.) in the fast blockwise form of Darbon et al., as
/// skimage.restoration.denoise_nl_means(fast_mode=True): every offset within patch_distance
/// voxels is scored by the mean squared difference of the two patches (box sums, each offset
/// once for both directions), weight exp(-max(d - 2 sigma^2, 0) / h^2). Channels share weights.
/// sigma 0 = estimate_noise_sd; h 0 = 0.8 sigma (an image whose estimate is 0 is returned
/// unchanged). Radii are for the finest axis and shrink with coarser spacing, so patches are
/// roughly isotropic in mm. Borders mirror ("reflect"). Cost grows with the number of offsets,
/// (2 patch_distance + 1)^2 in 2-D but ^3 in 3-D: use small distances on volumes.
struct NlmOptions {
  int patch_size_ = 5;       ///< odd, voxels
  int patch_distance_ = 6;   ///< search radius, voxels
  double h_ = 0.0;
  double sigma_ = 0.0;
  NlmOptions& patch_size(int v) { patch_size_ = v; return *this; }
  NlmOptions& patch_distance(int v) { patch_distance_ = v; return *this; }
  NlmOptions& h(double v) { h_ = v; return *this; }
  NlmOptions& sigma(double v) { sigma_ = v; return *this; }
};
TransformPtr make_nlm(const NlmOptions& options = {});

/// Curvature anisotropic diffusion (Whitaker & Xue; ITK CurvatureAnisotropicDiffusionImageFilter)
/// in physical units. time_step 0 = the stability limit min(spacing) / 2^(N+1), N = 2 or 3.
struct DiffusionOptions {
  int iterations_ = 5;
  double conductance_ = 1.0;
  double time_step_ = 0.0;
  DiffusionOptions& iterations(int v) { iterations_ = v; return *this; }
  DiffusionOptions& conductance(double v) { conductance_ = v; return *this; }
  DiffusionOptions& time_step(double v) { time_step_ = v; return *this; }
};
TransformPtr make_anisotropic_diffusion(const DiffusionOptions& options = {});

/// Anscombe transform 2 sqrt(v / gain + 3/8): Poisson counts (v / gain) get noise of unit
/// standard deviation, so Gaussian denoisers apply. gain is the intensity of one count.
TransformPtr make_anscombe(double gain = 1.0);
/// Its inverse, gain * I(D), with I the closed-form approximation of the exact unbiased inverse
/// (Makitalo & Foi 2011): D^2/4 + sqrt(3/2)/4 D^-1 - 11/8 D^-2 + 5/8 sqrt(3/2) D^-3 - 1/8,
/// which is 0 at D = sqrt(3/2) (= the transform of 0); smaller D map to 0.
TransformPtr make_inverse_anscombe(double gain = 1.0);

/// Speckle reducing anisotropic diffusion (SRAD, Yu & Acton 2002) for ultrasound. The
/// instantaneous coefficient of variation q drives c(q) = 1 / (1 + (q^2 - q0^2) /
/// (q0^2 (1 + q0^2))); the speckle scale q0^2 is re-estimated at every iteration as the median
/// of q^2 over the image. Time is in units of the finest spacing; time_step 0 = half the
/// explicit stability limit (0.125 for 2-D, 1/12 for 3-D at isotropic spacing), larger values
/// are reduced to the limit. Needs non-negative intensities (InputError otherwise).
struct SpeckleOptions {
  int iterations_ = 30;
  double time_step_ = 0.0;
  SpeckleOptions& iterations(int v) { iterations_ = v; return *this; }
  SpeckleOptions& time_step(double v) { time_step_ = v; return *this; }
};
TransformPtr make_speckle(const SpeckleOptions& options = {});

}  // namespace medlens
