#include "io/manifest.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <istream>
#include <set>

#include "core/error.h"

namespace fs = std::filesystem;

namespace medlens {
namespace {

// Splits one CSV record; quoted fields may hold commas and doubled quotes.
std::vector<std::string> split_csv(const std::string& line, bool& ok) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  ok = true;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
      else if (c == '"') quoted = false;
      else cur += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  if (quoted) ok = false;
  out.push_back(cur);
  return out;
}

}  // namespace

std::vector<ManifestRow> Manifest::select(const std::string& split) const {
  if (split.empty()) return rows;
  std::vector<ManifestRow> out;
  for (const auto& r : rows)
    if (r.split == split) out.push_back(r);
  return out;
}

std::vector<std::string> Manifest::labels(bool sorted) const {
  std::vector<std::string> out;
  for (const auto& r : rows)
    if (!r.label.empty() && std::find(out.begin(), out.end(), r.label) == out.end()) out.push_back(r.label);
  if (sorted) std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ManifestRow::channel_paths(const std::vector<std::string>& channel_names) const {
  std::vector<std::string> out{path};
  for (size_t c = 1; c < channel_names.size(); ++c) {
    const auto it = columns.find(channel_names[c]);
    if (it == columns.end() || it->second.empty())
      throw InputError(path, "the model expects a '" + channel_names[c] + "' series (channel " + std::to_string(c + 1) +
                                 " of " + std::to_string(channel_names.size()) + ") and the manifest has no '" +
                                 channel_names[c] + "' column value for this row");
    const fs::path p(it->second);
    out.push_back((p.is_absolute() || folder.empty() ? p : fs::path(folder) / p).lexically_normal().string());
  }
  return out;
}

Manifest load_manifest(const std::string& csv, bool check_files) {
  std::ifstream in(csv, std::ios::binary);
  if (!in) throw InputError(csv, "cannot open manifest");
  return parse_manifest(in, csv, fs::absolute(csv).parent_path().string(), check_files);
}

Manifest parse_manifest(std::istream& in, const std::string& csv, const std::string& folder, bool check_files) {
  Manifest m;
  m.file = csv;
  const fs::path base(folder);
  std::string line;
  size_t line_no = 0;
  auto resolve = [&](const std::string& p) {
    if (p.empty()) return p;
    const fs::path path(p);
    return (path.is_absolute() ? path : base / path).lexically_normal().string();
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line == "\r") continue;
    const size_t record_line = line_no;
    // RFC 4180: a quoted field may hold line breaks, so the record goes on while its quotes are
    // unbalanced (a doubled quote counts twice and keeps the balance).
    size_t quotes = static_cast<size_t>(std::count(line.begin(), line.end(), '"'));
    std::string more;
    while (quotes % 2 == 1 && std::getline(in, more)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
      line += '\n';
      line += more;
      quotes += static_cast<size_t>(std::count(more.begin(), more.end(), '"'));
    }
    bool ok = true;
    std::vector<std::string> fields = split_csv(line, ok);
    if (!ok) throw InputError(csv, "line " + std::to_string(record_line) + ": unterminated quote");
    if (m.header.empty()) {
      for (auto& f : fields) {
        f.erase(0, f.find_first_not_of(" \xEF\xBB\xBF"));  // BOM and spaces
        f.erase(f.find_last_not_of(' ') + 1);
      }
      m.header = fields;
      if (std::find(m.header.begin(), m.header.end(), "path") == m.header.end())
        throw InputError(csv, "manifest header has no 'path' column (expected path,label[,mask][,split])");
      std::set<std::string> seen;
      for (const auto& name : m.header)
        if (!seen.insert(name).second) throw InputError(csv, "manifest header names the column '" + name + "' twice");
      continue;
    }
    if (fields.size() != m.header.size())
      throw InputError(csv, "line " + std::to_string(record_line) + " has " + std::to_string(fields.size()) +
                                " fields, the header has " + std::to_string(m.header.size()));
    ManifestRow r;
    r.folder = base.string();
    for (size_t i = 0; i < fields.size(); ++i) r.columns[m.header[i]] = fields[i];
    r.path = resolve(r.columns["path"]);
    r.label = r.columns.count("label") ? r.columns["label"] : "";
    r.mask = r.columns.count("mask") ? resolve(r.columns["mask"]) : "";
    r.split = r.columns.count("split") ? r.columns["split"] : "";
    if (r.columns["path"].empty()) throw InputError(csv, "line " + std::to_string(record_line) + ": empty path");
    if (check_files) {
      std::error_code ec;
      if (!fs::exists(r.path, ec))
        throw InputError(csv, "line " + std::to_string(record_line) + ": " + r.path + " does not exist");
      if (!r.mask.empty() && !fs::exists(r.mask, ec))
        throw InputError(csv, "line " + std::to_string(record_line) + ": mask " + r.mask + " does not exist");
    }
    m.rows.push_back(std::move(r));
  }
  if (m.header.empty()) throw InputError(csv, "manifest is empty");
  if (m.rows.empty()) throw InputError(csv, "manifest has a header but no rows");
  return m;
}

}  // namespace medlens
