#include "infer/model.h"

#include <atomic>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <new>

#include <c10/util/Exception.h>

#include "core/error.h"
#include "core/parallel.h"
#include "nn/card.h"
#include "nn/inference_graph.h"
#include "nn/network.h"
#include "nn/torchscript.h"
#include "transforms/registry.h"

namespace fs = std::filesystem;

namespace medlens {

struct Model::State {
  ModelCard card;
  std::shared_ptr<Network> network;
  std::string dir;
  mutable std::string hash;
  Compose preprocessing;
  // The optimised inference graphs (logits; logits and features), traced on first use and
  // again whenever the network's weights change (weights_version).
  mutable std::unique_ptr<InferenceGraph> graph[2];
  mutable uint64_t graph_version[2] = {0, 0};
};

namespace {

std::atomic<bool>& graphs_enabled() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("MEDLENS_EAGER");
    return !(e && std::string(e) == "1");
  }()};
  return on;
}

// Native ResNets and ensembles of them trace into a static graph; U-Nets run by sliding
// windows and TorchScript imports are graphs already.
bool traceable(const nlohmann::json& architecture) {
  if (!graphs_enabled()) return false;
  const std::string name = architecture.value("name", "");
  if (name == "resnet") return true;
  if (name != "ensemble" || !architecture.contains("members")) return false;
  for (const auto& m : architecture["members"])
    if (!traceable(m)) return false;
  return true;
}

// The eager pass Model::forward describes: {logits} or {logits, features}.
std::vector<at::Tensor> eager_pass(Network& net, const at::Tensor& batch, bool with_features) {
  if (!with_features) return {net.forward(batch)};
  const std::vector<std::string> layers = net.layers();
  if (layers.empty()) {
    at::Tensor features = net.embed(batch);
    return {net.forward(batch), features};
  }
  // Every stage's activations summarised per channel by their spatial mean and SD (Lee et
  // al.'s feature ensemble): early stages see texture and contrast, late ones content.
  std::vector<at::Tensor> activations, parts;
  const at::Tensor logits = net.forward_capture_many(batch, layers, activations);
  for (const auto& a : activations) {
    // One pass over the activations for both moments.
    const auto [sd, mean] = at::std_mean(a.flatten(2), {2}, /*unbiased=*/false, /*keepdim=*/false);
    parts.push_back(mean);
    parts.push_back(sd);
  }
  return {logits, at::cat(parts, 1)};
}

}  // namespace

void set_inference_graphs(bool enabled) { graphs_enabled() = enabled; }

Model Model::from_parts(ModelCard card, std::shared_ptr<Network> network, std::string dir) {
  Model m;
  m.state_ = std::make_shared<State>();
  m.state_->preprocessing = load_pipeline(card.preprocessing).deterministic();
  m.state_->card = std::move(card);
  m.state_->network = std::move(network);
  m.state_->dir = std::move(dir);
  m.state_->network->eval();
  return m;
}

Model Model::load(const std::string& dir) {
  ModelCard card = load_card(dir);
  const std::string weights = (fs::path(dir) / card.weights).string();
  std::error_code ec;
  if (!fs::exists(weights, ec)) throw InputError(dir, "bundle lacks its weights file " + card.weights);
  std::shared_ptr<Network> net;
  try {
    if (card.weights_format == "torchscript") {
      net = load_torchscript_network(weights, card.architecture);
    } else {
      net = make_network(card.architecture);
      load_weights(*net, weights);
    }
    return from_parts(std::move(card), net, dir);
  } catch (const UsageError& e) {
    throw InputError(dir, std::string("invalid bundle: ") + e.what());
  } catch (const c10::Error& e) {
    // E.g. an architecture too large to allocate: the card, not medlens, is at fault.
    throw InputError(dir, "invalid bundle: cannot build the network its card describes: " +
                              std::string(e.what_without_backtrace()).substr(0, 200));
  } catch (const std::bad_alloc&) {
    throw InputError(dir, "invalid bundle: the network its card describes does not fit in memory");
  }
}

const ModelCard& Model::card() const { return state_->card; }
const std::string& Model::directory() const { return state_->dir; }
const std::string& Model::hash() const {
  if (state_->hash.empty() && !state_->dir.empty()) state_->hash = bundle_hash(state_->dir);
  return state_->hash;
}
std::shared_ptr<Network> Model::network() const { return state_->network; }
const Compose& Model::preprocessing() const { return state_->preprocessing; }

void Model::check_fits(const Image& image) const {
  const ModelCard& c = state_->card;
  const std::string src = image.metadata().source_path;
  const std::string what = c.id() + " expects ";
  if (c.input.dims == 2 && image.is_3d())
    throw InputError(src, "model " + what + "2-D images; this is a 3-D volume of " + std::to_string(image.depth()) +
                              " slices (give one slice, or use a 3-D model)");
  if (c.input.dims == 3 && !image.is_3d())
    throw InputError(src, "model " + what + "3-D volumes; this is a single 2-D image");
  const std::string modality = image.metadata().modality;
  if (!c.input.modalities.empty() && !modality.empty() &&
      std::find(c.input.modalities.begin(), c.input.modalities.end(), modality) == c.input.modalities.end()) {
    std::string list;
    for (const auto& m : c.input.modalities) list += (list.empty() ? "" : "/") + m;
    throw InputError(src, "model " + what + list + " images; this image's modality is " + modality);
  }
  const std::string body = image.metadata().body_part;
  if (!c.input.body_parts.empty() && !body.empty() &&
      std::find(c.input.body_parts.begin(), c.input.body_parts.end(), body) == c.input.body_parts.end()) {
    std::string list;
    for (const auto& b : c.input.body_parts) list += (list.empty() ? "" : "/") + b;
    throw InputError(src, "model " + what + list + " images; this image shows " + body);
  }
}

Image Model::prepared_image(const Image& image) const {
  check_fits(image);
  Rng rng(0);
  Image out = state_->preprocessing(image, rng);
  const ModelCard& c = state_->card;
  if (out.channels() != c.input.channels)
    throw InputError(image.metadata().source_path,
                     "after preprocessing the image has " + std::to_string(out.channels()) + " channel(s); model " +
                         c.id() + " expects " + std::to_string(c.input.channels));
  // Segmenters run by sliding windows of the card's size over inputs of any size.
  if (!c.input.size.empty() && c.task != "segment") {
    const int64_t got[3] = {out.width(), out.height(), out.depth()};
    for (size_t a = 0; a < c.input.size.size() && a < 3; ++a)
      if (got[a] != c.input.size[a])
        throw InputError(image.metadata().source_path,
                         "after preprocessing the image is " + std::to_string(out.width()) + "x" +
                             std::to_string(out.height()) + "; model " + c.id() + " expects the size in its card");
  }
  return out;
}

at::Tensor Model::prepare(const Image& image) const {
  const Image p = prepared_image(image);
  return state_->card.input.dims == 2 ? p.voxels().select(1, 0) : p.voxels();
}

at::Tensor Model::prepare_many(const std::vector<Image>& images) const {
  if (images.empty()) throw UsageError("prepare_many needs at least one image");
  std::vector<at::Tensor> prepared(images.size());
  std::vector<std::exception_ptr> errors(images.size());
  parallel_for(static_cast<int64_t>(images.size()), [&](int64_t i) {
    try {
      prepared[i] = prepare(images[i]);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  });
  for (const auto& e : errors)  // the first image in order, whichever thread failed first
    if (e) std::rethrow_exception(e);
  return at::stack(prepared);
}

at::Tensor Model::forward(const at::Tensor& batch, at::Tensor* features) const {
  Network& net = *state_->network;
  torch::NoGradGuard no_grad;
  net.eval();
  const int k = features ? 1 : 0;
  std::vector<at::Tensor> out;
  if (traceable(state_->card.architecture) && batch.dim() == net.dims() + 2 && batch.size(0) > 0) {
    auto& graph = state_->graph[k];
    const uint64_t version = weights_version(net);
    if (!graph || state_->graph_version[k] != version || !graph->accepts(batch)) {
      // Tracing runs the eager pass once, which checks the batch (rank, channels) and throws
      // its clear error for one that does not fit.
      graph.reset();
      graph = std::make_unique<InferenceGraph>(
          [&net, k](const at::Tensor& x) { return eager_pass(net, x, k == 1); }, batch, net);
      state_->graph_version[k] = version;
    }
    // Every batch, the first included, goes through the graph: one implementation for all of
    // an input's images, not the eager modules for whichever batch came first.
    out = graph->run(batch);
  } else {
    out = eager_pass(net, batch, features != nullptr);
  }
  if (features) *features = out.at(1);
  return out.at(0);
}

}  // namespace medlens
