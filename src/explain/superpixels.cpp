// SLIC superpixels (Achanta et al., "SLIC superpixels compared to state-of-the-art superpixel
// methods", TPAMI 2012) for 2-D images and 3-D volumes, the segments LIME and Kernel SHAP switch
// on and off.
#include <cmath>
#include <limits>
#include <vector>

#include "explain/methods.h"

namespace medlens::explain_detail {

namespace {

// Face-connected components of equal labels; components smaller than `min_size` join the
// already relabelled component next to them (raster order, as the reference implementation),
// so every final label is one connected region. Labels come out 0..n-1.
std::vector<int64_t> enforce_connectivity(const std::vector<int32_t>& label, int64_t D, int64_t H, int64_t W,
                                          int64_t min_size) {
  const int64_t n = D * H * W;
  std::vector<int64_t> out(static_cast<size_t>(n), -1);
  std::vector<int64_t> component, stack;
  int64_t next = 0;
  const int64_t strides[3] = {H * W, W, 1};
  const int64_t extent[3] = {D, H, W};
  auto for_neighbours = [&](int64_t v, auto&& fn) {
    const int64_t coord[3] = {v / (H * W), (v / W) % H, v % W};
    for (int a = 0; a < 3; ++a) {
      if (coord[a] > 0) fn(v - strides[a]);
      if (coord[a] + 1 < extent[a]) fn(v + strides[a]);
    }
  };
  for (int64_t start = 0; start < n; ++start) {
    if (out[static_cast<size_t>(start)] >= 0) continue;
    const int32_t l = label[static_cast<size_t>(start)];
    component.clear();
    stack.assign(1, start);
    out[static_cast<size_t>(start)] = next;
    int64_t adjacent = -1;
    while (!stack.empty()) {
      const int64_t v = stack.back();
      stack.pop_back();
      component.push_back(v);
      for_neighbours(v, [&](int64_t u) {
        const int64_t ou = out[static_cast<size_t>(u)];
        if (ou < 0 && label[static_cast<size_t>(u)] == l) {
          out[static_cast<size_t>(u)] = next;
          stack.push_back(u);
        } else if (ou >= 0 && ou != next && adjacent < 0) {
          adjacent = ou;
        }
      });
    }
    if (static_cast<int64_t>(component.size()) < min_size && adjacent >= 0) {
      for (int64_t v : component) out[static_cast<size_t>(v)] = adjacent;
    } else {
      ++next;
    }
  }
  return out;
}

}  // namespace

at::Tensor slic(const at::Tensor& image, int64_t segments, double compactness, int iterations) {
  if (segments < 1) throw UsageError("slic: segments must be >= 1");
  if (!(compactness > 0)) throw UsageError("slic: compactness must be > 0");
  if (image.dim() != 3 && image.dim() != 4) throw UsageError("slic: expects a (C, [D,] H, W) image");
  const bool flat = image.dim() == 3;
  const at::Tensor img = (flat ? image.unsqueeze(1) : image).to(at::kFloat).contiguous();
  const int64_t C = img.size(0), D = img.size(1), H = img.size(2), W = img.size(3), n = D * H * W;
  // Intensities scaled to [0, 1] per channel.
  std::vector<float> v(static_cast<size_t>(C * n));
  for (int64_t c = 0; c < C; ++c) {
    const at::Tensor ch = img[c];
    const float lo = ch.min().item<float>(), hi = ch.max().item<float>();
    const float scale = hi > lo ? 1.0f / (hi - lo) : 0.0f;
    const float* src = ch.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(c * n + i)] = (src[i] - lo) * scale;
  }
  const int dims = D > 1 ? 3 : 2;
  const double S = std::pow(static_cast<double>(n) / static_cast<double>(segments), 1.0 / dims);
  auto count = [&](int64_t size) { return std::max<int64_t>(1, std::llround(static_cast<double>(size) / S)); };
  const int64_t nz = D > 1 ? count(D) : 1, ny = count(H), nx = count(W);
  const double step[3] = {static_cast<double>(D) / nz, static_cast<double>(H) / ny, static_cast<double>(W) / nx};
  const int64_t reach[3] = {D > 1 ? static_cast<int64_t>(std::ceil(step[0])) : 0, static_cast<int64_t>(std::ceil(step[1])),
                            static_cast<int64_t>(std::ceil(step[2]))};
  const int64_t K = nz * ny * nx;
  // Centre k: position (z, y, x) then C intensities.
  const int64_t F = 3 + C;
  std::vector<double> centre(static_cast<size_t>(K * F));
  for (int64_t iz = 0, k = 0; iz < nz; ++iz)
    for (int64_t iy = 0; iy < ny; ++iy)
      for (int64_t ix = 0; ix < nx; ++ix, ++k) {
        double* c = &centre[static_cast<size_t>(k * F)];
        c[0] = D > 1 ? (static_cast<double>(iz) + 0.5) * step[0] : 0.0;
        c[1] = (static_cast<double>(iy) + 0.5) * step[1];
        c[2] = (static_cast<double>(ix) + 0.5) * step[2];
        const int64_t vox = (static_cast<int64_t>(c[0]) * H + static_cast<int64_t>(c[1])) * W + static_cast<int64_t>(c[2]);
        for (int64_t ch = 0; ch < C; ++ch) c[3 + ch] = v[static_cast<size_t>(ch * n + vox)];
      }
  const double spatial_weight = compactness * compactness / (S * S);
  std::vector<int32_t> label(static_cast<size_t>(n), -1);
  std::vector<double> dist(static_cast<size_t>(n));
  std::vector<double> sums(static_cast<size_t>(K * F));
  std::vector<int64_t> members(static_cast<size_t>(K));
  for (int it = 0; it < std::max(1, iterations); ++it) {
    std::fill(dist.begin(), dist.end(), std::numeric_limits<double>::infinity());
    for (int64_t k = 0; k < K; ++k) {
      const double* c = &centre[static_cast<size_t>(k * F)];
      const int64_t z0 = std::max<int64_t>(0, std::llround(c[0]) - reach[0]), z1 = std::min<int64_t>(D - 1, std::llround(c[0]) + reach[0]);
      const int64_t y0 = std::max<int64_t>(0, std::llround(c[1]) - reach[1]), y1 = std::min<int64_t>(H - 1, std::llround(c[1]) + reach[1]);
      const int64_t x0 = std::max<int64_t>(0, std::llround(c[2]) - reach[2]), x1 = std::min<int64_t>(W - 1, std::llround(c[2]) + reach[2]);
      for (int64_t z = z0; z <= z1; ++z)
        for (int64_t y = y0; y <= y1; ++y) {
          const double dzy = (z - c[0]) * (z - c[0]) + (y - c[1]) * (y - c[1]);
          for (int64_t x = x0; x <= x1; ++x) {
            const int64_t vox = (z * H + y) * W + x;
            double dc = 0;
            for (int64_t ch = 0; ch < C; ++ch) {
              const double d = v[static_cast<size_t>(ch * n + vox)] - c[3 + ch];
              dc += d * d;
            }
            const double d = dc + (dzy + (x - c[2]) * (x - c[2])) * spatial_weight;
            if (d < dist[static_cast<size_t>(vox)]) {
              dist[static_cast<size_t>(vox)] = d;
              label[static_cast<size_t>(vox)] = static_cast<int32_t>(k);
            }
          }
        }
    }
    std::fill(sums.begin(), sums.end(), 0.0);
    std::fill(members.begin(), members.end(), 0);
    for (int64_t vox = 0; vox < n; ++vox) {
      const int32_t l = label[static_cast<size_t>(vox)];
      if (l < 0) continue;
      double* s = &sums[static_cast<size_t>(l * F)];
      s[0] += static_cast<double>(vox / (H * W));
      s[1] += static_cast<double>((vox / W) % H);
      s[2] += static_cast<double>(vox % W);
      for (int64_t ch = 0; ch < C; ++ch) s[3 + ch] += v[static_cast<size_t>(ch * n + vox)];
      ++members[static_cast<size_t>(l)];
    }
    for (int64_t k = 0; k < K; ++k) {
      const int64_t m = members[static_cast<size_t>(k)];
      if (m == 0) continue;
      for (int64_t f = 0; f < F; ++f)
        centre[static_cast<size_t>(k * F + f)] = sums[static_cast<size_t>(k * F + f)] / static_cast<double>(m);
    }
  }
  const std::vector<int64_t> out = enforce_connectivity(label, D, H, W, std::max<int64_t>(1, n / K / 4));
  at::Tensor labels = at::empty({D, H, W}, at::kLong);
  std::copy(out.begin(), out.end(), labels.data_ptr<int64_t>());
  return flat ? labels[0].clone() : labels;
}

}  // namespace medlens::explain_detail
