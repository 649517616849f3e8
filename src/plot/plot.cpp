#include "plot/plot.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "io/file_util.h"

namespace medlens {
namespace {

const cv::Scalar kPalette[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44},  {40, 39, 214},
                               {189, 103, 148}, {75, 86, 140}, {194, 119, 227}, {127, 127, 127}};

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

void save_png(const std::string& path, const cv::Mat& img) {
  AtomicOutput out(path);
  if (!cv::imwrite(out.temp_path(), img)) throw InputError(path, "cannot write PNG");
  out.commit();
}

void put_text(cv::Mat& img, const std::string& s, cv::Point at, double scale = 0.45, int thickness = 1) {
  cv::putText(img, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(30, 30, 30), thickness, cv::LINE_AA);
}

}  // namespace

void write_line_plot(const std::string& path, const std::vector<Series>& series, const PlotOptions& o) {
  if (series.empty()) throw UsageError("plot: no series");
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series) {
    if (s.x.size() != s.y.size()) throw UsageError("plot: series '" + s.name + "' has mismatched x and y");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (std::isfinite(o.x_min)) x0 = o.x_min;
  if (std::isfinite(o.x_max)) x1 = o.x_max;
  if (std::isfinite(o.y_min)) y0 = o.y_min;
  if (std::isfinite(o.y_max)) y1 = o.y_max;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  cv::Mat img(o.height, o.width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int left = 70, right = 20, top = 40, bottom = 55;
  const int pw = o.width - left - right, ph = o.height - top - bottom;
  auto px = [&](double x) { return left + static_cast<int>(std::lround((x - x0) / (x1 - x0) * pw)); };
  auto py = [&](double y) { return top + ph - static_cast<int>(std::lround((y - y0) / (y1 - y0) * ph)); };
  // Grid and ticks.
  for (int t = 0; t <= 5; ++t) {
    const double xv = x0 + (x1 - x0) * t / 5, yv = y0 + (y1 - y0) * t / 5;
    cv::line(img, {px(xv), top}, {px(xv), top + ph}, cv::Scalar(230, 230, 230));
    cv::line(img, {left, py(yv)}, {left + pw, py(yv)}, cv::Scalar(230, 230, 230));
    put_text(img, fmt(xv), {px(xv) - 12, top + ph + 18}, 0.4);
    put_text(img, fmt(yv), {5, py(yv) + 4}, 0.4);
  }
  cv::rectangle(img, {left, top}, {left + pw, top + ph}, cv::Scalar(80, 80, 80));
  if (o.diagonal)
    cv::line(img, {px(std::max(x0, y0)), py(std::max(x0, y0))}, {px(std::min(x1, y1)), py(std::min(x1, y1))},
             cv::Scalar(160, 160, 160), 1, cv::LINE_AA);
  for (size_t si = 0; si < series.size(); ++si) {
    const auto& s = series[si];
    const cv::Scalar colour = kPalette[si % 8];
    for (size_t i = 0; i + 1 < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.y[i + 1])) continue;
      if (s.dashed && i % 2) continue;
      cv::line(img, {px(s.x[i]), py(s.y[i])}, {px(s.x[i + 1]), py(s.y[i + 1])}, colour, 2, cv::LINE_AA);
    }
    if (s.markers || s.x.size() == 1)
      for (size_t i = 0; i < s.x.size(); ++i)
        if (std::isfinite(s.y[i])) cv::circle(img, {px(s.x[i]), py(s.y[i])}, 3, colour, cv::FILLED, cv::LINE_AA);
    // Legend.
    const int ly = top + 18 + static_cast<int>(si) * 18;
    cv::line(img, {left + pw - 170, ly - 4}, {left + pw - 145, ly - 4}, colour, 2);
    put_text(img, s.name, {left + pw - 140, ly}, 0.42);
  }
  put_text(img, o.title, {left, 25}, 0.6, 1);
  put_text(img, o.x_label, {left + pw / 2 - 40, o.height - 12});
  put_text(img, o.y_label, {5, top - 10});
  save_png(path, img);
}

void write_heatmap(const std::string& path, const std::vector<std::vector<double>>& values,
                   const std::vector<std::string>& row_labels, const std::vector<std::string>& column_labels,
                   const PlotOptions& o) {
  if (values.empty() || values.front().empty()) throw UsageError("heatmap: no values");
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& r : values)
    for (double v : r)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (std::isfinite(o.y_min)) lo = o.y_min;
  if (std::isfinite(o.y_max)) hi = o.y_max;
  if (!(hi > lo)) hi = lo + 1;
  const int rows = static_cast<int>(values.size()), cols = static_cast<int>(values.front().size());
  const int left = 150, top = 40, cell_w = std::max(40, (o.width - left - 80) / cols), cell_h = 22;
  cv::Mat img(top + rows * cell_h + 60, left + cols * cell_w + 80, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::Mat ramp(1, 256, CV_8UC1);
  for (int i = 0; i < 256; ++i) ramp.at<uint8_t>(0, i) = static_cast<uint8_t>(i);
  cv::Mat colours;
  cv::applyColorMap(ramp, colours, cv::COLORMAP_VIRIDIS);
  for (int r = 0; r < rows; ++r) {
    put_text(img, r < static_cast<int>(row_labels.size()) ? row_labels[r] : "", {5, top + r * cell_h + 15}, 0.4);
    for (int c = 0; c < cols; ++c) {
      const double v = values[r][c];
      const cv::Point a{left + c * cell_w, top + r * cell_h}, b{left + (c + 1) * cell_w - 1, top + (r + 1) * cell_h - 1};
      if (!std::isfinite(v)) {
        cv::rectangle(img, a, b, cv::Scalar(220, 220, 220), cv::FILLED);
        continue;
      }
      const int idx = std::clamp(static_cast<int>((v - lo) / (hi - lo) * 255), 0, 255);
      const cv::Vec3b col = colours.at<cv::Vec3b>(0, idx);
      cv::rectangle(img, a, b, cv::Scalar(col[0], col[1], col[2]), cv::FILLED);
      cv::putText(img, fmt(v), {a.x + 3, a.y + 15}, cv::FONT_HERSHEY_SIMPLEX, 0.35,
                  idx > 150 ? cv::Scalar(0, 0, 0) : cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    }
  }
  for (int c = 0; c < cols; ++c)
    put_text(img, c < static_cast<int>(column_labels.size()) ? column_labels[c] : "", {left + c * cell_w + 3, top + rows * cell_h + 16}, 0.4);
  put_text(img, o.title, {5, 25}, 0.6);
  put_text(img, fmt(lo) + " .. " + fmt(hi), {left, top + rows * cell_h + 40}, 0.4);
  save_png(path, img);
}

}  // namespace medlens
