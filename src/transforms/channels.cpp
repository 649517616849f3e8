#include "transforms/channels.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "io/read.h"
#include "transforms/registration.h"
#include "transforms/spatial.h"

namespace medlens {
namespace {

bool same_grid(const Image& a, const Image& b) {
  const Shape sa = a.shape(), sb = b.shape();
  if (sa.x != sb.x || sa.y != sb.y || sa.z != sb.z) return false;
  const Geometry &ga = a.geometry(), &gb = b.geometry();
  for (int i = 0; i < 3; ++i) {
    if (std::abs(ga.spacing[i] - gb.spacing[i]) > 1e-4 * ga.spacing[i]) return false;
    if (std::abs(ga.origin[i] - gb.origin[i]) > 1e-3 * ga.spacing[i]) return false;
  }
  for (int i = 0; i < 9; ++i)
    if (std::abs(ga.direction[i] - gb.direction[i]) > 1e-5) return false;
  return true;
}

}  // namespace

Image stack_channels(const std::vector<Image>& series, const std::vector<std::string>& names,
                     const ChannelOptions& options) {
  if (series.empty()) throw UsageError("stack_channels needs at least one series");
  const Image& first = series.front();
  auto name_of = [&](size_t i) { return i < names.size() ? names[i] : "series " + std::to_string(i); };
  std::vector<at::Tensor> parts{first.voxels()};
  for (size_t i = 1; i < series.size(); ++i) {
    const Image& s = series[i];
    if (s.is_3d() != first.is_3d())
      throw InputError(name_of(i), std::string("is ") + (s.is_3d() ? "3-D" : "2-D") + " but " + name_of(0) + " is " +
                                       (first.is_3d() ? "3-D" : "2-D") + ": the series of one input must match");
    if (same_grid(s, first)) {
      parts.push_back(s.voxels());
      continue;
    }
    const Image moved = options.register_series ? register_images(first, s).resampled_moving
                                                : resample_onto(s, first.shape(), first.geometry());
    // A series that misses the first one's field of view entirely is not the same study.
    if (!(moved.voxels() != 0).any().item<bool>())
      throw InputError(name_of(i), "does not overlap " + name_of(0) + " in patient space (check both are of one study)");
    parts.push_back(moved.voxels());
  }
  Image out = first.with_voxels(parts.size() == 1 ? parts.front() : at::cat(parts, 0));
  return out;
}

Image read_channels(const std::vector<std::string>& paths, const ChannelOptions& options) {
  std::vector<Image> series;
  for (const auto& p : paths) series.push_back(read_image(p));
  return stack_channels(series, paths, options);
}

Image read_manifest_input(const ManifestRow& row, const std::vector<std::string>& channel_names) {
  return channel_names.size() > 1 ? read_channels(row.channel_paths(channel_names)) : read_image(row.path);
}

}  // namespace medlens
