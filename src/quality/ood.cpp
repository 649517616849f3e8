#include "quality/ood.h"

#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>

#include "core/error.h"
#include "core/hash.h"
#include "nn/network.h"

namespace fs = std::filesystem;

namespace medlens {

struct FeatureOod::State {
  at::Tensor centre;    // (F) per-feature mean over train (features are standardised first)
  at::Tensor scale;     // (F) per-feature SD over train
  at::Tensor means;     // (K, F) float64, class means of the standardised features
  at::Tensor basis;     // (F, d) orthonormal columns
  at::Tensor variance;  // (d) variances along the basis (shrunk)
  double residual = 0;  // variance of every direction outside the basis (0: none)
};

FeatureOod FeatureOod::fit(const at::Tensor& features, const at::Tensor& labels, int classes, int components,
                           double shrinkage) {
  const at::Tensor raw = features.detach().to(at::kDouble).cpu();
  const at::Tensor y = labels.detach().to(at::kLong).cpu();
  const int64_t n = raw.size(0), dim = raw.size(1);
  if (n < 2) throw UsageError("the feature-space OOD reference needs at least two training cases");
  auto s = std::make_shared<State>();
  // Stored as float32: standardise with the stored values so fit and use agree exactly.
  s->centre = raw.mean(0).to(at::kFloat).to(at::kDouble);
  s->scale = raw.std(0).clamp_min(1e-6).to(at::kFloat).to(at::kDouble);
  const at::Tensor f = (raw - s->centre) / s->scale;
  s->means = at::zeros({classes, dim}, at::kDouble);
  at::Tensor centred = f.clone();
  for (int k = 0; k < classes; ++k) {
    const at::Tensor mask = y == k;
    if (mask.sum().item<int64_t>() == 0) continue;  // a class absent from train: its mean stays 0 and is skipped below
    const at::Tensor mu = f.index({mask}).mean(0);
    s->means[k] = mu;
    centred.index_put_({mask}, f.index({mask}) - mu);
  }
  const at::Tensor cov = centred.t().mm(centred) / static_cast<double>(n);
  auto [evals, evecs] = at::linalg_eigh(cov);  // ascending
  evals = evals.flip(0).clamp_min(0);
  evecs = evecs.flip(1);
  const double mean_eval = evals.mean().item<double>();
  const double floor = std::max(1e-12, 1e-6 * mean_eval);
  // Shrinkage towards the mean eigenvalue (Ledoit-Wolf style) keeps rare directions from
  // dominating the distance when F is close to N.
  const at::Tensor shrunk = (1 - shrinkage) * evals + shrinkage * mean_eval;
  const int64_t d = std::max<int64_t>(1, std::min<int64_t>({components, dim, n - 1}));
  // The basis is stored as float16 (it is the bulk of ood.pt); use the rounded one throughout.
  s->basis = evecs.slice(1, 0, d).to(at::kHalf).to(at::kDouble).contiguous();
  s->variance = shrunk.slice(0, 0, d).clamp_min(floor).contiguous();
  s->residual = d < dim ? std::max(floor, shrunk.slice(0, d).mean().item<double>()) : 0.0;
  s->means = s->means.to(at::kFloat).to(at::kDouble);
  s->variance = s->variance.to(at::kFloat).to(at::kDouble);
  s->residual = static_cast<double>(static_cast<float>(s->residual));
  // Classes absent from training get no mean: mark them with NaN so they never match.
  for (int k = 0; k < classes; ++k)
    if ((y == k).sum().item<int64_t>() == 0) s->means[k].fill_(std::numeric_limits<double>::quiet_NaN());
  FeatureOod out;
  out.state_ = s;
  return out;
}

std::vector<double> FeatureOod::mahalanobis(const at::Tensor& features) const {
  if (!state_) throw UsageError("no feature-space OOD reference");
  const at::Tensor raw = features.detach().to(at::kDouble).cpu();
  if (raw.dim() != 2 || raw.size(1) != state_->means.size(1))
    throw UsageError("features have " + std::to_string(raw.dim() == 2 ? raw.size(1) : -1) +
                     " dimensions; the OOD reference expects " + std::to_string(state_->means.size(1)));
  const at::Tensor f = (raw - state_->centre) / state_->scale;
  at::Tensor best;
  for (int64_t k = 0; k < state_->means.size(0); ++k) {
    if (std::isnan(state_->means[k][0].item<double>())) continue;
    const at::Tensor z = f - state_->means[k];                   // (N, F)
    const at::Tensor p = z.mm(state_->basis);                     // (N, d)
    at::Tensor dist = (p * p / state_->variance).sum(1);
    if (state_->residual > 0) dist = dist + ((z * z).sum(1) - (p * p).sum(1)).clamp_min(0) / state_->residual;
    best = best.defined() ? at::minimum(best, dist) : dist;
  }
  const at::Tensor b = best.contiguous();
  return std::vector<double>(b.data_ptr<double>(), b.data_ptr<double>() + b.numel());
}

std::string FeatureOod::serialize() const {
  torch::serialize::OutputArchive archive;
  archive.write("centre", state_->centre.to(at::kFloat).contiguous());
  archive.write("scale", state_->scale.to(at::kFloat).contiguous());
  archive.write("means", state_->means.to(at::kFloat).contiguous());
  archive.write("basis", state_->basis.to(at::kHalf).contiguous());
  archive.write("variance", state_->variance.to(at::kFloat).contiguous());
  archive.write("residual", at::scalar_tensor(state_->residual, at::kFloat));
  std::ostringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

nlohmann::json FeatureOod::describe(const std::string& file, const std::string& sha256) const {
  return {{"file", file},
          {"sha256", sha256},
          {"method", "per-channel mean and SD of every stage's activations (penultimate features included), standardised: "
                     "Mahalanobis distance under a PPCA-regularised shared covariance; and the energy score"},
          {"classes", state_->means.size(0)},
          {"features", state_->means.size(1)},
          {"components", state_->basis.size(1)}};
}

FeatureOod FeatureOod::load(const Model& model) {
  const nlohmann::json spec = model.card().ood.value("features", nlohmann::json::object());
  if (!spec.contains("file") || model.directory().empty()) return {};
  const std::string path = (fs::path(model.directory()) / spec["file"].get<std::string>()).string();
  const std::string want = spec.value("sha256", "");
  static std::mutex mutex;
  static std::map<std::string, FeatureOod> cache;  // key: path + hash
  std::error_code ec;
  if (!fs::exists(path, ec)) throw InputError(model.directory(), "bundle lacks its OOD reference " + spec["file"].get<std::string>() + " (run `medlens calibrate`)");
  const std::string got = sha256_file(path);
  if (!want.empty() && got != want)
    throw InputError(path, "OOD reference does not match the card (SHA-256 differs; run `medlens calibrate` again)");
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = cache.find(path + got); it != cache.end()) return it->second;
  torch::serialize::InputArchive archive;
  auto s = std::make_shared<State>();
  try {
    archive.load_from(path);
    at::Tensor residual;
    archive.read("centre", s->centre);
    archive.read("scale", s->scale);
    archive.read("means", s->means);
    archive.read("basis", s->basis);
    archive.read("variance", s->variance);
    archive.read("residual", residual);
    s->centre = s->centre.to(at::kDouble);
    s->scale = s->scale.to(at::kDouble);
    s->means = s->means.to(at::kDouble);
    s->basis = s->basis.to(at::kDouble);
    s->variance = s->variance.to(at::kDouble);
    s->residual = residual.to(at::kDouble).item<double>();
  } catch (const c10::Error& e) {
    throw InputError(path, "cannot read the OOD reference: " + std::string(e.what_without_backtrace()).substr(0, 200));
  }
  if (s->basis.dim() != 2 || s->means.dim() != 2 || s->basis.size(0) != s->means.size(1) ||
      s->centre.numel() != s->means.size(1) || s->scale.numel() != s->means.size(1) ||
      s->variance.numel() != s->basis.size(1))
    throw InputError(path, "OOD reference tensors have inconsistent shapes");
  FeatureOod out;
  out.state_ = s;
  cache[path + got] = out;
  return out;
}

std::vector<double> energy_scores(const at::Tensor& logits) {
  const at::Tensor e = (-at::logsumexp(logits.detach().to(at::kDouble).cpu(), 1)).contiguous();
  return std::vector<double>(e.data_ptr<double>(), e.data_ptr<double>() + e.numel());
}

void features_and_logits(const Model& model, const at::Tensor& inputs, at::Tensor& features, at::Tensor& logits,
                         int64_t batch_size) {
  std::vector<at::Tensor> fs_, ls;
  for (int64_t start = 0; start < inputs.size(0); start += batch_size) {
    at::Tensor f;
    ls.push_back(model.forward(inputs.slice(0, start, std::min(inputs.size(0), start + batch_size)), &f));
    fs_.push_back(f);
  }
  features = at::cat(fs_);
  logits = at::cat(ls);
}

}  // namespace medlens
