// Synthetic lesions: the mask matches the change exactly, everything outside the lesion's zone
// keeps its bytes, the contrast has the intended sign and size on real MRI, ultrasound, chest
// X-ray and fundus backgrounds, and each optional feature (ring, oedema, spicules, mass effect)
// does what it says.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "io/read.h"
#include "transforms/augment.h"
#include "transforms/synth_lesions.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

using at::indexing::Slice;

struct Brain {
  Image t1, mask;
};

// A 96^3 piece of ch2 around the brain and its brain mask (ch2bet > 0).
const Brain& brain() {
  static const Brain b = [] {
    const std::string dir = test::mricron_templates();
    Image bet = read_image(dir + "/ch2bet.nii.gz");
    bet = bet.with_voxels((bet.voxels() > 0).to(at::kFloat));
    Rng rng(0);
    const Sample s = make_crop_at({42, 60, 40}, {96, 96, 96})->apply(Sample{read_image(dir + "/ch2.nii.gz"), bet}, rng);
    return Brain{s.image, *s.label};
  }();
  return b;
}

// (Z, Y, X) bool dilated by +-k voxels per in-grid axis.
at::Tensor dilate(const at::Tensor& m, int64_t k) {
  at::Tensor t = m.to(at::kFloat).unsqueeze(0).unsqueeze(0);
  const int64_t kz = m.size(0) > 1 ? k : 0;
  t = at::max_pool3d(t, {2 * kz + 1, 2 * k + 1, 2 * k + 1}, {1, 1, 1}, {kz, k, k});
  return t.squeeze(0).squeeze(0) > 0.5;
}

// Distance in mm of every voxel from the lesion's centre.
at::Tensor distance_mm(const Image& img, const nlohmann::json& d) {
  const Vec3& sp = img.geometry().spacing;
  const at::Tensor id = identity_coords(img.shape());
  at::Tensor r2 = at::zeros_like(id[0]);
  for (int a = 0; a < 3; ++a) r2 = r2 + ((id[a] - d["centre_voxel"][a].get<double>()) * sp[a]).pow(2);
  return r2.sqrt();
}

// Mean over channels of voxels selected by a (Z, Y, X) mask.
double mean_in(const Image& img, const at::Tensor& where) {
  return img.voxels().to(at::kDouble).masked_select(where.unsqueeze(0)).mean().item<double>();
}

struct Check {
  double contrast;        // (inside - ring) / ring
  double changed_in_mask; // fraction of mask voxels that changed (any channel)
};

// The contract every insertion keeps, and the measured contrast.
Check check_insertion(const Image& bg, const SynthResult& r, int64_t band_voxels) {
  const at::Tensor mask = r.mask.voxels()[0] > 0.5, zone = r.zone.voxels()[0] > 0.5;
  const at::Tensor changed = (r.image.voxels() != bg.voxels()).any(0);
  EXPECT_GT(mask.sum().item<int64_t>(), 0);
  // Untouched outside the zone, byte for byte; the mask lies inside the zone.
  EXPECT_TRUE(at::equal(r.image.voxels().masked_select(~zone.unsqueeze(0)), bg.voxels().masked_select(~zone.unsqueeze(0))));
  EXPECT_FALSE((mask & ~zone).any().item<bool>());
  EXPECT_FALSE((changed & ~zone).any().item<bool>());
  // Without halo or push, the zone is the mask plus the soft edge's outer half.
  if (band_voxels >= 0) {
    EXPECT_FALSE((zone & ~dilate(mask, band_voxels)).any().item<bool>());
  }
  // The description agrees with the mask.
  const nlohmann::json& d = r.description;
  EXPECT_EQ(d["voxels"].get<int64_t>(), mask.sum().item<int64_t>());
  const Vec3& sp = bg.geometry().spacing;
  const double unit = bg.is_3d() ? sp[0] * sp[1] * sp[2] : sp[0] * sp[1];
  EXPECT_NEAR(d[bg.is_3d() ? "volume_mm3" : "area_mm2"].get<double>(), unit * d["voxels"].get<double>(), 1e-6);
  const Vec3 lps = bg.geometry().index_to_lps({d["centre_voxel"][0].get<double>(), d["centre_voxel"][1].get<double>(),
                                               d["centre_voxel"][2].get<double>()});
  for (int a = 0; a < 3; ++a) EXPECT_NEAR(d["centre_lps_mm"][a].get<double>(), lps[a], 1e-9);
  const at::Tensor ring = dilate(mask, 3) & ~dilate(mask, 1);
  const double inside = mean_in(r.image, mask), outside = mean_in(r.image, ring);
  return {(inside - outside) / outside,
          (changed & mask).sum().item<double>() / mask.sum().item<double>()};
}

TEST(SynthLesions, MaskMatchesTheChangeInA3DBrain) {
  const Brain& b = brain();
  LesionOptions o = LesionOptions::for_modality("MR").mass_effect(0);
  o.radius(4, 9);
  const int64_t band = static_cast<int64_t>(std::ceil(o.edge_mm_ / 2)) + 1;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    SCOPED_TRACE(seed);
    Rng rng(seed);
    const SynthResult r = insert_lesion(b.t1, o, rng, &b.mask);
    const Check c = check_insertion(b.t1, r, band);
    EXPECT_GE(c.contrast, 0.5 * 0.35) << "bright-ish on T1";
    EXPECT_GE(c.changed_in_mask, 0.95);
    const auto& cv = r.description["centre_voxel"];
    EXPECT_GT(b.mask.voxels()[0][cv[2].get<int64_t>()][cv[1].get<int64_t>()][cv[0].get<int64_t>()].item<float>(), 0)
        << "centres fall in the brain";
    const double rad = r.description["radius_mm"].get<double>();
    EXPECT_GE(rad, 4.0);
    EXPECT_LE(rad, 9.0);
    EXPECT_LE(r.description["max_radius_mm"].get<double>(), rad * (1 + o.lobe_depth_) + 1e-9);
    EXPECT_EQ(r.image.geometry(), b.t1.geometry());
    EXPECT_EQ(r.mask.geometry(), b.t1.geometry());
  }
}

TEST(SynthLesions, ModalityDefaultsGiveTheIntendedContrast) {
  const std::string samples = test::vendored_samples();
  struct Case {
    std::string path, modality;
    double radius_lo, radius_hi, sign;
  };
  const std::vector<Case> cases = {
      {samples + "/busi/normal_100.png", "US", 12, 25, -1},
      {samples + "/busi/normal_106.png", "US", 12, 25, -1},
      {samples + "/pneumoniamnist/val_00135.png", "DX", 2, 3.5, +1},
      {samples + "/pneumoniamnist/val_00137.png", "DX", 2, 3.5, +1},
      {test::skimage_data() + "/retina.jpg", "OP", 15, 30, -1}};
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.path);
    Image bg = read_image(cs.path);
    if (bg.width() > 300) {  // the fundus photograph: a 256^2 piece with retina in it
      Rng rng(0);
      bg = make_crop_at({700, 300, 0}, {256, 256, 1})->apply({bg, std::nullopt}, rng).image;
    }
    LesionOptions o = LesionOptions::for_modality(cs.modality);
    o.radius(cs.radius_lo, cs.radius_hi);
    const double intended = std::abs(o.contrast_);
    double sum = 0;
    for (uint64_t seed = 0; seed < 3; ++seed) {
      Rng rng(seed);
      const SynthResult r = insert_lesion(bg, o, rng);
      const Check c = check_insertion(bg, r, -1);
      EXPECT_GE(c.changed_in_mask, 0.9);
      EXPECT_GT(cs.sign * c.contrast, 0.0) << "seed " << seed;
      sum += cs.sign * c.contrast;
      // 8-bit sources stay 8-bit integers, so PNG keeps them exactly.
      EXPECT_TRUE(at::equal(r.image.voxels(), at::round(r.image.voxels())));
      EXPECT_GE(r.image.voxels().min().item<float>(), 0.0f);
      EXPECT_LE(r.image.voxels().max().item<float>(), 255.0f);
      if (bg.channels() == 3) {
        // Colour: every channel moves the same way inside the mask.
        const at::Tensor mask = r.mask.voxels()[0] > 0.5, ring = dilate(mask, 3) & ~dilate(mask, 1);
        for (int64_t ch = 0; ch < 3; ++ch) {
          const at::Tensor v = r.image.voxels()[ch].to(at::kDouble);
          EXPECT_LT(v.masked_select(mask).mean().item<double>(), v.masked_select(ring).mean().item<double>()) << ch;
        }
      }
    }
    EXPECT_GE(sum / 3, 0.5 * intended) << "mean contrast reaches half the intended magnitude";
  }
}

TEST(SynthLesions, SameSeedSameLesionAndSeedsDiffer) {
  const Brain& b = brain();
  const LesionOptions o = LesionOptions::for_modality("MR").radius(4, 8);
  Rng r1(21), r2(21), r3(22);
  const SynthResult a = insert_lesion(b.t1, o, r1, &b.mask), c = insert_lesion(b.t1, o, r2, &b.mask),
                    d = insert_lesion(b.t1, o, r3, &b.mask);
  EXPECT_TRUE(at::equal(a.image.voxels(), c.image.voxels()));
  EXPECT_TRUE(at::equal(a.mask.voxels(), c.mask.voxels()));
  EXPECT_EQ(a.description, c.description);
  EXPECT_NE(a.description["centre_voxel"], d.description["centre_voxel"]);
}

TEST(SynthLesions, RingOedemaSpiculesAndMassEffect) {
  const Brain& b = brain();
  // Ring enhancement: a bright rim around a dark core.
  {
    LesionOptions o = LesionOptions::for_modality("MR").mass_effect(0).lobulation(0, 0).texture(0);
    o.radius(9, 9).ring_enhancement(0.6, -0.4, 2.5);
    Rng rng(5);
    const SynthResult r = insert_lesion(b.t1, o, rng, &b.mask);
    check_insertion(b.t1, r, static_cast<int64_t>(std::ceil(o.edge_mm_ / 2)) + 1);
    const at::Tensor dist = distance_mm(r.image, r.description), mask = r.mask.voxels()[0] > 0.5;
    const double rim = mean_in(r.image, mask & (dist > 7.0)), core = mean_in(r.image, dist < 4.5);
    const double around = mean_in(r.image, (dist > 11) & (dist < 13));
    EXPECT_GT(rim, around * 1.25);
    EXPECT_LT(core, around * 0.85);
  }
  // Oedema: a faint dark halo outside the mask, nothing beyond it.
  {
    LesionOptions o = LesionOptions::for_modality("MR").mass_effect(0).lobulation(0, 0).texture(0);
    o.radius(6, 6).oedema(5, -0.3);
    Rng rng(6);
    const SynthResult r = insert_lesion(b.t1, o, rng, &b.mask);
    check_insertion(b.t1, r, -1);
    const at::Tensor dist = distance_mm(r.image, r.description), zone = r.zone.voxels()[0] > 0.5;
    const at::Tensor halo = (dist > 6 + o.edge_mm_ / 2 + 0.5) & (dist < 6 + 3);
    EXPECT_TRUE((zone | ~halo).all().item<bool>()) << "the halo is part of the zone";
    EXPECT_LT(mean_in(r.image, halo), 0.95 * mean_in(b.t1, halo));
    EXPECT_FALSE((zone & (dist > 6 + o.edge_mm_ / 2 + 5 + 0.01)).any().item<bool>());
    EXPECT_EQ(r.mask.voxels().sum().item<double>(), (dist < 6).sum().item<double>());
  }
  // Spicules reach well beyond the body; a smooth lesion does not.
  {
    LesionOptions smooth = LesionOptions::for_modality("MR").mass_effect(0).lobulation(0, 0);
    smooth.radius(7, 7);
    LesionOptions spiky = smooth;
    spiky.spiculated(16, 1.0, 1.5);
    Rng r1(8), r2(8);
    const SynthResult a = insert_lesion(b.t1, smooth, r1, &b.mask), s = insert_lesion(b.t1, spiky, r2, &b.mask);
    check_insertion(b.t1, s, -1);
    EXPECT_LE(a.description["max_radius_mm"].get<double>(), 7.0);
    EXPECT_GT(s.description["max_radius_mm"].get<double>(), 7.0 * 1.3);
    EXPECT_EQ(s.description["spikes"].size(), 16u);
  }
  // Mass effect on a ramp (value 100 + x): tissue is pushed outwards, so right of the lesion
  // the values come from further left (lower), left of it from further right (higher).
  {
    const Image ramp((at::arange(128, at::kFloat) + 100).expand({1, 1, 128, 128}).contiguous(), Geometry{}, Metadata{});
    at::Tensor centre = at::zeros({1, 1, 128, 128});
    centre.index_put_({0, 0, Slice(60, 68), Slice(60, 68)}, 1.0f);
    const Image region(centre, Geometry{}, Metadata{});
    LesionOptions o = LesionOptions::for_modality("MR").lobulation(0, 0).texture(0).mass_effect(3);
    o.radius(10, 10);
    Rng rng(9);
    const SynthResult r = insert_lesion(ramp, o, rng, &region);
    check_insertion(ramp, r, -1);
    const int64_t cx = r.description["centre_voxel"][0], cy = r.description["centre_voxel"][1];
    const at::Tensor v = r.image.voxels()[0][0], bg = ramp.voxels()[0][0];
    EXPECT_LT(v[cy][cx + 15].item<float>(), bg[cy][cx + 15].item<float>());
    EXPECT_GT(v[cy][cx - 15].item<float>(), bg[cy][cx - 15].item<float>());
    EXPECT_DOUBLE_EQ(r.description["mass_effect_mm"].get<double>(), 3.0);
    const at::Tensor dist = distance_mm(r.image, r.description);
    EXPECT_FALSE(((r.zone.voxels()[0] > 0.5) & (dist > 25.0 + 1e-9)).any().item<bool>()) << "fades by 2.5 radii";
    EXPECT_TRUE((r.zone.voxels()[0] > 0.5).masked_select((dist > 12) & (dist < 24)).all().item<bool>());
  }
}

TEST(SynthLesions, CentresStayInTheRegionAndBadInputIsRefused) {
  const Image bg(at::full({1, 1, 64, 64}, 100.0f), Geometry{}, Metadata{});
  at::Tensor small = at::zeros({1, 1, 64, 64});
  small.index_put_({0, 0, Slice(40, 45), Slice(10, 15)}, 1.0f);
  const Image region(small, Geometry{}, Metadata{});
  const LesionOptions o = LesionOptions().radius(2, 3);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng rng(seed);
    const auto c = insert_lesion(bg, o, rng, &region).description["centre_voxel"];
    EXPECT_TRUE(c[0] >= 10 && c[0] < 15 && c[1] >= 40 && c[1] < 45) << c.dump();
  }
  Rng rng(0);
  const Image empty(at::zeros({1, 1, 64, 64}), Geometry{}, Metadata{});
  EXPECT_THROW(insert_lesion(bg, o, rng, &empty), InputError);
  const Image wrong(at::ones({1, 1, 32, 64}), Geometry{}, Metadata{});
  EXPECT_THROW(insert_lesion(bg, o, rng, &wrong), InputError);
  EXPECT_THROW(insert_lesion(bg, LesionOptions().radius(5, 2), rng), UsageError);
  EXPECT_THROW(insert_lesion(bg, LesionOptions().soft_margin(0), rng), UsageError);
  EXPECT_THROW(insert_lesion(bg, LesionOptions().keep_background(2), rng), UsageError);
  // reach_mm bounds the zone for the largest radius.
  const LesionOptions wide = LesionOptions().radius(6, 6).oedema(3, -0.1);
  Rng r2(3);
  const SynthResult r = insert_lesion(bg, wide, r2);
  const at::Tensor dist = distance_mm(r.image, r.description);
  EXPECT_FALSE(((r.zone.voxels()[0] > 0.5) & (dist > wide.reach_mm())).any().item<bool>());
}

}  // namespace
}  // namespace medlens
