// bench/lesions: sliding-window segmentation of whole volumes with the 3-D U-Net a brain-lesion
// model would use (2 input channels such as T1 and FLAIR, 2 classes, width 8, depth 4,
// residual blocks, instance norm; 96^3 windows overlapping by half, Gaussian blending), in
// medlens (infer/sliding_window) and in python3-torch (bench/lesions/peer_lesions.py: the same
// network in plain PyTorch and the simple sliding window people write), in one run:
//
//   volumes per minute at 128^3 and 256^3, same weights, same inputs (the ch2 T1 template and
//   its brain-extracted twin resampled to each size), same windows and batch, same thread
//   count; parameter counts of both networks printed and compared, and the largest difference
//   between the two outputs on the smallest volume (so both compute the same thing).
//
//   --ct: instead, the time and peak resident memory (getrusage of this process) of sliding-
//   window inference on a 512x512x300 volume, as a CT would be; run it as its own process so
//   the peak is this inference's alone. Takes several minutes on 2 cores.
//
// usage: bench_lesions [--repeat N] [--sizes 128,256] [--batch B] [--work DIR] | --ct
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/peer.h"
#include "core/image.h"
#include "core/parallel.h"
#include "infer/sliding_window.h"
#include "io/read.h"
#include "nn/network.h"

namespace fs = std::filesystem;
using namespace medlens;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kPatch = 96;
const nlohmann::json kArchitecture = {{"name", "unet"}, {"dims", 3},          {"in_channels", 2}, {"out_channels", 2},
                                      {"depth", 4},     {"width", 8},         {"norm", "instance"},
                                      {"residual", true}};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// The ch2 T1 template and its brain-extracted twin as two channels, resampled (trilinear) to
// `shape` (D, H, W), each channel z-scored in place (no volume-sized temporaries beyond one
// resampled channel, so the CT-sized input does not inflate the peak it is measured by).
at::Tensor brain_volume(const std::vector<int64_t>& shape) {
  const std::string dir = "/usr/share/mricron/templates/";
  at::Tensor x = at::empty({2, shape[0], shape[1], shape[2]});
  int64_t c = 0;
  for (const char* name : {"ch2.nii.gz", "ch2bet.nii.gz"}) {
    const at::Tensor v = read_image(dir + name).voxels().select(0, 0).to(at::kFloat).unsqueeze(0).unsqueeze(0);
    at::Tensor channel = x[c++];
    channel.copy_(torch::nn::functional::interpolate(
        v, torch::nn::functional::InterpolateFuncOptions().size(shape).mode(torch::kTrilinear).align_corners(false))[0][0]);
    const double mean = channel.mean().item<double>(), sd = channel.std().item<double>();
    channel.sub_(mean).div_(sd);
  }
  return x;
}

// Resident memory of this process now, in MiB (/proc/self/statm).
double rss_now_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

SlidingWindowOptions options(int64_t batch) {
  SlidingWindowOptions o({kPatch, kPatch, kPatch});
  if (batch > 0) o.batch_size(batch);
  return o;
}

int run_ct(Network& net, int64_t batch) {
  const std::vector<int64_t> shape{300, 512, 512};
  const at::Tensor x = brain_volume(shape);
  const double input_mb = static_cast<double>(x.numel()) * 4 / (1 << 20);
  const double start_mb = rss_now_mb(), start_peak_mb = bench::peak_rss_mb();
  const auto o = options(batch);
  int64_t windows = 1;
  for (int64_t s : shape) windows *= static_cast<int64_t>(sliding_window_starts(s, kPatch, o.overlap()).size());
  std::printf("bench_lesions --ct: U-Net %s, %lld parameters; volume 2x%lldx%lldx%lld (D x H x W), %lld windows of "
              "%lld^3, batch %lld, %d threads\n",
              kArchitecture.dump().c_str(), static_cast<long long>(parameter_count(net)),
              static_cast<long long>(shape[0]), static_cast<long long>(shape[1]), static_cast<long long>(shape[2]),
              static_cast<long long>(windows), static_cast<long long>(kPatch), static_cast<long long>(o.batch_size()),
              at::get_num_threads());
  std::fflush(stdout);
  int64_t reported = 0;
  auto with_progress = SlidingWindowOptions(o).progress([&](int64_t done, int64_t total) {
    if (done * 10 / total > reported) {
      reported = done * 10 / total;
      std::fprintf(stderr, "  %lld/%lld windows\n", static_cast<long long>(done), static_cast<long long>(total));
    }
  });
  const auto t = Clock::now();
  const at::Tensor p = sliding_window_inference(net, x, with_progress);
  const double s = seconds_since(t);
  const double output_mb = static_cast<double>(p.numel()) * 4 / (1 << 20);
  std::printf("\n| volume | windows | time | peak RSS | input | output |\n|---|---:|---:|---:|---:|---:|\n");
  std::printf("| 512x512x300, 2 channels | %lld | %.0f s (%.2f s/window) | %.0f MiB | %.0f MiB | %.0f MiB |\n",
              static_cast<long long>(windows), s, s / static_cast<double>(windows), bench::peak_rss_mb(), input_mb,
              output_mb);
  std::printf("\nRSS when inference started (input volume built, network loaded): %.0f MiB; peak before it %.0f MiB\n",
              start_mb, start_peak_mb);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  init_threads();
  const int threads = thread_count();
  int repeat = 2;
  int64_t batch = 0;  // 0: the library's default
  bool ct = false;
  std::vector<int64_t> sizes{128, 256};
  std::string work = (fs::temp_directory_path() / "medlens-bench-lesions").string();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (a == "--batch" && i + 1 < argc) batch = std::max(1, std::atoi(argv[++i]));
    else if (a == "--work" && i + 1 < argc) work = argv[++i];
    else if (a == "--ct") ct = true;
    else if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      std::stringstream list(argv[++i]);
      for (std::string s; std::getline(list, s, ',');) sizes.push_back(std::max<int64_t>(kPatch, std::atoll(s.c_str())));
    } else {
      std::fprintf(stderr, "usage: bench_lesions [--repeat N] [--sizes 128,256] [--batch B] [--work DIR] | --ct\n");
      return 2;
    }
  }
  torch::manual_seed(0);
  NetworkPtr net = make_network(kArchitecture);
  net->eval();
  if (ct) return run_ct(*net, batch);

  fs::remove_all(work);
  fs::create_directories(work);
  const auto o = options(batch);
  const std::string peer = std::string(MEDLENS_SOURCE_DIR) + "/bench/lesions/peer_lesions.py";
  std::printf("bench_lesions: U-Net %s, %lld parameters\nwindows %lld^3, overlap %.2f, Gaussian blending, batch %lld; "
              "%d threads (medlens init_threads / at::get_num_threads() = %d; python torch.set_num_threads(%d)); "
              "best of %d\n\n",
              kArchitecture.dump().c_str(), static_cast<long long>(parameter_count(*net)),
              static_cast<long long>(kPatch), o.overlap(), static_cast<long long>(o.batch_size()), threads,
              at::get_num_threads(), threads, repeat);
  std::fflush(stdout);

  // The same weights and inputs for the peer.
  std::vector<at::Tensor> inputs;
  for (int64_t s : sizes) inputs.push_back(brain_volume({s, s, s}));
  const std::string data = work + "/lesions-data.pt";
  {
    torch::serialize::OutputArchive a;
    for (const char* k : {"in_channels", "out_channels", "depth", "width"})
      a.write(std::string("arch.") + k, at::tensor(kArchitecture.at(k).get<int64_t>()));
    a.write("arch.patch", at::tensor(kPatch));
    for (const auto& p : net->named_parameters()) a.write("net." + p.key(), p.value().detach());
    for (const auto& b : net->named_buffers()) a.write("net." + b.key(), b.value().detach());
    for (size_t i = 0; i < sizes.size(); ++i) a.write("input." + std::to_string(sizes[i]), inputs[i]);
    a.save_to(data);
  }
  {  // warm-up (oneDNN primitives); the peer warms up the same way
    torch::NoGradGuard g;
    net->forward(inputs.front().narrow(1, 0, kPatch).narrow(2, 0, kPatch).narrow(3, 0, kPatch).unsqueeze(0).expand(
        {o.batch_size(), -1, -1, -1, -1}));
  }

  // Runs alternate (medlens, python, medlens, python, ...) so that load from elsewhere on the
  // machine falls on both alike; the best of each is reported.
  std::vector<double> medlens_s(sizes.size(), INFINITY), python_s(sizes.size(), INFINITY);
  double python_peak = 0;
  int64_t python_params = 0;
  at::Tensor first_output;
  const std::string peer_out = work + "/python-output.f32";
  for (int r = 0; r < repeat; ++r)
    for (size_t i = 0; i < sizes.size(); ++i) {
      const auto t = Clock::now();
      at::Tensor p = sliding_window_inference(*net, inputs[i], o);
      const double ms = seconds_since(t);
      medlens_s[i] = std::min(medlens_s[i], ms);
      if (r == 0 && i == 0) first_output = p;
      std::vector<std::string> args{data, std::to_string(threads), std::to_string(o.batch_size()),
                                    std::to_string(sizes[i])};
      if (r == 0 && i == 0) args.push_back(peer_out);
      const auto py = bench::run_peer(peer, args);
      const auto& [ps, pmb] = py.at("sw_" + std::to_string(sizes[i]));
      python_s[i] = std::min(python_s[i], ps);
      python_peak = std::max(python_peak, pmb);
      python_params = static_cast<int64_t>(py.at("params").first);
      std::printf("%lld^3 run %d/%d: medlens %.2f s, python %.2f s\n", static_cast<long long>(sizes[i]), r + 1, repeat,
                  ms, ps);
      std::fflush(stdout);
    }
  const double medlens_peak = bench::peak_rss_mb();

  std::printf("\nparameters: medlens %lld, python %lld (%s)\n", static_cast<long long>(parameter_count(*net)),
              static_cast<long long>(python_params), python_params == parameter_count(*net) ? "same" : "DIFFERENT");
  {
    std::vector<float> theirs(static_cast<size_t>(first_output.numel()));
    std::FILE* f = std::fopen(peer_out.c_str(), "rb");
    const size_t got = f ? std::fread(theirs.data(), sizeof(float), theirs.size(), f) : 0;
    if (f) std::fclose(f);
    if (got != theirs.size()) throw std::runtime_error("peer output " + peer_out + " is missing or short");
    const at::Tensor other = at::from_blob(theirs.data(), first_output.sizes(), at::kFloat);
    std::printf("same weights, same %lld^3 input: max |p_medlens - p_python| = %.2e\n",
                static_cast<long long>(sizes.front()), (first_output - other).abs().max().item<double>());
  }

  std::printf("\n%d threads; ratio = python3-torch time / medlens time (> 1: medlens faster)\n\n", threads);
  std::printf("| volume | windows | medlens | python3-torch | ratio |\n|---|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < sizes.size(); ++i) {
    const int64_t n = static_cast<int64_t>(sliding_window_starts(sizes[i], kPatch, o.overlap()).size());
    std::printf("| %lld^3 | %lld | %.2f s (%.2f volumes/min) | %.2f s (%.2f volumes/min) | %.2fx |\n",
                static_cast<long long>(sizes[i]), static_cast<long long>(n * n * n), medlens_s[i], 60 / medlens_s[i],
                python_s[i], 60 / python_s[i], python_s[i] / medlens_s[i]);
  }
  std::printf("\npeak RSS: medlens process %.0f MiB (holds every input), python process %.0f MiB (one input)\n",
              medlens_peak, python_peak);
  return 0;
}
