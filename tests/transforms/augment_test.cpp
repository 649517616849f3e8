// Augmentation: reproducibility, grids, labels that follow the image, and measured parameters
// (rotation and translation in mm, elastic displacement bounds, foreground-biased crop rates).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"
#include "io/read.h"
#include "transforms/augment.h"
#include "transforms/registry.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

using at::indexing::Slice;

// A 40^3 piece of the ch2 T1 brain and its brain mask (ch2bet > 0) as the label.
const Sample& brain() {
  static const Sample s = [] {
    const std::string dir = test::mricron_templates();
    const TransformPtr crop = make_crop_at({70, 90, 70}, {40, 40, 40});
    Rng rng(0);
    Image mask = read_image(dir + "/ch2bet.nii.gz");
    mask = mask.with_voxels((mask.voxels() > 0).to(at::kFloat));
    return crop->apply(Sample{read_image(dir + "/ch2.nii.gz"), mask}, rng);
  }();
  return s;
}

const Image& ultrasound() {
  static const Image img = read_image(test::vendored_samples() + "/busi/normal_100.png");
  return img;
}

Geometry oblique_geometry(Vec3 spacing) {
  Geometry g;
  g.spacing = spacing;
  g.origin = {-12.5, 40.0, 7.25};
  const double c = std::cos(0.3), s = std::sin(0.3);
  g.direction = {c, -s, 0, s, c, 0, 0, 0, 1};
  return g;
}

// Channels hold each voxel's own index (x, y, z) times `scale` (1: voxels, spacing: mm).
Image coordinate_image(const Shape& s, const Geometry& g, bool in_mm) {
  const at::Tensor id = identity_coords(s).to(at::kFloat);
  at::Tensor v = id.clone();
  if (in_mm)
    for (int a = 0; a < 3; ++a) v[a].mul_(g.spacing[a]);
  return Image(v, g, Metadata{});
}

// One channel: 1 + the voxel's linear index, so 0 means "filled from outside".
Image index_image(const Shape& s, const Geometry& g) {
  return Image(at::arange(1, s.voxels() + 1, at::kFloat).reshape({1, s.z, s.y, s.x}), g, Metadata{});
}

TEST(Augment, EveryRandomTransformIsReproducibleAndKeepsTheGrid) {
  const std::vector<std::pair<std::string, nlohmann::json>> ops = {
      {"random-affine", {{"p", 1}, {"shear", 0.05}, {"translate", 3}}},
      {"random-elastic", {{"p", 1}, {"magnitude", {1, 3}}, {"sigma", 8}}},
      {"random-gamma", {{"p", 1}}},
      {"random-brightness-contrast", {{"p", 1}}},
      {"random-blur", {{"p", 1}}},
      {"random-noise", {{"p", 1}}},
      {"random-crop", {{"size", {24, 20, 16}}, {"foreground", 0.5}}}};
  for (const Sample& input : {brain(), Sample{ultrasound(), std::nullopt}}) {
    for (const auto& [name, params] : ops) {
      SCOPED_TRACE(name + (input.image.is_3d() ? " 3-D" : " 2-D"));
      const TransformPtr t = make_transform(name, params);
      EXPECT_TRUE(t->random());
      int differing = 0;
      for (uint64_t seed = 0; seed < 3; ++seed) {
        Rng r1(seed), r2(seed), r3(seed + 50);
        const Sample a = t->apply(input, r1), b = t->apply(input, r2), c = t->apply(input, r3);
        ASSERT_TRUE(at::equal(a.image.voxels(), b.image.voxels()));
        differing += !at::equal(a.image.voxels(), c.image.voxels());
        ASSERT_EQ(a.label.has_value(), input.label.has_value());
        if (a.label) {
          EXPECT_TRUE(at::equal(a.label->voxels(), b.label->voxels()));
        }
        EXPECT_EQ(a.image.metadata().source_path, input.image.metadata().source_path);
        if (name == "random-crop") {
          const Shape s = a.image.shape();
          EXPECT_EQ(s, (Shape{input.image.channels(), input.image.is_3d() ? 16 : 1, 20, 24}));
          EXPECT_EQ(a.image.geometry().spacing, input.image.geometry().spacing);
        } else {
          EXPECT_EQ(a.image.shape(), input.image.shape());
          EXPECT_EQ(a.image.geometry(), input.image.geometry());
        }
        const bool intensity = name != "random-affine" && name != "random-elastic" && name != "random-crop";
        if (intensity && a.label) {
          EXPECT_TRUE(at::equal(a.label->voxels(), input.label->voxels()));
        }
      }
      EXPECT_GE(differing, 2) << "different seeds should draw different parameters";
    }
  }
}

TEST(Augment, ProbabilityZeroLeavesTheSampleAlone) {
  for (const char* name : {"random-affine", "random-elastic", "random-gamma", "random-brightness-contrast",
                           "random-blur", "random-noise"}) {
    SCOPED_TRACE(name);
    Rng rng(3);
    const Sample out = make_transform(name, {{"p", 0}})->apply(brain(), rng);
    EXPECT_TRUE(at::equal(out.image.voxels(), brain().image.voxels()));
  }
}

TEST(RandomAffine, ZeroRangesAreTheIdentity) {
  const TransformPtr t = make_transform(
      "random-affine", {{"p", 1}, {"rotate", 0}, {"scale", {1, 1}}, {"shear", 0}, {"translate", 0}});
  for (const Sample& input : {brain(), Sample{ultrasound(), std::nullopt}}) {
    Rng rng(1);
    const Sample out = t->apply(input, rng);
    EXPECT_TRUE(at::equal(out.image.voxels(), input.image.voxels()));
    if (input.label) {
      EXPECT_TRUE(at::equal(out.label->voxels(), input.label->voxels()));
    }
  }
}

TEST(RandomAffine, RotatesAndTranslatesInMillimetresAboutTheCentre) {
  // 2-D, spacing 0.5 x 1 mm: a dot 4 mm right of the centre.
  Geometry g = oblique_geometry({0.5, 1.0, 1.0});
  at::Tensor v = at::zeros({1, 1, 21, 41});
  v.index_put_({0, 0, 10, 20 + 8}, 1.0f);
  const Image dot(v, g, Metadata{});
  auto where = [](const Image& img) {
    const at::Tensor i = img.voxels().argmax();
    const int64_t k = i.item<int64_t>();
    return std::array<int64_t, 3>{k % img.width(), (k / img.width()) % img.height(), k / (img.width() * img.height())};
  };
  AffineParams quarter;
  quarter.rotate_deg = {0, 0, 90};  // x towards y: 4 mm along y is 4 voxels
  Rng rng(0);
  EXPECT_EQ(where(make_affine(quarter, Interp::kNearest)->apply({dot, std::nullopt}, rng).image),
            (std::array<int64_t, 3>{20, 14, 0}));
  AffineParams shift;
  shift.translate_mm = {3, -2, 5};  // z ignored on 2-D: 6 voxels right, 2 up
  const Image moved = make_affine(shift, Interp::kLinear)->apply({dot, std::nullopt}, rng).image;
  EXPECT_EQ(where(moved), (std::array<int64_t, 3>{34, 8, 0}));
  EXPECT_FLOAT_EQ(moved.voxels().max().item<float>(), 1.0f);
  EXPECT_EQ(moved.geometry(), g);

  // 3-D, spacing 1 x 1 x 2 mm: rotating about x takes +y (6 mm) to +z (3 voxels).
  at::Tensor w = at::zeros({1, 11, 21, 21});
  w.index_put_({0, 5, 10 + 6, 10}, 1.0f);
  const Image dot3(w, oblique_geometry({1, 1, 2}), Metadata{});
  AffineParams about_x;
  about_x.rotate_deg = {90, 0, 0};
  EXPECT_EQ(where(make_affine(about_x, Interp::kNearest)->apply({dot3, std::nullopt}, rng).image),
            (std::array<int64_t, 3>{10, 10, 8}));
  AffineParams larger;
  larger.scale = {1.5, 1.5, 1.5};  // content grows about the centre: 6 mm becomes 9 mm
  EXPECT_EQ(where(make_affine(larger, Interp::kNearest)->apply({dot3, std::nullopt}, rng).image),
            (std::array<int64_t, 3>{10, 19, 5}));
}

// Image and label warped together: nearest-neighbour images equal the label exactly, and with
// linear interpolation the label's voxel is always within half a voxel of where the image
// sampled.
TEST(WarpLabels, LabelVoxelsLandWhereTheImagesDo) {
  const std::vector<std::pair<std::string, nlohmann::json>> ops = {
      {"random-affine", {{"p", 1}, {"rotate", 25}, {"scale", {0.8, 1.3}}, {"shear", 0.1}, {"translate", 4}}},
      {"random-elastic", {{"p", 1}, {"magnitude", {2, 4}}, {"sigma", 6}}}};
  // The third shape resamples in several blocks along z.
  for (const Shape& s : {Shape{1, 12, 20, 24}, Shape{1, 1, 30, 36}, Shape{1, 40, 128, 128}}) {
    const Geometry g = oblique_geometry({0.8, 1.1, 2.0});
    const Image index = index_image(s, g), coords = coordinate_image(s, g, false);
    for (const auto& [name, params] : ops) {
      SCOPED_TRACE(name + (s.z > 1 ? " 3-D" : " 2-D"));
      for (uint64_t seed = 0; seed < (s.voxels() > 100000 ? 1u : 4u); ++seed) {
        nlohmann::json nearest = params;
        nearest["interp"] = "nearest";
        nearest["border"] = "zeros";
        Rng r1(seed);
        const Sample a = make_transform(name, nearest)->apply({index, index}, r1);
        EXPECT_TRUE(at::equal(a.image.voxels(), a.label->voxels()));
        EXPECT_FALSE(at::equal(a.image.voxels(), index.voxels()));

        nlohmann::json linear = params;
        linear["border"] = "border";
        Rng r2(seed);
        const Sample b = make_transform(name, linear)->apply({coords, index}, r2);
        const at::Tensor k = b.label->voxels()[0].to(at::kLong) - 1;
        const at::Tensor lx = k % s.x, ly = at::div(k, s.x, "floor") % s.y, lz = at::div(k, s.x * s.y, "floor");
        const at::Tensor img = b.image.voxels();
        EXPECT_LE((lx - img[0]).abs().max().item<double>(), 0.5 + 1e-3);
        EXPECT_LE((ly - img[1]).abs().max().item<double>(), 0.5 + 1e-3);
        EXPECT_LE((lz - img[2]).abs().max().item<double>(), 0.5 + 1e-3);
      }
    }
  }
}

TEST(RandomElastic, DisplacementStaysWithinTheRequestedMillimetres) {
  const Geometry g = oblique_geometry({0.8, 1.0, 2.5});
  for (const Shape& s : {Shape{3, 16, 36, 40}, Shape{3, 1, 48, 52}}) {
    const Image mm = coordinate_image(s, g, true);
    const at::Tensor identity = mm.voxels();
    double largest = 0;
    for (uint64_t seed = 0; seed < 4; ++seed) {
      Rng rng(seed);
      const Image out = make_transform("random-elastic", {{"p", 1}, {"magnitude", {3, 3}}, {"sigma", 10}})
                            ->apply({mm, std::nullopt}, rng).image;
      const at::Tensor d = (out.voxels() - identity).pow(2).sum(0).sqrt();
      EXPECT_LE(d.max().item<double>(), 3.0 + 1e-3);
      largest = std::max(largest, d.max().item<double>());
      if (s.z == 1) {
        EXPECT_TRUE(at::equal(out.voxels()[2], identity[2]));  // in-plane only
      }
    }
    EXPECT_GT(largest, 2.0) << "the field should reach close to its magnitude";
    Rng rng(0);
    const Image still = make_transform("random-elastic", {{"p", 1}, {"magnitude", 0}})->apply({mm, std::nullopt}, rng).image;
    EXPECT_TRUE(at::equal(still.voxels(), identity));
  }
}

TEST(RandomCrop, ForegroundBiasCentresOnTheLabelAtTheRequestedRate) {
  const Geometry g;
  const Image img(at::rand({1, 1, 64, 64}), g, Metadata{});
  at::Tensor lab = at::zeros({1, 1, 64, 64});
  lab.index_put_({0, 0, Slice(30, 33), Slice(20, 23)}, 1.0f);  // 9 voxels, away from the borders
  const Sample sample{img, Image(lab, g, Metadata{})};
  for (double rate : {0.0, 0.3, 1.0}) {
    const TransformPtr t = make_random_crop({16, 16, 1}, rate);
    Rng rng(11);
    const int draws = 1500;
    int hits = 0;
    for (int i = 0; i < draws; ++i) {
      const Sample out = t->apply(sample, rng);
      ASSERT_EQ(out.image.shape(), (Shape{1, 1, 16, 16}));
      hits += out.label->voxels()[0][0][8][8].item<float>() > 0;
    }
    // Uniform crops hit the 9 voxels with probability 9/49^2.
    const double expected = rate + (1 - rate) * 9.0 / (49.0 * 49.0);
    const double tolerance = 4 * std::sqrt(expected * (1 - expected) / draws) + 1e-9;
    EXPECT_NEAR(hits / double(draws), expected, tolerance) << "rate " << rate;
  }
}

TEST(RandomCrop, VoxelsKeepTheirPositionsAndSmallImagesArePadded) {
  const Shape s{1, 6, 18, 20};
  const Geometry g = oblique_geometry({0.7, 0.9, 2.0});
  const Image index = index_image(s, g);
  Rng rng(4);
  const Sample out = make_random_crop({8, 8, 4})->apply({index, index}, rng);
  ASSERT_EQ(out.image.shape(), (Shape{1, 4, 8, 8}));
  EXPECT_TRUE(at::equal(out.image.voxels(), out.label->voxels()));
  const Geometry& og = out.image.geometry();
  for (int64_t z = 0; z < 4; z += 3)
    for (int64_t y = 0; y < 8; y += 7)
      for (int64_t x = 0; x < 8; x += 7) {
        const Vec3 src = g.lps_to_index(og.index_to_lps({double(x), double(y), double(z)}));
        const int64_t sx = std::llround(src[0]), sy = std::llround(src[1]), sz = std::llround(src[2]);
        EXPECT_NEAR(src[0], sx, 1e-6);
        EXPECT_EQ(out.image.voxels()[0][z][y][x].item<float>(), float(1 + (sz * s.y + sy) * s.x + sx));
      }
  const Sample padded = make_random_crop({30, 10, 8})->apply({index, index}, rng);
  ASSERT_EQ(padded.image.shape(), (Shape{1, 8, 10, 30}));
  EXPECT_EQ(padded.image.voxels().index({0, Slice(), Slice(), 0}).max().item<float>(), 1.0f);  // image minimum
  EXPECT_EQ(padded.label->voxels().index({0, 0}).max().item<float>(), 0.0f);                   // label 0
  const at::Tensor inside = padded.label->voxels() > 0;
  EXPECT_EQ(inside.sum().item<int64_t>(), 20 * 10 * 6);  // x and z whole, a window of 10 along y
  EXPECT_TRUE(at::equal(padded.image.voxels().masked_select(inside), padded.label->voxels().masked_select(inside)));
  EXPECT_EQ(padded.image.voxels().masked_select(~inside).max().item<float>(), 1.0f);
}

TEST(RandomIntensity, GammaBrightnessContrastNoiseAndBlurDoWhatTheySay) {
  const Image ramp(at::arange(0, 101, at::kFloat).reshape({1, 1, 1, 101}), Geometry{}, Metadata{});
  Rng rng(0);
  const Image g = make_transform("random-gamma", {{"p", 1}, {"gamma", {2, 2}}})->apply({ramp, std::nullopt}, rng).image;
  EXPECT_NEAR(g.voxels()[0][0][0][50].item<float>(), 25.0f, 1e-4);
  EXPECT_EQ(value_range(g), value_range(ramp));

  const Image bc = make_transform("random-brightness-contrast", {{"p", 1}, {"brightness", 0}, {"contrast", {2, 2}}})
                       ->apply({ramp, std::nullopt}, rng).image;
  EXPECT_NEAR(bc.voxels().mean().item<double>(), 50.0, 1e-3);
  EXPECT_NEAR(bc.voxels().std().item<double>(), 2 * ramp.voxels().std().item<double>(), 1e-3);

  const Image flat(at::full({1, 16, 64, 64}, 10.0f), Geometry{}, Metadata{});
  at::Tensor two = flat.voxels().clone();
  two.index_put_({0, 0, 0, 0}, 110.0f);  // range 100
  const Image noisy = make_transform("random-noise", {{"p", 1}, {"sigma", {0.05, 0.05}}})
                          ->apply({flat.with_voxels(two), std::nullopt}, rng).image;
  EXPECT_NEAR((noisy.voxels() - two).std().item<double>(), 5.0, 0.15);

  // Blur in mm: an impulse on a 0.5 x 2 mm grid spreads with sigma 2 mm along both axes.
  Geometry aniso;
  aniso.spacing = {0.5, 2.0, 1.0};
  at::Tensor imp = at::zeros({1, 1, 41, 81});
  imp.index_put_({0, 0, 20, 40}, 1.0f);
  const Image blurred = make_transform("random-blur", {{"p", 1}, {"sigma", {2, 2}}})
                            ->apply({Image(imp, aniso, Metadata{}), std::nullopt}, rng).image;
  const at::Tensor b = blurred.voxels()[0][0].to(at::kDouble);
  const at::Tensor xs = (at::arange(81, at::kDouble) - 40) * 0.5, ys = (at::arange(41, at::kDouble) - 20) * 2.0;
  EXPECT_NEAR(b.sum().item<double>(), 1.0, 1e-5);
  EXPECT_NEAR(std::sqrt((b.sum(0) * xs * xs).sum().item<double>()), 2.0, 0.05);
  EXPECT_NEAR(std::sqrt((b.sum(1) * ys * ys).sum().item<double>()), 2.0, 0.15);
}

TEST(AugmentParams, BadValuesAreUsageErrors) {
  EXPECT_THROW(make_transform("random-affine", {{"scale", {0, 1}}}), UsageError);
  EXPECT_THROW(make_transform("random-affine", {{"p", 1.5}}), UsageError);
  EXPECT_THROW(make_transform("random-affine", {{"rotate", {1, 2}}}), UsageError);
  EXPECT_THROW(make_transform("random-affine", {{"border", "wrap"}}), UsageError);
  EXPECT_THROW(make_transform("random-elastic", {{"sigma", 0}}), UsageError);
  EXPECT_THROW(make_transform("random-elastic", {{"magnitude", {3, 1}}}), UsageError);
  EXPECT_THROW(make_transform("random-gamma", {{"gamma", {0, 1}}}), UsageError);
  EXPECT_THROW(make_transform("random-crop", {{"size", {0, 4}}}), UsageError);
  EXPECT_THROW(make_transform("random-crop", {{"foreground", 2}}), UsageError);
  EXPECT_THROW(make_transform("random-noise", {{"sigma", {-1, 1}}}), UsageError);
  EXPECT_THROW(make_transform("random-blur", {{"sigmas", 1}}), UsageError);
}

}  // namespace
}  // namespace medlens
