#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <random>

#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/version.h"
#include "infer/model.h"
#include "io/file_util.h"
#include "io/read.h"
#include "metrics/classification.h"
#include "metrics/detection.h"
#include "metrics/segmentation.h"
#include "nn/card.h"
#include "nn/ensemble.h"
#include "nn/network.h"
#include "nn/unet.h"
#include "plot/plot.h"
#include "quality/quality.h"
#include "quality/trust.h"
#include "io/manifest.h"
#include "robust/attack.h"
#include "train/mixup.h"
#include "transforms/channels.h"
#include "transforms/registry.h"

namespace fs = std::filesystem;

namespace medlens {

// ---------------------------------------------------------------------------------------------
// Options

namespace {
// Config file and command line alike (train_model checks what the CLI set after the config).
void check_ema(double ema) {
  if (!(ema >= 0 && ema < 1)) throw UsageError("ema (the weight-average decay) must lie in [0, 1), not " + std::to_string(ema));
}
}  // namespace

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw UsageError("training config must be a JSON object");
  TrainOptions o;
  const std::vector<std::string> known = {
      "manifest", "out", "task", "arch", "architecture", "train_split", "val_split", "val_fraction",
      "folds", "fold", "preprocessing", "augmentation", "epochs", "batch_size", "lr", "weight_decay",
      "schedule", "balance", "label_smoothing", "patience", "seed", "resume", "max_steps",
      "bootstrap_rounds", "quiet", "card", "monitor", "members", "adversarial", "mixup", "ema"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      throw UsageError("training config has no key '" + it.key() + "'");
  auto get = [&](const char* key, auto& dst) {
    if (!j.contains(key)) return;
    try {
      dst = j[key].get<std::decay_t<decltype(dst)>>();
    } catch (const nlohmann::json::exception&) {
      throw UsageError(std::string("training config key '") + key + "' has the wrong type");
    }
  };
  get("manifest", o.manifest);
  get("out", o.out);
  get("task", o.task);
  get("arch", o.arch);
  get("architecture", o.architecture);
  get("train_split", o.train_split);
  get("val_split", o.val_split);
  get("val_fraction", o.val_fraction);
  get("folds", o.folds);
  get("fold", o.fold);
  get("preprocessing", o.preprocessing);
  get("augmentation", o.augmentation);
  get("epochs", o.epochs);
  get("batch_size", o.batch_size);
  get("lr", o.lr);
  get("weight_decay", o.weight_decay);
  get("schedule", o.schedule);
  get("balance", o.balance);
  get("label_smoothing", o.label_smoothing);
  get("patience", o.patience);
  get("seed", o.seed);
  get("resume", o.resume);
  get("max_steps", o.max_steps);
  get("bootstrap_rounds", o.bootstrap_rounds);
  get("quiet", o.quiet);
  get("card", o.card);
  get("monitor", o.monitor);
  get("members", o.members);
  get("adversarial", o.adversarial);
  get("mixup", o.mixup);
  get("ema", o.ema);
  if (!o.adversarial.is_object()) throw UsageError("training config key 'adversarial' must be an object");
  if (!o.mixup.is_object()) throw UsageError("training config key 'mixup' must be an object");
  check_ema(o.ema);
  return o;
}

nlohmann::json TrainOptions::to_json() const {
  return {{"manifest", manifest}, {"out", out}, {"task", task}, {"arch", arch}, {"architecture", architecture},
          {"train_split", train_split}, {"val_split", val_split}, {"val_fraction", val_fraction},
          {"folds", folds}, {"fold", fold}, {"preprocessing", preprocessing}, {"augmentation", augmentation},
          {"epochs", epochs}, {"batch_size", batch_size}, {"lr", lr}, {"weight_decay", weight_decay},
          {"schedule", schedule}, {"balance", balance}, {"label_smoothing", label_smoothing},
          {"patience", patience}, {"seed", seed}, {"max_steps", max_steps},
          {"bootstrap_rounds", bootstrap_rounds}, {"card", card}, {"monitor", monitor},
          {"members", members}, {"adversarial", adversarial}, {"mixup", mixup}, {"ema", ema}};
}

namespace {

// ---------------------------------------------------------------------------------------------
// Data

struct Dataset {
  at::Tensor x;                    // (N, C, [D,] H, W) preprocessed inputs
  at::Tensor y;                    // classify: (N) class index; segment: (N, [D,] H, W) label map
  std::vector<Geometry> geometry;  // of each prepared sample (augmentation works in mm)
  std::vector<double> native_size;  // in_plane_size of each image as read (the card's size reference)
  std::vector<std::string> paths;
};

// Rows split into train and validation by the manifest's split column, a k-fold, or a
// stratified random fraction.
void split_rows(const Manifest& m, const TrainOptions& o, std::vector<ManifestRow>& train,
                std::vector<ManifestRow>& val) {
  const bool has_split = std::find(m.header.begin(), m.header.end(), "split") != m.header.end();
  std::vector<ManifestRow> pool = has_split ? m.select(o.train_split) : m.rows;
  if (has_split && o.folds < 2) {
    train = pool;
    val = m.select(o.val_split);
  } else {
    // Stratified: rows of each label dealt round-robin into folds after a seeded shuffle.
    std::map<std::string, std::vector<ManifestRow>> by_label;
    for (auto& r : pool) by_label[r.label].push_back(r);
    std::mt19937_64 rng(o.seed + 7919);
    const int k = o.folds >= 2 ? o.folds : std::max(2, static_cast<int>(std::lround(1.0 / std::max(0.01, o.val_fraction))));
    const int held = o.folds >= 2 ? o.fold : 0;
    if (held < 0 || held >= k) throw UsageError("fold must lie in 0.." + std::to_string(k - 1));
    for (auto& [label, rows] : by_label) {
      std::shuffle(rows.begin(), rows.end(), rng);
      for (size_t i = 0; i < rows.size(); ++i) (static_cast<int>(i % k) == held ? val : train).push_back(rows[i]);
    }
  }
  if (train.empty()) throw InputError(m.file, "no training rows (split '" + o.train_split + "')");
  if (val.empty()) throw InputError(m.file, "no validation rows (split '" + o.val_split + "')");
}

Dataset load_dataset(const std::vector<ManifestRow>& rows, const Compose& prep, const std::vector<std::string>& classes,
                     bool segment, const std::string& manifest, const std::vector<std::string>& channel_names) {
  std::vector<at::Tensor> xs(rows.size()), ys(rows.size());
  Dataset d;
  d.geometry.resize(rows.size());
  d.native_size.resize(rows.size());
  parallel_for(static_cast<int64_t>(rows.size()), [&](int64_t i) {
    const ManifestRow& r = rows[static_cast<size_t>(i)];
    Sample s{read_manifest_input(r, channel_names), std::nullopt};
    if (segment) {
      if (r.mask.empty()) throw InputError(manifest, r.path + " has no mask (segmentation needs a mask column)");
      s.label = read_image(r.mask);
    }
    d.native_size[static_cast<size_t>(i)] = in_plane_size(s.image);
    Rng rng(0);
    s = prep.apply(std::move(s), rng);
    d.geometry[static_cast<size_t>(i)] = s.image.geometry();
    const bool flat = !s.image.is_3d();
    xs[i] = flat ? s.image.voxels().select(1, 0) : s.image.voxels();
    if (segment) {
      at::Tensor lab = s.label->voxels()[0].round().to(at::kLong);
      ys[i] = flat ? lab.select(0, 0) : lab;
    } else {
      auto it = std::find(classes.begin(), classes.end(), r.label);
      if (it == classes.end()) throw InputError(manifest, r.path + ": label '" + r.label + "' is not a known class");
      ys[i] = at::scalar_tensor(static_cast<int64_t>(it - classes.begin()), at::kLong);
    }
  });
  for (size_t i = 1; i < xs.size(); ++i)
    if (xs[i].sizes() != xs[0].sizes())
      throw InputError(manifest, rows[i].path + " preprocesses to " + c10::str(xs[i].sizes()) + " but " + rows[0].path +
                                     " to " + c10::str(xs[0].sizes()) + ": add a resize step to the preprocessing");
  d.x = at::stack(xs);
  d.y = at::stack(ys);
  for (const auto& r : rows) d.paths.push_back(r.path);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Schedules, losses

// A copy of a module's parameters and buffers by name, and putting one back.
using WeightSnapshot = std::map<std::string, at::Tensor>;
WeightSnapshot snapshot(const torch::nn::Module& m) {
  WeightSnapshot w;
  for (const auto& p : m.named_parameters()) w[p.key()] = p.value().detach().clone();
  for (const auto& b : m.named_buffers()) w[b.key()] = b.value().detach().clone();
  return w;
}
void restore(torch::nn::Module& m, const WeightSnapshot& w) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters()) p.value().copy_(w.at(p.key()));
  for (auto& b : m.named_buffers()) b.value().copy_(w.at(b.key()));
}

double lr_at(const TrainOptions& o, int64_t step, int64_t total, int64_t per_epoch) {
  const double t = static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, total));
  if (o.schedule == "constant") return o.lr;
  if (o.schedule == "onecycle") {
    const double warm = 0.3;
    if (t < warm) return o.lr * (0.04 + 0.96 * t / warm);
    return o.lr * (1e-4 + (1 - 1e-4) * 0.5 * (1 + std::cos(M_PI * (t - warm) / (1 - warm))));
  }
  // cosine with one warm-up epoch
  if (step < per_epoch) return o.lr * (0.1 + 0.9 * static_cast<double>(step) / static_cast<double>(per_epoch));
  const double u = static_cast<double>(step - per_epoch) / static_cast<double>(std::max<int64_t>(1, total - per_epoch));
  return o.lr * (0.01 + 0.99 * 0.5 * (1 + std::cos(M_PI * std::min(1.0, u))));
}

at::Tensor soft_dice_loss(const at::Tensor& logits, const at::Tensor& target) {
  const int64_t k = logits.size(1);
  at::Tensor probs = at::softmax(logits, 1);
  at::Tensor onehot = at::one_hot(target, k).movedim(-1, 1).to(probs.dtype());
  std::vector<int64_t> dims{0};
  for (int64_t a = 2; a < logits.dim(); ++a) dims.push_back(a);
  at::Tensor inter = (probs * onehot).sum(dims), denom = probs.sum(dims) + onehot.sum(dims);
  at::Tensor dice = (2 * inter + 1e-5) / (denom + 1e-5);
  return 1 - dice.slice(0, 1).mean();  // foreground classes
}

// ---------------------------------------------------------------------------------------------
// Progress

class Progress {
 public:
  Progress(bool quiet) : quiet_(quiet), tty_(::isatty(2)) {}
  void step(int epoch, int epochs, int64_t done, int64_t total, double loss, double eta_s) {
    if (quiet_ || !tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last_ < std::chrono::milliseconds(300)) return;
    last_ = now;
    const int width = 24;
    const int filled = static_cast<int>(width * done / std::max<int64_t>(1, total));
    std::fprintf(stderr, "\repoch %d/%d [%s%s] %3lld%% loss %.4f ETA %s   ", epoch, epochs,
                 std::string(static_cast<size_t>(filled), '=').c_str(),
                 std::string(static_cast<size_t>(width - filled), ' ').c_str(),
                 static_cast<long long>(100 * done / std::max<int64_t>(1, total)), loss, eta(eta_s).c_str());
  }
  void epoch_end(const EpochLog& e, int epochs, const std::string& metric, bool best, double eta_s) {
    if (quiet_) return;
    std::fprintf(stderr, "%sepoch %d/%d train loss %.4f val loss %.4f val %s %.4f%s (%.1fs, ETA %s)\n",
                 tty_ ? "\r" : "", e.epoch, epochs, e.train_loss, e.val_loss, metric.c_str(), e.val_metric,
                 best ? " *" : "", e.seconds, eta(eta_s).c_str());
  }
  static std::string eta(double s) {
    char b[32];
    if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
    else std::snprintf(b, sizeof b, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
    return b;
  }

 private:
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point last_{};
};

// ---------------------------------------------------------------------------------------------
// Checkpoints

struct Checkpoint {
  int epoch = 0;  // epochs completed
  int64_t steps = 0;
  double best_metric = -INFINITY;
  int best_epoch = 0, since_best = 0;
  std::vector<EpochLog> history;
};

nlohmann::json history_json(const std::vector<EpochLog>& h) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& e : h)
    a.push_back({e.epoch, e.train_loss, e.val_loss, e.val_metric, e.lr, e.seconds});
  return a;
}

std::vector<EpochLog> history_from(const nlohmann::json& a) {
  std::vector<EpochLog> h;
  for (const auto& r : a) h.push_back({r[0].get<int>(), r[1].get<double>(), r[2].get<double>(), r[3].get<double>(),
                                       r[4].get<double>(), r[5].get<double>()});
  return h;
}

void save_checkpoint(const std::string& dir, Network& net, torch::optim::Optimizer& opt, const Checkpoint& c,
                     const nlohmann::json& options) {
  fs::create_directories(dir);
  save_weights(net, dir + "/state.pt", false);
  {
    AtomicOutput out(dir + "/optimizer.pt");
    torch::save(opt, out.temp_path());
    out.commit();
  }
  {
    // Dropout draws from the default generator: its state makes a resumed run identical.
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    AtomicOutput out(dir + "/generator.pt");
    torch::save(gen.get_state(), out.temp_path());
    out.commit();
  }
  nlohmann::json meta = {{"epoch", c.epoch},           {"steps", c.steps},   {"best_metric", c.best_metric},
                         {"best_epoch", c.best_epoch}, {"since_best", c.since_best},
                         {"history", history_json(c.history)}, {"options", options}};
  AtomicOutput out(dir + "/meta.json");
  std::ofstream(out.temp_path()) << meta.dump(1);
  out.commit();
}

bool load_checkpoint(const std::string& dir, Network& net, torch::optim::Optimizer& opt, Checkpoint& c) {
  if (!fs::exists(dir + "/meta.json")) return false;
  std::ifstream in(dir + "/meta.json");
  const nlohmann::json meta = nlohmann::json::parse(in);
  load_weights(net, dir + "/state.pt");
  torch::load(opt, dir + "/optimizer.pt");
  at::Tensor state;
  torch::load(state, dir + "/generator.pt");
  auto gen = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }
  c.epoch = meta["epoch"];
  c.steps = meta["steps"];
  c.best_metric = meta["best_metric"].is_null() ? -INFINITY : meta["best_metric"].get<double>();
  c.best_epoch = meta["best_epoch"];
  c.since_best = meta["since_best"];
  c.history = history_from(meta["history"]);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Evaluation on the validation set

struct ValOutput {
  at::Tensor logits;  // classify: (N,K); segment: (N,K,...)
  double loss = 0;
};

ValOutput run_validation(Network& net, const Dataset& val, int64_t batch) {
  torch::NoGradGuard no_grad;
  net.eval();
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < val.x.size(0); s += batch)
    parts.push_back(net.forward(val.x.slice(0, s, std::min(val.x.size(0), s + batch))));
  ValOutput v;
  v.logits = at::cat(parts);
  v.loss = at::cross_entropy_loss(v.logits, val.y).item<double>();
  return v;
}

ProbRows rows_of(const at::Tensor& probs) {
  const at::Tensor p = probs.to(at::kDouble).contiguous();
  ProbRows out(static_cast<size_t>(p.size(0)));
  for (int64_t i = 0; i < p.size(0); ++i) out[i].assign(p[i].data_ptr<double>(), p[i].data_ptr<double>() + p.size(1));
  return out;
}

std::vector<int> labels_of(const at::Tensor& y) {
  std::vector<int> out;
  const at::Tensor c = y.contiguous();
  for (int64_t i = 0; i < c.numel(); ++i) out.push_back(static_cast<int>(c[i].item<int64_t>()));
  return out;
}

// The monitored value, larger is better.
double monitor_value(const std::string& monitor, const at::Tensor& logits, const at::Tensor& y, double loss,
                     int positive, int classes) {
  if (monitor == "loss") return -loss;
  if (monitor == "dice") return mean_dice(logits.argmax(1), y, classes);
  const ProbRows probs = rows_of(at::softmax(logits, 1));
  const std::vector<int> labels = labels_of(y);
  std::vector<int> pred;
  for (const auto& r : probs) pred.push_back(static_cast<int>(std::max_element(r.begin(), r.end()) - r.begin()));
  if (monitor == "accuracy") return accuracy(labels, pred);
  if (monitor == "balanced_accuracy") return balanced_accuracy(labels, pred, classes);
  if (monitor == "auc_ovr_macro") return auc_ovr_macro(probs, labels, classes);
  std::vector<double> s;
  std::vector<bool> t;
  for (size_t i = 0; i < probs.size(); ++i) s.push_back(probs[i][positive]), t.push_back(labels[i] == positive);
  return roc_auc(s, t);
}

void write_curves(const std::string& out, const std::vector<std::vector<EpochLog>>& members, const std::string& metric) {
  std::ofstream csv(out + "/metrics.csv");
  csv << "member,epoch,train_loss,val_loss,val_" << metric << ",lr,seconds\n";
  std::vector<Series> series;
  for (size_t m = 0; m < members.size(); ++m) {
    const std::string tag = members.size() > 1 ? " (member " + std::to_string(m) + ")" : "";
    Series tl{"train loss" + tag, {}, {}}, vl{"val loss" + tag, {}, {}}, vm{"val " + metric + tag, {}, {}};
    for (const auto& e : members[m]) {
      csv << m << "," << e.epoch << "," << e.train_loss << "," << e.val_loss << "," << e.val_metric << "," << e.lr << ","
          << e.seconds << "\n";
      tl.x.push_back(e.epoch), tl.y.push_back(e.train_loss);
      vl.x.push_back(e.epoch), vl.y.push_back(e.val_loss);
      vm.x.push_back(e.epoch), vm.y.push_back(e.val_metric);
    }
    if (members[m].empty()) continue;
    if (members.size() == 1) series.push_back(tl), series.push_back(vl);
    series.push_back(vm);
  }
  if (series.empty()) return;
  PlotOptions p;
  p.title = "Training curve";
  p.x_label = "epoch";
  p.y_label = members.size() == 1 ? "loss / " + metric : "val " + metric;
  write_line_plot(out + "/training_curve.png", series, p);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TrainResult train_model(const TrainOptions& o) {
  if (o.manifest.empty() || o.out.empty()) throw UsageError("train needs a manifest and an output folder");
  if (o.task != "classify" && o.task != "segment") throw UsageError("task must be classify or segment");
  if (o.epochs < 1 || o.batch_size < 1) throw UsageError("epochs and batch size must be positive");
  const bool segment = o.task == "segment";
  // Options that need no data are checked before any image is read.
  check_ema(o.ema);
  std::optional<MixupOptions> mixup;  // Mixup / CutMix (classifiers)
  if (!o.mixup.empty()) {
    if (segment) throw UsageError("mixup is for classifiers (task classify)");
    mixup = MixupOptions::from_json(o.mixup);
  }
  torch::manual_seed(o.seed);
  const Manifest manifest = load_manifest(o.manifest);
  std::vector<ManifestRow> train_rows, val_rows;
  split_rows(manifest, o, train_rows, val_rows);

  std::vector<std::string> classes;
  if (o.card.contains("classes")) classes = o.card["classes"].get<std::vector<std::string>>();
  else if (segment) classes = {"background", "lesion"};
  else classes = manifest.labels(true);
  if (classes.size() < 2) throw InputError(o.manifest, "training needs at least two classes");
  const int K = static_cast<int>(classes.size());
  const std::string positive_class = o.card.value("positive_class", classes.back());
  int positive = K - 1;
  for (int k = 0; k < K; ++k)
    if (classes[k] == positive_class) positive = k;

  const Compose prep = load_pipeline(o.preprocessing);
  if (prep.random()) throw UsageError("preprocessing must be deterministic; put random steps in augmentation");
  const Compose augment = load_pipeline(o.augmentation);
  // Multi-modal inputs: the card names one channel per series; the manifest's `path` holds the
  // first and a column named after each further channel the others.
  const std::vector<std::string> channel_names =
      o.card.contains("input") ? o.card["input"].value("channel_names", std::vector<std::string>{}) : std::vector<std::string>{};
  const Dataset train = load_dataset(train_rows, prep, classes, segment, o.manifest, channel_names);
  const Dataset val = load_dataset(val_rows, prep, classes, segment, o.manifest, channel_names);
  if (!channel_names.empty() && static_cast<int64_t>(channel_names.size()) != train.x.size(1))
    throw UsageError("card input.channel_names lists " + std::to_string(channel_names.size()) +
                     " channels but the prepared inputs have " + std::to_string(train.x.size(1)));
  const int64_t dims = train.x.dim() - 2;
  const int64_t channels = train.x.size(1);

  nlohmann::json arch = preset_architecture(o.arch, dims, channels, K);
  for (auto it = o.architecture.begin(); o.architecture.is_object() && it != o.architecture.end(); ++it)
    arch[it.key()] = it.value();
  const std::string monitor = o.monitor != "auto" ? o.monitor
                              : segment           ? "dice"
                              : K == 2            ? "auc"
                                                  : "auc_ovr_macro";

  // Adversarial training: which share of each batch is attacked, and how.
  AttackOptions adv;
  double adv_ratio = 0;
  if (!o.adversarial.empty()) {
    if (segment) throw UsageError("adversarial training is for classifiers (task classify)");
    const auto& a = o.adversarial;
    for (auto it = a.begin(); it != a.end(); ++it)
      if (it.key() != "eps" && it.key() != "steps" && it.key() != "ratio" && it.key() != "method" && it.key() != "norm")
        throw UsageError("adversarial has no key '" + it.key() + "' (known: eps, steps, ratio, method, norm)");
    try {
      adv.eps = a.value("eps", 2.0 / 255);
      adv.steps = a.value("steps", 3);
      adv.method = a.value("method", std::string("pgd"));
      adv.norm = a.value("norm", std::string("linf"));
      adv_ratio = a.value("ratio", 0.5);
    } catch (const nlohmann::json::exception&) {
      throw UsageError("training config key 'adversarial' has a value of the wrong type");
    }
    adv.validate();
    if (!(adv_ratio > 0 && adv_ratio <= 1)) throw UsageError("adversarial ratio must lie in (0, 1]");
  }

  // Class balance: counts over the training labels.
  std::vector<double> counts(K, 0);
  if (segment) {
    for (int k = 0; k < K; ++k) counts[k] = (train.y == k).sum().item<double>();
  } else {
    const auto yl = labels_of(train.y);
    for (int c : yl) counts[c] += 1;
  }
  at::Tensor class_weight;
  if (o.balance == "weights" && !segment) {
    std::vector<float> w;
    const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
    for (double c : counts) w.push_back(static_cast<float>(c > 0 ? n / (K * c) : 0.0));
    class_weight = at::tensor(w);
  }

  // One member: train with its own seed and checkpoint folder, leave its best epoch in `net`.
  // Ensembles train several members independently (diversity is the point) and average them.
  fs::create_directories(o.out);
  const int64_t n = train.x.size(0);
  const int64_t per_epoch = (n + o.batch_size - 1) / o.batch_size;
  const int64_t total_steps = per_epoch * o.epochs;
  bool stop = false;
  auto run_member = [&](NetworkPtr net, uint64_t seed, const std::string& ckpt_dir) -> Checkpoint {
    torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
    fs::create_directories(ckpt_dir);
    // The weight average starts as the initial weights; it is what validation sees and what ships.
    NetworkPtr ema_net;
    std::vector<std::pair<at::Tensor, at::Tensor>> ema_pairs;  // (average, live) tensors
    if (o.ema > 0) {
      ema_net = make_network(arch);
      torch::NoGradGuard no_grad;
      const auto live_p = net->named_parameters();
      const auto live_b = net->named_buffers();
      for (auto& p : ema_net->named_parameters()) {
        p.value().requires_grad_(false);
        ema_pairs.emplace_back(p.value(), live_p[p.key()]);
      }
      for (auto& b : ema_net->named_buffers()) ema_pairs.emplace_back(b.value(), live_b[b.key()]);
      for (auto& [avg, live] : ema_pairs) avg.copy_(live);
    }
    Network& judged = ema_net ? *ema_net : *net;  // validated, selected and shipped

    Checkpoint state;
    WeightSnapshot best_weights;
    if (o.resume && fs::exists(ckpt_dir + "/meta.json")) {
      // Best weights first: building the scratch network draws from the generator, whose state
      // the checkpoint then restores.
      if (fs::exists(ckpt_dir + "/best.pt")) {
        NetworkPtr tmp = make_network(arch);
        load_weights(*tmp, ckpt_dir + "/best.pt");
        best_weights = snapshot(*tmp);
      }
      load_checkpoint(ckpt_dir, *net, opt, state);
      if (ema_net) {
        if (!fs::exists(ckpt_dir + "/ema.pt"))
          throw InputError(ckpt_dir, "checkpoint has no weight average (ema.pt): it was written without ema");
        load_weights(*ema_net, ckpt_dir + "/ema.pt");
      }
      log::info("resuming " + o.out + " after epoch " + std::to_string(state.epoch));
    }
    Progress progress(o.quiet);
    const auto t_start = std::chrono::steady_clock::now();
    int64_t steps_this_run = 0;
    bool early_stopped = false;  // patience is per member; `stop` (max_steps) ends the run
    for (int epoch = state.epoch + 1; epoch <= o.epochs && !stop && !early_stopped; ++epoch) {
      const auto t_epoch = std::chrono::steady_clock::now();
      // Order: a seeded shuffle, or balanced sampling (each class equally likely) per epoch.
      std::mt19937_64 order_rng(seed * 1000003ULL + static_cast<uint64_t>(epoch));
      std::vector<int64_t> order(static_cast<size_t>(n));
      if (o.balance == "sampler" && !segment) {
        std::vector<std::vector<int64_t>> by_class(K);
        const auto yl = labels_of(train.y);
        for (int64_t i = 0; i < n; ++i) by_class[yl[i]].push_back(i);
        std::uniform_int_distribution<int> pick_class(0, K - 1);
        for (auto& i : order) {
          int c;
          do c = pick_class(order_rng);
          while (by_class[c].empty());
          i = by_class[c][std::uniform_int_distribution<size_t>(0, by_class[c].size() - 1)(order_rng)];
        }
      } else {
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), order_rng);
      }
      net->train();
      double loss_sum = 0;
      int64_t batches = 0;
      for (int64_t b = 0; b < per_epoch; ++b) {
        const int64_t lo = b * o.batch_size, hi = std::min(n, lo + o.batch_size);
        std::vector<at::Tensor> xs, ys;
        for (int64_t k = lo; k < hi; ++k) {
          const int64_t i = order[static_cast<size_t>(k)];
          at::Tensor xi = train.x[i], yi = train.y[i];
          if (!augment.steps().empty()) {
            // Each sample's augmentation has its own seed: reproducible whatever the batch.
            Rng rng(seed ^ (static_cast<uint64_t>(epoch) << 32) ^ static_cast<uint64_t>(k) * 0x9E3779B97F4A7C15ULL);
            Sample s{Image(dims == 2 ? xi.unsqueeze(1) : xi, train.geometry[i], Metadata{}), std::nullopt};
            if (segment)
              s.label = Image((dims == 2 ? yi.unsqueeze(0) : yi).unsqueeze(0).to(at::kFloat), train.geometry[i], Metadata{});
            s = augment.apply(std::move(s), rng);
            xi = dims == 2 ? s.image.voxels().select(1, 0) : s.image.voxels();
            if (segment) {
              at::Tensor l = s.label->voxels()[0].round().to(at::kLong);
              yi = dims == 2 ? l.select(0, 0) : l;
            }
          }
          xs.push_back(xi);
          ys.push_back(yi);
        }
        at::Tensor x = at::stack(xs);
        const at::Tensor y = at::stack(ys);
        if (adv_ratio > 0) {
          // The first share of the (shuffled) batch becomes adversarial; the rest stays clean,
          // which keeps clean accuracy (Goodfellow et al.'s mixed objective).
          const int64_t m = std::max<int64_t>(1, std::llround(adv_ratio * static_cast<double>(x.size(0))));
          AttackOptions step_adv = adv;
          step_adv.seed = seed * 0x9E3779B97F4A7C15ULL ^ static_cast<uint64_t>(state.steps);
          x = at::cat({adversarial_batch(*net, x.slice(0, 0, m), y.slice(0, 0, m), step_adv), x.slice(0, m)});
        }
        // Mixup / CutMix with a shuffled copy of the batch; each step has its own seed.
        at::Tensor partner;
        const double lambda =
            mixup ? mix_batch(x, partner, *mixup, seed * 0xD1B54A32D192ED03ULL ^ static_cast<uint64_t>(state.steps)) : 1.0;
        const double lr = lr_at(o, state.steps, total_steps, per_epoch);
        for (auto& group : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
        opt.zero_grad();
        at::Tensor loss;
        if (segment) {
          auto* unet = dynamic_cast<UNet*>(net.get());
          std::vector<at::Tensor> outs = unet ? unet->forward_deep(x) : std::vector<at::Tensor>{net->forward(x)};
          // Deep supervision: coarser heads see a nearest-downsampled target, weights halving.
          double wsum = 0;
          for (size_t level = 0; level < outs.size(); ++level) {
            at::Tensor target = y;
            if (outs[level].sizes().slice(2) != y.sizes().slice(1)) {
              std::vector<int64_t> size(outs[level].sizes().slice(2).begin(), outs[level].sizes().slice(2).end());
              at::Tensor t = y.unsqueeze(1).to(at::kFloat);
              t = dims == 2 ? at::upsample_nearest2d(t, size) : at::upsample_nearest3d(t, size);
              target = t.squeeze(1).to(at::kLong);
            }
            const double w = 1.0 / static_cast<double>(1 << level);
            at::Tensor l = at::cross_entropy_loss(outs[level], target) + soft_dice_loss(outs[level], target);
            loss = level == 0 ? l * w : loss + l * w;
            wsum += w;
          }
          loss = loss / wsum;
        } else {
          const at::Tensor logits = net->forward(x);
          auto ce = [&](const at::Tensor& target) {
            return at::cross_entropy_loss(logits, target,
                                          class_weight.defined() ? c10::optional<at::Tensor>(class_weight) : c10::nullopt,
                                          at::Reduction::Mean, -100, o.label_smoothing);
          };
          loss = partner.defined() ? ce(y) * lambda + ce(y.index_select(0, partner)) * (1 - lambda) : ce(y);
        }
        loss.backward();
        opt.step();
        if (ema_net) {
          // Short memory at first (the early weights are poor), `ema` once past ~10 / (1 - ema) steps.
          torch::NoGradGuard no_grad;
          const double t = static_cast<double>(state.steps);
          const double decay = std::min(o.ema, (1 + t) / (10 + t));
          for (auto& [avg, live] : ema_pairs) {
            if (avg.is_floating_point()) avg.mul_(decay).add_(live, 1 - decay);
            else avg.copy_(live);  // counters such as batch norm's num_batches_tracked
          }
        }
        loss_sum += loss.item<double>();
        ++batches;
        ++state.steps;
        ++steps_this_run;
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
        const double eta = elapsed / static_cast<double>(steps_this_run) *
                           static_cast<double>(total_steps - state.steps);
        progress.step(epoch, o.epochs, b + 1, per_epoch, loss_sum / static_cast<double>(batches), eta);
        if (o.max_steps > 0 && state.steps >= o.max_steps) {
          stop = true;
          break;
        }
      }
      const ValOutput v = run_validation(judged, val, o.batch_size);
      EpochLog e;
      e.epoch = epoch;
      e.train_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, batches));
      e.val_loss = v.loss;
      e.val_metric = monitor_value(monitor, v.logits, val.y, v.loss, positive, K);
      e.lr = lr_at(o, state.steps, total_steps, per_epoch);
      e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
      state.history.push_back(e);
      state.epoch = epoch;
      const bool improved = !std::isnan(e.val_metric) && e.val_metric > state.best_metric;
      if (improved) {
        state.best_metric = e.val_metric;
        state.best_epoch = epoch;
        state.since_best = 0;
        best_weights = snapshot(judged);
        save_weights(judged, ckpt_dir + "/best.pt", false);
      } else {
        ++state.since_best;
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      progress.epoch_end(e, o.epochs, monitor, improved,
                         elapsed / static_cast<double>(std::max<int64_t>(1, steps_this_run)) *
                             static_cast<double>(total_steps - state.steps));
      if (ema_net) save_weights(*ema_net, ckpt_dir + "/ema.pt", false);  // before meta.json marks the epoch done
      save_checkpoint(ckpt_dir, *net, opt, state, o.to_json());
      if (state.since_best >= o.patience) {
        log::info("early stop: no improvement in " + std::to_string(o.patience) + " epochs");
        early_stopped = true;
      }
    }

    // No epoch ever "better" (e.g. a NaN metric): ship the average, not the last step.
    if (best_weights.empty() && ema_net) best_weights = snapshot(*ema_net);
    if (!best_weights.empty()) restore(*net, best_weights);
    return state;
  };
  const int members = std::max(1, o.members);
  std::vector<NetworkPtr> nets;
  std::vector<Checkpoint> states;
  for (int k = 0; k < members && !stop; ++k) {
    const uint64_t seed = o.seed + 1000 * static_cast<uint64_t>(k);
    torch::manual_seed(seed);
    nets.push_back(make_network(arch));
    const fs::path ckpt = fs::path(o.out) / "checkpoint";
    states.push_back(run_member(nets.back(), seed, (members == 1 ? ckpt : ckpt / ("m" + std::to_string(k))).string()));
  }
  NetworkPtr net = nets.size() == 1 ? nets.front() : std::make_shared<Ensemble>(nets);
  const Checkpoint& state = states.front();

  // Store what is shipped as float16 and evaluate exactly that.
  const std::string weights = (fs::path(o.out) / "weights.pt").string();
  save_weights(*net, weights, true);
  load_weights(*net, weights);

  TrainResult result;
  result.bundle = o.out;
  result.history = state.history;
  result.best_epoch = state.best_epoch;
  result.best_metric = state.best_metric;
  result.steps = state.steps;

  ModelCard card;
  card.name = o.card.value("name", fs::path(o.out).filename().string());
  card.version = o.card.value("version", "1.0.0");
  card.task = o.task;
  card.description = o.card.value("description", "");
  card.classes = classes;
  card.positive_class = classes[positive];
  card.input.dims = dims;
  card.input.channels = channels;
  for (int64_t a = train.x.dim() - 1; a >= 2; --a) card.input.size.push_back(train.x.size(a));  // x, y[, z]
  if (o.card.contains("input")) {
    const auto& in = o.card["input"];
    card.input.modalities = in.value("modalities", std::vector<std::string>{});
    card.input.body_parts = in.value("body_parts", std::vector<std::string>{});
    card.input.channel_names = in.value("channel_names", std::vector<std::string>{});
  }
  card.preprocessing = prep.params();
  card.architecture = net->architecture();
  // What the training inputs look like, so inference can tell an image that is far noisier or
  // blurrier than anything the model learned from.
  std::vector<std::map<std::string, double>> features;
  for (int64_t i = 0; i < train.x.size(0); ++i) features.push_back(quality_features(train.x[i]));
  card.ood["quality"] = quality_reference(features);
  card.ood["quality"]["size"] = size_reference(train.native_size);
  card.intended_use = o.card.value("intended_use", "");
  card.limitations = o.card.value("limitations", std::vector<std::string>{});
  card.explanation = o.card.value("explanation", nlohmann::json{{"method", "gradcam"}, {"layer", net->default_cam_layer()}});

  if (segment) {
    const ValOutput v = run_validation(*net, val, o.batch_size);
    const at::Tensor pred = v.logits.argmax(1);
    card.metrics = {{"val", segmentation_report(pred, val.y, K, val.geometry, o.bootstrap_rounds, o.seed)}};
    card.metrics["val"]["detection"] = detection_summary(at::softmax(v.logits, 1).select(1, positive), val.y, val.geometry);
    card.thresholds = o.card.value("thresholds", nlohmann::json::object());
  } else {
    // The trust fit makes the one pass over val: temperature, then the operating point
    // (chosen on the calibrated probabilities by thresholds.rule unless the recipe fixes it),
    // abstention, OOD reference and thresholds, calibration plots and the val metrics.
    nlohmann::json thresholds = o.card.value("thresholds", nlohmann::json::object());
    if (!thresholds.contains("rule")) thresholds["rule"] = "youden";
    card.thresholds = thresholds;
    TrustOptions to;
    to.keep_operating_point = true;
    to.batch_size = o.batch_size;
    to.bootstrap_rounds = o.bootstrap_rounds;
    to.seed = o.seed;
    const TrustFit trust = fit_trust(Model::from_parts(card, net, o.out), train.x, train.y, val.x, val.y, to);
    card = trust.card;
    result.temperature = card.temperature;
    save_trust(trust, o.out, /*with_card=*/false);
  }
  result.val_metrics = card.metrics["val"];
  nlohmann::json members_json = nlohmann::json::array();
  for (size_t k = 0; k < states.size(); ++k)
    members_json.push_back({{"seed", o.seed + 1000 * k}, {"best_epoch", states[k].best_epoch},
                            {"best_val_" + monitor, states[k].best_metric}, {"epochs_run", states[k].epoch}});
  nlohmann::json counts_json;
  for (int k = 0; k < K; ++k) counts_json[classes[k]] = counts[k];
  card.training = {{"manifest", fs::path(o.manifest).filename().string()},
                   {"manifest_sha256", sha256_file(o.manifest)},
                   {"train_cases", train.x.size(0)},
                   {"val_cases", val.x.size(0)},
                   {segment ? "train_voxels_per_class" : "train_class_counts", counts_json},
                   {"members", members_json},
                   {"epochs_run", state.epoch},
                   {"best_epoch", state.best_epoch},
                   {"monitor", monitor},
                   {"best_val_" + monitor, state.best_metric},
                   {"steps", state.steps},
                   {"medlens_version", version()},
                   {"options", o.to_json()}};
  if (o.card.contains("training_data")) card.training["data"] = o.card["training_data"];
  if (o.card.contains("extra")) card.extra = o.card["extra"];
  save_card(card, o.out);
  std::vector<std::vector<EpochLog>> histories;
  for (const auto& st : states) histories.push_back(st.history);
  write_curves(o.out, histories, monitor);
  return result;
}

}  // namespace medlens
