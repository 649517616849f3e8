// TorchScript models exported from PyTorch (torch.jit.trace / script) behind the Network
// interface. The card's architecture names how to split the module for explanations:
// {"name": "torchscript", "dims": 2, "split": ["features", "head"]} means
// forward(x) == head(features(x)), and "features" can be captured for Grad-CAM.
#pragma once

#include "nn/network.h"

namespace medlens {

/// Loads a TorchScript file. InputError naming the file when it cannot be loaded.
NetworkPtr load_torchscript_network(const std::string& path, const nlohmann::json& architecture);

}  // namespace medlens
