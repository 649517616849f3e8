// Pictures of images for reports: a slice windowed to 8 bits, optionally with a heat map
// (attribution) blended over it and mask outlines drawn on it, encoded as PNG.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/image.h"

namespace medlens {

struct RenderOptions {
  int64_t slice = -1;                ///< z index; -1: the middle slice
  std::optional<Window> window;      ///< default: the image's window, else its 1st..99th percentile
  const Image* heatmap = nullptr;    ///< same grid as the image (any values; shown normalised)
  double heat_alpha = 0.45;          ///< blend weight of the heat map where it is strongest
  std::vector<const Image*> outlines;  ///< binary masks on the same grid, drawn as contours
  int64_t max_side = 512;            ///< upscale small images (nearest) so the longer side reaches it
};

/// PNG bytes of the rendered slice (RGB shown in colour, otherwise grey). Throws UsageError when
/// the heat map or an outline is on another grid.
std::vector<uint8_t> render_png(const Image& image, const RenderOptions& options = {});

/// Writes render_png's bytes to `path` atomically.
void write_render(const std::string& path, const Image& image, const RenderOptions& options = {});

/// Standard base64 (RFC 4648), for data: URIs in self-contained HTML.
std::string base64(const std::vector<uint8_t>& bytes);

/// The display window of an image: its own, else its 1st..99th percentile of finite values.
Window display_window(const Image& image);

}  // namespace medlens
