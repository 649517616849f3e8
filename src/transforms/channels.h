// Multi-modal inputs: several series of one study (T1 + a second contrast, PET + CT) put onto
// the first series' grid and stacked as channels, the input a multi-channel model expects.
#pragma once

#include <string>
#include <vector>

#include "core/image.h"
#include "io/manifest.h"

namespace medlens {

struct ChannelOptions {
  /// Register each further series to the first (rigid, Mattes mutual information) before
  /// resampling; otherwise the series' own geometry (scanner coordinates) is trusted.
  bool register_series = false;
};

/// The series stacked as channels (C = the sum of their channels) on the grid of `series[0]`.
/// A series on another grid is resampled (linear) onto it; names (for messages) say which is
/// which. Throws InputError naming the series when dimensions differ (2-D with 3-D) or it does
/// not overlap the first.
Image stack_channels(const std::vector<Image>& series, const std::vector<std::string>& names,
                     const ChannelOptions& options = {});

/// Reads the series at `paths` and stacks them (InputError names the file that fails).
Image read_channels(const std::vector<std::string>& paths, const ChannelOptions& options = {});

/// A manifest row's input for a model whose card names `channel_names`: the row's `path` alone
/// for a one-series model, else every named series stacked (ManifestRow::channel_paths).
Image read_manifest_input(const ManifestRow& row, const std::vector<std::string>& channel_names);

}  // namespace medlens
