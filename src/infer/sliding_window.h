// Sliding-window segmentation inference (nnU-Net style): a volume too large for one forward
// pass is covered by overlapping windows whose softmax probabilities are blended with a
// Gaussian importance map, optionally averaged over mirror flips (test-time augmentation).
// Memory is bounded by one output buffer the size of the volume (K channels; the blending
// weights are separable, so no weight volume is kept), a padded copy of the input only where
// the volume is smaller than a window, and one batch of windows: windows are cut, run and
// accumulated a batch at a time.
// Light header: at::Tensor and Network are forward-declared.
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace at {
class Tensor;
}

namespace medlens {

class Network;

/// How the volume is padded where it is smaller than a window (and cropped back afterwards).
enum class WindowPadding {
  /// Constant: each channel's minimum (background: air in CT, outside the head in MR). Default.
  kMinimum,
  /// Mirror about the edge voxel (…, 2, 1 | 0, 1, 2, …), repeated when the pad exceeds the size.
  kReflect,
};

struct SlidingWindowOptions {
  /// `patch`: window size per spatial axis ([D,]H,W), in voxels, one entry per network dimension.
  explicit SlidingWindowOptions(std::vector<int64_t> patch) : patch_(std::move(patch)) {}
  /// Window size per spatial axis, each >= 1. An entry that is not a multiple of the network's
  /// size multiple (see size_multiple) is rounded up to the next multiple: the window grows
  /// (more context) rather than being padded inside the volume.
  TORCH_ARG(std::vector<int64_t>, patch);
  /// Fraction of a window shared with its neighbour along each axis, in [0, 1). Windows are
  /// spread evenly so the first and last touch the volume's edges; the step is at most
  /// patch * (1 - overlap) and at least one voxel.
  TORCH_ARG(double, overlap) = 0.5;
  /// Blend with a Gaussian importance map (centre weighs most) instead of uniform weights.
  TORCH_ARG(bool, gaussian) = true;
  /// Gaussian sigma as a fraction of the window size per axis (nnU-Net: 1/8). The map is a
  /// product of one Gaussian per axis, each scaled to a maximum of 1 and floored at 1e-3, so
  /// window corners still count (weight >= 1e-3^dims) where nothing else covers them. Must be > 0.
  TORCH_ARG(double, sigma_scale) = 0.125;
  /// Windows per forward pass (>= 1). Memory for activations grows with it. 2 by default: on
  /// CPU, LibTorch 1.13 sends batches of one through slower convolution paths for small
  /// inputs, and instance norm parallelises better over two (profiled with bench/lesions'
  /// 96^3 3-D U-Net on 2 cores: about 15% less time per window); 4 gains little more.
  TORCH_ARG(int64_t, batch_size) = 2;
  /// Spatial axes (0-based over [D,]H,W) to mirror for test-time augmentation: every
  /// combination of flips over them (2^n passes per window) is run, flipped back, and the
  /// softmax averaged. Empty: no augmentation.
  TORCH_ARG(std::vector<int64_t>, mirror_axes) = {};
  /// Sizes the network accepts must be multiples of this along each axis. 0: ask the network
  /// (2^depth for a UNet, the members' least common multiple for an Ensemble, 1 otherwise); set
  /// it for imported (TorchScript) networks.
  TORCH_ARG(int64_t, size_multiple) = 0;
  /// Padding where the volume is smaller than a window.
  TORCH_ARG(WindowPadding, padding) = WindowPadding::kMinimum;
  /// Called after each batch with (windows done, windows in all); may be empty. Called on the
  /// calling thread; an exception it throws stops inference and propagates.
  TORCH_ARG(std::function<void(int64_t, int64_t)>, progress);
};

/// Softmax probabilities (K,[D,]H,W), float32, of segmenter `network` for one volume `input`
/// (C,[D,]H,W) of any size, by sliding windows. The network is run in evaluation mode under
/// inference mode (its previous training flag is restored on return) and must map
/// (N,C,window...) to logits (N,K,window...). With one window covering the whole (padded)
/// volume the result equals softmax(network(volume)). Not thread-safe for one network.
/// UsageError for bad options (empty or non-positive patch, wrong patch rank, overlap outside
/// [0, 1), batch_size < 1, sigma_scale <= 0, mirror axis out of range or repeated); InputError
/// when `input` does not match the network's dimensions or the network's output is not a
/// segmentation of the window.
at::Tensor sliding_window_inference(Network& network, const at::Tensor& input, const SlidingWindowOptions& options);

/// Start offsets of windows of `window` voxels along an axis of `size` >= window voxels with
/// `overlap` in [0, 1): evenly spread, first 0 and last size - window, symmetric under
/// mirroring (start s pairs with size - window - s) up to one voxel when that is odd.
std::vector<int64_t> sliding_window_starts(int64_t size, int64_t window, double overlap);

}  // namespace medlens
