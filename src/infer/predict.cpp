#include "infer/predict.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"
#include "nn/network.h"

namespace medlens {
namespace {

double entropy_of(const std::vector<double>& p) {
  double h = 0;
  for (double v : p)
    if (v > 0) h -= v * std::log(v);
  return h;
}

void check_classifiers(const std::vector<Model>& models) {
  if (models.empty()) throw UsageError("predict needs at least one model");
  for (const auto& m : models)
    if (m.card().classes != models.front().card().classes)
      throw UsageError("ensemble members disagree on classes: " + models.front().card().id() + " vs " + m.card().id());
  if (models.front().card().task != "classify")
    throw UsageError("predict handles classifiers; " + models.front().card().id() + " is a segmenter (use analyze)");
}

std::string model_name(const std::vector<Model>& models) {
  if (models.size() == 1) return models.front().card().id();
  std::string s = "ensemble(";
  for (size_t i = 0; i < models.size(); ++i) s += (i ? "," : "") + models[i].card().id();
  return s + ")";
}

// Per-pass calibrated probabilities for a batch (N, ...), for one model: (passes, N, K).
// `logits` are the model's deterministic logits of `batch`, already computed: reused for the
// plain pass when there is no Monte-Carlo dropout.
std::vector<at::Tensor> passes_for(const Model& m, const at::Tensor& batch, const at::Tensor& logits,
                                   const PredictOptions& o, uint64_t seed) {
  Network& net = *m.network();
  torch::NoGradGuard no_grad;
  net.eval();
  std::vector<at::Tensor> out;
  const double t = m.card().temperature;
  const at::Tensor mirrored = o.tta ? batch.flip({batch.dim() - 1}) : at::Tensor();  // mirror along x
  if (o.mc_samples > 0) {
    net.set_mc_dropout(true);
    // Dropout draws from the global generator: seed it so uncertainty is reproducible, and put
    // its state back afterwards. (Dropout itself takes the generator's lock: do not hold it.)
    auto gen = at::detail::getDefaultCPUGenerator();
    at::Tensor saved;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      saved = gen.get_state();
      gen.set_current_seed(seed);
    }
    for (int s = 0; s < o.mc_samples; ++s) {
      out.push_back(at::softmax(net.forward(batch) / t, 1));
      if (o.tta) out.push_back(at::softmax(net.forward(mirrored) / t, 1));
    }
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(saved);
    }
    net.set_mc_dropout(false);
  } else {
    out.push_back(at::softmax(logits / t, 1));
    // The same (graph) pass as the plain one: Model::forward.
    if (o.tta) out.push_back(at::softmax(m.forward(mirrored) / t, 1));
  }
  return out;
}

// Whether prepare() gives the same tensor for both models.
bool same_preparation(const Model& a, const Model& b) {
  const InputSpec &x = a.card().input, &y = b.card().input;
  return a.card().preprocessing == b.card().preprocessing && x.dims == y.dims && x.channels == y.channels &&
         x.size == y.size;
}

}  // namespace

std::vector<at::Tensor> prepare_for(const std::vector<Model>& models, const std::vector<Image>& images) {
  std::vector<at::Tensor> batches;
  for (size_t mi = 0; mi < models.size(); ++mi) {
    size_t same = 0;
    while (same < mi && !same_preparation(models[same], models[mi])) ++same;
    if (same == mi) {
      batches.push_back(models[mi].prepare_many(images));
      continue;
    }
    for (const auto& image : images) models[mi].check_fits(image);
    batches.push_back(batches[same]);
  }
  return batches;
}

std::vector<Prediction> predict_prepared(const std::vector<Model>& models, const std::vector<at::Tensor>& batches,
                                         const std::vector<std::string>& inputs, const PredictOptions& o,
                                         at::Tensor* logits_out, at::Tensor* features_out) {
  check_classifiers(models);
  if (batches.size() != models.size()) throw UsageError("predict_prepared needs one prepared batch per model");
  const size_t n = inputs.size();
  for (const auto& b : batches)
    if (static_cast<size_t>(b.size(0)) != n) throw UsageError("prepared batches and inputs differ in length");
  std::vector<Prediction> out(n);
  std::vector<at::Tensor> kept_logits, kept_features;
  const int64_t bs = std::max(1, o.batch_size);
  for (size_t start = 0; start < n; start += static_cast<size_t>(bs)) {
    const size_t end = std::min(n, start + static_cast<size_t>(bs));
    std::vector<at::Tensor> all_passes;
    at::Tensor first_logits;
    for (size_t mi = 0; mi < models.size(); ++mi) {
      const at::Tensor batch = batches[mi].slice(0, static_cast<int64_t>(start), static_cast<int64_t>(end));
      // The deterministic pass: the first model's always (its raw logits, and the features the
      // quality stage needs), the others' only when it is one of the passes.
      at::Tensor logits;
      if (mi == 0) {
        at::Tensor features;
        logits = models[0].forward(batch, features_out ? &features : nullptr);
        first_logits = logits;
        if (features_out) kept_features.push_back(features);
      } else if (o.mc_samples == 0) {
        logits = models[mi].forward(batch);
      }
      for (auto& p : passes_for(models[mi], batch, logits, o, o.seed + mi)) all_passes.push_back(p);
    }
    kept_logits.push_back(first_logits);
    const at::Tensor stacked = at::stack(all_passes).to(at::kDouble);  // (P, N, K)
    const at::Tensor mean = stacked.mean(0);
    const at::Tensor var = stacked.var(0, /*unbiased=*/false);
    for (size_t i = start; i < end; ++i) {
      const int64_t r = static_cast<int64_t>(i - start);
      Prediction& p = out[i];
      p.input = inputs[i];
      p.model = model_name(models);
      p.classes = models.front().card().classes;
      const at::Tensor row = mean[r].contiguous();
      p.probabilities.assign(row.data_ptr<double>(), row.data_ptr<double>() + row.numel());
      const at::Tensor v = var[r].contiguous();
      p.variance.assign(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
      p.label = p.classes[static_cast<size_t>(row.argmax().item<int64_t>())];
      p.entropy = entropy_of(p.probabilities);
      double mean_entropy = 0;
      for (int64_t s = 0; s < stacked.size(0); ++s) {
        const at::Tensor ps = stacked[s][r].contiguous();
        mean_entropy += entropy_of(std::vector<double>(ps.data_ptr<double>(), ps.data_ptr<double>() + ps.numel()));
      }
      mean_entropy /= static_cast<double>(stacked.size(0));
      p.mutual_information = std::max(0.0, p.entropy - mean_entropy);
      p.passes = static_cast<int>(stacked.size(0));
      const at::Tensor lg = first_logits[r].to(at::kDouble).contiguous();
      p.raw_logits.assign(lg.data_ptr<double>(), lg.data_ptr<double>() + lg.numel());
    }
  }
  if (logits_out) *logits_out = n ? at::cat(kept_logits) : at::Tensor();
  if (features_out) *features_out = n ? at::cat(kept_features) : at::Tensor();
  return out;
}

std::vector<Prediction> predict_many(const std::vector<Model>& models, const std::vector<Image>& images,
                                     const PredictOptions& o) {
  check_classifiers(models);
  if (images.empty()) return {};
  std::vector<std::string> inputs;
  for (const auto& image : images) inputs.push_back(image.metadata().source_path);
  return predict_prepared(models, prepare_for(models, images), inputs, o);
}

Prediction predict(const std::vector<Model>& models, const Image& image, const PredictOptions& o) {
  return predict_many(models, {image}, o).front();
}

nlohmann::json prediction_json(const Prediction& p) {
  nlohmann::json probs = nlohmann::json::object();
  for (size_t k = 0; k < p.classes.size(); ++k) probs[p.classes[k]] = p.probabilities[k];
  nlohmann::json var = nlohmann::json::object();
  for (size_t k = 0; k < p.classes.size() && k < p.variance.size(); ++k) var[p.classes[k]] = p.variance[k];
  nlohmann::json u = {{"entropy", p.entropy}, {"passes", p.passes}};
  if (p.passes > 1) {
    u["mutual_information"] = p.mutual_information;
    u["variance"] = var;
  }
  nlohmann::json q = nlohmann::json::object();
  for (const auto& [k, v] : p.quality) q[k] = v;
  if (!p.quality_flags.empty()) q["flags"] = p.quality_flags;
  return {{"input", p.input},    {"model", p.model},     {"probabilities", probs}, {"label", p.label},
          {"status", p.status},  {"reasons", p.reasons}, {"uncertainty", u},       {"quality", q}};
}

}  // namespace medlens
