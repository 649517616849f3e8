// Denoising, histogram methods and N4 on real images (a ch2 brain slice, a BUSI ultrasound
// image, pydicom's CT_small) with noise added here from fixed seeds: each filter must raise both
// PSNR and SSIM against the clean image on the noise it is meant for. scikit-image and scipy
// check SSIM itself, NLM, CLAHE, equalisation, the Gaussian and the median.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/read.h"
#include "transforms/bias_field.h"
#include "transforms/denoise.h"
#include "transforms/histogram.h"
#include "transforms/registry.h"
#include "tools/test_util.h"

namespace medlens {
namespace {

const Image& ch2() {
  static const Image image = read_image(test::mricron_templates() + "/ch2.nii.gz");
  return image;
}

// Channel 0 scaled to [0, 1]: the clean references, so PSNR and SSIM use data_range 1.
Image normalized(const Image& image) {
  at::Tensor v = image.voxels().slice(0, 0, 1);
  const double lo = v.min().item<double>(), hi = v.max().item<double>();
  return Image((v - lo) / (hi - lo), image.geometry(), image.metadata());
}

Image ch2_slice() {
  Geometry g = ch2().geometry();
  g.origin = g.index_to_lps({0, 0, 90});
  return normalized(Image(ch2().voxels().slice(1, 90, 91), g, ch2().metadata()));
}
Image busi() { return normalized(read_image(test::vendored_samples() + "/busi/normal_100.png")); }
Image ct() { return normalized(read_image(test::pydicom_files() + "/CT_small.dcm")); }

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

Image add_gaussian(const Image& clean, double sd, uint64_t seed) {
  return clean.with_voxels(clean.voxels() + sd * at::randn(clean.voxels().sizes(), generator(seed)));
}
// Photon counting: `peak` counts at intensity 1.
Image add_poisson(const Image& clean, double peak, uint64_t seed) {
  return clean.with_voxels(at::poisson(clean.voxels() * peak, generator(seed)) / peak);
}
// Fully developed speckle of an L-look intensity image: unit-mean Gamma(L) multiplied in.
Image add_speckle(const Image& clean, double looks, uint64_t seed) {
  const at::Tensor g = at::_standard_gamma(at::full(clean.voxels().sizes(), looks), generator(seed)) / looks;
  return clean.with_voxels(clean.voxels() * g);
}

double psnr(const Image& a, const Image& b) {
  const double mse = (a.voxels().to(at::kDouble) - b.voxels().to(at::kDouble)).pow(2).mean().item<double>();
  return 10 * std::log10(1.0 / mse);
}

// skimage.metrics.structural_similarity(data_range=1, gaussian_weights=True, sigma=1.5,
// use_sample_covariance=False) of two one-channel 2-D images: Gaussian window truncated at 3.5
// sigma, scipy "reflect" borders, mean over the map without its 5-pixel border.
double ssim(const Image& a, const Image& b) {
  const int64_t ny = a.height(), nx = a.width();
  const int r = 5;
  std::vector<double> k(2 * r + 1);
  double ks = 0;
  for (int i = -r; i <= r; ++i) ks += k[i + r] = std::exp(-0.5 * i * i / (1.5 * 1.5));
  for (auto& w : k) w /= ks;
  auto mirror = [](int64_t i, int64_t n) {
    while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;
    return i;
  };
  auto filter = [&](const std::vector<double>& in) {
    std::vector<double> tmp(in.size()), out(in.size());
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x) {
        double s = 0;
        for (int i = -r; i <= r; ++i) s += k[i + r] * in[y * nx + mirror(x + i, nx)];
        tmp[y * nx + x] = s;
      }
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x) {
        double s = 0;
        for (int i = -r; i <= r; ++i) s += k[i + r] * tmp[mirror(y + i, ny) * nx + x];
        out[y * nx + x] = s;
      }
    return out;
  };
  const size_t n = static_cast<size_t>(ny * nx);
  std::vector<double> X(a.data(), a.data() + n), Y(b.data(), b.data() + n), XX(n), YY(n), XY(n);
  for (size_t i = 0; i < n; ++i) {
    XX[i] = X[i] * X[i];
    YY[i] = Y[i] * Y[i];
    XY[i] = X[i] * Y[i];
  }
  const auto ux = filter(X), uy = filter(Y), uxx = filter(XX), uyy = filter(YY), uxy = filter(XY);
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  double sum = 0;
  int64_t count = 0;
  for (int64_t y = r; y < ny - r; ++y)
    for (int64_t x = r; x < nx - r; ++x) {
      const size_t i = static_cast<size_t>(y * nx + x);
      const double vx = uxx[i] - ux[i] * ux[i], vy = uyy[i] - uy[i] * uy[i], vxy = uxy[i] - ux[i] * uy[i];
      sum += (2 * ux[i] * uy[i] + c1) * (2 * vxy + c2) / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2));
      ++count;
    }
  return sum / static_cast<double>(count);
}

void write_f32(const std::string& path, const Image& image) {
  const at::Tensor c = image.voxels().contiguous();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * 4);
}
std::vector<std::string> hw(const Image& image) {
  return {std::to_string(image.height()), std::to_string(image.width())};
}

TEST(Ssim, MatchesScikitImage) {
  const Image clean = busi();
  const Image noisy = add_gaussian(clean, 0.1, 7);
  test::TempDir tmp;
  write_f32(tmp.file("a"), clean);
  write_f32(tmp.file("b"), noisy);
  const auto r = test::run_oracle("denoise_skimage.py", {"ssim", tmp.file("a"), tmp.file("b"), hw(clean)[0], hw(clean)[1]});
  double sk_ssim = 0, sk_psnr = 0;
  ASSERT_EQ(std::sscanf(r.output.c_str(), "%lf %lf", &sk_ssim, &sk_psnr), 2) << r.output;
  std::printf("SSIM medlens-test %.8f skimage %.8f; PSNR %.6f / %.6f\n", ssim(clean, noisy), sk_ssim,
              psnr(clean, noisy), sk_psnr);
  EXPECT_NEAR(ssim(clean, noisy), sk_ssim, 1e-6);
  EXPECT_NEAR(psnr(clean, noisy), sk_psnr, 1e-4);
}

struct Case {
  std::string image, noise;
  Image clean, noisy;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  const std::pair<std::string, Image> images[] = {{"ch2 slice", ch2_slice()}, {"BUSI", busi()}, {"CT_small", ct()}};
  uint64_t seed = 100;
  for (const auto& [name, clean] : images) {
    out.push_back({name, "gaussian sd 0.08", clean, add_gaussian(clean, 0.08, ++seed)});
    out.push_back({name, "poisson 20 counts", clean, add_poisson(clean, 20, ++seed)});
    out.push_back({name, "speckle 4 looks", clean, add_speckle(clean, 4, ++seed)});
  }
  return out;
}

// The filters meant for a noise, as pipelines.
std::vector<std::pair<std::string, Compose>> filters_for(const std::string& noise) {
  auto one = [](TransformPtr t) { return Compose({std::move(t)}); };
  if (noise.rfind("gaussian", 0) == 0)
    return {{"nlm", one(make_nlm())},
            {"bilateral", one(make_bilateral(BilateralOptions().sigma_spatial(1.5)))},
            {"anisotropic-diffusion", one(make_anisotropic_diffusion(DiffusionOptions().iterations(10)))},
            {"gaussian-blur", one(make_gaussian_blur({1.0, 1.0, 1.0}))}};
  if (noise.rfind("poisson", 0) == 0)
    return {{"anscombe+nlm+inverse", Compose({make_anscombe(1.0 / 20), make_nlm(NlmOptions().sigma(1.0)),
                                              make_inverse_anscombe(1.0 / 20)})}};
  return {{"speckle (SRAD)", one(make_speckle())}};
}

TEST(Denoise, EachFilterRaisesPsnrAndSsimOnItsNoise) {
  std::printf("| image | noise | filter | PSNR noisy -> filtered | SSIM noisy -> filtered |\n");
  for (const Case& c : cases()) {
    const double p0 = psnr(c.clean, c.noisy), s0 = ssim(c.clean, c.noisy);
    for (const auto& [name, pipeline] : filters_for(c.noise)) {
      SCOPED_TRACE(c.image + ", " + c.noise + ", " + name);
      const Image out = pipeline(c.noisy);
      ASSERT_EQ(out.shape(), c.noisy.shape());
      EXPECT_EQ(out.geometry(), c.noisy.geometry());
      const double p1 = psnr(c.clean, out), s1 = ssim(c.clean, out);
      std::printf("| %s | %s | %s | %.2f -> %.2f dB | %.3f -> %.3f |\n", c.image.c_str(), c.noise.c_str(),
                  name.c_str(), p0, p1, s0, s1);
      EXPECT_GT(p1, p0 + 1.0);
      EXPECT_GT(s1, s0 + 0.02);
    }
  }
}

TEST(Nlm, MatchesScikitImageFastMode) {
  // A 128x128 crop of the BUSI image: skimage's NLM is quick on it.
  const Image clean = normalized(busi().with_voxels(busi().voxels().slice(2, 64, 192).slice(3, 64, 192)));
  const double sd = 0.1;
  const Image noisy = add_gaussian(clean, sd, 11);
  const Image ours = (*make_nlm(NlmOptions().patch_size(5).patch_distance(6).sigma(sd).h(0.8 * sd)))(noisy);
  test::TempDir tmp;
  write_f32(tmp.file("noisy"), noisy);
  write_f32(tmp.file("clean"), clean);
  const auto r = test::run_oracle("denoise_skimage.py", {"nlm", tmp.file("noisy"), tmp.file("clean"), hw(clean)[0],
                                                         hw(clean)[1], "5", "6", std::to_string(0.8 * sd),
                                                         std::to_string(sd)});
  const double sk = std::stod(r.output);
  std::printf("NLM PSNR: noisy %.2f dB, medlens %.2f dB, skimage %.2f dB\n", psnr(clean, noisy), psnr(clean, ours), sk);
  EXPECT_NEAR(psnr(clean, ours), sk, 1.0);
  EXPECT_GT(psnr(clean, ours), psnr(clean, noisy) + 3.0);
}

TEST(Nlm, DenoisesVolumesAndSharesWeightsAcrossChannels) {
  // A 3-D block of ch2 with two channels (the second twice the first): NLM gains in 3-D and,
  // since the weights are shared, the second output channel stays exactly twice the first.
  Geometry g = ch2().geometry();
  g.origin = g.index_to_lps({60, 80, 70});
  const at::Tensor block = ch2().voxels().slice(1, 70, 94).slice(2, 80, 128).slice(3, 60, 108) / 255.0;
  const Image clean(at::cat({block, 2 * block}), g, ch2().metadata());
  const Image noisy = clean.with_voxels(at::cat({block, 2 * block}) +
                                        at::cat({at::ones_like(block), 2 * at::ones_like(block)}) * 0.06 *
                                            at::randn(block.sizes(), generator(5)).repeat({2, 1, 1, 1}));
  const Image out = (*make_nlm(NlmOptions().patch_size(3).patch_distance(2)))(noisy);
  EXPECT_EQ(out.geometry(), clean.geometry());
  const auto err = [&](const Image& im) { return (im.voxels()[0] - block[0]).pow(2).mean().item<double>(); };
  std::printf("3-D NLM MSE: noisy %.5f, filtered %.5f\n", err(noisy), err(out));
  EXPECT_LT(err(out), 0.5 * err(noisy));
  EXPECT_TRUE(at::allclose(out.voxels()[1], 2 * out.voxels()[0], 1e-4, 1e-5));
}

TEST(GaussianBlur, MatchesScipyAndScalesWithSpacing) {
  const Image img = ct();
  const double sx = img.geometry().spacing[0], sy = img.geometry().spacing[1];
  const Image ours = (*make_gaussian_blur({1.2, 0.8, 0}))(img);
  test::TempDir tmp;
  write_f32(tmp.file("in"), img);
  test::run_oracle("denoise_skimage.py", {"gaussian", tmp.file("in"), hw(img)[0], hw(img)[1], std::to_string(0.8 / sy),
                                          std::to_string(1.2 / sx), tmp.file("out")});
  const at::Tensor ref = at::tensor(test::read_f32(tmp.file("out"))).reshape(ours.voxels().sizes());
  EXPECT_LT((ours.voxels() - ref).abs().max().item<double>(), 1e-5);
  // The same voxels at twice the spacing need twice the sigma in mm for the same result.
  Geometry g2 = img.geometry();
  g2.spacing = {2 * sx, 2 * sy, g2.spacing[2]};
  const Image twice = (*make_gaussian_blur({2.4, 1.6, 0}))(Image(img.voxels(), g2, img.metadata()));
  EXPECT_TRUE(at::allclose(twice.voxels(), ours.voxels(), 1e-5, 1e-6));
}

TEST(Median, MatchesScipyWithNearestBorders) {
  const Image img = add_gaussian(busi(), 0.1, 3);
  const Image ours = (*make_transform("median", {{"radius", 2}}))(img);
  test::TempDir tmp;
  write_f32(tmp.file("in"), img);
  test::run_oracle("denoise_skimage.py", {"median", tmp.file("in"), hw(img)[0], hw(img)[1], "5", tmp.file("out")});
  const at::Tensor ref = at::tensor(test::read_f32(tmp.file("out"))).reshape(ours.voxels().sizes());
  EXPECT_EQ((ours.voxels() - ref).abs().max().item<double>(), 0.0);
}

TEST(Anscombe, StabilisesPoissonVarianceAndInvertsWithoutBias) {
  // 200k Poisson draws per rate: after the transform the standard deviation is close to 1,
  // and the exact unbiased inverse of the transformed mean returns the rate.
  for (double rate : {4.0, 20.0, 100.0}) {
    const at::Tensor counts = at::poisson(at::full({1, 1, 400, 500}, rate), generator(static_cast<uint64_t>(rate)));
    const Image z(counts, Geometry{}, Metadata{});
    const at::Tensor a = (*make_anscombe())(z).voxels();
    const double sd = a.std().item<double>();
    const Image mean(at::full({1, 1, 1, 1}, a.mean().item<float>()), Geometry{}, Metadata{});
    const double back = (*make_inverse_anscombe())(mean).voxels().item<double>();
    std::printf("rate %.0f: sd after Anscombe %.4f, inverse of the mean %.3f\n", rate, sd, back);
    EXPECT_NEAR(sd, 1.0, rate < 10 ? 0.05 : 0.02);
    EXPECT_NEAR(back, rate, 0.01 * rate + 0.02);
  }
  // With a gain the pair works on intensities: the inverse undoes the forward on noise-free data
  // up to the bias correction, which vanishes for large counts.
  const Image img = ct();
  const Image round = (*make_inverse_anscombe(0.001))((*make_anscombe(0.001))(img));
  EXPECT_LT((round.voxels() - img.voxels()).abs().max().item<double>(), 2e-3);
}

TEST(NoiseEstimate, RecoversTheAddedStandardDeviation) {
  // The MAD of the finest Haar details sees the noise, not the anatomy: 2-D and 3-D. The
  // ultrasound image has speckle of its own, which adds in quadrature.
  const double own = estimate_noise_sd(busi());
  for (double sd : {0.02, 0.05, 0.1}) {
    const double est = estimate_noise_sd(add_gaussian(busi(), sd, 12));
    std::printf("noise sd %.2f: estimated %.4f (BUSI's own %.4f)\n", sd, est, own);
    EXPECT_NEAR(est, std::hypot(sd, own), 0.05 * sd);
  }
  const Image vol(ch2().voxels().slice(1, 60, 100) / 255.0, ch2().geometry(), ch2().metadata());
  EXPECT_NEAR(estimate_noise_sd(add_gaussian(vol, 0.05, 13)), 0.05, 0.005);
  EXPECT_LT(estimate_noise_sd(vol), 0.01);
}

TEST(Filters, GiveTheSameVoxelsEveryRun) {
  // Threads must not change results: every filter, ITK's included, twice on the same input.
  const Image img = ch2_slice().with_voxels(add_gaussian(ch2_slice(), 0.05, 8).voxels().clamp_min(0) + 0.01);
  for (const char* op : {"gaussian-blur", "median", "bilateral", "nlm", "anisotropic-diffusion", "anscombe",
                         "inverse-anscombe", "speckle", "histogram-equalize", "clahe", "n4"}) {
    SCOPED_TRACE(op);
    const TransformPtr t = make_transform(op, nlohmann::json::object());
    EXPECT_TRUE(at::equal((*t)(img).voxels(), (*t)(img).voxels()));
  }
}

TEST(Filters, RefuseBadParameters) {
  EXPECT_THROW(make_transform("nlm", {{"patch_size", 4}}), UsageError);
  EXPECT_THROW(make_transform("nlm", {{"h", -1}}), UsageError);
  EXPECT_THROW(make_transform("gaussian-blur", {{"sigma", {1, 2}}}), UsageError);
  EXPECT_THROW(make_transform("median", {{"radius", -1}}), UsageError);
  EXPECT_THROW(make_transform("bilateral", {{"sigma_spatial", 0}}), UsageError);
  EXPECT_THROW(make_transform("anscombe", {{"gain", 0}}), UsageError);
  EXPECT_THROW(make_transform("clahe", {{"kernel_size", {8, 8, 8}}}), UsageError);
  EXPECT_THROW(make_transform("clahe", {{"kernel_size", 7.5}}), UsageError);
  EXPECT_THROW(make_transform("n4", {{"iterations", {50, 0}}}), UsageError);
  EXPECT_THROW(make_transform("speckle", {{"iterations", -1}}), UsageError);
}

TEST(Median, RadiusInMillimetresFollowsSpacing) {
  // At 0.5 mm spacing a 1 mm radius is 2 voxels: the same as radius 2 in voxels.
  Image img = add_gaussian(ct(), 0.1, 4);
  img.geometry().spacing = {0.5, 0.5, 1.0};
  const at::Tensor mm = (*make_median(MedianOptions().radius_mm(1.0)))(img).voxels();
  const at::Tensor vox = (*make_median(MedianOptions().radius(2)))(img).voxels();
  EXPECT_TRUE(at::equal(mm, vox));
  EXPECT_FALSE(at::equal(mm, (*make_median())(img).voxels()));
}

TEST(Speckle, RefusesNegativeIntensities) {
  const Image hu = read_image(test::pydicom_files() + "/CT_small.dcm");
  EXPECT_THROW((*make_speckle())(hu), InputError);
}

TEST(Filters, WorkOnVolumesKeepingGeometryAndMetadata) {
  Geometry g = ch2().geometry();
  g.origin = g.index_to_lps({50, 60, 50});
  const Image block(ch2().voxels().slice(1, 50, 66).slice(2, 60, 92).slice(3, 50, 82) / 255.0, g, ch2().metadata());
  const Image noisy = block.with_voxels(add_gaussian(block, 0.05, 9).voxels().clamp_min(0));
  for (const char* op : {"gaussian-blur", "median", "bilateral", "anisotropic-diffusion", "speckle"}) {
    SCOPED_TRACE(op);
    const Image out = (*make_transform(op, nlohmann::json::object()))(noisy);
    ASSERT_EQ(out.shape(), noisy.shape());
    EXPECT_EQ(out.geometry(), noisy.geometry());
    EXPECT_EQ(out.metadata().source_path, noisy.metadata().source_path);
    const double before = (noisy.voxels() - block.voxels()).pow(2).mean().item<double>();
    const double after = (out.voxels() - block.voxels()).pow(2).mean().item<double>();
    EXPECT_LT(after, before);
  }
}

TEST(HistogramEqualize, MatchesScikitImage) {
  const Image img = read_image(test::pydicom_files() + "/CT_small.dcm");
  const Image ours = (*make_histogram_equalize())(img);
  test::TempDir tmp;
  write_f32(tmp.file("in"), img);
  test::run_oracle("denoise_skimage.py", {"equalize", tmp.file("in"), hw(img)[0], hw(img)[1], tmp.file("out")});
  const at::Tensor ref = at::tensor(test::read_f32(tmp.file("out"))).reshape(ours.voxels().sizes());
  EXPECT_LT((ours.voxels() - ref).abs().max().item<double>(), 1e-4);
  EXPECT_NEAR(ours.voxels().max().item<double>(), 1.0, 1e-6);
}

TEST(Clahe, MatchesScikitImageEqualizeAdapthist) {
  const Image img = read_image(test::vendored_samples() + "/busi/normal_106.png");
  test::TempDir tmp;
  write_f32(tmp.file("in"), img);
  for (const auto& [clip, kernel] : {std::pair{0.01, 0}, std::pair{0.03, 24}}) {
    SCOPED_TRACE("clip " + std::to_string(clip) + " kernel " + std::to_string(kernel));
    const Image ours = (*make_clahe(ClaheOptions().clip_limit(clip).kernel_size(kernel, kernel)))(img);
    test::run_oracle("denoise_skimage.py", {"clahe", tmp.file("in"), hw(img)[0], hw(img)[1], tmp.file("out"),
                                            std::to_string(clip), std::to_string(kernel)});
    const at::Tensor ref = at::tensor(test::read_f32(tmp.file("out"))).reshape(ours.voxels().sizes());
    const at::Tensor diff = (ours.voxels() - ref).abs();
    std::printf("CLAHE clip %.2f: max |medlens - skimage| %.2e, mean %.2e\n", clip, diff.max().item<double>(),
                diff.mean().item<double>());
    EXPECT_LT(diff.max().item<double>(), 1e-3);
    EXPECT_LT(diff.mean().item<double>(), 1e-5);
  }
  // Volumes go slice by slice: slice k of the volume's output equals CLAHE of slice k alone
  // when all slices share the value range.
  const Image pair(at::cat({img.voxels(), img.voxels().flip({3})}, 1), Geometry{}, Metadata{});
  const Image vol = (*make_clahe())(pair);
  const Image first = (*make_clahe())(img);
  EXPECT_LT((vol.voxels().slice(1, 0, 1) - first.voxels()).abs().max().item<double>(), 1e-6);
}

// ch2 at 2 mm (mean of 2x2x2 blocks), its brain mask from ch2bet, and white matter: the
// brightest quarter of the brain.
struct Brain {
  Image t1;
  at::Tensor brain, wm;
};
Brain brain_2mm() {
  const Image bet = read_image(test::mricron_templates() + "/ch2bet.nii.gz");
  auto down = [](const at::Tensor& v) { return at::avg_pool3d(v.slice(1, 0, 180).slice(2, 0, 216).slice(3, 0, 180), 2); };
  Geometry g = ch2().geometry();
  g.origin = g.index_to_lps({0.5, 0.5, 0.5});
  for (auto& s : g.spacing) s *= 2;
  Brain b{Image(down(ch2().voxels()), g, ch2().metadata()), down(bet.voxels())[0] > 0, {}};
  const at::Tensor v = b.t1.voxels()[0];
  const double q = at::quantile(v.masked_select(b.brain), 0.75).item<double>();
  b.wm = b.brain & (v > q);
  return b;
}

double cv(const at::Tensor& v, const at::Tensor& mask) {
  const at::Tensor s = v.masked_select(mask).to(at::kDouble);
  return (s.std() / s.mean()).item<double>();
}

TEST(N4, FlattensASyntheticBiasField) {
  const Brain b = brain_2mm();
  // A smooth field, a 1.6x rise from one side of the head to the other plus a quadratic dome,
  // in mm about the volume centre.
  const Shape& s = b.t1.shape();
  const at::Tensor z = (at::arange(s.z, at::kFloat) - s.z / 2.0).mul(2.0 / 90).view({s.z, 1, 1});
  const at::Tensor y = (at::arange(s.y, at::kFloat) - s.y / 2.0).mul(2.0 / 90).view({1, s.y, 1});
  const at::Tensor x = (at::arange(s.x, at::kFloat) - s.x / 2.0).mul(2.0 / 90).view({1, 1, s.x});
  const at::Tensor field = at::exp(0.25 * x - 0.2 * y * y + 0.15 * z);
  const Image biased = b.t1.with_voxels((b.t1.voxels()[0] * field).unsqueeze(0));
  const Image corrected = (*make_n4(N4Options().shrink(4).iterations({50, 50, 50})))(biased);
  EXPECT_EQ(corrected.geometry(), biased.geometry());
  const double clean_cv = cv(b.t1.voxels()[0], b.wm), biased_cv = cv(biased.voxels()[0], b.wm),
               corrected_cv = cv(corrected.voxels()[0], b.wm);
  std::printf("white-matter CV: clean %.4f, biased %.4f, after N4 %.4f\n", clean_cv, biased_cv, corrected_cv);
  EXPECT_LT(corrected_cv, 0.7 * biased_cv);
  // The estimated field follows the true one: their ratio is nearly constant in the brain.
  const at::Tensor ratio = (biased.voxels()[0] / corrected.voxels()[0].clamp_min(1e-3)) / field;
  EXPECT_LT(cv(ratio, b.brain), 0.05);
}

TEST(N4, RefusesAnImageWithoutPositiveForeground) {
  const Image negative(-at::rand({1, 1, 64, 64}, generator(1)) - 1.0, Geometry{}, Metadata{});
  EXPECT_THROW((*make_n4())(negative), InputError);
}

}  // namespace
}  // namespace medlens
