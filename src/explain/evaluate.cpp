#include "explain/evaluate.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>

#include "core/error.h"
#include "explain/methods.h"
#include "nn/card.h"
#include "transforms/spatial.h"

namespace medlens {

using namespace explain_detail;

namespace {

bool same_grid(const Image& a, const Image& b) {
  const Shape& s = a.shape();
  const Shape& t = b.shape();
  return s.z == t.z && s.y == t.y && s.x == t.x && a.geometry() == b.geometry();
}

// `mask` on `grid`'s voxels (nearest), as a (Z, Y, X) bool tensor.
at::Tensor mask_on(const Image& mask, const Image& grid) {
  const Image m = same_grid(mask, grid) ? mask : resample_onto(mask, grid.shape().with_z(grid.depth()), grid.geometry(), true);
  return m.voxels().select(0, 0) > 0.5;
}

// Fills what an Explainer may leave out, so every metric can rely on it.
void complete(const Model& model, const Image& image, Explanation& e) {
  if (e.attribution.empty()) throw UsageError("the explainer returned no attribution map");
  if (e.prepared.empty()) e.prepared = model.prepared_image(image);
  if (e.attribution_input.empty())
    e.attribution_input = resample_onto(e.attribution, e.prepared.shape().with_z(e.prepared.depth()), e.prepared.geometry());
}

at::Tensor map_of(const Image& a) { return a.voxels().select(0, 0).to(at::kDouble); }

double trapezoid(const std::vector<double>& y) {
  double s = 0;
  for (size_t i = 0; i + 1 < y.size(); ++i) s += 0.5 * (y[i] + y[i + 1]);
  return y.size() > 1 ? s / static_cast<double>(y.size() - 1) : 0.0;
}

// Average ranks (1-based) with ties sharing their mean rank.
at::Tensor average_ranks(const at::Tensor& v) {
  const at::Tensor flat = v.flatten().to(at::kDouble).contiguous();
  const int64_t n = flat.numel();
  const at::Tensor order = std::get<1>(flat.sort(/*stable=*/true, 0, false));
  const double* val = flat.data_ptr<double>();
  const int64_t* ord = order.data_ptr<int64_t>();
  at::Tensor ranks = at::empty({n}, at::kDouble);
  double* r = ranks.data_ptr<double>();
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j + 1 < n && val[ord[j + 1]] == val[ord[i]]) ++j;
    const double mean = 0.5 * static_cast<double>(i + j) + 1.0;
    for (int64_t k = i; k <= j; ++k) r[ord[k]] = mean;
    i = j + 1;
  }
  return ranks;
}

double pearson(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a - a.mean(), y = b - b.mean();
  const double den = std::sqrt((x * x).sum().item<double>() * (y * y).sum().item<double>());
  return den > 0 ? (x * y).sum().item<double>() / den : 0.0;
}

double spearman_tensors(const at::Tensor& a, const at::Tensor& b) { return pearson(average_ranks(a), average_ranks(b)); }

at::Tensor unit_range(const at::Tensor& v) {
  const double lo = v.min().item<double>(), hi = v.max().item<double>();
  return hi > lo ? (v - lo) / (hi - lo) : at::zeros_like(v);
}

double ssim_tensors(const at::Tensor& a, const at::Tensor& b) {
  // (Z, Y, X) maps; slices are a batch of 2-D images.
  at::Tensor x = unit_range(a.to(at::kDouble)).unsqueeze(1), y = unit_range(b.to(at::kDouble)).unsqueeze(1);
  const double sigma = 1.5;
  const int64_t radius = std::min<int64_t>({5, (x.size(2) - 1) / 2, (x.size(3) - 1) / 2});
  const at::Tensor t = at::arange(-radius, radius + 1, at::kDouble);
  at::Tensor g = at::exp(-t * t / (2 * sigma * sigma));
  g = g / g.sum();
  const at::Tensor kernel = g.view({1, 1, -1, 1}) * g.view({1, 1, 1, -1});
  auto blur = [&](const at::Tensor& v) { return at::conv2d(v, kernel); };
  const double c1 = 1e-4, c2 = 9e-4;
  const at::Tensor mx = blur(x), my = blur(y);
  const at::Tensor sxx = blur(x * x) - mx * mx, syy = blur(y * y) - my * my, sxy = blur(x * y) - mx * my;
  const at::Tensor s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
  return s.mean().item<double>();
}

// The block a parameter belongs to: its first path component, plus the second when that is an
// index (layer4.0, stem.1, fc).
std::string block_of(const std::string& name) {
  const size_t a = name.find('.');
  if (a == std::string::npos) return name;
  const size_t b = name.find('.', a + 1);
  const std::string second = name.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
  const bool index = !second.empty() && std::all_of(second.begin(), second.end(), [](char c) { return c >= '0' && c <= '9'; });
  return index && b != std::string::npos ? name.substr(0, b) : name.substr(0, a);
}

}  // namespace

Explainer method_explainer(const ExplainOptions& options) {
  return [options](const Model& model, const Image& image) { return explain(model, image, options); };
}

FaithfulnessResult deletion_insertion(const Model& model, const Image& image, const Explanation& given,
                                      const CurveOptions& o, const Image* region) {
  if (o.steps < 1 || o.random_orders < 0 || o.batch_size < 1)
    throw UsageError("deletion/insertion: steps >= 1, random_orders >= 0 and batch_size >= 1");
  Explanation e = given;
  complete(model, image, e);
  ExplainOptions eo;
  eo.target = model.card().classes.at(static_cast<size_t>(e.target_index));
  eo.region = region;
  eo.batch_size = o.batch_size;
  Explanation scratch;
  Context ctx = make_context(model, image, eo, scratch);
  const at::Tensor base = baseline_input(ctx.x, o.baseline, "deletion/insertion");
  const at::Tensor attribution = e.attribution_input.voxels().flatten().to(at::kDouble);
  const std::vector<int64_t> spatial = ctx.spatial();
  const int64_t n = attribution.numel();
  if (n != std::accumulate(spatial.begin(), spatial.end(), int64_t{1}, std::multiplies<>()))
    throw UsageError("deletion/insertion: the attribution is not on the model's input grid");
  std::vector<int64_t> mask_shape{0, 1};
  mask_shape.insert(mask_shape.end(), spatial.begin(), spatial.end());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);

  // rank[v]: position of voxel v in the order (0 first); the curves for one order.
  auto curves = [&](const at::Tensor& rank) {
    std::pair<Curve, Curve> out;
    std::vector<double> fractions;
    std::vector<int64_t> counts;
    for (int k = 0; k <= o.steps; ++k) {
      fractions.push_back(static_cast<double>(k) / o.steps);
      counts.push_back(std::llround(static_cast<double>(n) * k / o.steps));
    }
    for (int pass = 0; pass < 2; ++pass) {
      Curve& c = pass == 0 ? out.first : out.second;
      c.fraction = fractions;
      for (size_t s = 0; s < counts.size(); s += static_cast<size_t>(o.batch_size)) {
        const size_t e_ = std::min(counts.size(), s + static_cast<size_t>(o.batch_size));
        const at::Tensor limits = at::tensor(std::vector<int64_t>(counts.begin() + static_cast<long>(s), counts.begin() + static_cast<long>(e_)));
        mask_shape[0] = static_cast<int64_t>(e_ - s);
        const at::Tensor chosen = (rank.unsqueeze(0) < limits.unsqueeze(1)).view(mask_shape);  // (B, 1, ...)
        // Deletion: chosen voxels show the baseline; insertion: only chosen voxels show x.
        const at::Tensor in = pass == 0 ? at::where(chosen, base, ctx.x) : at::where(chosen, ctx.x, base);
        const at::Tensor scores = batched(ctx, in, ctx.confidence).to(at::kDouble);
        for (int64_t i = 0; i < scores.numel(); ++i) c.score.push_back(scores[i].item<double>());
      }
      c.auc = trapezoid(c.score);
    }
    return out;
  };
  auto rank_of = [&](const at::Tensor& order) {
    at::Tensor rank = at::empty({n}, at::kLong);
    rank.index_put_({order}, at::arange(n, at::kLong));
    return rank;
  };

  FaithfulnessResult r;
  {
    const at::Tensor perm = at::randperm(n, gen, at::kLong);  // random tie-break
    const at::Tensor sorted = std::get<1>(attribution.index_select(0, perm).sort(/*stable=*/true, 0, /*descending=*/true));
    std::tie(r.deletion, r.insertion) = curves(rank_of(perm.index_select(0, sorted)));
  }
  for (int k = 0; k < o.random_orders; ++k) {
    const auto [del, ins] = curves(rank_of(at::randperm(n, gen, at::kLong)));
    if (k == 0) {
      r.deletion_random = del;
      r.insertion_random = ins;
    } else {
      for (size_t i = 0; i < del.score.size(); ++i) {
        r.deletion_random.score[i] += del.score[i];
        r.insertion_random.score[i] += ins.score[i];
      }
    }
  }
  for (Curve* c : {&r.deletion_random, &r.insertion_random}) {
    for (double& s : c->score) s /= std::max(1, o.random_orders);
    c->auc = trapezoid(c->score);
  }
  return r;
}

LocalisationResult localisation(const Image& attribution, const Image& mask, double tolerance_mm) {
  if (!(tolerance_mm >= 0)) throw UsageError("pointing game: tolerance must be >= 0 mm");
  const at::Tensor m = mask_on(mask, attribution);
  const int64_t inside = m.sum().item<int64_t>();
  if (inside == 0) throw InputError(mask.metadata().source_path, "the lesion mask is empty");
  const at::Tensor a = map_of(attribution);
  LocalisationResult r;
  const int64_t best = a.flatten().argmax().item<int64_t>();
  const int64_t Y = a.size(1), X = a.size(2);
  const int64_t bz = best / (Y * X), by = (best / X) % Y, bx = best % X;
  if (tolerance_mm == 0) {
    r.hit = m[bz][by][bx].item<bool>();
  } else {
    const Vec3& sp = attribution.geometry().spacing;
    const at::Tensor idx = m.nonzero().to(at::kDouble);  // (k, 3): z, y, x
    const at::Tensor d2 = ((idx.select(1, 0) - bz) * sp[2]).pow(2) + ((idx.select(1, 1) - by) * sp[1]).pow(2) +
                          ((idx.select(1, 2) - bx) * sp[0]).pow(2);
    r.hit = d2.min().item<double>() <= tolerance_mm * tolerance_mm + 1e-9;
  }
  const at::Tensor pos = a.clamp_min(0);
  const double total = pos.sum().item<double>();
  r.mass_accuracy = total > 0 ? pos.masked_select(m).sum().item<double>() / total : 0.0;
  const at::Tensor top = std::get<1>(a.flatten().topk(inside));
  r.rank_accuracy = m.flatten().index_select(0, top).to(at::kDouble).mean().item<double>();
  return r;
}

double spearman(const Image& a, const Image& b) {
  if (a.shape().voxels() != b.shape().voxels()) throw UsageError("spearman: the maps are on different grids");
  return spearman_tensors(map_of(a), map_of(b));
}

double ssim(const Image& a, const Image& b) {
  if (a.shape().voxels() != b.shape().voxels()) throw UsageError("ssim: the maps are on different grids");
  return ssim_tensors(map_of(a), map_of(b).view(map_of(a).sizes()));
}

RandomisationResult randomisation_check(const Model& model, const Image& image, const Explainer& explainer,
                                        const RandomisationOptions& o) {
  const ModelCard& card = model.card();
  if (card.weights_format == "torchscript" || card.architecture.value("name", "") == "torchscript")
    throw UsageError("the randomisation check re-initialises layers of a native medlens network; " + card.id() +
                     " is a TorchScript model");
  Explanation original = explainer(model, image);
  complete(model, image, original);

  // A private copy of the network to destroy step by step.
  NetworkPtr net = make_network(card.architecture);
  {
    torch::NoGradGuard no_grad;
    const auto src_p = model.network()->named_parameters(), src_b = model.network()->named_buffers();
    for (auto& p : net->named_parameters()) p.value().copy_(src_p[p.key()]);
    for (auto& b : net->named_buffers()) b.value().copy_(src_b[b.key()]);
  }
  const Model copy = Model::from_parts(card, net);
  std::vector<std::pair<std::string, std::vector<at::Tensor>>> blocks;
  for (auto& p : net->named_parameters()) {
    const std::string block = block_of(p.key());
    if (blocks.empty() || blocks.back().first != block) blocks.push_back({block, {}});
    blocks.back().second.push_back(p.value());
  }
  if (blocks.empty()) throw UsageError("the randomisation check found no parameters in " + card.id());

  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const at::Tensor a0 = map_of(original.attribution);
  RandomisationResult r;
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    {
      torch::NoGradGuard no_grad;
      for (at::Tensor& p : it->second) {
        if (p.dim() >= 2) {
          const double fan_in = static_cast<double>(p.numel() / p.size(0));
          p.normal_(0.0, std::sqrt(2.0 / fan_in), gen);
        } else {
          const double mean = p.mean().item<double>();
          double spread = p.numel() > 1 ? p.std().item<double>() : 0.0;
          if (!(spread > 0)) spread = std::max(0.1, 0.1 * std::abs(mean));
          p.normal_(mean, spread, gen);
        }
      }
    }
    Explanation e = explainer(copy, image);
    const at::Tensor a = map_of(e.attribution);
    RandomisationStep step;
    step.layer = it->first;
    step.spearman = spearman_tensors(a0, a);
    step.spearman_abs = spearman_tensors(a0.abs(), a.abs());
    step.ssim = ssim_tensors(a0, a.view(a0.sizes()));
    r.steps.push_back(step);
  }
  const RandomisationStep& last = r.steps.back();
  r.passed = std::abs(last.spearman) < o.max_similarity && last.ssim < o.max_similarity;
  char line[256];
  std::snprintf(line, sizeof line, "%s: with every layer re-initialised the map's rank correlation is %.2f and SSIM %.2f (limit %.2f)",
                r.passed ? "passed" : "FLAGGED: the map does not depend on the model", last.spearman, last.ssim,
                o.max_similarity);
  r.verdict = line;
  return r;
}

double max_sensitivity(const Model& model, const Image& image, const Explainer& explainer, const StabilityOptions& o) {
  if (o.samples < 1 || !(o.radius >= 0)) throw UsageError("max-sensitivity: samples >= 1 and radius >= 0");
  Explanation e0 = explainer(model, image);
  const at::Tensor a0 = map_of(e0.attribution);
  const double norm0 = std::max(a0.norm().item<double>(), 1e-12);
  const auto [lo, hi] = value_range(image);
  const double amplitude = o.radius * std::max(1e-12, static_cast<double>(hi - lo));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  double worst = 0;
  for (int i = 0; i < o.samples; ++i) {
    const at::Tensor noise = at::rand(image.voxels().sizes(), gen, at::kFloat) * (2 * amplitude) - amplitude;
    const Image noisy = image.with_voxels(image.voxels() + noise);
    const at::Tensor a = map_of(explainer(model, noisy).attribution);
    worst = std::max(worst, (a.view(a0.sizes()) - a0).norm().item<double>() / norm0);
  }
  return worst;
}

nlohmann::json evaluate_explanation(const Model& model, const Image& image, const ExplainOptions& options,
                                    const Image* lesion_mask, const EvaluationOptions& eval) {
  const Explanation e = explain(model, image, options);
  nlohmann::json j = {{"method", e.method}, {"target", e.target}, {"seconds", e.seconds}};
  const FaithfulnessResult f = deletion_insertion(model, image, e, eval.curves, options.region);
  auto curve = [](const Curve& c, const Curve& random) {
    return nlohmann::json{{"auc", c.auc}, {"random_auc", random.auc}, {"fraction", c.fraction},
                          {"score", c.score}, {"random_score", random.score}};
  };
  j["deletion"] = curve(f.deletion, f.deletion_random);
  j["deletion"]["better_than_random"] = f.deletion.auc < f.deletion_random.auc;
  j["insertion"] = curve(f.insertion, f.insertion_random);
  j["insertion"]["better_than_random"] = f.insertion.auc > f.insertion_random.auc;
  j["curve_baseline"] = eval.curves.baseline;
  if (lesion_mask) {
    const LocalisationResult l = localisation(e.attribution, *lesion_mask, eval.pointing_tolerance_mm);
    j["localisation"] = {{"pointing_hit", l.hit}, {"mass_accuracy", l.mass_accuracy},
                         {"rank_accuracy", l.rank_accuracy}, {"tolerance_mm", eval.pointing_tolerance_mm}};
  }
  ExplainOptions fixed = options;
  fixed.target = e.target;  // perturbed and randomised models are asked the same question
  const Explainer explainer = method_explainer(fixed);
  if (eval.randomisation) {
    try {
      const RandomisationResult r = randomisation_check(model, image, explainer, eval.randomisation_options);
      nlohmann::json steps = nlohmann::json::array();
      for (const auto& s : r.steps)
        steps.push_back({{"layer", s.layer}, {"spearman", s.spearman}, {"spearman_abs", s.spearman_abs}, {"ssim", s.ssim}});
      j["randomisation"] = {{"passed", r.passed}, {"verdict", r.verdict}, {"steps", steps},
                            {"max_similarity", eval.randomisation_options.max_similarity}};
    } catch (const UsageError& err) {
      j["randomisation"] = {{"skipped", err.what()}};
    }
  }
  if (eval.stability) {
    j["stability"] = {{"max_sensitivity", max_sensitivity(model, image, explainer, eval.stability_options)},
                      {"samples", eval.stability_options.samples}, {"radius", eval.stability_options.radius}};
  }
  return j;
}

}  // namespace medlens
