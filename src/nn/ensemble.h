// An ensemble shipped as one network: members with the same input, their logits averaged.
// Architecture: {"name": "ensemble", "members": [member architecture, ...]}; weights are the
// members' under "m0.", "m1.", ... Averaging independently trained members is the cheapest
// robust gain in accuracy and calibration for small data sets.
#pragma once

#include "nn/network.h"

namespace medlens {

class Ensemble final : public Network {
 public:
  explicit Ensemble(std::vector<NetworkPtr> members);
  at::Tensor forward(const at::Tensor& x) override;
  /// Captures `layer` in every member and returns their activations concatenated along the
  /// channel axis (members must agree on its spatial size): a CAM over the concatenation is
  /// the sum of the members' CAMs for the averaged score. The members continue from slices
  /// of the concatenation (forward_from), so the score's gradient with respect to it exists.
  at::Tensor forward_capture(const at::Tensor& x, const std::string& layer, at::Tensor& activation) override;
  /// Every member in one pass each; per layer, the members' activations concatenated.
  at::Tensor forward_capture_many(const at::Tensor& x, const std::vector<std::string>& layers,
                                  std::vector<at::Tensor>& activations) override;
  /// Members of equal width: the replacement's channels split evenly among them.
  at::Tensor forward_from(const std::string& layer, const at::Tensor& replacement) override;
  std::vector<std::string> layers() const override;
  std::string default_cam_layer() const override;
  /// Members' penultimate features, concatenated.
  at::Tensor embed(const at::Tensor& x) override;
  nlohmann::json architecture() const override;
  int64_t dims() const override;
  const std::vector<NetworkPtr>& members() const { return members_; }

 private:
  std::vector<NetworkPtr> members_;
};

}  // namespace medlens
