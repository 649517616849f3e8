#include "cli/json_util.h"

#include <cstdio>

namespace medlens::cli {

nlohmann::json geometry_json(const Geometry& g, const Shape& s) {
  return {{"size", {s.x, s.y, s.z}},
          {"channels", s.c},
          {"spacing_mm", g.spacing},
          {"origin_lps_mm", g.origin},
          {"direction", g.direction},
          {"orientation", g.orientation_code()}};
}

nlohmann::json metadata_json(const Metadata& m) {
  nlohmann::json j = {{"modality", m.modality},
                      {"photometric", m.photometric},
                      {"body_part", m.body_part},
                      {"units", m.units},
                      {"rescale", {{"slope", m.rescale_slope}, {"intercept", m.rescale_intercept}}},
                      {"study_uid", m.study_uid},
                      {"series_uid", m.series_uid},
                      {"frame_of_reference_uid", m.frame_of_reference_uid},
                      {"series_description", m.series_description},
                      {"transfer_syntax", m.transfer_syntax},
                      {"tags", m.tags}};
  if (m.window) j["window"] = {{"center", m.window->center}, {"width", m.window->width}};
  return j;
}

nlohmann::json summary_json(const ImageSummary& s) {
  nlohmann::json j = {{"path", s.path}, {"format", s.format}, {"files", s.files},
                      {"readable", s.readable}, {"issues", s.issues}};
  j["metadata"] = metadata_json(s.metadata);
  if (s.readable) {
    j["geometry"] = geometry_json(s.geometry, s.shape);
    j["value_range"] = {s.min_value, s.max_value};
  } else {
    j["error"] = s.error;
  }
  return j;
}

void print_summary(const ImageSummary& s) {
  const Metadata& m = s.metadata;
  std::printf("path:        %s\n", s.path.c_str());
  std::printf("format:      %s%s\n", s.format.c_str(),
              s.files > 1 ? (" (" + std::to_string(s.files) + " files)").c_str() : "");
  if (!m.modality.empty()) std::printf("modality:    %s\n", m.modality.c_str());
  if (!m.series_description.empty()) std::printf("description: %s\n", m.series_description.c_str());
  if (!m.series_uid.empty()) std::printf("series uid:  %s\n", m.series_uid.c_str());
  if (s.readable) {
    const Geometry& g = s.geometry;
    std::printf("size:        %lld x %lld x %lld voxels, %lld channel(s)\n", (long long)s.shape.x,
                (long long)s.shape.y, (long long)s.shape.z, (long long)s.shape.c);
    std::printf("spacing:     %.4g x %.4g x %.4g mm\n", g.spacing[0], g.spacing[1], g.spacing[2]);
    std::printf("origin:      %.4g, %.4g, %.4g mm (LPS)\n", g.origin[0], g.origin[1], g.origin[2]);
    std::printf("orientation: %s\n", g.orientation_code().c_str());
    std::printf("values:      %.6g .. %.6g%s%s\n", s.min_value, s.max_value,
                m.units.empty() ? "" : " ", m.units.c_str());
    if (!m.photometric.empty()) std::printf("photometric: %s\n", m.photometric.c_str());
    if (m.window) std::printf("window:      center %.6g, width %.6g\n", m.window->center, m.window->width);
  } else {
    std::printf("unreadable:  %s\n", s.error.c_str());
  }
  for (const auto& [k, v] : m.tags) std::printf("  %-26s %s\n", k.c_str(), v.c_str());
  for (const auto& issue : s.issues) std::printf("issue:       %s\n", issue.c_str());
}

}  // namespace medlens::cli
