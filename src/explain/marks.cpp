// The shortcut check: how much of an explanation falls on burned-in text and calipers (found by
// transforms/marks.h).
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "explain/explain.h"
#include "transforms/spatial.h"

namespace medlens {

double attribution_share_in(const Image& attribution, const Image& mask) {
  if (attribution.empty() || mask.empty()) throw UsageError("attribution_share_in: empty attribution or mask");
  const Shape& a = attribution.shape();
  const Shape& m = mask.shape();
  const Image on_grid = (a.z == m.z && a.y == m.y && a.x == m.x && attribution.geometry() == mask.geometry())
                            ? mask
                            : resample_onto(mask, a, attribution.geometry(), true);
  const at::Tensor pos = attribution.voxels().select(0, 0).clamp_min(0).to(at::kDouble);
  const double total = pos.sum().item<double>();
  if (total <= 0) return 0.0;
  const at::Tensor inside = on_grid.voxels().select(0, 0) > 0.5;
  return std::clamp(pos.masked_select(inside).sum().item<double>() / total, 0.0, 1.0);
}

ShortcutCheck shortcut_check(const Image& image, const Explanation& e, const MarkOptions& options, Image* marks_out) {
  ShortcutCheck c;
  if (image.is_3d()) {
    c.summary = "not applicable to volumes (burned-in marks are checked on 2-D images)";
    return c;
  }
  c.applicable = true;
  const Image marks = detect_burned_in_marks(image, options);
  const at::Tensor m = marks.voxels()[0] > 0.5;
  c.marks_voxels = m.sum().item<int64_t>();
  c.marks_area_share = static_cast<double>(c.marks_voxels) / static_cast<double>(m.numel());
  c.marks_share = c.marks_voxels > 0 ? attribution_share_in(e.attribution, marks) : 0.0;
  c.flag = c.marks_share >= kShortcutMinShare && c.marks_share >= kShortcutMinRatio * c.marks_area_share;
  char line[256];
  if (c.marks_voxels == 0) {
    std::snprintf(line, sizeof line, "no burned-in text or calipers found");
  } else {
    std::snprintf(line, sizeof line, "%s: %.1f%% of the attribution lies on burned-in text or calipers, which cover %.1f%% of the image",
                  c.flag ? "FLAGGED" : "ok", 100 * c.marks_share, 100 * c.marks_area_share);
  }
  c.summary = line;
  if (marks_out) *marks_out = marks;
  return c;
}

nlohmann::json shortcut_check_json(const ShortcutCheck& c) {
  if (!c.applicable) return {{"applicable", false}, {"summary", c.summary}};
  char rule[128];
  std::snprintf(rule, sizeof rule, "flag when marks_share >= %.2f and >= %.0f x marks_area_share", kShortcutMinShare,
                kShortcutMinRatio);
  return {{"applicable", true},
          {"marks_share", c.marks_share},
          {"marks_area_share", c.marks_area_share},
          {"marks_voxels", c.marks_voxels},
          {"flag", c.flag},
          {"rule", rule},
          {"summary", c.summary}};
}

}  // namespace medlens
