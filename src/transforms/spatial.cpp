#include "transforms/spatial.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "transforms/base.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

nlohmann::json axes_json(const std::array<bool, 3>& a) {
  std::string s;
  for (int i = 0; i < 3; ++i)
    if (a[i]) s += "xyz"[i];
  return s;
}

std::array<bool, 3> parse_axes(const std::string& op, const std::string& text) {
  std::array<bool, 3> a{false, false, false};
  for (char c : text) {
    if (c == 'x') a[0] = true;
    else if (c == 'y') a[1] = true;
    else if (c == 'z') a[2] = true;
    else throw UsageError("'" + op + "': axes are letters from xyz, got '" + text + "'");
  }
  return a;
}

class Flip final : public SpatialTransform {
 public:
  explicit Flip(std::array<bool, 3> axes) : axes_(axes) {}
  std::string name() const override { return "flip"; }
  nlohmann::json params() const override { return {{"axes", axes_json(axes_)}}; }

 protected:
  Image transform_image(const Image& image, bool) const override {
    std::vector<int64_t> dims;
    if (axes_[0]) dims.push_back(3);  // (C,Z,Y,X): x is dim 3
    if (axes_[1]) dims.push_back(2);
    if (axes_[2]) dims.push_back(1);
    if (dims.empty()) return image;
    return image.with_voxels(image.voxels().flip(dims));
  }

 private:
  std::array<bool, 3> axes_;
};

class RandomFlip final : public RandomTransform {
 public:
  RandomFlip(double p, std::array<bool, 3> axes) : p_(p), axes_(axes) {}
  std::string name() const override { return "random-flip"; }
  nlohmann::json params() const override { return {{"p", p_}, {"axes", axes_json(axes_)}}; }
  TransformPtr draw(Rng& rng) const override {
    std::array<bool, 3> chosen{false, false, false};
    bool any = false;
    for (int i = 0; i < 3; ++i) {
      const bool draw = rng.bernoulli(p_);  // always draw, so streams do not depend on axes
      chosen[i] = axes_[i] && draw;
      any |= chosen[i];
    }
    return any ? make_flip(chosen) : nullptr;
  }

 private:
  double p_;
  std::array<bool, 3> axes_;
};

}  // namespace

TransformPtr make_flip(std::array<bool, 3> axes) { return std::make_shared<Flip>(axes); }
TransformPtr make_random_flip(double p, std::array<bool, 3> axes) {
  return std::make_shared<RandomFlip>(p, axes);
}

void register_spatial(TransformRegistry& r) {
  r.add("flip", "spatial", "mirror along index axes: axes=x|y|z|xy|...", [](const nlohmann::json& j) {
    ParamReader p("flip", j);
    const auto axes = parse_axes("flip", p.text("axes", "x"));
    p.finish();
    return make_flip(axes);
  });
  r.add("random-flip", "augment", "flip each of axes=x with probability p=0.5", [](const nlohmann::json& j) {
    ParamReader p("random-flip", j);
    const double prob = p.number_in("p", 0.5, 0, 1);
    const auto axes = parse_axes("random-flip", p.text("axes", "x"));
    p.finish();
    return make_random_flip(prob, axes);
  });
}

}  // namespace medlens
