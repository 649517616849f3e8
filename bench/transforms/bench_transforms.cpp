// bench/transforms: CLAHE, non-local means, anisotropic diffusion and resampling in medlens
// versus scikit-image (and numpy where scikit-image has no equivalent), on the same voxels, in
// the same run. The data are real anatomy: mricron's ch2 T1 resampled to 256^3, scaled to
// [0, 1], with Gaussian noise of sd 0.03 (fixed seed) and clipped to [0, 1].
//
//   CLAHE              256^3, slice by slice      vs skimage equalize_adapthist per slice
//   NLM 2-D            256x256 slice (z = 128)    vs skimage denoise_nl_means, fast_mode
//   NLM 3-D            64^3 block                 vs the same; skimage takes minutes on 256^3
//   diffusion          256^3, 5 iterations        vs a numpy Perona-Malik (neither skimage nor
//                                                    scipy has anisotropic diffusion)
//   resample linear    256^3 at 1 mm -> 0.8 mm    vs skimage.transform.rescale(order=1)
//
// usage: bench_transforms [--keep DIR] [google benchmark flags]
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/peer.h"
#include "core/image.h"
#include "core/parallel.h"
#include "io/read.h"
#include "transforms/denoise.h"
#include "transforms/histogram.h"
#include "transforms/registry.h"

namespace fs = std::filesystem;
using namespace medlens;

namespace {

constexpr double kNoise = 0.03;

void write_raw(const std::string& path, const Image& image) {
  const at::Tensor v = image.voxels().contiguous();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data_ptr<float>()), v.numel() * 4);
}

// A run of `t` on `image` per iteration, timed by Google Benchmark.
void add(const std::string& name, TransformPtr t, const Image& image, int iterations) {
  benchmark::RegisterBenchmark(name.c_str(), [t, image](benchmark::State& s) {
    for (auto _ : s) benchmark::DoNotOptimize((*t)(image).data());
  })->Unit(benchmark::kMillisecond)->Iterations(iterations)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  init_threads();
  std::string dir = (fs::temp_directory_path() / "medlens-bench-transforms").string();
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--keep") dir = argv[i + 1];
  fs::create_directories(dir);

  const Image ch2 = read_image("/usr/share/mricron/templates/ch2.nii.gz");
  at::Tensor v = at::upsample_trilinear3d(ch2.voxels().unsqueeze(0), {256, 256, 256}, false).squeeze(0);
  v = (v - v.min()) / (v.max() - v.min());
  v = (v + kNoise * at::randn(v.sizes(), at::make_generator<at::CPUGeneratorImpl>(2024))).clamp(0, 1);
  Geometry g = ch2.geometry();
  g.spacing = {1.0, 1.0, 1.0};
  const Image vol(v, g, ch2.metadata());
  const Image slice(v.slice(1, 128, 129), g, ch2.metadata());
  const Image block(v.slice(1, 96, 160).slice(2, 96, 160).slice(3, 96, 160), g, ch2.metadata());
  write_raw(dir + "/vol.f32", vol);

  add("clahe_256cube", make_clahe(), vol, 3);
  add("nlm_slice_256", make_nlm(NlmOptions().patch_size(5).patch_distance(6).sigma(kNoise).h(0.8 * kNoise)), slice, 10);
  add("nlm_block_64", make_nlm(NlmOptions().patch_size(5).patch_distance(4).sigma(kNoise).h(0.8 * kNoise)), block, 2);
  add("diffusion_256cube", make_anisotropic_diffusion(DiffusionOptions().iterations(5)), vol, 1);
  add("resample_256cube", make_transform("resample", {{"spacing", {0.8, 0.8, 0.8}}, {"interpolation", "linear"}}),
      vol, 2);

  benchmark::Initialize(&argc, argv);
  bench::CapturingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  const auto peer = bench::run_peer(std::string(MEDLENS_SOURCE_DIR) + "/bench/transforms/peer_transforms.py",
                                    {dir + "/vol.f32", std::to_string(kNoise)});
  auto row = [&](const std::string& task, const std::string& name, const std::string& peer_name) {
    return bench::Row{task, peer_name, reporter.seconds[name], peer.at(name).first};
  };
  const std::string threads = std::to_string(thread_count()) + " threads";
  bench::print_table("Transforms vs scikit-image (" + threads + ")",
                     {row("CLAHE, 256^3 slice by slice", "clahe_256cube", "scikit-image"),
                      row("NLM 2-D, 256x256, patch 5, distance 6", "nlm_slice_256", "scikit-image"),
                      row("NLM 3-D, 64^3, patch 5, distance 4", "nlm_block_64", "scikit-image"),
                      row("resample linear, 256^3 1 mm -> 0.8 mm (320^3)", "resample_256cube", "scikit-image")});
  bench::print_table("Anisotropic diffusion (no scikit-image/scipy equivalent; " + threads + ")",
                     {row("256^3, 5 iterations: medlens curvature (ITK) vs numpy Perona-Malik", "diffusion_256cube",
                          "numpy")});
  return 0;
}
