#include "explain/explain.h"

#include <chrono>

#include "core/error.h"
#include "explain/methods.h"
#include "nn/network.h"
#include "transforms/morphology.h"
#include "transforms/spatial.h"

namespace medlens {
namespace explain_detail {

namespace {
const std::vector<std::pair<std::string, Method>>& table() {
  static const auto t = [] {
    std::vector<std::pair<std::string, Method>> v;
    add_gradient_methods(v);
    add_perturbation_methods(v);
    return v;
  }();
  return t;
}
}  // namespace

Method method(const std::string& name) {
  for (const auto& [n, m] : table())
    if (n == name) return m;
  std::string known;
  for (const auto& [n, m] : table()) known += (known.empty() ? "" : ", ") + n;
  throw UsageError("unknown explanation method '" + name + "' (known: " + known + ")");
}

std::vector<std::string> method_names() {
  std::vector<std::string> out;
  for (const auto& [n, m] : table()) out.push_back(n);
  return out;
}

at::Tensor batched(Context& ctx, const at::Tensor& inputs, const ScoreFn& fn) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < inputs.size(0); s += ctx.batch_size)
    parts.push_back(fn(ctx.net->forward(inputs.slice(0, s, std::min(inputs.size(0), s + ctx.batch_size)))));
  return at::cat(parts);
}

at::Tensor batched_scores(Context& ctx, const at::Tensor& inputs) { return batched(ctx, inputs, ctx.score); }

at::Tensor input_gradients(Context& ctx, const at::Tensor& inputs) {
  torch::AutoGradMode grad(true);
  std::vector<at::Tensor> parts;
  for (int64_t s = 0; s < inputs.size(0); s += ctx.batch_size) {
    at::Tensor chunk = inputs.slice(0, s, std::min(inputs.size(0), s + ctx.batch_size)).detach().clone().requires_grad_(true);
    const at::Tensor score = ctx.score(ctx.net->forward(chunk)).sum();
    parts.push_back(torch::autograd::grad({score}, {chunk})[0].detach());
  }
  return at::cat(parts);
}

at::Tensor stride_aligned_weights(int64_t n, int64_t size) {
  // Row p: linear weights over the n cells at u = p * n / size, clamped to the last cell.
  at::Tensor w = at::zeros({size, n}, at::kFloat);
  float* p_w = w.data_ptr<float>();
  for (int64_t p = 0; p < size; ++p) {
    const double u = std::min(static_cast<double>(p) * static_cast<double>(n) / static_cast<double>(size), static_cast<double>(n - 1));
    const int64_t i = static_cast<int64_t>(u);
    const double f = u - static_cast<double>(i);
    p_w[p * n + i] += static_cast<float>(1 - f);
    if (f > 0) p_w[p * n + std::min(i + 1, n - 1)] += static_cast<float>(f);
  }
  return w;
}

at::Tensor upsample_aligned(const at::Tensor& maps, const std::vector<int64_t>& size) {
  const int64_t d = static_cast<int64_t>(size.size());
  at::Tensor m = maps.to(at::kFloat);
  // One spatial axis at a time: contract it with its weights and move the result to the end.
  for (int64_t a = 0; a < d; ++a) {
    const int64_t axis = m.dim() - d;  // the next original spatial axis is always here
    const at::Tensor w = stride_aligned_weights(m.size(axis), size[static_cast<size_t>(a)]);
    m = at::tensordot(m, w, {axis}, {1});
  }
  return m.contiguous();
}

at::Tensor upsample_to_input(const at::Tensor& map, const Context& ctx) {
  return upsample_aligned(map, ctx.spatial());
}

at::Tensor baseline_input(const at::Tensor& x, const nlohmann::json& kind, const std::string& method) {
  if (kind.is_number()) return at::full_like(x, kind.get<double>());
  const std::string k = kind.is_string() ? kind.get<std::string>() : "";
  if (k == "zeros") return at::zeros_like(x);
  if (k == "mean") return at::full_like(x, x.mean().item<double>());
  if (k == "min") return at::full_like(x, x.min().item<double>());
  if (k == "blur") {
    const int64_t k_size = std::max<int64_t>(3, (x.size(-1) / 8) | 1);
    return x.dim() == 4 ? at::avg_pool2d(x, k_size, 1, k_size / 2, false, false)
                        : at::avg_pool3d(x, k_size, 1, k_size / 2, false, false);
  }
  throw UsageError(method + ": baseline must be zeros, mean, min, blur or a number (got " + kind.dump() + ")");
}

void check_params(const Context& ctx, const std::string& method, std::initializer_list<const char*> known) {
  if (!ctx.params.is_object()) throw UsageError(method + ": parameters must be a JSON object");
  for (const auto& [key, value] : ctx.params.items()) {
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (ok) continue;
    std::string list;
    for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    throw UsageError(method + ": unknown parameter '" + key + "' (known: " + (list.empty() ? "none" : list) + ")");
  }
}

Context make_context(const Model& model, const Image& image, const ExplainOptions& o, Explanation& e) {
  const ModelCard& card = model.card();
  Network& net = *model.network();
  net.eval();
  method(o.method);  // unknown names fail before any work
  e.method = o.method;
  e.prepared = model.prepared_image(image);
  const bool flat = card.input.dims == 2;
  Context ctx;
  ctx.net = &net;
  ctx.x = (flat ? e.prepared.voxels().select(1, 0) : e.prepared.voxels()).unsqueeze(0).contiguous();
  ctx.params = o.params.is_null() ? nlohmann::json::object() : o.params;
  if (o.batch_size < 1) throw UsageError("explain: batch size must be at least 1");
  ctx.batch_size = o.batch_size;
  ctx.seed = o.seed;
  const std::string card_layer = card.explanation.value("layer", "");
  ctx.layer = !o.layer.empty() ? o.layer : !card_layer.empty() ? card_layer : net.default_cam_layer();
  const auto layers = net.layers();
  if (!o.layer.empty() && std::find(layers.begin(), layers.end(), o.layer) == layers.end()) {
    std::string list;
    for (const auto& l : layers) list += (list.empty() ? "" : ", ") + l;
    throw UsageError("model " + card.id() + " has no layer '" + o.layer + "' (layers: " + (list.empty() ? "none" : list) + ")");
  }
  e.layer = ctx.layer;

  at::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = net.forward(ctx.x);
  }
  if (card.task == "classify") {
    e.target_index = o.target.empty() ? logits[0].argmax().item<int64_t>() : card.class_index(o.target);
    const int64_t t = e.target_index;
    const double temperature = card.temperature > 0 ? card.temperature : 1.0;
    ctx.score = [t](const at::Tensor& out) { return out.select(1, t); };
    ctx.confidence = [t, temperature](const at::Tensor& out) { return at::softmax(out / temperature, 1).select(1, t); };
    e.score = logits[0][t].item<double>();
    e.probability = at::softmax(logits[0] / temperature, 0)[t].item<double>();
  } else {
    e.target_index = o.target.empty() ? static_cast<int64_t>(card.classes.size()) - 1 : card.class_index(o.target);
    const int64_t t = e.target_index;
    at::Tensor region;
    if (o.region) {
      const Image r = resample_onto(*o.region, e.prepared.shape().with_z(e.prepared.depth()), e.prepared.geometry(), true);
      region = (r.voxels()[0] > 0.5).to(at::kFloat);
      if (flat) region = region.select(0, 0);
      if (region.sum().item<double>() == 0) throw InputError(image.metadata().source_path, "the region to explain is empty");
    }
    const double count = region.defined() ? region.sum().item<double>() : static_cast<double>(logits[0][0].numel());
    ctx.score_scale = 1.0 / count;
    // The target class's logits summed inside the region (or everywhere).
    ctx.score = [t, region](const at::Tensor& out) {
      at::Tensor m = out.select(1, t);
      if (region.defined()) m = m * region;
      return m.flatten(1).sum(1);
    };
    ctx.confidence = [t, region, count](const at::Tensor& out) {
      at::Tensor p = at::softmax(out, 1).select(1, t);
      if (region.defined()) p = p * region;
      return p.flatten(1).sum(1) / count;
    };
    e.score = ctx.score(logits)[0].item<double>();
    e.probability = ctx.confidence(logits)[0].item<double>();
  }
  e.target = card.classes[static_cast<size_t>(e.target_index)];
  return ctx;
}

void finish_explanation(const at::Tensor& method_map, const Image& image, const ExplainOptions& o, Explanation& e) {
  at::Tensor map = method_map.detach().to(at::kFloat);
  if (map.dim() == 2) map = map.unsqueeze(0);
  Metadata meta;
  meta.source_path = image.metadata().source_path;
  e.attribution_input = Image(map.unsqueeze(0).contiguous(), e.prepared.geometry(), meta);
  e.attribution = resample_onto(e.attribution_input, image.shape().with_z(image.depth()), image.geometry());
  e.regions = attribution_regions(e.attribution, o.top_regions);
}

}  // namespace explain_detail

using namespace explain_detail;

std::vector<std::string> explanation_methods() { return method_names(); }

Explanation explain(const Model& model, const Image& image, const ExplainOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  Explanation e;
  Context ctx = make_context(model, image, o, e);
  const at::Tensor map = method(o.method)(ctx);
  finish_explanation(map, image, o, e);
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return e;
}

std::vector<AttributionRegion> attribution_regions(const Image& a, int n, double quantile) {
  const at::Tensor v = a.voxels()[0].clamp_min(0);
  const double total = v.sum().item<double>();
  if (total <= 0 || n <= 0) return {};
  const at::Tensor pos = v.masked_select(v > 0);
  const double thr = std::get<0>(pos.sort())[std::min<int64_t>(pos.numel() - 1, static_cast<int64_t>(quantile * pos.numel()))].item<double>();
  Image binary = a.with_voxels((v >= thr).to(at::kFloat).unsqueeze(0));
  Image labels;
  ComponentOptions co;
  co.threshold = 0.5;
  connected_components(binary, co, &labels);
  const at::Tensor lab = labels.voxels()[0].round().to(at::kLong);
  const int64_t count = lab.max().item<int64_t>();
  std::vector<AttributionRegion> out;
  for (int64_t id = 1; id <= count; ++id) {
    const at::Tensor m = lab == id;
    AttributionRegion r;
    r.mass_share = v.masked_select(m).sum().item<double>() / total;
    const at::Tensor idx = m.nonzero();  // (k, 3) as z, y, x
    const at::Tensor lo = std::get<0>(idx.min(0)), hi = std::get<0>(idx.max(0));
    for (int k = 0; k < 3; ++k) {
      r.box_min[k] = lo[2 - k].item<int64_t>();
      r.box_max[k] = hi[2 - k].item<int64_t>();
    }
    const Geometry& g = a.geometry();
    r.lps_min = g.index_to_lps({double(r.box_min[0]), double(r.box_min[1]), double(r.box_min[2])});
    r.lps_max = g.index_to_lps({double(r.box_max[0]), double(r.box_max[1]), double(r.box_max[2])});
    const at::Tensor w = v.masked_select(m).to(at::kDouble);
    const at::Tensor f = idx.to(at::kDouble);
    const double ws = w.sum().item<double>();
    Vec3 c{};
    for (int k = 0; k < 3; ++k) c[k] = ws > 0 ? (f.select(1, 2 - k) * w).sum().item<double>() / ws : 0;
    r.centroid_lps = g.index_to_lps(c);
    out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.mass_share > y.mass_share; });
  if (static_cast<int>(out.size()) > n) out.resize(static_cast<size_t>(n));
  return out;
}

nlohmann::json explanation_json(const Explanation& e, const Model& model) {
  nlohmann::json regions = nlohmann::json::array();
  for (const auto& r : e.regions)
    regions.push_back({{"box_voxels", {{"min", r.box_min}, {"max", r.box_max}}},
                       {"box_lps_mm", {{"min", r.lps_min}, {"max", r.lps_max}}},
                       {"centroid_lps_mm", r.centroid_lps},
                       {"mass_share", r.mass_share}});
  nlohmann::json j = {{"method", e.method}, {"target", e.target}, {"target_index", e.target_index},
                      {"model", model.card().id()}, {"score", e.score}, {"top_regions", regions},
                      {"seconds", e.seconds}};
  if (model.card().task == "classify") j["probability"] = e.probability;
  if (e.method.rfind("gradcam", 0) == 0 || e.method == "scorecam") j["layer"] = e.layer;
  return j;
}

}  // namespace medlens
