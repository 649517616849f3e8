#include "report/render.h"

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>

#include "core/error.h"
#include "io/file_util.h"
#include "io/write.h"

namespace medlens {

Window display_window(const Image& image) {
  if (image.metadata().window) return *image.metadata().window;
  at::Tensor v = image.voxels().flatten();
  v = v.masked_select(at::isfinite(v));
  if (v.numel() == 0) return Window{0, 1};
  const at::Tensor s = std::get<0>(v.sort());
  const int64_t n = s.numel();
  const double lo = s[n / 100].item<double>(), hi = s[std::min(n - 1, n * 99 / 100)].item<double>();
  return Window{(lo + hi) / 2, std::max(hi - lo, 1e-6)};
}

std::vector<uint8_t> render_png(const Image& image, const RenderOptions& o) {
  const int64_t z = o.slice >= 0 ? std::min(o.slice, image.depth() - 1) : image.depth() / 2;
  const int64_t h = image.height(), w = image.width();
  const Window win = o.window.value_or(display_window(image));
  cv::Mat bgr(static_cast<int>(h), static_cast<int>(w), CV_8UC3);
  const bool colour = image.channels() == 3;
  const at::Tensor slice = image.voxels().select(1, z).contiguous();  // (C, H, W)
  const float* d = slice.data_ptr<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      auto& px = bgr.at<cv::Vec3b>(static_cast<int>(y), static_cast<int>(x));
      if (colour) {
        for (int c = 0; c < 3; ++c) px[2 - c] = apply_window(d[c * h * w + y * w + x], win);
      } else {
        const uint8_t g = apply_window(d[y * w + x], win);
        px = cv::Vec3b(g, g, g);
      }
    }
  auto same_grid = [&](const Image* other, const char* what) {
    if (other->height() != h || other->width() != w || other->depth() != image.depth())
      throw UsageError(std::string(what) + " is not on the image's grid");
  };
  if (o.heatmap) {
    same_grid(o.heatmap, "heat map");
    at::Tensor heat = o.heatmap->voxels()[0].select(0, z).clone();
    heat = heat.clamp_min(0);
    const double top = heat.max().item<double>();
    if (top > 0) heat = heat / top;
    cv::Mat h8(static_cast<int>(h), static_cast<int>(w), CV_8UC1);
    const at::Tensor hc = (heat * 255).round().to(at::kByte).contiguous();
    std::memcpy(h8.data, hc.data_ptr<uint8_t>(), static_cast<size_t>(h * w));
    cv::Mat coloured;
    cv::applyColorMap(h8, coloured, cv::COLORMAP_JET);
    for (int y = 0; y < bgr.rows; ++y)
      for (int x = 0; x < bgr.cols; ++x) {
        const double a = o.heat_alpha * h8.at<uint8_t>(y, x) / 255.0;
        auto& p = bgr.at<cv::Vec3b>(y, x);
        const auto& q = coloured.at<cv::Vec3b>(y, x);
        for (int c = 0; c < 3; ++c) p[c] = cv::saturate_cast<uint8_t>((1 - a) * p[c] + a * q[c]);
      }
  }
  const int64_t scale = std::max<int64_t>(1, o.max_side / std::max(h, w));
  if (scale > 1) cv::resize(bgr, bgr, cv::Size(), static_cast<double>(scale), static_cast<double>(scale), cv::INTER_NEAREST);
  const cv::Scalar colours[] = {{0, 255, 0}, {0, 255, 255}, {255, 0, 255}, {255, 128, 0}};
  for (size_t i = 0; i < o.outlines.size(); ++i) {
    same_grid(o.outlines[i], "outline mask");
    const at::Tensor m = (o.outlines[i]->voxels()[0].select(0, z) > 0.5).to(at::kByte).contiguous();
    cv::Mat m8(static_cast<int>(h), static_cast<int>(w), CV_8UC1);
    std::memcpy(m8.data, m.data_ptr<uint8_t>(), static_cast<size_t>(h * w));
    if (scale > 1) cv::resize(m8, m8, cv::Size(), static_cast<double>(scale), static_cast<double>(scale), cv::INTER_NEAREST);
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(m8, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
    cv::drawContours(bgr, contours, -1, colours[i % 4], 2, cv::LINE_AA);
  }
  std::vector<uint8_t> png;
  if (!cv::imencode(".png", bgr, png)) throw Error(ErrorKind::kInternal, "cannot encode PNG");
  return png;
}

void write_render(const std::string& path, const Image& image, const RenderOptions& options) {
  const std::vector<uint8_t> png = render_png(image, options);
  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path(), std::ios::binary);
    f.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
    if (!f) throw InputError(path, "cannot write PNG");
  }
  out.commit();
}

std::string base64(const std::vector<uint8_t>& b) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((b.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < b.size(); i += 3) {
    const uint32_t v = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += k[v & 63];
  }
  if (i + 1 == b.size()) {
    const uint32_t v = b[i] << 16;
    out += k[v >> 18], out += k[(v >> 12) & 63], out += "==";
  } else if (i + 2 == b.size()) {
    const uint32_t v = (b[i] << 16) | (b[i + 1] << 8);
    out += k[v >> 18], out += k[(v >> 12) & 63], out += k[(v >> 6) & 63], out += '=';
  }
  return out;
}

}  // namespace medlens
