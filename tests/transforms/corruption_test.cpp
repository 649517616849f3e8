// Corruptions on real images: every kind grows strictly with severity, keeps shape, geometry and
// metadata, is reproducible per seed; and each is made by its physics, checked by the signature
// that physics leaves (noise statistics, kernels, k-space ghosts, sinogram rings and streaks).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/read.h"
#include "tools/test_util.h"
#include "transforms/base.h"
#include "transforms/corruptions.h"
#include "transforms/ct_projection.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

constexpr double kPi = 3.14159265358979323846;

const Image& ct() {
  static const Image image = read_image(test::pydicom_files() + "/CT_small.dcm");
  return image;
}

const Image& busi() {
  static const Image image = read_image(test::vendored_samples() + "/busi/benign_103.png");
  return image;
}

const Image& ch2() {
  static const Image image = read_image(test::mricron_templates() + "/ch2.nii.gz");
  return image;
}

// Axial slice k of ch2 as a 2-D image (216 rows: an even count, so half the field of view is a
// whole number of rows), its origin moved to the slice.
Image mr_slice(int64_t k = 90) {
  Geometry g = ch2().geometry();
  g.origin = g.index_to_lps({0, 0, static_cast<double>(k)});
  return Image(ch2().voxels().narrow(1, k, 1).narrow(2, 0, 216).contiguous(), g, ch2().metadata());
}

// The real image each kind is measured on: CT for the sinogram and Gaussian noise, a brain MRI
// slice for k-space and Rician noise, ultrasound for the rest.
const Image& image_for(const std::string& kind) {
  static const Image mr = mr_slice();
  if (kind.rfind("ct-", 0) == 0 || kind == "gaussian") return ct();
  if (kind.rfind("mri-", 0) == 0 || kind == "rician") return mr;
  return busi();
}

Image corrupt(const Image& image, const std::string& kind, int severity, uint64_t seed = 7) {
  Rng rng(seed);
  return (*make_corruption(kind, severity))(image, rng);
}

// RMS difference as a fraction of the clean image's value range.
double nrmse(const Image& out, const Image& clean) {
  const auto [lo, hi] = value_range(clean);
  return (out.voxels().to(at::kDouble) - clean.voxels().to(at::kDouble))
             .square()
             .mean()
             .sqrt()
             .item<double>() /
         (hi - lo);
}

// 0.5th..99.5th percentile width, as the corruptions scale themselves.
double robust_width(const Image& image) {
  const at::Tensor q =
      at::quantile(image.voxels().flatten().to(at::kDouble), at::tensor({0.005, 0.995}, at::kDouble));
  return (q[1] - q[0]).item<double>();
}

// Standard normal noise of the given shape from a fixed seed.
at::Tensor fixed_noise(at::IntArrayRef shape, uint64_t seed) {
  return at::randn(shape, at::make_generator<at::CPUGeneratorImpl>(seed), at::kDouble);
}

// Samples a (Y, X) slice on a polar grid about (cx, cy) (pixels): radii r0..r1 pixels in half-pixel
// steps by `angles` angles, bilinear. Returns (radii, angles).
at::Tensor polar(const at::Tensor& slice, double cx, double cy, double r0, double r1, int64_t angles) {
  const int64_t ny = slice.size(0), nx = slice.size(1);
  const at::Tensor r = at::arange(r0, r1, 0.5, at::kDouble).view({-1, 1});
  const at::Tensor phi =
      at::arange(angles, at::kDouble).view({1, -1}) * (2 * kPi / static_cast<double>(angles));
  const at::Tensor x = (cx + r * at::cos(phi)) * (2.0 / static_cast<double>(nx - 1)) - 1;
  const at::Tensor y = (cy + r * at::sin(phi)) * (2.0 / static_cast<double>(ny - 1)) - 1;
  const at::Tensor grid = at::stack({x, y}, -1).unsqueeze(0).to(at::kFloat);
  return at::grid_sampler_2d(slice.view({1, 1, ny, nx}).to(at::kFloat), grid, 0, 0, true)[0][0].to(
      at::kDouble);
}

// Share of the gradient energy of a (Y, X) slice that is tangential about (cx, cy), over pixels
// at radii r0..r1 (pixels): near 1 for streaks along rays from the point, 0.5 for isotropic noise.
double tangential_share(const at::Tensor& slice, double cx, double cy, double r0, double r1) {
  const int64_t ny = slice.size(0), nx = slice.size(1);
  const at::Tensor s = slice.to(at::kDouble);
  const at::Tensor gx = (s.narrow(1, 2, nx - 2) - s.narrow(1, 0, nx - 2)).narrow(0, 1, ny - 2) / 2;
  const at::Tensor gy = (s.narrow(0, 2, ny - 2) - s.narrow(0, 0, ny - 2)).narrow(1, 1, nx - 2) / 2;
  const at::Tensor x = at::arange(1, nx - 1, at::kDouble).view({1, -1}) - cx;
  const at::Tensor y = at::arange(1, ny - 1, at::kDouble).view({-1, 1}) - cy;
  const at::Tensor r = at::sqrt(x * x + y * y).clamp_min(1e-9);
  const at::Tensor tangential = (gx * (-y) + gy * x) / r, radial = (gx * x + gy * y) / r;
  const at::Tensor band = (r >= r0) & (r <= r1);
  const double t = tangential.square().masked_select(band).sum().item<double>();
  return t / (t + radial.square().masked_select(band).sum().item<double>());
}

// Share of a polar image's energy explained by its mean over angle (1: perfectly concentric).
double concentric_share(const at::Tensor& p) {
  const at::Tensor radial = p.mean(1, true).expand_as(p);
  return (radial.square().sum() / p.square().sum()).item<double>();
}

TEST(CorruptionTable, EveryKindHasFiveSeveritiesAndBadRequestsAreUsageErrors) {
  const std::vector<std::string> expected{"gaussian",     "poisson",      "speckle",           "rician",
                                          "salt-pepper",  "defocus-blur", "motion-blur",       "mri-motion",
                                          "mri-ghosting", "mri-spike",    "mri-bias",          "ct-lowdose",
                                          "ct-ring",      "ct-metal",     "ct-beam-hardening", "jpeg",
                                          "contrast",     "brightness",   "pixelate"};
  EXPECT_EQ(corruption_kinds(), expected);
  const auto table = corruption_table();
  ASSERT_EQ(table.size(), 5 * expected.size());
  for (size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(table[i].kind, expected[i / 5]);
    EXPECT_EQ(table[i].severity, static_cast<int>(i % 5) + 1);
    EXPECT_TRUE(table[i].parameters.is_object() && !table[i].parameters.empty()) << table[i].kind;
    if (i % 5 != 0) {
      EXPECT_NE(table[i].parameters, table[i - 1].parameters) << table[i].kind;  // severities differ
    }
  }
  for (const auto& kind : expected) EXPECT_FALSE(corruption_description(kind).empty());
  EXPECT_THROW(make_corruption("blur", 3), UsageError);
  EXPECT_THROW(make_corruption("gaussian", 0), UsageError);
  EXPECT_THROW(make_corruption("gaussian", 6), UsageError);
  EXPECT_THROW(make_transform("corrupt", {{"kind", "ct-ring"}, {"severity", 9}}), UsageError);
  EXPECT_THROW(make_transform("corrupt", {{"kind", "nope"}}), UsageError);
  EXPECT_THROW(make_transform("corrupt", {{"kind", "gaussian"}, {"level", 2}}), UsageError);
  // Pipeline specs build the same transform, random only where the kind draws.
  const TransformPtr t = make_transform("corrupt", {{"kind", "mri-spike"}, {"severity", 2}});
  EXPECT_TRUE(t->random());
  EXPECT_EQ(t->params(), nlohmann::json({{"kind", "mri-spike"}, {"severity", 2}}));
  EXPECT_FALSE(make_transform("corrupt", {{"kind", "jpeg"}, {"severity", 4}})->random());
  EXPECT_FALSE(parse_op("corrupt:kind=ct-lowdose,severity=1,seed=5")->random());
}

TEST(Corruptions, DistanceGrowsStrictlyWithSeverityAndGeometryIsKept) {
  for (const auto& kind : corruption_kinds()) {
    SCOPED_TRACE(kind);
    const Image& clean = image_for(kind);
    double previous = 0;
    for (int s = 1; s <= 5; ++s) {
      const Image out = corrupt(clean, kind, s);
      ASSERT_EQ(out.shape(), clean.shape());
      EXPECT_EQ(out.geometry(), clean.geometry());
      EXPECT_EQ(out.metadata().modality, clean.metadata().modality);
      EXPECT_EQ(out.metadata().tags.at("Corruption"), kind + ":" + std::to_string(s));
      EXPECT_TRUE(at::isfinite(out.voxels()).all().item<bool>());
      const double d = nrmse(out, clean);
      EXPECT_GT(d, 1.1 * previous) << "severity " << s << ": " << d << " vs " << previous;
      previous = d;
    }
  }
}

TEST(Corruptions, SameSeedBitIdenticalAnotherSeedDiffersWhereRandom) {
  for (const auto& kind : corruption_kinds()) {
    SCOPED_TRACE(kind);
    const Image& clean = image_for(kind);
    const at::Tensor a = corrupt(clean, kind, 3, 11).voxels(), b = corrupt(clean, kind, 3, 11).voxels();
    const at::Tensor c = corrupt(clean, kind, 3, 12).voxels();
    EXPECT_TRUE(at::equal(a, b));
    EXPECT_EQ(!at::equal(a, c), corruption_is_random(kind));
  }
  // A seeded pipeline step is the random step's draw, fixed.
  const Image x = corrupt(busi(), "speckle", 2, 5);
  Rng rng(5);
  const nlohmann::json drawn =
      std::dynamic_pointer_cast<const RandomTransform>(make_corruption("speckle", 2))->draw(rng)->params();
  EXPECT_TRUE(drawn.contains("seed"));
  EXPECT_TRUE(at::equal(make_transform("corrupt", drawn)->operator()(busi()).voxels(), x.voxels()));
}

TEST(Corruptions, EveryKindWorksOnMultiChannelVolumesSliceBySlice) {
  // Two channels of a 4-slice brain block, and a 3-slice CT stack with 5 mm slices.
  const at::Tensor block = ch2().voxels().narrow(1, 80, 4).narrow(2, 60, 96).narrow(3, 40, 96);
  const Image brain(at::cat({block, block * 0.5 + 10}, 0), ch2().geometry(), ch2().metadata());
  const Image ct_stack(ct().voxels().expand({1, 3, 128, 128}).contiguous(), ct().geometry(), ct().metadata());
  for (const auto& kind : corruption_kinds()) {
    SCOPED_TRACE(kind);
    const Image& clean = kind.rfind("ct-", 0) == 0 ? ct_stack : brain;
    const Image out = corrupt(clean, kind, 4);
    ASSERT_EQ(out.shape(), clean.shape());
    EXPECT_EQ(out.geometry(), clean.geometry());
    for (int64_t c = 0; c < clean.channels(); ++c)
      for (int64_t z = 0; z < clean.depth(); ++z)
        EXPECT_FALSE(at::equal(out.voxels()[c][z], clean.voxels()[c][z]))
            << "channel " << c << " slice " << z;
  }
  // A detector defect is the same for every slice: identical slices get identical rings.
  const at::Tensor rings = corrupt(ct_stack, "ct-ring", 5).voxels()[0];
  EXPECT_TRUE(at::allclose(rings[0], rings[2], 1e-4, 1e-2));
  // JPEG codes three channels as one colour picture: a grey picture stays nearly grey.
  const Image rgb(busi().voxels().expand({3, 1, 256, 256}).contiguous(), busi().geometry(),
                  busi().metadata());
  const at::Tensor colour = corrupt(rgb, "jpeg", 1).voxels();
  EXPECT_LT((colour[0] - colour[2]).abs().mean().item<double>(), 2.0);
  EXPECT_LT(nrmse(Image(colour, rgb.geometry(), rgb.metadata()), rgb), 0.03);
}

// ---- noise statistics --------------------------------------------------------------------------

TEST(NoiseCorruptions, FollowTheirStatistics) {
  // Gaussian: additive, sigma = fraction of the 0.5..99.5 percentile width (0.07 at severity 3).
  const at::Tensor g = corrupt(ct(), "gaussian", 3).voxels() - ct().voxels();
  EXPECT_NEAR(g.std().item<double>() / (0.07 * robust_width(ct())), 1.0, 0.02);
  EXPECT_NEAR(g.mean().item<double>() / g.std().item<double>(), 0.0, 0.02);

  // Poisson: the variance grows linearly with the signal, var = (v - lo) * width / peak.
  const Image& us = busi();
  const at::Tensor v = us.voxels().to(at::kDouble);
  const at::Tensor n = corrupt(us, "poisson", 3).voxels().to(at::kDouble) - v;  // 100 photons at the top
  const double width = robust_width(us), lo = at::quantile(v.flatten(), 0.005).item<double>();
  for (const auto& [a, b] : {std::pair{20.0, 60.0}, std::pair{100.0, 160.0}}) {
    const at::Tensor sel = (v >= a) & (v < b);
    const double predicted = ((v.masked_select(sel) - lo).clamp_min(0) * width / 100).mean().item<double>();
    EXPECT_NEAR(n.masked_select(sel).var().item<double>() / predicted, 1.0, 0.08) << a << ".." << b;
  }

  // Speckle: multiplicative with std 1/sqrt(looks) (10 looks at severity 3).
  const at::Tensor bright = v > lo + 30;
  const at::Tensor ratio =
      ((corrupt(us, "speckle", 3).voxels().to(at::kDouble) - lo) / (v - lo)).masked_select(bright);
  EXPECT_NEAR(ratio.mean().item<double>(), 1.0, 0.02);
  EXPECT_NEAR(ratio.std().item<double>() * std::sqrt(10.0), 1.0, 0.05);

  // Rician: where the MRI has no signal, the magnitude of complex noise averages sigma*sqrt(pi/2).
  const Image mr = mr_slice();
  const at::Tensor empty = mr.voxels() == 0;
  const double sigma = 0.11 * robust_width(mr);  // severity 4
  const double floor = corrupt(mr, "rician", 4).voxels().masked_select(empty).mean().item<double>();
  EXPECT_NEAR(floor / (sigma * std::sqrt(kPi / 2)), 1.0, 0.03);

  // Salt and pepper: 2% of voxels (severity 4), set to the extremes in equal shares.
  const at::Tensor sp = corrupt(us, "salt-pepper", 4).voxels();
  const at::Tensor changed = sp != us.voxels();
  const auto [vmin, vmax] = value_range(us);
  const double salt = (changed & (sp == vmax)).sum().item<double>(),
               pepper = (changed & (sp == vmin)).sum().item<double>();
  EXPECT_EQ(salt + pepper, changed.sum().item<double>());
  const double total = static_cast<double>(us.voxels().numel());
  EXPECT_NEAR((salt + pepper) / total, 0.02, 0.004);  // less where a voxel already held an extreme
  EXPECT_NEAR(salt / (salt + pepper), 0.5, 0.08);
}

// ---- blur kernels ------------------------------------------------------------------------------

TEST(BlurCorruptions, KernelsHaveTheirSizeInMillimetres) {
  // An impulse on a 0.5 mm grid: defocus spreads it over a disk of radius 2 mm (severity 3),
  // motion over a segment of 9 mm (severity 4) whose variance along it is L^2/12.
  at::Tensor impulse = at::zeros({1, 1, 81, 81});
  impulse[0][0][40][40] = 1000;
  Geometry g;
  g.spacing = {0.5, 0.5, 1};
  const Image point(impulse, g, Metadata{});
  const at::Tensor disk = corrupt(point, "defocus-blur", 3).voxels()[0][0].to(at::kDouble);
  EXPECT_NEAR(disk.sum().item<double>(), 1000, 1e-2);
  const at::Tensor yy = (at::arange(81, at::kDouble).view({81, 1}) - 40) * 0.5;
  const at::Tensor xx = (at::arange(81, at::kDouble).view({1, 81}) - 40) * 0.5;
  const at::Tensor radius = at::sqrt(xx * xx + yy * yy);
  EXPECT_EQ(disk.masked_select(radius > 2.0 + 0.5).abs().max().item<double>(), 0.0);
  const double inner = disk.masked_select(radius < 1.5).std().item<double>();
  EXPECT_LT(inner, 1e-3);  // flat inside the disk
  EXPECT_NEAR(disk.masked_select(radius < 1.5).mean().item<double>() * kPi * 16 / 1000, 1.0, 0.03);

  const at::Tensor line = corrupt(point, "motion-blur", 4).voxels()[0][0].to(at::kDouble);
  const double mass = line.sum().item<double>();
  EXPECT_NEAR(mass, 1000, 1e-2);
  const double cxx = (line * xx * xx).sum().item<double>() / mass,
               cyy = (line * yy * yy).sum().item<double>() / mass;
  const double cxy = (line * xx * yy).sum().item<double>() / mass;
  const double tr = cxx + cyy, det = cxx * cyy - cxy * cxy;
  const double major = tr / 2 + std::sqrt(tr * tr / 4 - det), minor = tr / 2 - std::sqrt(tr * tr / 4 - det);
  EXPECT_NEAR(std::sqrt(12 * major), 9.0, 0.5);
  EXPECT_LT(std::sqrt(minor), 0.3);
}

// ---- MRI k-space -------------------------------------------------------------------------------

// Energy of (out - clean) in the background columns beside the head (read-out direction) and in
// the background rows above and below it (phase-encode direction).
std::pair<double, double> background_energy(const Image& out, const Image& clean) {
  const at::Tensor d = (out.voxels()[0][0] - clean.voxels()[0][0]).to(at::kDouble).square();
  const at::Tensor head = clean.voxels()[0][0] > 5;
  const at::Tensor rows = head.any(1), cols = head.any(0);
  const at::Tensor beside = (~cols).view({1, -1}) & rows.view({-1, 1});  // same rows, outside columns
  const at::Tensor above = (~rows).view({-1, 1}) & cols.view({1, -1});   // same columns, outside rows
  return {d.masked_select(beside).mean().item<double>(), d.masked_select(above).mean().item<double>()};
}

TEST(MriCorruptions, ArtefactsRunAlongThePhaseEncodeAxis) {
  const Image mr = mr_slice();
  for (const char* kind : {"mri-motion", "mri-ghosting"}) {
    SCOPED_TRACE(kind);
    const auto [readout, phase] = background_energy(corrupt(mr, kind, 4), mr);
    EXPECT_GT(phase, 20 * readout) << phase << " vs " << readout;
  }
  // Ghosting at severity 5: odd lines scaled by m = 0.55 e^{i 25 deg}, so the image is
  // (1+m)/2 x + (1-m)/2 x shifted by half the field of view: where the head is absent but its
  // shifted copy present, the magnitude is |1-m|/2 of the copy.
  const at::Tensor x = mr.voxels()[0][0].to(at::kDouble);
  const at::Tensor shifted = at::roll(x, {x.size(0) / 2}, {0});
  const at::Tensor ghost = corrupt(mr, "mri-ghosting", 5).voxels()[0][0].to(at::kDouble);
  const at::Tensor sel = (x == 0) & (shifted > 60);
  const double phi = 25 * kPi / 180, re = 1 - 0.55 * std::cos(phi), im = 0.55 * std::sin(phi);
  EXPECT_NEAR((ghost.masked_select(sel) / shifted.masked_select(sel)).median().item<double>(),
              std::sqrt(re * re + im * im) / 2, 0.01);
}

TEST(MriCorruptions, SpikeIsAPlaneWaveAndBiasAFieldOfTheGivenSpan) {
  const Image mr = mr_slice();
  // One spike (severity 1) is one plane wave of amplitude 0.03 x width. Where the slice has no
  // signal, the magnitude image shows the wave's constant modulus.
  const double amplitude = 0.03 * robust_width(mr);
  const at::Tensor empty = mr.voxels()[0][0] == 0;
  const at::Tensor floor = corrupt(mr, "mri-spike", 1).voxels()[0][0].masked_select(empty);
  EXPECT_NEAR(floor.mean().item<double>() / amplitude, 1.0, 0.01);
  EXPECT_LT(floor.std().item<double>(), 0.01 * amplitude);
  // An image with negative values is reconstructed from the real part: the change is exactly a
  // cosine, all its energy in the two k-space bins +-k.
  const Image shifted(mr.voxels() - 1, mr.geometry(), mr.metadata());
  const at::Tensor d = (corrupt(shifted, "mri-spike", 1).voxels() - shifted.voxels())[0][0].to(at::kDouble);
  const at::Tensor power = at::fft_fft2(d).abs().square().flatten();
  EXPECT_GT((std::get<0>(power.topk(2)).sum() / power.sum()).item<double>(), 0.999);
  EXPECT_NEAR(d.abs().max().item<double>() / amplitude, 1.0, 0.02);

  // Bias (severity 5): out / clean is a smooth field whose log spans at most +-0.6 about its
  // mean, and most of that within the head.
  const at::Tensor x = mr.voxels()[0][0].to(at::kDouble);
  const at::Tensor head = x > 30;
  const at::Tensor log_ratio =
      at::log(corrupt(mr, "mri-bias", 5).voxels()[0][0].to(at::kDouble) / x).masked_select(head);
  const double span = (log_ratio.max() - log_ratio.min()).item<double>();
  EXPECT_LE(span, 1.2 + 1e-3);
  EXPECT_GT(span, 0.4);
  // Smooth: neighbouring voxels differ by far less than the span.
  const at::Tensor lr = at::log(corrupt(mr, "mri-bias", 5).voxels()[0][0].to(at::kDouble) / x);
  const at::Tensor step = (lr.narrow(1, 1, x.size(1) - 1) - lr.narrow(1, 0, x.size(1) - 1)).abs();
  EXPECT_LT(step.masked_select(head.narrow(1, 1, x.size(1) - 1) & head.narrow(1, 0, x.size(1) - 1))
                .max()
                .item<double>(),
            0.02 * span);
}

// ---- CT sinogram -------------------------------------------------------------------------------

TEST(CtProjection, MatchesTheDiskLineIntegralAndFbpReproducesTheSlice) {
  // A uniform disk of radius 20 mm, mu 0.02/mm, on a 0.5 mm grid: p(u) = 2 mu sqrt(R^2 - u^2) at
  // every view.
  const int64_t n = 128;
  const at::Tensor yy = (at::arange(n, at::kDouble).view({n, 1}) - 63.5) * 0.5;
  const at::Tensor xx = (at::arange(n, at::kDouble).view({1, n}) - 63.5) * 0.5;
  const at::Tensor disk = ((xx * xx + yy * yy) <= 400).to(at::kFloat) * 0.02f;
  const ParallelBeam beam = ParallelBeam::for_slice(n, n, 0.5, 0.5, 180);
  const at::Tensor p = forward_project(disk.unsqueeze(0), beam)[0];
  ASSERT_EQ(p.sizes(), at::IntArrayRef({180, beam.bins}));
  for (int64_t b = 0; b < beam.bins; ++b) {
    const double u = beam.bin_position(b);
    if (std::abs(u) > 18) continue;  // away from the staircase edge
    const double expected = 2 * 0.02 * std::sqrt(400 - u * u);
    EXPECT_NEAR(p.select(1, b).mean().item<double>(), expected, 0.02 * expected) << u;
    EXPECT_LT(p.select(1, b).std().item<double>(), 0.02 * expected);  // the same at every view
  }
  // The CT slice in attenuation, projected at 360 views and reconstructed: RMSE 19.0 HU over the
  // slice (edges of bone and the cut border included), 8.9 HU inside a 4-pixel margin, mean
  // error -2.3 HU (the slice spans -896..1167 HU).
  const Image& img = ct();
  const at::Tensor mu = ((img.voxels()[0] + 1000) * (kMuWater / 1000)).clamp_min(0);
  const ParallelBeam ct_beam =
      ParallelBeam::for_slice(128, 128, img.geometry().spacing[1], img.geometry().spacing[0]);
  const at::Tensor hu =
      filtered_back_project(forward_project(mu, ct_beam), ct_beam)[0] / (kMuWater / 1000) - 1000;
  const at::Tensor error = (hu - img.voxels()[0][0].clamp_min(-1000)).to(at::kDouble);
  EXPECT_LT(error.square().mean().sqrt().item<double>(), 20.0);
  EXPECT_LT(error.narrow(0, 4, 120).narrow(1, 4, 120).square().mean().sqrt().item<double>(), 9.5);
  EXPECT_LT(error.mean().abs().item<double>(), 3.0);
}

TEST(CtCorruptions, RingsAreConcentricAboutTheRotationCentre) {
  const at::Tensor d = corrupt(ct(), "ct-ring", 5).voxels()[0][0] - ct().voxels()[0][0];
  const double about_centre = concentric_share(polar(d, 63.5, 63.5, 0, 60, 360));
  const double off_centre = concentric_share(polar(d, 63.5 + 20, 63.5 - 15, 0, 40, 360));
  EXPECT_GT(about_centre, 0.9);  // measured 0.96
  EXPECT_LT(off_centre, 0.3);    // 0.10
  // The radial profile has sharp peaks (the rings) over a quiet floor.
  const at::Tensor profile = polar(d, 63.5, 63.5, 0, 60, 360).mean(1).abs();
  EXPECT_GT(profile.max().item<double>(), 20 * profile.median().item<double>());  // 79
  // Low-dose noise is not concentric.
  const at::Tensor noise = corrupt(ct(), "ct-lowdose", 3).voxels()[0][0] - ct().voxels()[0][0];
  EXPECT_LT(concentric_share(polar(noise, 63.5, 63.5, 0, 60, 360)), 0.1);  // 0.017
}

TEST(CtCorruptions, MetalStreaksRadiateFromTheMetal) {
  const Image out = corrupt(ct(), "ct-metal", 5);
  const auto& tags = out.metadata().tags;
  double i = 0, j = 0, k = 0;
  ASSERT_EQ(std::sscanf(tags.at("CorruptionMetalIndex").c_str(), "%lf\\%lf\\%lf", &i, &j, &k), 3);
  double x = 0, y = 0, z = 0;
  ASSERT_EQ(std::sscanf(tags.at("CorruptionMetalLPS").c_str(), "%lf\\%lf\\%lf", &x, &y, &z), 3);
  const Vec3 lps = ct().geometry().index_to_lps({i, j, k});
  EXPECT_NEAR(x, lps[0], 0.01);
  EXPECT_NEAR(y, lps[1], 0.01);
  EXPECT_EQ(tags.at("CorruptionMetalRadiusMM"), "4");
  // The metal sits in the slice with its attenuation (1.0/mm -> about 50800 HU).
  EXPECT_GT(out.voxels()[0][0][static_cast<int64_t>(j)][static_cast<int64_t>(i)].item<double>(), 30000);

  // Outside the metal, the change runs along rays from it: across a streak it varies, along it
  // hardly, so its gradient is mostly tangential about the metal's centre and not about another
  // point; isotropic noise splits gradient energy evenly.
  const at::Tensor d = (out.voxels()[0][0] - ct().voxels()[0][0]).to(at::kDouble);
  const double r_metal = 4 / ct().geometry().spacing[0];
  EXPECT_GT(tangential_share(d, i, j, r_metal + 6, 45), 0.75);  // measured 0.83
  EXPECT_LT(tangential_share(d, 63.5, 90, 6, 45), 0.6);         // 0.45 about the middle of the body
  EXPECT_NEAR(tangential_share(fixed_noise({128, 128}, 1), i, j, r_metal + 6, 45), 0.5, 0.05);
  // Streaks stay strong far from the metal: averaging along each ray keeps them, where it
  // averages noise of the same RMS away.
  const double reach = std::min({i, j, 127 - i, 127 - j});
  ASSERT_GT(reach, r_metal + 16) << "the metal should sit away from the border";
  const at::Tensor band = polar(d, i, j, r_metal + 6, reach, 360);
  const at::Tensor noise = fixed_noise({128, 128}, 2) * band.square().mean().sqrt();
  const double noise_spread = polar(noise, i, j, r_metal + 6, reach, 360).mean(0).std().item<double>();
  EXPECT_GT(band.mean(0).std().item<double>(), 3 * noise_spread);  // measured 4x
}

TEST(CtCorruptions, LowDoseNoiseScalesWithPhotonsAndBeamHardeningCups) {
  // Noise std goes as 1/sqrt(I0): 1e6 -> 1e4 photons per ray is 10x.
  const double mild = nrmse(corrupt(ct(), "ct-lowdose", 1), ct()),
               severe = nrmse(corrupt(ct(), "ct-lowdose", 5), ct());
  EXPECT_NEAR(severe / mild, 10.0, 1.5);
  // Beam hardening on a 60 mm water cylinder: the reconstruction sags towards the centre
  // (cupping), and the change is linear in alpha (0.06 at severity 5, 0.01 at 1).
  const int64_t n = 128;
  const at::Tensor yy = (at::arange(n, at::kDouble).view({n, 1}) - 63.5) * 0.6;
  const at::Tensor xx = (at::arange(n, at::kDouble).view({1, n}) - 63.5) * 0.6;
  const at::Tensor r = at::sqrt(xx * xx + yy * yy);
  Geometry g;
  g.spacing = {0.6, 0.6, 1};
  Metadata m;
  m.units = "HU";
  const Image water(at::where(r <= 30, 0.0, -1000.0).to(at::kFloat).view({1, 1, n, n}), g, m);
  const at::Tensor change5 =
      (corrupt(water, "ct-beam-hardening", 5).voxels() - water.voxels())[0][0].to(at::kDouble);
  const at::Tensor change1 =
      (corrupt(water, "ct-beam-hardening", 1).voxels() - water.voxels())[0][0].to(at::kDouble);
  const double centre = change5.masked_select(r < 5).mean().item<double>();
  const double rim = change5.masked_select((r > 22) & (r < 26)).mean().item<double>();
  EXPECT_LT(centre, rim - 20) << centre << " vs " << rim;
  EXPECT_LT(centre, 0);
  EXPECT_TRUE(at::allclose(change5, change1 * 6, 1e-3, 0.05));
}

// ---- display ------------------------------------------------------------------------------------

TEST(DisplayCorruptions, ContrastBrightnessPixelateAndJpegDoWhatTheySay) {
  const Image& us = busi();
  const at::Tensor v = us.voxels().to(at::kDouble);
  const at::Tensor c = corrupt(us, "contrast", 3).voxels().to(at::kDouble);  // factor 0.5
  EXPECT_NEAR(c.mean().item<double>(), v.mean().item<double>(), 1e-3);
  EXPECT_NEAR(c.std().item<double>() / v.std().item<double>(), 0.5, 1e-4);
  const at::Tensor b = corrupt(us, "brightness", 2).voxels().to(at::kDouble) - v;  // +0.1 width
  EXPECT_NEAR(b.mean().item<double>() / (0.1 * robust_width(us)), 1.0, 0.01);
  EXPECT_NEAR(b.max().item<double>(), b.min().item<double>(), 1e-3);
  // Pixelate by 6 (severity 4): every 6x6 block is constant and holds the block's mean.
  const at::Tensor p = corrupt(us, "pixelate", 4).voxels()[0][0].to(at::kDouble);
  const at::Tensor block = p.narrow(0, 42, 6).narrow(1, 96, 6);
  EXPECT_EQ((block.max() - block.min()).item<double>(), 0.0);
  EXPECT_NEAR(block[0][0].item<double>(), v[0][0].narrow(0, 42, 6).narrow(1, 96, 6).mean().item<double>(),
              1e-3);
  // JPEG keeps the value range and leaves 8x8 block seams: differences across block borders
  // exceed those within blocks.
  const at::Tensor j = corrupt(us, "jpeg", 5).voxels()[0][0].to(at::kDouble);
  EXPECT_GE(j.min().item<double>(), value_range(us).first - 1e-3);
  EXPECT_LE(j.max().item<double>(), value_range(us).second + 1e-3);
  const at::Tensor step = (j.narrow(1, 1, 255) - j.narrow(1, 0, 255)).abs().mean(0);  // by column
  const at::Tensor seam = step.narrow(0, 7, 248).reshape({31, 8});  // column 8k-1 -> 8k first
  EXPECT_GT(seam.select(1, 0).mean().item<double>(), 1.3 * seam.narrow(1, 1, 7).mean().item<double>());
}

}  // namespace
}  // namespace medlens

namespace medlens {
namespace {

// Corruption-augmented training draws a kind and a severity per sample: the draw is seeded,
// covers the kinds and severities asked for (and only those), and p = 0 leaves images alone.
TEST(RandomCorruption, DrawsSeededKindsAndSeveritiesFromItsLists) {
  const TransformPtr t = make_transform("random-corruption", {{"p", 1.0}, {"kinds", "gaussian;jpeg;pixelate"},
                                                               {"severity", {2, 4}}});
  ASSERT_TRUE(t->random());
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    Rng a(seed), b(seed);
    const Image x = (*t)(busi(), a), y = (*t)(busi(), b);
    EXPECT_TRUE(at::equal(x.voxels(), y.voxels())) << "same seed, same corruption";
    EXPECT_FALSE(at::equal(x.voxels(), busi().voxels())) << "p = 1 always corrupts";
    const std::string tag = x.metadata().tags.at("Corruption");
    const std::string kind = tag.substr(0, tag.find(':'));
    const int severity = std::stoi(tag.substr(tag.find(':') + 1));
    EXPECT_TRUE(kind == "gaussian" || kind == "jpeg" || kind == "pixelate") << tag;
    EXPECT_GE(severity, 2);
    EXPECT_LE(severity, 4);
    seen.insert(tag);
  }
  EXPECT_GE(seen.size(), 6u) << "40 draws reach most of the 9 kind/severity pairs";

  const TransformPtr never = make_transform("random-corruption", {{"p", 0.0}});
  Rng rng(3);
  EXPECT_TRUE(at::equal((*never)(busi(), rng).voxels(), busi().voxels()));
  // The default list is the modality-independent kinds.
  const auto kinds = make_transform("random-corruption", nlohmann::json::object())->params()["kinds"];
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "gaussian"), kinds.end());
  EXPECT_EQ(std::find(kinds.begin(), kinds.end(), "ct-metal"), kinds.end());

  EXPECT_THROW(make_transform("random-corruption", {{"kinds", "gaussian;no-such"}}), UsageError);
  EXPECT_THROW(make_transform("random-corruption", {{"severity", {0, 3}}}), UsageError);
  EXPECT_THROW(make_transform("random-corruption", {{"severity", {4, 2}}}), UsageError);
  EXPECT_THROW(make_transform("random-corruption", {{"p", 1.5}}), UsageError);
}

}  // namespace
}  // namespace medlens
