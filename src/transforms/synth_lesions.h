// Synthetic lesions with exact ground truth: a lesion drawn from a small shape/intensity model
// is inserted into real anatomy, and the mask says where. 2-D and 3-D, any channel count
// (colour images change in every channel at the same voxels). See docs/SYNTHETIC_LESIONS.md.
//
// The model, in mm about a centre c (r = distance, u = direction):
//   boundary  R(u) = R0 * (1 + max over lobes of a_l * exp(k_l (u.v_l - 1)))
//                    + (spiculated) max over spikes of L_m * exp(k_s (u.s_m - 1))
//   strength  s(x) = smootherstep((R(u) - r) / edge + 1/2): 1 inside, 0 beyond R(u) + edge/2
//   mask      s(x) > 0.5, i.e. r < R(u)
//   image     bg' + s * (tissue - bg') + (1 - s) * halo * oedema_contrast * ref
//   tissue    m + ref * C(x) * (1 + texture * n(x)) + keep_background * (bg' - m)
// where bg' is the background after the optional mass effect (a radial push), m the mean of
// bg' in a shell just outside the lesion (per channel), ref = max(m, 10% of the image range),
// C(x) the contrast (or, with ring enhancement, the core contrast inside and the rim contrast
// in the outer rim_mm), n smoothed unit noise. Results are clamped to the background's value
// range, and rounded when every background value is an integer (so 8/16-bit sources stay
// exact). Voxels outside the zone (s > 0, the halo, the mass-effect reach) are not touched.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "transforms/transform.h"

namespace medlens {

struct LesionOptions {
  enum class Margin { kSoft, kSpiculated };

  double radius_min_mm_ = 4.0, radius_max_mm_ = 10.0;  ///< base radius R0, drawn uniform
  int lobes_ = 3;                    ///< bumps on the boundary
  double lobe_depth_ = 0.3;          ///< a lobe adds up to this fraction of R0
  Margin margin_ = Margin::kSoft;
  double edge_mm_ = 1.5;             ///< width of the 0..1 transition of s across the boundary
  int spikes_ = 10;                  ///< spiculated: thin radial spikes
  double spike_length_ = 0.8;        ///< longest spike, as a fraction of R0
  double spike_width_mm_ = 1.0;      ///< spike width where it leaves the body
  double texture_ = 0.15;            ///< relative amplitude of the smoothed noise on the contrast
  double texture_mm_ = 1.5;          ///< smoothing of that noise
  double contrast_ = 0.3;            ///< signed change relative to the local background level
  double keep_background_ = 0.5;     ///< fraction of the background's own texture kept inside
  bool ring_ = false;                ///< ring enhancement: bright rim, dark core
  double rim_mm_ = 0.0;              ///< rim thickness (0: a quarter of R0)
  double core_contrast_ = -0.3;      ///< contrast of the core when ring is on
  double oedema_mm_ = 0.0;           ///< width of a faint halo outside the boundary (0: none)
  double oedema_contrast_ = -0.1;    ///< contrast of that halo where it meets the lesion
  double mass_effect_mm_ = 0.0;      ///< radial push of the background at R0 (at most R0/2)
  /// Per-channel factor on the contrast (empty: 1 for every channel). Co-registered contrasts
  /// stacked as channels see the same lesion stand out differently (e.g. subtle on T1, bright
  /// on a second contrast).
  std::vector<double> channel_gain_;

  LesionOptions& radius(double min_mm, double max_mm) { radius_min_mm_ = min_mm; radius_max_mm_ = max_mm; return *this; }
  LesionOptions& lobulation(int lobes, double depth) { lobes_ = lobes; lobe_depth_ = depth; return *this; }
  LesionOptions& soft_margin(double edge_mm) { margin_ = Margin::kSoft; edge_mm_ = edge_mm; return *this; }
  LesionOptions& spiculated(int spikes, double length = 0.8, double width_mm = 1.0, double edge_mm = 0.5) {
    margin_ = Margin::kSpiculated; spikes_ = spikes; spike_length_ = length; spike_width_mm_ = width_mm;
    edge_mm_ = edge_mm; return *this;
  }
  LesionOptions& texture(double amplitude, double scale_mm = 1.5) { texture_ = amplitude; texture_mm_ = scale_mm; return *this; }
  LesionOptions& contrast(double c) { contrast_ = c; return *this; }
  LesionOptions& keep_background(double f) { keep_background_ = f; return *this; }
  LesionOptions& ring_enhancement(double rim_contrast = 0.5, double core_contrast = -0.3, double rim_mm = 0.0) {
    ring_ = true; contrast_ = rim_contrast; core_contrast_ = core_contrast; rim_mm_ = rim_mm; return *this;
  }
  LesionOptions& oedema(double width_mm, double contrast) { oedema_mm_ = width_mm; oedema_contrast_ = contrast; return *this; }
  LesionOptions& mass_effect(double push_mm) { mass_effect_mm_ = push_mm; return *this; }
  LesionOptions& channel_gain(std::vector<double> gains) { channel_gain_ = std::move(gains); return *this; }

  /// Defaults for a DICOM modality code: MR bright-ish (+0.35, mass effect 1 mm), US
  /// hypoechoic (-0.6), CR/DX an additive opacity (+0.25, background kept), OP (fundus) a
  /// dark haemorrhage-like spot (-0.4); anything else +0.3.
  static LesionOptions for_modality(const std::string& modality);
  /// Throws UsageError for values that make no sense (negative radius, min > max, ...).
  void validate() const;
  /// Farthest distance from the centre at which a lesion with these options may change the
  /// image, for radius_max (mm).
  double reach_mm() const;
  nlohmann::json to_json() const;
};

struct SynthResult {
  Image image;   ///< background with the lesion
  Image mask;    ///< 1 channel, 0/1: where the lesion's strength exceeds half (r < R(u))
  Image zone;    ///< 1 channel, 0/1: every voxel the insertion may have changed (mask, edge, halo, push)
  nlohmann::json description;  ///< centre (voxel, LPS mm), radius_mm, volume_mm3 or area_mm2, drawn shape, options
};

/// Inserts one lesion drawn with `options` into `background` (not modified). Centres fall in
/// `region` (> 0; same grid, one channel) when given, at voxels where the lesion's base radius
/// fits inside the region along every axis if any such voxel is found, else anywhere in it.
/// Throws UsageError for bad options and InputError when the region is empty or mismatched.
SynthResult insert_lesion(const Image& background, const LesionOptions& options, Rng& rng,
                          const Image* region = nullptr);

/// A second, synthetic contrast of the same anatomy, for multi-modal benchmarks: a
/// piecewise-linear remapping of intensity in which tissues change order. Control points
/// `from` -> `to` are fractions of the image's 99th percentile over its foreground (voxels above
/// 10% of it); values beyond the last point continue the last segment's level. Preset "t2-like"
/// for a T1 brain (ch2): air stays dark, CSF becomes bright, grey matter brighter than white
/// matter. Throws UsageError for an unknown preset or unsorted/mismatched points.
Image synthetic_contrast(const Image& image, const std::vector<double>& from, const std::vector<double>& to);
Image synthetic_contrast(const Image& image, const std::string& preset);

}  // namespace medlens
