#include "deid/burned_text.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace medlens::deid {

namespace {

struct Component {
  int x, y, w, h, area;
};

struct Line {
  int x0, y0, x1, y1;
  std::vector<int> members;
};

// Thresholds, for 8-bit grey scaled to the image's range. Chosen on the BUSI ultrasound images
// (side labels) and on text drawn with OpenCV's Hershey fonts; see docs/DEID.md.
constexpr int kStrokeContrast = 60;    // top-hat (or black-hat) of a stroke pixel
constexpr int kBrightFloor = 140;      // light text is at least this bright
constexpr int kDarkCeiling = 115;      // dark text is at most this dark
constexpr double kRowContrast = 85.0;  // mean stroke value vs median background in the row box
constexpr double kMinInk = 0.05;       // stroke pixels / row box area

std::vector<TextRegion> detect(const cv::Mat& g, bool bright) {
  const int rows = g.rows, cols = g.cols;
  const int side = std::min(rows, cols);
  int k = std::max(7, static_cast<int>(std::lround(side / 40.0)));
  if (k % 2 == 0) ++k;
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_RECT, {k, k});
  cv::Mat hat;
  cv::morphologyEx(g, hat, bright ? cv::MORPH_TOPHAT : cv::MORPH_BLACKHAT, kernel);
  cv::Mat mask = hat >= kStrokeContrast;
  if (bright)
    mask &= g >= kBrightFloor;
  else
    mask &= g <= kDarkCeiling;

  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S);
  const int max_h = std::max(12, side / 6);
  std::vector<Component> comps;
  for (int i = 1; i < n; ++i) {
    Component c{stats.at<int>(i, cv::CC_STAT_LEFT), stats.at<int>(i, cv::CC_STAT_TOP),
                stats.at<int>(i, cv::CC_STAT_WIDTH), stats.at<int>(i, cv::CC_STAT_HEIGHT),
                stats.at<int>(i, cv::CC_STAT_AREA)};
    // Character-sized, or a word whose letters touch (bold text): as tall as a character and
    // up to a third of the image wide.
    if (c.h < 4 || c.h > max_h || c.area < 4) continue;
    if (c.w > std::max(max_h, 3 * c.h) && c.w > cols / 3) continue;
    const bool word = c.w > 2 * c.h;
    // Thin strokes: the widest stroke (twice the largest distance to the background) is small
    // against the character height.
    cv::Mat roi = (labels(cv::Rect(c.x, c.y, c.w, c.h)) == i);
    cv::Mat padded;
    cv::copyMakeBorder(roi, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, 0);
    cv::Mat dist;
    cv::distanceTransform(padded, dist, cv::DIST_L2, 3);
    double max_dist = 0;
    cv::minMaxLoc(dist, nullptr, &max_dist);
    if (2.0 * max_dist > std::max(4.5, 0.5 * c.h)) continue;
    // A word-wide component must be letters, not a bright band or a slanted tissue edge: mostly
    // gaps between strokes, with at least two upright stems (columns inked over 60% of the height).
    if (word) {
      if (static_cast<double>(c.area) / (c.w * c.h) > 0.6) continue;
      int stems = 0;
      bool in_stem = false;
      for (int x = 0; x < c.w; ++x) {
        const bool stem = cv::countNonZero(roi.col(x)) >= 0.6 * c.h;
        if (stem && !in_stem) ++stems;
        in_stem = stem;
      }
      if (stems < 2) continue;
    }
    comps.push_back(c);
  }
  std::sort(comps.begin(), comps.end(), [](const Component& a, const Component& b) { return a.x < b.x; });

  // Rows: components of similar height that overlap vertically, with gaps of at most 1.5 heights.
  std::vector<bool> used(comps.size(), false);
  std::vector<TextRegion> out;
  for (size_t i = 0; i < comps.size(); ++i) {
    if (used[i]) continue;
    std::vector<size_t> line{i};
    used[i] = true;
    for (bool grew = true; grew;) {
      grew = false;
      for (size_t j = 0; j < comps.size(); ++j) {
        if (used[j]) continue;
        const Component& d = comps[j];
        for (size_t m : line) {
          const Component& e = comps[m];
          const int y0 = std::max(e.y, d.y), y1 = std::min(e.y + e.h, d.y + d.h);
          const double overlap = static_cast<double>(y1 - y0) / std::min(e.h, d.h);
          const double ratio = static_cast<double>(std::max(e.h, d.h)) / std::min(e.h, d.h);
          const int gap = std::max(d.x - (e.x + e.w), e.x - (d.x + d.w));
          if (overlap > 0.5 && ratio < 2.0 && gap < 1.5 * std::max(e.h, d.h)) {
            line.push_back(j);
            used[j] = true;
            grew = true;
            break;
          }
        }
      }
    }
    if (line.size() < 2) continue;  // a row has two or more characters (or touching words)
    int x0 = cols, y0 = rows, x1 = 0, y1 = 0, hmax = 0;
    for (size_t m : line) {
      const Component& c = comps[m];
      x0 = std::min(x0, c.x);
      y0 = std::min(y0, c.y);
      x1 = std::max(x1, c.x + c.w);
      y1 = std::max(y1, c.y + c.h);
      hmax = std::max(hmax, c.h);
    }
    // The row must stand out from what is around it: strokes much brighter (darker) than the
    // median of the rest of the row's box, and enough ink.
    const cv::Rect box(x0, y0, x1 - x0, y1 - y0);
    const cv::Mat gb = g(box), mb = mask(box);
    std::vector<uint8_t> background;
    double ink_sum = 0;
    int ink = 0;
    for (int r = 0; r < gb.rows; ++r)
      for (int c = 0; c < gb.cols; ++c) {
        if (mb.at<uint8_t>(r, c)) {
          ink_sum += gb.at<uint8_t>(r, c);
          ++ink;
        } else {
          background.push_back(gb.at<uint8_t>(r, c));
        }
      }
    if (ink == 0 || background.empty()) continue;
    std::nth_element(background.begin(), background.begin() + background.size() / 2, background.end());
    const double median_bg = background[background.size() / 2];
    const double contrast = bright ? ink_sum / ink - median_bg : median_bg - ink_sum / ink;
    if (contrast < kRowContrast) continue;
    if (static_cast<double>(ink) / box.area() < kMinInk) continue;
    const int margin = std::max(2, hmax / 4);
    TextRegion t;
    t.x = std::max(0, x0 - margin);
    t.y = std::max(0, y0 - margin);
    t.width = std::min(cols, x1 + margin) - t.x;
    t.height = std::min(rows, y1 + margin) - t.y;
    t.characters = static_cast<int>(line.size());
    out.push_back(t);
  }
  return out;
}

}  // namespace

std::vector<TextRegion> find_text_regions(const uint8_t* grey, int rows, int cols, size_t stride) {
  if (rows < 8 || cols < 8) return {};
  const cv::Mat g(rows, cols, CV_8U, const_cast<uint8_t*>(grey), stride);
  std::vector<TextRegion> found = detect(g, true);
  for (const TextRegion& t : detect(g, false)) found.push_back(t);
  // Merge regions that overlap (pieces of one row found separately, both polarities).
  for (bool merged = true; merged;) {
    merged = false;
    for (size_t i = 0; i < found.size() && !merged; ++i)
      for (size_t j = i + 1; j < found.size() && !merged; ++j) {
        TextRegion& a = found[i];
        const TextRegion& b = found[j];
        if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) {
          const int x0 = std::min(a.x, b.x), y0 = std::min(a.y, b.y);
          const int x1 = std::max(a.x + a.width, b.x + b.width), y1 = std::max(a.y + a.height, b.y + b.height);
          a = TextRegion{x0, y0, x1 - x0, y1 - y0, a.characters + b.characters};
          found.erase(found.begin() + static_cast<long>(j));
          merged = true;
        }
      }
  }
  std::sort(found.begin(), found.end(), [](const TextRegion& a, const TextRegion& b) {
    return std::make_pair(a.y, a.x) < std::make_pair(b.y, b.x);
  });
  return found;
}

std::vector<uint8_t> to_grey8(const double* values, int rows, int cols, int samples) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  std::vector<double> lum(n);
  for (size_t i = 0; i < n; ++i) {
    if (samples == 3)
      lum[i] = 0.299 * values[3 * i] + 0.587 * values[3 * i + 1] + 0.114 * values[3 * i + 2];
    else
      lum[i] = values[i];
  }
  double lo = INFINITY, hi = -INFINITY;
  for (double v : lum) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  std::vector<uint8_t> out(n, 0);
  if (!(hi > lo)) return out;
  const double scale = 255.0 / (hi - lo);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(std::lround((lum[i] - lo) * scale));
  return out;
}

}  // namespace medlens::deid
