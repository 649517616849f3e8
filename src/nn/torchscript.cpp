#include "nn/torchscript.h"

#include <torch/script.h>

#include "core/error.h"

namespace medlens {
namespace {

class TorchScriptNetwork final : public Network {
 public:
  TorchScriptNetwork(torch::jit::Module module, nlohmann::json architecture)
      : module_(std::move(module)), architecture_(std::move(architecture)) {
    dims_ = architecture_.value("dims", 2);
    if (architecture_.contains("split")) {
      const auto split = architecture_["split"].get<std::vector<std::string>>();
      if (split.size() != 2) throw UsageError("torchscript 'split' names two submodules: features, head");
      features_ = split[0];
      head_ = split[1];
      for (const auto& name : split)
        if (!module_.hasattr(name)) throw UsageError("TorchScript module has no submodule '" + name + "'");
    }
    module_.eval();
  }
  at::Tensor forward(const at::Tensor& x) override { return module_.forward({x}).toTensor(); }
  at::Tensor forward_capture(const at::Tensor& x, const std::string& layer, at::Tensor& activation) override {
    if (features_.empty() || layer != features_)
      throw UsageError("this TorchScript model exposes no layer '" + layer +
                       "' (its card's architecture.split names the capturable one)");
    activation = module_.attr(features_).toModule().forward({x}).toTensor();
    return module_.attr(head_).toModule().forward({activation}).toTensor();
  }
  std::vector<std::string> layers() const override {
    return features_.empty() ? std::vector<std::string>{} : std::vector<std::string>{features_};
  }
  std::string default_cam_layer() const override { return features_; }
  nlohmann::json architecture() const override { return architecture_; }
  int64_t dims() const override { return dims_; }
  void train(bool on) override {
    Network::train(on);
    module_.train(on);
  }

 private:
  torch::jit::Module module_;
  nlohmann::json architecture_;
  std::string features_, head_;
  int64_t dims_ = 2;
};

}  // namespace

NetworkPtr load_torchscript_network(const std::string& path, const nlohmann::json& architecture) {
  torch::jit::Module m;
  try {
    m = torch::jit::load(path);
  } catch (const c10::Error& e) {
    throw InputError(path, "cannot load TorchScript model: " +
                               std::string(e.what_without_backtrace()).substr(0, 200));
  }
  return std::make_shared<TorchScriptNetwork>(std::move(m), architecture);
}

}  // namespace medlens
