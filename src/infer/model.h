// A model ready for inference: its card, its network and its preprocessing, loaded from a
// bundle (or assembled in memory by training). Light header: no LibTorch types beyond a
// forward declaration, so CLI code can hold models cheaply.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/image.h"
#include "nn/card.h"
#include "transforms/transform.h"

namespace medlens {

class Network;

class Model {
 public:
  /// Loads BUNDLE/card.json and its weights. InputError naming the folder on any failure.
  static Model load(const std::string& bundle_dir);
  /// Wraps a network and its card (training, tests). `dir` may be empty.
  static Model from_parts(ModelCard card, std::shared_ptr<Network> network, std::string dir = "");

  const ModelCard& card() const;
  /// Bundle folder ("" when built in memory).
  const std::string& directory() const;
  /// SHA-256 of card.json and weights (computed on first use; "" when built in memory).
  const std::string& hash() const;
  std::shared_ptr<Network> network() const;
  /// The card's preprocessing, deterministic steps only.
  const Compose& preprocessing() const;

  /// Refuses (InputError naming the image's source) what the model was not made for: a 3-D
  /// volume for a 2-D model (or the reverse), a DICOM modality or body part outside the card's
  /// list, or a channel count that preprocessing cannot turn into the card's.
  void check_fits(const Image& image) const;
  /// The preprocessed image as the network sees it: a float tensor (C,H,W) or (C,D,H,W).
  at::Tensor prepare(const Image& image) const;
  /// prepare() of every image, stacked into a batch (N,C,H,W) or (N,C,D,H,W); the images are
  /// prepared on up to thread_count() threads, each exactly as prepare() would. Throws what
  /// prepare() throws for the first image (in order) that does not fit.
  at::Tensor prepare_many(const std::vector<Image>& images) const;
  /// One pass of the network over a prepared batch (N,C,...), in evaluation mode and without
  /// gradients: the logits (N,K). When `features` is given it also receives that same pass's
  /// feature summary (N,F) for the feature-space OOD score (quality/ood.h): the output of every
  /// layer in Network::layers(), in that order, summarised per channel by its spatial mean and
  /// SD; networks that name no layers give their penultimate features (a second pass). Native
  /// ResNets (and ensembles of them) run as an optimised inference graph (nn/inference_graph.h),
  /// traced on first use and again whenever the weights change; see set_inference_graphs. Not
  /// thread-safe: calls share the network.
  at::Tensor forward(const at::Tensor& batch, at::Tensor* features = nullptr) const;
  /// The preprocessed image itself (geometry and all), for explanations and overlays.
  Image prepared_image(const Image& image) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

/// Whether Model::forward runs native classifiers as optimised inference graphs (the default)
/// or as the eager modules (MEDLENS_EAGER=1 in the environment starts with them off): for
/// comparisons, and to rule the graph out when debugging. Outputs agree within ~1e-6.
void set_inference_graphs(bool enabled);

}  // namespace medlens
