// bench/nn: the same ResNet-18 (1 input channel, 2 classes; torchvision's layout) trained for
// one epoch and run for inference in medlens and in python3-torch, on the same chest X-rays
// (PneumoniaMNIST, resized to 64x64), with the same thread count, in one run:
//
//   1. the training loop on preloaded tensors: medlens's loop (as in train/trainer.cpp) on
//      medlens's ResNet versus the usual PyTorch loop on the same network written in plain torch
//      (bench/nn/peer_nn.py), both starting from the same weights on the same shuffled batches;
//   2. `medlens train` end to end (1 epoch from the PNG files: reading, preprocessing, training,
//      validation, calibration, saving) versus a Python script doing the same from the same files;
//   3. `medlens predict --model BUNDLE --manifest CSV --json` on 1,000 images, process start to
//      exit, versus a Python script doing the same with the same bundle; the probabilities of the
//      two are compared (max |p_medlens - p_python|) so the comparison is honest. The script
//      does less: no input-quality or out-of-distribution checks, no abstention, no uncertainty;
//   4. where `medlens predict`'s time goes: its stages run in this process on the same images
//      and bundle (reading, preprocessing, the forward pass with and without the stage capture
//      the OOD features need, the quality checks, the OOD scores, the JSON lines), and the
//      process start and exit of the medlens binary alone.
//
// Data: ../shared/datasets/pneumoniamnist (2,428 train + 270 val) when present, else the 270
// vendored samples in data/samples/pneumoniamnist repeated to reach 1,000+ images.
//
// usage: bench_nn [--repeat N] [--work DIR] [--skip-e2e] [--predict-only BUNDLE]
//   --repeat N               runs each measurement N times (default 3) and reports the best
//   --predict-only BUNDLE    only 3 and 4, with an existing bundle (a 64x64 chest X-ray classifier)
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/peer.h"
#include "core/parallel.h"
#include "infer/evaluate.h"
#include "infer/predict.h"
#include "io/manifest.h"
#include "nn/network.h"
#include "quality/ood.h"
#include "quality/quality.h"
#include "transforms/registry.h"

namespace fs = std::filesystem;
using namespace medlens;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kSize = 64;        // network input: 64x64 (the X-rays are 28x28)
constexpr int64_t kBatch = 64;       // training batch
constexpr size_t kPredictImages = 1000;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Spawned {
  int status = -1;
  double seconds = 0, peak_mb = 0;
};

// Runs argv[0] with stdout to `out` and stderr to `err`, timing it from fork to exit; its peak
// resident memory comes from wait4.
Spawned spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err,
              const std::vector<std::pair<std::string, std::string>>& env = {}) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::fflush(nullptr);
  const auto t = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    const int fo = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int fe = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0) _exit(126);
    dup2(fo, 1);
    dup2(fe, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  Spawned s;
  rusage u{};
  if (wait4(pid, &s.status, 0, &u) < 0) throw std::runtime_error("wait4 failed");
  s.seconds = seconds_since(t);
  s.peak_mb = static_cast<double>(u.ru_maxrss) / 1024.0;
  return s;
}

void check_ok(const Spawned& s, const std::string& what, const std::string& err) {
  if (WIFEXITED(s.status) && WEXITSTATUS(s.status) == 0) return;
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  throw std::runtime_error(what + " failed (status " + std::to_string(s.status) + "):\n" + text.str());
}

struct Best {
  double seconds = INFINITY, peak_mb = 0;
  void add(double s, double mb) {
    seconds = std::min(seconds, s);
    peak_mb = std::max(peak_mb, mb);
  }
};

struct TableRow {
  explicit TableRow(std::string name) : task(std::move(name)) {}
  std::string task;
  Best medlens, python;
};

// The probability of `cls` for each JSON line of a predict output, in order.
std::vector<double> probabilities(const std::string& file, const std::string& cls, std::vector<std::string>* labels) {
  std::ifstream in(file);
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back(j.at("probabilities").at(cls).get<double>());
    if (labels) labels->push_back(j.at("label").get<std::string>());
  }
  return out;
}

void write_manifest(const std::string& path, const std::vector<ManifestRow>& rows, bool with_split) {
  std::ofstream f(path);
  f << (with_split ? "path,label,split\n" : "path,label\n");
  for (const auto& r : rows) f << r.path << "," << r.label << (with_split ? "," + r.split : "") << "\n";
}

// Where `medlens predict --json`'s time goes: its stages (quality/quality.h predict_checked, CLI
// JSON lines) run here one by one on the same images and bundle, best of `repeat`, and the
// binary's process start and exit alone. `e2e_seconds` is the end-to-end time measured above.
void profile_predict(const std::string& medlens_bin, const std::string& bundle, const std::vector<ManifestRow>& rows,
                     int repeat, const std::string& work, double e2e_seconds) {
  const std::vector<Model> models{Model::load(bundle)};
  const Model& model = models.front();
  const FeatureOod ood = FeatureOod::load(model);
  std::vector<std::string> paths;
  for (const auto& r : rows) paths.push_back(r.path);
  PredictOptions o;  // the CLI's defaults: batch 32, no TTA, no MC dropout
  std::vector<std::pair<std::string, Best>> stages = {
      {"process start and exit (`medlens --version`)", {}},
      {"read the PNGs (parallel)", {}},
      {"preprocess (card pipeline, parallel)", {}},
      {"forward pass, batch 32, capturing every stage for the OOD features", {}},
      {"  of which the stage capture and feature summary", {}},
      {"quality and OOD checks", {}},
      {"  of which the OOD scores (Mahalanobis, energy)", {}},
      {"abstention rules and JSON lines", {}}};
  Best eager;
  double graph_vs_eager = 0;
  for (int r = 0; r < repeat; ++r) {
    const Spawned v = spawn({medlens_bin, "--version"}, work + "/version.out", work + "/version.err");
    check_ok(v, "medlens --version", work + "/version.err");
    stages[0].second.add(v.seconds, 0);
    auto t = Clock::now();
    const std::vector<Image> images = read_images(paths);
    stages[1].second.add(seconds_since(t), 0);
    t = Clock::now();
    const std::vector<at::Tensor> batches = prepare_for(models, images);
    stages[2].second.add(seconds_since(t), 0);
    std::vector<std::string> inputs;
    for (const auto& image : images) inputs.push_back(image.metadata().source_path);
    t = Clock::now();
    at::Tensor logits, features;
    std::vector<Prediction> preds = predict_prepared(models, batches, inputs, o, &logits, &features);
    const double with_capture = seconds_since(t);
    stages[3].second.add(with_capture, 0);
    t = Clock::now();
    predict_prepared(models, batches, inputs, o);
    stages[4].second.add(std::max(0.0, with_capture - seconds_since(t)), 0);
    // The same pass through the eager modules instead of the optimised graph, interleaved so
    // both see the same machine load.
    set_inference_graphs(false);
    t = Clock::now();
    at::Tensor eager_logits, eager_features;
    predict_prepared(models, batches, inputs, o, &eager_logits, &eager_features);
    eager.add(seconds_since(t), 0);
    set_inference_graphs(true);
    graph_vs_eager = std::max({graph_vs_eager, (eager_logits - logits).abs().max().item<double>()});
    t = Clock::now();
    const std::vector<QualityReport> checks = assess_quality_prepared(images, batches.front(), logits, features, model);
    stages[5].second.add(seconds_since(t), 0);
    t = Clock::now();
    const std::vector<double> maha = ood.mahalanobis(features), energy = energy_scores(logits);
    stages[6].second.add(seconds_since(t), 0);
    t = Clock::now();
    std::string out;
    for (size_t i = 0; i < preds.size(); ++i) {
      apply_quality(checks[i], preds[i]);
      apply_abstention(model.card(), preds[i]);
      out += prediction_json(preds[i]).dump() + "\n";
    }
    stages[7].second.add(seconds_since(t), 0);
    if (maha.size() != preds.size() || energy.size() != preds.size() || out.empty())
      throw std::runtime_error("profile: stage outputs differ in length");
  }
  std::printf("\nwhere `medlens predict --json` on %zu PNGs spends its time (its stages run in process, best of %d; "
              "end to end above: %.2f s)\n\n| stage | seconds | share of end to end |\n|---|---:|---:|\n",
              rows.size(), repeat, e2e_seconds);
  double sum = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    const double sec = stages[i].second.seconds;
    if (stages[i].first[0] != ' ') sum += sec;  // "  of which" rows are inside the row above
    std::printf("| %s | %.3f s | %.0f%% |\n", stages[i].first.c_str(), sec, 100 * sec / e2e_seconds);
  }
  std::printf("| sum of the stages | %.3f s | %.0f%% |\n", sum, 100 * sum / e2e_seconds);
  std::printf("\nthe forward pass above runs the optimised inference graph (nn/inference_graph.h); through the "
              "eager modules (MEDLENS_EAGER=1) the same pass takes %.3f s (graph %.2fx faster); logits differ by "
              "at most %.1e\n",
              eager.seconds, eager.seconds / stages[3].second.seconds, graph_vs_eager);
}

}  // namespace

int main(int argc, char** argv) {
  init_threads();
  const int threads = thread_count();
  int repeat = 3;
  bool e2e = true;
  std::string predict_only;
  std::string work = (fs::temp_directory_path() / "medlens-bench-nn").string();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (a == "--work" && i + 1 < argc) work = argv[++i];
    else if (a == "--skip-e2e") e2e = false;
    else if (a == "--predict-only" && i + 1 < argc) predict_only = fs::absolute(argv[++i]).string();
    else {
      std::fprintf(stderr, "usage: bench_nn [--repeat N] [--work DIR] [--skip-e2e] [--predict-only BUNDLE]\n");
      return 2;
    }
  }
  fs::remove_all(work);
  fs::create_directories(work);
  const std::string src = MEDLENS_SOURCE_DIR;
  const std::string peer = src + "/bench/nn/peer_nn.py";
  const std::string medlens_bin = (fs::canonical("/proc/self/exe").parent_path().parent_path() / "bin/medlens").string();
  if (e2e && !fs::exists(medlens_bin)) {
    std::fprintf(stderr, "bench_nn: %s not found; build the medlens target too\n", medlens_bin.c_str());
    return 2;
  }

  // ---- data ---------------------------------------------------------------------------------
  const std::string shared = src + "/../shared/datasets/pneumoniamnist/manifest.csv";
  std::vector<ManifestRow> train_rows, val_rows;
  std::string data_note;
  if (fs::exists(shared)) {
    const Manifest m = load_manifest(shared);
    train_rows = m.select("train");
    val_rows = m.select("val");
    data_note = "../shared/datasets/pneumoniamnist (real chest X-rays: " + std::to_string(train_rows.size()) +
                " train, " + std::to_string(val_rows.size()) + " val)";
  } else {
    const Manifest m = load_manifest(src + "/data/samples/pneumoniamnist/manifest.csv");
    val_rows = m.rows;
    for (int r = 0; r < 4; ++r) train_rows.insert(train_rows.end(), m.rows.begin(), m.rows.end());
    for (auto& r : train_rows) r.split = "train";
    data_note = "data/samples/pneumoniamnist (../shared/datasets absent: the 270 vendored X-rays, repeated 4x as "
                "1,080 train; the 270 as val)";
  }
  for (auto& r : val_rows) r.split = "val";
  for (auto* rows : {&train_rows, &val_rows})
    for (auto& r : *rows) r.path = fs::absolute(r.path).string();
  std::vector<ManifestRow> all = train_rows;
  all.insert(all.end(), val_rows.begin(), val_rows.end());
  const std::string train_csv = work + "/train.csv", predict_csv = work + "/predict.csv";
  write_manifest(train_csv, all, true);
  std::vector<ManifestRow> predict_rows;
  for (size_t i = 0; predict_rows.size() < kPredictImages; ++i) predict_rows.push_back(all[i % all.size()]);
  write_manifest(predict_csv, predict_rows, false);

  std::printf("bench_nn: ResNet-18 (torchvision layout, 1 channel, 2 classes), %lldx%lld inputs, batch %lld\n",
              static_cast<long long>(kSize), static_cast<long long>(kSize), static_cast<long long>(kBatch));
  std::printf("data: %s\nthreads: %d (medlens init_threads / at::get_num_threads() = %d; python torch.set_num_threads(%d))\n",
              data_note.c_str(), threads, at::get_num_threads(), threads);
  std::printf("repeats: best of %d\n\n", repeat);

  const nlohmann::json prep_spec = {{"transforms", {{{"op", "resize"}, {"size", {kSize, kSize}}, {"mode", "linear"}},
                                                    {{"op", "zscore"}}}}};
  std::vector<TableRow> rows;
  double train_ratio = -1;
  if (predict_only.empty()) {
    // Preloaded training tensors: read, preprocessed exactly as the bundle's card says, shuffled.
    const Compose prep = load_pipeline(prep_spec);
    std::vector<std::string> paths;
    for (const auto& r : train_rows) paths.push_back(r.path);
    const std::vector<Image> images = read_images(paths);
    std::vector<at::Tensor> xs(images.size());
    parallel_for(static_cast<int64_t>(images.size()), [&](int64_t i) { xs[i] = prep(images[i]).voxels().select(1, 0); });
    std::vector<int64_t> order(images.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(20261123));
    std::vector<at::Tensor> sx;
    std::vector<int64_t> sy;
    for (int64_t i : order) {
      sx.push_back(xs[i]);
      sy.push_back(train_rows[i].label == "pneumonia" ? 1 : 0);
    }
    const at::Tensor X = at::stack(sx).contiguous(), Y = at::tensor(sy, at::kLong);
    const int64_t n = X.size(0);

    torch::manual_seed(0);
    const nlohmann::json arch = preset_architecture("resnet18", 2, 1, 2);
    NetworkPtr init = make_network(arch);
    int64_t param_count = 0;
    for (const auto& p : init->parameters()) param_count += p.numel();
    at::Tensor ref_logits;
    {
      torch::NoGradGuard g;
      init->eval();
      ref_logits = init->forward(X.slice(0, 0, kBatch));
    }
    const std::string data_pt = work + "/loop-data.pt";
    {
      torch::serialize::OutputArchive a;
      for (const auto& p : init->named_parameters()) a.write("init." + p.key(), p.value().detach());
      for (const auto& b : init->named_buffers()) a.write("init." + b.key(), b.value().detach());
      a.write("data.x", X);
      a.write("data.y", Y);
      a.write("ref.logits", ref_logits);
      a.save_to(data_pt);
    }
    std::printf("network: %lld parameters; %lld training images (%lld steps per epoch)\n\n",
                static_cast<long long>(param_count), static_cast<long long>(n),
                static_cast<long long>((n + kBatch - 1) / kBatch));


    // ---- 1. the training loop on preloaded tensors ----------------------------------------------
    TableRow loop{"training loop, 1 epoch on " + std::to_string(n) + " preloaded images (AdamW, batch 64)"};
    TableRow infer{"inference only, " + std::to_string(std::min<int64_t>(n, kPredictImages)) +
                   " preloaded images (batch 32, no grad)"};
    double medlens_first_loss = 0, python_first_loss = 0, logit_diff = 0;
    for (int r = 0; r < repeat; ++r) {
      NetworkPtr net = make_network(arch);
      {
        torch::NoGradGuard g;
        auto src_p = init->named_parameters();
        for (auto& p : net->named_parameters()) p.value().copy_(src_p[p.key()]);
        auto src_b = init->named_buffers();
        for (auto& b : net->named_buffers()) b.value().copy_(src_b[b.key()]);
      }
      net->train();
      torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(1e-4));
      // As train/trainer.cpp does it: a batch stacked from its samples, the learning rate set
      // each step, one optimiser step, the loss read back.
      const auto t = Clock::now();
      for (int64_t lo = 0; lo < n; lo += kBatch) {
        const int64_t hi = std::min(n, lo + kBatch);
        std::vector<at::Tensor> bx, by;
        for (int64_t i = lo; i < hi; ++i) bx.push_back(X[i]), by.push_back(Y[i]);
        const at::Tensor x = at::stack(bx), y = at::stack(by);
        for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(1e-3);
        opt.zero_grad();
        at::Tensor loss = at::cross_entropy_loss(net->forward(x), y);
        loss.backward();
        opt.step();
        const double v = loss.item<double>();
        if (lo == 0) medlens_first_loss = v;
      }
      loop.medlens.add(seconds_since(t), bench::peak_rss_mb());
      {
        torch::NoGradGuard g;
        net->eval();
        const int64_t m = std::min<int64_t>(n, kPredictImages);
        const auto ti = Clock::now();
        for (int64_t lo = 0; lo < m; lo += 32) net->forward(X.slice(0, lo, std::min(m, lo + 32)));
        infer.medlens.add(seconds_since(ti), bench::peak_rss_mb());
      }
      const auto p = bench::run_peer(peer, {"loop", data_pt, std::to_string(threads)});
      loop.python.add(p.at("train_loop").first, p.at("train_loop").second);
      infer.python.add(p.at("infer").first, p.at("infer").second);
      python_first_loss = p.at("first_loss").first;
      logit_diff = p.at("logit_maxdiff").first;
      std::printf("loop %d/%d: medlens %.2f s, python %.2f s; inference medlens %.2f s, python %.2f s\n", r + 1, repeat,
                  loop.medlens.seconds, loop.python.seconds, infer.medlens.seconds, infer.python.seconds);
      std::fflush(stdout);
    }
    rows.push_back(loop);
    rows.push_back(infer);
    train_ratio = loop.python.seconds / loop.medlens.seconds;
    std::printf("architecture check: same weights, eval-mode logits of one batch differ by at most %.2e; "
                "first-batch training loss medlens %.4f, python %.4f (dropout masks differ)\n\n",
                logit_diff, medlens_first_loss, python_first_loss);

  }

  // ---- 2. and 3. end to end: train from PNGs, then predict 1,000 PNGs ------------------------
  double max_diff = -1;
  size_t label_agree = 0, compared = 0;
  const std::string bundle = predict_only.empty() ? work + "/bundle" : predict_only;
  if (e2e && predict_only.empty()) {
    const std::string cfg = work + "/train.json";
    std::ofstream(cfg) << nlohmann::json{{"task", "classify"},
                                         {"arch", "resnet18"},
                                         {"preprocessing", prep_spec},
                                         {"epochs", 1},
                                         {"batch_size", kBatch},
                                         {"lr", 1e-3},
                                         {"weight_decay", 1e-4},
                                         {"bootstrap_rounds", 200},
                                         {"quiet", true},
                                         {"card", {{"name", "bench-resnet18"}}}}
                              .dump(1);
    TableRow train{"`medlens train`, 1 epoch end to end from " + std::to_string(train_rows.size()) + "+" +
                   std::to_string(val_rows.size()) + " PNGs (process start to exit)"};
    for (int r = 0; r < repeat; ++r) {
      const std::string out = r == 0 ? bundle : work + "/bundle-" + std::to_string(r);
      const std::string err = work + "/train-medlens.err";
      const Spawned m = spawn({medlens_bin, "train", "--config", cfg, "--manifest", train_csv, "--out", out},
                              work + "/train-medlens.out", err);
      check_ok(m, "medlens train", err);
      train.medlens.add(m.seconds, m.peak_mb);
      const std::string perr = work + "/train-python.err";
      const Spawned p = spawn({"/usr/bin/python3", peer, "train", train_csv, work + "/python-bundle-" + std::to_string(r),
                               std::to_string(threads)},
                              work + "/train-python.out", perr);
      check_ok(p, "peer_nn.py train", perr);
      train.python.add(p.seconds, p.peak_mb);
      std::printf("train %d/%d: medlens %.2f s, python %.2f s\n", r + 1, repeat, m.seconds, p.seconds);
      std::fflush(stdout);
    }
    rows.push_back(train);
  }
  if (e2e) {
    TableRow pred{"`medlens predict --json`, " + std::to_string(kPredictImages) +
                  " PNGs end to end (process start to exit)"};
    const std::string mout = work + "/predict-medlens.jsonl", pout = work + "/predict-python.jsonl";
    for (int r = 0; r < repeat; ++r) {
      const Spawned m = spawn({medlens_bin, "predict", "--model", bundle, "--manifest", predict_csv, "--json"}, mout,
                              work + "/predict-medlens.err");
      check_ok(m, "medlens predict", work + "/predict-medlens.err");
      pred.medlens.add(m.seconds, m.peak_mb);
      const Spawned p = spawn({"/usr/bin/python3", peer, "predict", bundle, predict_csv, std::to_string(threads)}, pout,
                              work + "/predict-python.err");
      check_ok(p, "peer_nn.py predict", work + "/predict-python.err");
      pred.python.add(p.seconds, p.peak_mb);
      std::printf("predict %d/%d: medlens %.2f s, python %.2f s\n", r + 1, repeat, m.seconds, p.seconds);
      std::fflush(stdout);
    }
    rows.push_back(pred);
    std::vector<std::string> ml, pl;
    const auto pm = probabilities(mout, "pneumonia", &ml), pp = probabilities(pout, "pneumonia", &pl);
    if (pm.size() != kPredictImages || pp.size() != kPredictImages)
      throw std::runtime_error("predict outputs have " + std::to_string(pm.size()) + " and " +
                               std::to_string(pp.size()) + " lines, expected " + std::to_string(kPredictImages));
    max_diff = 0;
    for (size_t i = 0; i < pm.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(pm[i] - pp[i]));
      label_agree += ml[i] == pl[i];
      ++compared;
    }
    std::printf("predict agreement: max |p_medlens - p_python| = %.2e over %zu images (%s 1e-4); labels agree on "
                "%zu/%zu\n",
                max_diff, compared, max_diff < 1e-4 ? "below" : "NOT below", label_agree, compared);
    profile_predict(medlens_bin, bundle, predict_rows, repeat, work, pred.medlens.seconds);
  }

  // ---- table --------------------------------------------------------------------------------
  std::printf("\nResNet-18, %d threads; ratio = python3-torch time / medlens time (> 1: medlens faster)\n\n", threads);
  std::printf("| task | medlens | python3-torch | ratio | peak RSS medlens | peak RSS python |\n"
              "|---|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows)
    std::printf("| %s | %.2f s | %.2f s | %.2fx | %.0f MiB | %.0f MiB |\n", r.task.c_str(), r.medlens.seconds,
                r.python.seconds, r.python.seconds / r.medlens.seconds, r.medlens.peak_mb, r.python.peak_mb);
  if (train_ratio >= 0)
    std::printf("\ngoal: training time <= 1.0x python's (ratio >= 1.00): %.2fx, %s\n", train_ratio,
                train_ratio >= 1.0 ? "met" : "not met");
  if (e2e) {
    const double pr = rows.back().python.seconds / rows.back().medlens.seconds;
    std::printf("goal: predict on 1,000 images >= 2x faster (ratio >= 2.00): %.2fx, %s\n", pr, pr >= 2.0 ? "met" : "not met");
  }
  return 0;
}
