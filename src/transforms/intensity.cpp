#include "transforms/intensity.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "transforms/base.h"
#include "transforms/params.h"
#include "transforms/registry.h"

namespace medlens {
namespace {

class WindowTransform final : public IntensityTransform {
 public:
  explicit WindowTransform(WindowOptions o) : o_(o) {
    if (!(o_.width_ > 0)) throw UsageError("'window': width must be positive");
  }
  std::string name() const override { return "window"; }
  nlohmann::json params() const override {
    return {{"center", o_.center_}, {"width", o_.width_}, {"out_min", o_.out_min_}, {"out_max", o_.out_max_}};
  }

 protected:
  Image transform_image(const Image& image) const override {
    const double lo = o_.center_ - o_.width_ / 2, hi = o_.center_ + o_.width_ / 2;
    at::Tensor v = (image.voxels().clamp(lo, hi) - lo) * ((o_.out_max_ - o_.out_min_) / (hi - lo)) + o_.out_min_;
    Image out = image.with_voxels(v);
    out.metadata().window = Window{(o_.out_min_ + o_.out_max_) / 2, o_.out_max_ - o_.out_min_};
    return out;
  }

 private:
  WindowOptions o_;
};

class Clip final : public IntensityTransform {
 public:
  Clip(double lo, double hi) : lo_(lo), hi_(hi) {
    if (!(lo_ < hi_)) throw UsageError("'clip': min must be below max");
  }
  std::string name() const override { return "clip"; }
  nlohmann::json params() const override { return {{"min", lo_}, {"max", hi_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    return image.with_voxels(image.voxels().clamp(lo_, hi_));
  }

 private:
  double lo_, hi_;
};

class ZScore final : public IntensityTransform {
 public:
  explicit ZScore(double threshold) : threshold_(threshold) {}
  std::string name() const override { return "zscore"; }
  nlohmann::json params() const override {
    nlohmann::json j = nlohmann::json::object();
    if (std::isfinite(threshold_)) j["threshold"] = threshold_;
    return j;
  }

 protected:
  Image transform_image(const Image& image) const override {
    at::Tensor v = image.voxels().clone();
    for (int64_t c = 0; c < v.size(0); ++c) {
      at::Tensor ch = v[c];
      at::Tensor sel = std::isfinite(threshold_) ? ch.masked_select(ch > threshold_) : ch.flatten();
      if (sel.numel() < 2) sel = ch.flatten();
      const double mean = sel.mean().item<double>();
      const double sd = sel.std().item<double>();
      ch.sub_(mean).div_(sd > 1e-12 ? sd : 1.0);
    }
    return image.with_voxels(v);
  }

 private:
  double threshold_;
};

class ScalePercentile final : public IntensityTransform {
 public:
  ScalePercentile(double lo, double hi, bool clip) : lo_(lo), hi_(hi), clip_(clip) {
    if (!(0 <= lo_ && lo_ < hi_ && hi_ <= 100))
      throw UsageError("'scale-percentile': need 0 <= lo < hi <= 100");
  }
  std::string name() const override { return "scale-percentile"; }
  nlohmann::json params() const override { return {{"lo", lo_}, {"hi", hi_}, {"clip", clip_}}; }

 protected:
  Image transform_image(const Image& image) const override {
    at::Tensor v = image.voxels().clone();
    for (int64_t c = 0; c < v.size(0); ++c) {
      at::Tensor ch = v[c];
      at::Tensor flat = std::get<0>(ch.flatten().sort());
      const int64_t n = flat.numel();
      auto at_pct = [&](double p) {
        const double pos = p / 100.0 * static_cast<double>(n - 1);
        const int64_t i = static_cast<int64_t>(std::floor(pos));
        const double frac = pos - static_cast<double>(i);
        const double a = flat[i].item<double>(), b = flat[std::min(i + 1, n - 1)].item<double>();
        return a + (b - a) * frac;  // linear interpolation, as numpy.percentile
      };
      const double a = at_pct(lo_), b = at_pct(hi_);
      ch.sub_(a).div_(b - a > 1e-12 ? b - a : 1.0);
      if (clip_) ch.clamp_(0.0, 1.0);
    }
    return image.with_voxels(v);
  }

 private:
  double lo_, hi_;
  bool clip_;
};

}  // namespace

TransformPtr make_window(const WindowOptions& o) { return std::make_shared<WindowTransform>(o); }
TransformPtr make_clip(double min, double max) { return std::make_shared<Clip>(min, max); }
TransformPtr make_zscore(double threshold) { return std::make_shared<ZScore>(threshold); }
TransformPtr make_scale_percentile(double lo, double hi, bool clip) {
  return std::make_shared<ScalePercentile>(lo, hi, clip);
}

void register_intensity(TransformRegistry& r) {
  r.add("window", "intensity", "clip to a window and map to [out_min,out_max]: center, width, out_min=0, out_max=1",
        [](const nlohmann::json& j) {
          ParamReader p("window", j);
          WindowOptions o(p.number("center", 40), p.number("width", 400));
          o.out_range(p.number("out_min", 0), p.number("out_max", 1));
          p.finish();
          return make_window(o);
        });
  r.add("clip", "intensity", "clip values (e.g. HU): min, max", [](const nlohmann::json& j) {
    ParamReader p("clip", j);
    const double lo = p.number("min", -1000), hi = p.number("max", 1000);
    p.finish();
    return make_clip(lo, hi);
  });
  r.add("zscore", "intensity", "per-channel (v-mean)/std over voxels above threshold (default all)",
        [](const nlohmann::json& j) {
          ParamReader p("zscore", j);
          const double t = p.number("threshold", -INFINITY);
          p.finish();
          return make_zscore(t);
        });
  r.add("scale-percentile", "intensity", "map percentiles lo=0.5..hi=99.5 to 0..1, clip=true",
        [](const nlohmann::json& j) {
          ParamReader p("scale-percentile", j);
          const double lo = p.number("lo", 0.5), hi = p.number("hi", 99.5);
          const bool clip = p.boolean("clip", true);
          p.finish();
          return make_scale_percentile(lo, hi, clip);
        });
}

}  // namespace medlens
