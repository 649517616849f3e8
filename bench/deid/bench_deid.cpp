// bench/deid: de-identifying a 200-instance CT study (medlens-written 512x512 slices with patient,
// study and equipment attributes filled) to the Basic Profile, medlens versus a pydicom
// implementation of the same Table E.1-1 actions (bench/deid/peer_deid.py, which reads the
// rows from src/deid/profile_table.inc) on the same files, in the same run. Both map UIDs and
// identifiers by HMAC-SHA-256 under the same key and write one file per instance.
//
// usage: bench_deid [--keep DIR] [google benchmark flags]
#include <cstdio>
#include <filesystem>
#include <string>

#include "common/peer.h"
#include "core/image.h"
#include "core/parallel.h"
#include "deid/deid.h"
#include "io/write.h"

namespace fs = std::filesystem;
using namespace medlens;

namespace {

constexpr int kInstances = 200;

void write_study(const std::string& folder) {
  VoxelBuffer b;
  b.shape = Shape{1, kInstances, 512, 512};
  b.data.resize(static_cast<size_t>(b.shape.elements()));
  for (size_t i = 0; i < b.data.size(); ++i) b.data[i] = static_cast<float>(static_cast<int>((i * 2654435761u) % 3000) - 1000);
  b.geometry.spacing = {0.7, 0.7, 1.25};
  Metadata& m = b.metadata;
  m.modality = "CT";
  m.units = "HU";
  m.series_description = "CT CHEST W CONTRAST 1.25MM";
  m.identity = {{"PatientName", "Doe^Jane"},      {"PatientID", "MRN-4471932"},
                {"PatientBirthDate", "19480211"}, {"PatientSex", "F"},
                {"StudyDate", "20210304"},        {"StudyTime", "101500"},
                {"AccessionNumber", "ACC-77-1"},  {"StudyID", "S77"},
                {"ReferringPhysicianName", "Smith^John"}};
  WriteOptions w;
  w.dicom_modality = "CT";
  write_image(Image::from_buffer(std::move(b)), folder + "/", w);
}

}  // namespace

int main(int argc, char** argv) {
  init_threads();
  std::string dir = (fs::temp_directory_path() / "medlens-bench-deid").string();
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--keep") dir = argv[i + 1];
  fs::create_directories(dir);
  const std::string study = dir + "/study", out = dir + "/out", key = dir + "/site.key";
  if (!fs::exists(study)) write_study(study);
  {
    FILE* f = std::fopen(key.c_str(), "wb");
    const std::string bytes(32, 'k');
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  deid::Options options;
  options.key = std::string(32, 'k');

  benchmark::RegisterBenchmark("deid_study_200", [&](benchmark::State& s) {
    for (auto _ : s) {
      s.PauseTiming();
      fs::remove_all(out);
      s.ResumeTiming();
      const deid::Report r = deid::deidentify(study, out, options);
      if (r.instances.size() != kInstances) s.SkipWithError("not every instance was written");
    }
  })->Unit(benchmark::kMillisecond)->Iterations(3);

  benchmark::Initialize(&argc, argv);
  bench::CapturingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  const std::string peer_script = std::string(MEDLENS_SOURCE_DIR) + "/bench/deid/peer_deid.py";
  const auto peer = bench::run_peer(peer_script, {std::string(MEDLENS_SOURCE_DIR) + "/src/deid/profile_table.inc",
                                                  study, dir + "/peer-out", key});
  const double m = reporter.seconds["deid_study_200"], p = peer.at("deid_study_200").first;
  bench::print_table("De-identifying a 200-instance CT study (Basic Profile, one thread each)",
                     {{"200 x 512x512 CT instances", "pydicom", m, p}});
  std::printf("\ninstances per second: medlens %.0f, pydicom %.0f\n", kInstances / m, kInstances / p);
  return 0;
}
