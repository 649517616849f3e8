#include "explain/lesion_bench.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "io/read.h"
#include "io/write.h"
#include "nn/card.h"
#include "tools/test_util.h"
#include "train/trainer.h"
#include "transforms/synth_lesions.h"

namespace medlens::test {
namespace {

// Background slices a window may come from, with the region lesions may be centred in.
struct Backgrounds {
  std::vector<Image> slices;      // 2-D images (1 x 1 x H x W voxels)
  std::vector<at::Tensor> region; // (H, W) bool
  std::string modality;
};

const Backgrounds& ch2() {
  static const Backgrounds b = [] {
    Backgrounds out;
    out.modality = "MR";
    const Image t1 = read_image(mricron_templates() + "/ch2.nii.gz");
    const at::Tensor bet = read_image(mricron_templates() + "/ch2bet.nii.gz").voxels()[0] > 0;
    const at::Tensor area = bet.sum({1, 2});
    const double most = area.max().item<double>();
    for (int64_t z = 0; z < area.size(0); ++z) {
      if (area[z].item<double>() < 0.6 * most) continue;  // axial slices through most of the brain
      Geometry g = t1.geometry();
      g.origin = g.index_to_lps({0.0, 0.0, static_cast<double>(z)});
      Metadata meta;
      meta.modality = "MR";
      out.slices.emplace_back(t1.voxels().narrow(1, z, 1).clone(), g, meta);
      out.region.push_back(bet[z].clone());
    }
    return out;
  }();
  return b;
}

const Backgrounds& busi() {
  static const Backgrounds b = [] {
    Backgrounds out;
    out.modality = "US";
    std::ifstream manifest(vendored_samples() + "/busi/manifest.csv");
    std::string line;
    while (std::getline(manifest, line)) {
      if (line.find(",normal") == std::string::npos) continue;
      Image im = read_image(vendored_samples() + "/busi/" + line.substr(0, line.find(',')));
      if (im.channels() > 1) im = im.with_voxels(im.voxels().mean(0, true));
      im.metadata().modality = "US";
      // Below the top eighth (where scanners burn in text) and inside the image.
      at::Tensor region = at::zeros({im.height(), im.width()}, at::kBool);
      region.narrow(0, im.height() / 8, im.height() - im.height() / 8).fill_(true);
      out.slices.push_back(im);
      out.region.push_back(region);
    }
    if (out.slices.empty()) throw InputError(vendored_samples() + "/busi/manifest.csv", "no normal images listed");
    return out;
  }();
  return b;
}

}  // namespace

std::vector<LesionCase> make_lesion_cases(const LesionBenchOptions& o, int count, uint64_t seed) {
  const Backgrounds& b = o.source == "busi" ? busi() : ch2();
  const int64_t S = o.size;
  Rng rng(seed);
  std::vector<LesionCase> out;
  Image window;
  at::Tensor window_region;
  for (int i = 0; i < count; ++i) {
    if (i % 2 == 0) {  // a new window for each pair
      const size_t k = static_cast<size_t>(rng.integer(0, static_cast<int64_t>(b.slices.size()) - 1));
      const Image& slice = b.slices[k];
      const int64_t H = slice.height(), W = slice.width();
      const at::Tensor inside = b.region[k].nonzero();
      const at::Tensor c = inside[rng.integer(0, inside.size(0) - 1)];
      const int64_t y0 = std::clamp<int64_t>(c[0].item<int64_t>() - S / 2, 0, H - S);
      const int64_t x0 = std::clamp<int64_t>(c[1].item<int64_t>() - S / 2, 0, W - S);
      Geometry g = slice.geometry();
      g.origin = g.index_to_lps({static_cast<double>(x0), static_cast<double>(y0), 0.0});
      window = Image(slice.voxels().narrow(2, y0, S).narrow(3, x0, S).clone(), g, slice.metadata());
      window_region = at::zeros({S, S}, at::kBool);
      window_region.narrow(0, o.margin, S - 2 * o.margin).narrow(1, o.margin, S - 2 * o.margin).fill_(true);
      window_region = window_region & b.region[k].narrow(0, y0, S).narrow(1, x0, S);
    }
    LesionCase lc;
    lc.lesion = i % 2 == 0;
    lc.image = window;
    if (lc.lesion) {
      const Image region(window_region.to(at::kFloat).view({1, 1, S, S}), window.geometry(), Metadata{});
      LesionOptions lo = LesionOptions::for_modality(b.modality);
      lo.radius(o.radius_min_mm, o.radius_max_mm);
      if (b.modality == "MR") lo.contrast(0.6);
      SynthResult r = insert_lesion(window, lo, rng, &region);
      lc.image = r.image;
      lc.mask = r.mask;
    } else {
      lc.mask = Image(at::zeros({1, 1, S, S}), window.geometry(), Metadata{});
    }
    out.push_back(lc);
  }
  return out;
}

LesionBench build_lesion_bench(const LesionBenchOptions& o) {
  static std::vector<std::unique_ptr<TempDir>> dirs;  // bundles live as long as the process
  dirs.push_back(std::make_unique<TempDir>());
  const TempDir& dir = *dirs.back();
  LesionBench lb;
  const std::vector<LesionCase> cases = make_lesion_cases(o, o.train_cases, o.seed);
  {
    std::ofstream manifest(dir.file("manifest.csv"));
    manifest << "path,label,split\n";
    // Pairs stay on one side of the split (a window seen in training is not validated on).
    const size_t train = static_cast<size_t>(o.train_cases * 4 / 5) & ~size_t{1};
    for (size_t i = 0; i < cases.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "case%04zu.nii.gz", i);
      write_image(cases[i].image, dir.file(name));
      manifest << dir.file(name) << "," << (cases[i].lesion ? "lesion" : "normal") << "," << (i < train ? "train" : "val")
               << "\n";
    }
  }
  TrainOptions t;
  t.manifest = dir.file("manifest.csv");
  t.out = dir.file("model");
  t.arch = "resnet-compact";
  t.architecture = {{"width", 8}};
  t.preprocessing = {{"transforms", {{{"op", "zscore"}}}}};
  t.augmentation = {{"transforms", {{{"op", "random-flip"}, {"p", 0.5}, {"axes", "x"}}}}};
  t.epochs = o.epochs;
  t.batch_size = 32;
  t.lr = 3e-3;
  t.seed = 5;
  t.bootstrap_rounds = 50;
  t.quiet = true;
  t.card = {{"name", "lesion-bench-" + o.source}, {"positive_class", "lesion"}};
  const auto start = std::chrono::steady_clock::now();
  const TrainResult r = train_model(t);
  lb.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  lb.bundle = r.bundle;
  lb.val_auc = r.best_metric;
  lb.model = Model::load(dir.file("model"));
  lb.test = make_lesion_cases(o, o.test_cases, o.seed + 1);
  return lb;
}

const LesionBench& lesion_bench() {
  static const LesionBench bench = build_lesion_bench(LesionBenchOptions{});
  return bench;
}

}  // namespace medlens::test
