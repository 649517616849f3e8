// Self-contained HTML reports (inline CSS, images as data: URIs): one file a clinician can open
// anywhere, with nothing fetched from the network.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace medlens {

/// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string html_escape(const std::string& text);

/// Builds a report page section by section.
class HtmlReport {
 public:
  explicit HtmlReport(std::string title);
  void heading(const std::string& text, int level = 2);
  void paragraph(const std::string& text, const std::string& css_class = "");
  /// A raw HTML fragment (already escaped by the caller).
  void raw(const std::string& html);
  /// rows[0] is the header row.
  void table(const std::vector<std::vector<std::string>>& rows);
  void image_png(const std::vector<uint8_t>& png, const std::string& caption, int width = 420);
  /// Writes the page to `path` atomically.
  void save(const std::string& path) const;
  std::string str() const;

 private:
  std::string title_, body_;
};

}  // namespace medlens
