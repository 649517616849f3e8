// Small deterministic models and images for the explanation tests: a randomly initialised
// compact ResNet (2-D or 3-D), a model linear in its input, and smooth textured images.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "core/image.h"
#include "infer/model.h"

namespace medlens::test {

/// A 2-class ("a", "b") ResNet with one block in each of two stages, width 8, seeded weights,
/// input side^dims; with `resize` the card's preprocessing resizes any image to that size.
Model tiny_resnet(int dims, int64_t side, bool resize, uint64_t seed = 3);

/// The card of tiny_resnet(), for bundles written by tests.
nlohmann::json tiny_resnet_card(int dims, int64_t side, bool resize);

/// A smooth random texture in [0.2, 1.2], size in x, y[, z] order, spacing 0.8 mm, an origin
/// off zero, modality MR.
Image textured_image(int dims, const std::vector<int64_t>& size, uint64_t seed = 1);

struct LinearModel {
  Model model;        ///< classes a, b: logit(a) = sum_v w_v x_v, logit(b) = -logit(a)
  at::Tensor weights; ///< (side, side) float
};

/// A 2-D linear model on side x side inputs with normal weights drawn with `seed`; when `block`
/// (x, y) is given, weight 1 on the 4x4 block starting there and 0 elsewhere.
LinearModel linear_model(int64_t side, uint64_t seed, std::pair<int64_t, int64_t> block = {-1, -1});

}  // namespace medlens::test
