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
  at::Tensor sum;
  std::vector<at::Tensor> acts;
  for (auto& m : members_) {
    at::Tensor a;
    const at::Tensor y = m->forward_capture(x, layer, a);
    acts.push_back(a);
    sum = sum.defined() ? sum + y : y;
  }
  for (const auto& a : acts)
    if (a.sizes().slice(2) != acts[0].sizes().slice(2))
      throw UsageError("ensemble members' layer '" + layer + "' differ in size; explain a member instead");
  activation = at::cat(acts, 1);
  return sum / static_cast<double>(members_.size());
}

std::vector<std::string> Ensemble::layers() const { return members_[0]->layers(); }
std::string Ensemble::default_cam_layer() const { return members_[0]->default_cam_layer(); }

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
