#include "report/html.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "core/version.h"
#include "io/file_util.h"
#include "report/render.h"

namespace medlens {

std::string html_escape(const std::string& t) {
  std::string out;
  for (char c : t) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

HtmlReport::HtmlReport(std::string title) : title_(std::move(title)) {}

void HtmlReport::heading(const std::string& text, int level) {
  const std::string tag = "h" + std::to_string(std::clamp(level, 1, 4));
  body_ += "<" + tag + ">" + html_escape(text) + "</" + tag + ">\n";
}

void HtmlReport::paragraph(const std::string& text, const std::string& css_class) {
  body_ += "<p" + (css_class.empty() ? "" : " class=\"" + html_escape(css_class) + "\"") + ">" + html_escape(text) + "</p>\n";
}

void HtmlReport::raw(const std::string& html) { body_ += html + "\n"; }

void HtmlReport::table(const std::vector<std::vector<std::string>>& rows) {
  body_ += "<table>\n";
  for (size_t r = 0; r < rows.size(); ++r) {
    body_ += "<tr>";
    for (const auto& cell : rows[r]) body_ += (r == 0 ? "<th>" : "<td>") + html_escape(cell) + (r == 0 ? "</th>" : "</td>");
    body_ += "</tr>\n";
  }
  body_ += "</table>\n";
}

void HtmlReport::image_png(const std::vector<uint8_t>& png, const std::string& caption, int width) {
  body_ += "<figure><img width=\"" + std::to_string(width) + "\" alt=\"" + html_escape(caption) +
           "\" src=\"data:image/png;base64," + base64(png) + "\"><figcaption>" + html_escape(caption) +
           "</figcaption></figure>\n";
}

std::string HtmlReport::str() const {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html_escape(title_) +
         "</title>\n<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
         "th{background:#f3f3f3}figure{display:inline-block;margin:.5em}figcaption{font-size:.85em;color:#555}"
         ".ok{color:#176b1b;font-weight:bold}.inconclusive{color:#a05a00;font-weight:bold}.warn{color:#a05a00}"
         ".muted{color:#666;font-size:.9em}</style></head>\n<body>\n<h1>" +
         html_escape(title_) + "</h1>\n" + body_ + "<p class=\"muted\">medlens " + version() +
         ". Computer-aided diagnosis output: for review by a qualified clinician; not a diagnosis.</p>\n</body></html>\n";
}

void HtmlReport::save(const std::string& path) const {
  AtomicOutput out(path);
  {
    std::ofstream f(out.temp_path());
    f << str();
    if (!f) throw InputError(path, "cannot write report");
  }
  out.commit();
}

}  // namespace medlens
