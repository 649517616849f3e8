#include "nn/ensemble.h"

#include "core/error.h"

namespace medlens {

Ensemble::Ensemble(std::vector<NetworkPtr> members) : members_(std::move(members)) {
  if (members_.empty()) throw UsageError("an ensemble needs at least one member");
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i]->dims() != members_[0]->dims()) throw UsageError("ensemble members differ in dimensions");
    register_module("m" + std::to_string(i), members_[i]);
  }
}

at::Tensor Ensemble::forward(const at::Tensor& x) {
  at::Tensor sum;
  for (auto& m : members_) sum = sum.defined() ? sum + m->forward(x) : m->forward(x);
  return sum / static_cast<double>(members_.size());
}

at::Tensor Ensemble::forward_capture(const at::Tensor& x, const std::string& layer, at::Tensor& activation) {
  std::vector<at::Tensor> acts;
  forward_capture_many(x, {layer}, acts);
  activation = acts.front();
  // The members continue from slices of the concatenation, so the averaged score depends on
  // it and gradients with respect to it (Grad-CAM) exist; it still depends on x through acts.
  return forward_from(layer, activation);
}

std::vector<std::string> Ensemble::layers() const { return members_[0]->layers(); }
std::string Ensemble::default_cam_layer() const { return members_[0]->default_cam_layer(); }

at::Tensor Ensemble::forward_capture_many(const at::Tensor& x, const std::vector<std::string>& layers,
                                          std::vector<at::Tensor>& activations) {
  std::vector<std::vector<at::Tensor>> per_layer(layers.size());
  at::Tensor sum;
  for (auto& m : members_) {
    std::vector<at::Tensor> acts;
    const at::Tensor y = m->forward_capture_many(x, layers, acts);
    for (size_t i = 0; i < layers.size(); ++i) per_layer[i].push_back(acts[i]);
    sum = sum.defined() ? sum + y : y;
  }
  activations.clear();
  for (size_t i = 0; i < layers.size(); ++i) {
    // forward_from splits the concatenation evenly: members must agree on the layer's shape.
    for (const auto& a : per_layer[i])
      if (a.sizes() != per_layer[i][0].sizes())
        throw UsageError("ensemble members' layer '" + layers[i] + "' differ in size; explain a member instead");
    activations.push_back(at::cat(per_layer[i], 1));
  }
  return sum / static_cast<double>(members_.size());
}

at::Tensor Ensemble::forward_from(const std::string& layer, const at::Tensor& replacement) {
  at::Tensor out;
  int64_t offset = 0;
  for (auto& m : members_) {
    // Each member's share of the channels, as forward_capture concatenated them.
    const int64_t c = replacement.size(1) / static_cast<int64_t>(members_.size());
    const at::Tensor y = m->forward_from(layer, replacement.narrow(1, offset, c));
    out = out.defined() ? out + y : y;
    offset += c;
  }
  return out / static_cast<double>(members_.size());
}

at::Tensor Ensemble::embed(const at::Tensor& x) {
  std::vector<at::Tensor> e;
  for (auto& m : members_) e.push_back(m->embed(x));
  return at::cat(e, 1);
}

nlohmann::json Ensemble::architecture() const {
  nlohmann::json members = nlohmann::json::array();
  for (const auto& m : members_) members.push_back(m->architecture());
  return {{"name", "ensemble"}, {"members", members}};
}

int64_t Ensemble::dims() const { return members_[0]->dims(); }

}  // namespace medlens
