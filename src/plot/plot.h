// Simple, dependable charts as PNG (OpenCV drawing): training curves, reliability diagrams,
// risk-coverage and attack curves. A leaf utility used by training, metrics reports and the
// audit; no plotting library needed at run time.
#pragma once

#include <cmath>
#include <string>
#include <vector>

namespace medlens {

struct Series {
  std::string name;
  std::vector<double> x, y;  ///< same length; NaN y values leave a gap
  bool dashed = false;
  bool markers = false;
};

struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 800, height = 500;
  /// Fixed axis ranges; NaN = from the data.
  double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;
  /// Draw the y = x diagonal (reliability diagrams).
  bool diagonal = false;
};

/// Writes a line chart with a legend to `path` (PNG) through AtomicOutput. Throws InputError
/// when the file cannot be written, UsageError for empty or mismatched series.
void write_line_plot(const std::string& path, const std::vector<Series>& series, const PlotOptions& options);

/// Writes a heat map (rows x columns of values, colour bar) with row/column labels.
void write_heatmap(const std::string& path, const std::vector<std::vector<double>>& values,
                   const std::vector<std::string>& row_labels, const std::vector<std::string>& column_labels,
                   const PlotOptions& options);

}  // namespace medlens
