// Adversarial attacks on the network input (after the card's preprocessing): FGSM (Goodfellow
// et al. 2015) and PGD (Madry et al. 2018) in the L-infinity and L2 norms, with random start
// and a number of steps, a minimal-perturbation search, and robust accuracy over an eps ladder.
//
// eps is a fraction of each image's intensity range, as eps = 2/255 means two grey levels of an
// 8-bit image: for an input whose values span [lo, hi] after preprocessing, the perturbation
// is at most eps * (hi - lo) per value (L-inf) or in Euclidean norm (L2), and adversarial
// values stay inside [lo, hi]. For z-scored 8-bit images this is exactly eps in [0, 1] pixel
// units. Light header: tensors are forward-declared.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "infer/model.h"

namespace medlens {

class Network;

struct AttackOptions {
  std::string method = "pgd";  ///< fgsm | pgd
  std::string norm = "linf";   ///< linf | l2 (FGSM: linf uses the gradient's sign, l2 its direction)
  double eps = 2.0 / 255;      ///< radius, as a fraction of each image's intensity range
  int steps = 10;              ///< PGD iterations
  double step_size = -1;       ///< per step, as a fraction of eps (< 0: 2.5 / steps)
  bool random_start = true;    ///< PGD starts from a uniform point in the ball
  uint64_t seed = 0;
  int64_t batch_size = 64;

  /// UsageError naming the option for an unknown method/norm or a negative eps.
  void validate() const;
};

/// Adversarial versions of prepared inputs `x` (N,C,...) for class indices `y` (N): each
/// maximises the cross-entropy of the model's logits within its ball. Deterministic for a seed.
at::Tensor attack(const Model& model, const at::Tensor& x, const at::Tensor& y, const AttackOptions& options);

/// Same, with a radius per image (`eps` (N), fractions of each image's range).
at::Tensor attack_per_image(const Model& model, const at::Tensor& x, const at::Tensor& y, const at::Tensor& eps,
                            const AttackOptions& options);

/// Adversarial versions of one batch for training (Madry et al. 2018): the attack runs with
/// `net` in eval mode (batch-norm statistics untouched) and restores its mode; gradients flow
/// to the input only. Radius and seed as in attack().
at::Tensor adversarial_batch(Network& net, const at::Tensor& x, const at::Tensor& y, const AttackOptions& options);

/// Each image's intensity range hi - lo over all its values (N), the unit eps is measured in.
at::Tensor intensity_range(const at::Tensor& x);

/// Arg-max class per image (N), without gradients.
at::Tensor predict_classes(const Model& model, const at::Tensor& x, int64_t batch_size = 64);

/// The smallest eps (fraction of range) at which the attack flips each correctly classified
/// image, by bisection over [0, max_eps] (`iterations` halvings); +inf for images not flipped at
/// max_eps, 0 for images already misclassified.
std::vector<double> minimal_perturbation(const Model& model, const at::Tensor& x, const at::Tensor& y,
                                         const AttackOptions& options, double max_eps = 32.0 / 255, int iterations = 8);

/// Robust accuracy over an eps ladder: {"method", "norm", "steps", "eps": [...], "accuracy":
/// [...], "clean_accuracy", "n"}.
nlohmann::json robust_accuracy(const Model& model, const at::Tensor& x, const at::Tensor& y,
                               const std::vector<double>& ladder, const AttackOptions& options);

/// Reads a manifest's rows (of `split` when not empty; at most `limit` when > 0, evenly
/// spaced), prepares them for the model: x (N,C,...) and class indices y (N). InputError naming
/// the manifest for a label the model does not know.
void load_prepared(const Model& model, const std::string& manifest, const std::string& split, int64_t limit,
                   at::Tensor& x, at::Tensor& y, std::vector<std::string>* paths = nullptr);

}  // namespace medlens
