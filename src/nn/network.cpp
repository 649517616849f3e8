#include "nn/network.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/file_util.h"
#include "nn/ensemble.h"
#include "nn/resnet.h"
#include "nn/unet.h"
#include "transforms/params.h"

namespace medlens {

at::Tensor Network::embed(const at::Tensor&) {
  throw UsageError("this network has no penultimate features (not a classifier)");
}

at::Tensor Network::forward_capture_many(const at::Tensor& x, const std::vector<std::string>& layers,
                                         std::vector<at::Tensor>& activations) {
  activations.assign(layers.size(), at::Tensor());
  at::Tensor out;
  for (size_t i = 0; i < layers.size(); ++i) out = forward_capture(x, layers[i], activations[i]);
  return layers.empty() ? forward(x) : out;
}

at::Tensor Network::forward_from(const std::string& layer, const at::Tensor&) {
  throw UsageError("this network cannot continue from layer '" + layer + "'; explain at another layer or a single model");
}

void Network::set_mc_dropout(bool on) {
  for (auto& m : modules(/*include_self=*/false)) {
    if (m->as<torch::nn::Dropout>() || m->as<torch::nn::Dropout2d>() || m->as<torch::nn::Dropout3d>())
      m->train(on);
  }
}

NetworkPtr make_network(const nlohmann::json& a) {
  if (!a.is_object() || !a.contains("name")) throw UsageError("architecture needs a \"name\"");
  const std::string name = a["name"].get<std::string>();
  nlohmann::json params = a;
  params.erase("name");
  ParamReader p(name, params);
  if (name == "ensemble") {
    if (!params.contains("members") || !params["members"].is_array() || params["members"].empty())
      throw UsageError("ensemble needs a non-empty \"members\" list");
    std::vector<NetworkPtr> members;
    for (const auto& m : params["members"]) members.push_back(make_network(m));
    return std::make_shared<Ensemble>(members);
  }
  if (name == "resnet") {
    ResNetOptions o(p.integer("in_channels", 1), p.integer("num_classes", 2));
    o.dims(p.integer("dims", 2));
    std::vector<int64_t> blocks;
    for (double b : p.numbers("blocks", {2, 2, 2, 2})) blocks.push_back(static_cast<int64_t>(b));
    o.blocks(blocks).width(p.integer("width", 64)).small_input(p.boolean("small_input", false));
    o.dropout(p.number_in("dropout", 0.0, 0, 1)).stage_dropout(p.number_in("stage_dropout", 0.0, 0, 1));
    p.finish();
    return std::make_shared<ResNet>(o);
  }
  if (name == "unet") {
    UNetOptions o(p.integer("in_channels", 1), p.integer("out_channels", 2));
    o.dims(p.integer("dims", 2)).depth(p.integer("depth", 4)).width(p.integer("width", 16));
    o.residual(p.boolean("residual", true)).norm(p.choice("norm", "instance", {"instance", "batch"}));
    o.deep_supervision(p.boolean("deep_supervision", false)).dropout(p.number_in("dropout", 0.0, 0, 1));
    p.finish();
    return std::make_shared<UNet>(o);
  }
  throw UsageError("unknown architecture '" + name + "' (known: resnet, unet)");
}

nlohmann::json preset_architecture(const std::string& arch, int64_t dims, int64_t in_channels, int64_t outputs) {
  nlohmann::json a = {{"dims", dims}, {"in_channels", in_channels}};
  if (arch == "resnet18" || arch == "resnet34" || arch == "resnet-compact") {
    a["name"] = "resnet";
    a["num_classes"] = outputs;
    if (arch == "resnet18") a["blocks"] = {2, 2, 2, 2}, a["width"] = 64;
    if (arch == "resnet34") a["blocks"] = {3, 4, 6, 3}, a["width"] = 64;
    // Compact: a quarter of ResNet-18's width, one block per stage and a small-input stem;
    // about 0.3 M parameters, suited to 28x28..128x128 inputs and CPU training.
    if (arch == "resnet-compact") a["blocks"] = {1, 1, 1, 1}, a["width"] = 16, a["small_input"] = true;
    a["dropout"] = 0.2;
    return a;
  }
  if (arch == "unet") {
    a["name"] = "unet";
    a["out_channels"] = outputs;
    return a;
  }
  throw UsageError("unknown --arch '" + arch + "' (known: resnet18, resnet34, resnet-compact, unet)");
}

void save_weights(torch::nn::Module& module, const std::string& path, bool half) {
  torch::serialize::OutputArchive archive;
  torch::NoGradGuard no_grad;
  auto put = [&](const std::string& name, const at::Tensor& t) {
    at::Tensor v = t.detach().contiguous();
    if (half && v.is_floating_point()) v = v.to(at::kHalf);
    archive.write(name, v);
  };
  for (const auto& p : module.named_parameters()) put(p.key(), p.value());
  for (const auto& b : module.named_buffers()) put(b.key(), b.value());
  // Through a stream: saving to a file name would record that (temporary) name inside the
  // archive and make identical weights differ byte for byte.
  std::ostringstream bytes;
  archive.save_to(bytes);
  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path(), std::ios::binary);
    f << bytes.str();
    if (!f) throw InputError(path, "cannot write weights");
  }
  out.commit();
}

void load_weights(torch::nn::Module& module, const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw InputError(path, "cannot read weights: " + std::string(e.what_without_backtrace()).substr(0, 200));
  }
  torch::NoGradGuard no_grad;
  auto take = [&](const std::string& name, at::Tensor& dst) {
    at::Tensor v;
    if (!archive.try_read(name, v))
      throw InputError(path, "weights lack '" + name + "' (made for another architecture?)");
    if (v.sizes() != dst.sizes())
      throw InputError(path, "weights '" + name + "' have shape " + c10::str(v.sizes()) + ", the network expects " +
                                 c10::str(dst.sizes()));
    dst.copy_(v.to(dst.dtype()));
  };
  for (auto& p : module.named_parameters()) take(p.key(), p.value());
  for (auto& b : module.named_buffers()) take(b.key(), b.value());
}

}  // namespace medlens
