// bench/io: reading a DICOM series and a large .nii.gz in medlens versus pydicom+numpy and
// nibabel, on the same files, in the same run. The data are real anatomy (mricron's ch2 T1),
// written by medlens as an MR series (181 slices of 181x217), a CT-sized series (160 slices
// of 512x512, ch2 resampled) and an 8.7 M-voxel .nii.gz.
//
// usage: bench_io [--keep DIR] [google benchmark flags]
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/peer.h"
#include "core/image.h"
#include "core/parallel.h"
#include "io/read.h"
#include "io/write.h"

namespace fs = std::filesystem;
using namespace medlens;

int main(int argc, char** argv) {
  init_threads();
  std::string dir = (fs::temp_directory_path() / "medlens-bench-io").string();
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--keep") dir = argv[i + 1];
  fs::create_directories(dir);
  const std::string mr = dir + "/mr-series", ct = dir + "/ct-series", nii = dir + "/ch2-padded.nii.gz";

  const Image ch2 = read_image("/usr/share/mricron/templates/ch2.nii.gz");
  if (!fs::exists(mr)) {
    WriteOptions w;
    w.dicom_modality = "MR";
    write_image(ch2, mr + "/", w);
  }
  if (!fs::exists(ct)) {
    // CT-sized: ch2 resampled to 160 x 512 x 512 and mapped to an HU-like integer range.
    at::Tensor v = at::upsample_trilinear3d(ch2.voxels().unsqueeze(0), {160, 512, 512}, false);
    v = (v.squeeze(0) * 8.0 - 1000.0).round();
    Geometry g = ch2.geometry();
    g.spacing = {g.spacing[0] * 181.0 / 512, g.spacing[1] * 217.0 / 512, g.spacing[2] * 181.0 / 160};
    Metadata m;
    m.modality = "CT";
    write_image(Image(v, g, m), ct + "/");
  }
  if (!fs::exists(nii)) {
    at::Tensor v = at::constant_pad_nd(ch2.voxels(), {10, 9, 12, 11, 0, 0});  // 200 x 240 x 181
    write_image(ch2.with_voxels(v), nii);
  }

  benchmark::RegisterBenchmark("read_series_mr_181", [&](benchmark::State& s) {
    for (auto _ : s) benchmark::DoNotOptimize(read_image(mr).data());
  })->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("read_series_ct_160x512", [&](benchmark::State& s) {
    for (auto _ : s) benchmark::DoNotOptimize(read_image(ct).data());
  })->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("read_nifti_gz_8.7M", [&](benchmark::State& s) {
    for (auto _ : s) benchmark::DoNotOptimize(read_image(nii).data());
  })->Unit(benchmark::kMillisecond)->MinTime(2.0);

  benchmark::Initialize(&argc, argv);
  bench::CapturingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double medlens_mb = bench::peak_rss_mb();

  const std::string peer_script = std::string(MEDLENS_SOURCE_DIR) + "/bench/io/peer_io.py";
  const auto peer = bench::run_peer(peer_script, {mr, ct, nii});
  std::vector<bench::Row> rows = {
      {"DICOM series, 181 x 181x217 MR", "pydicom+numpy", reporter.seconds["read_series_mr_181"],
       peer.at("read_series_mr_181").first},
      {"DICOM series, 160 x 512x512 CT", "pydicom+numpy", reporter.seconds["read_series_ct_160x512"],
       peer.at("read_series_ct_160x512").first},
  };
  bench::print_table("Reading DICOM series (warm cache, " + std::to_string(thread_count()) + " threads)", rows);
  bench::print_table("Reading NIfTI",
                     {{".nii.gz, 200x240x181 float32 (8.7 M voxels)", "nibabel",
                       reporter.seconds["read_nifti_gz_8.7M"], peer.at("read_nifti_gz_8.7M").first}});
  std::printf("\npeak memory: medlens process %.0f MiB, python peer %.0f MiB\n", medlens_mb,
              peer.at("read_nifti_gz_8.7M").second);
  return 0;
}
