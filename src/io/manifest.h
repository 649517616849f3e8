// Manifests: CSV with a header `path,label[,mask][,split][,any subgroup columns]`, paths
// relative to the manifest's folder (the CLI contract). Torch-free.
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

namespace medlens {

struct ManifestRow {
  std::string path;    ///< absolute or relative to the working folder (resolved at load)
  std::string label;   ///< class name (may be empty for unlabelled prediction)
  std::string mask;    ///< resolved mask path, or empty
  std::string split;   ///< e.g. train / val / test, or empty
  std::map<std::string, std::string> columns;  ///< every column as written, subgroups included
  std::string folder;  ///< the manifest's folder, which relative paths are resolved against

  /// The files of a multi-channel input, in channel order: `path` first, then the column named
  /// by each further channel (e.g. {"T1", "contrast2"} reads path and contrast2). InputError
  /// naming the row's path when a channel's column is missing or empty.
  std::vector<std::string> channel_paths(const std::vector<std::string>& channel_names) const;
};

struct Manifest {
  std::string file;                 ///< the CSV read
  std::vector<std::string> header;  ///< column names in order
  std::vector<ManifestRow> rows;

  /// Rows whose split equals `split` (all rows when `split` is empty).
  std::vector<ManifestRow> select(const std::string& split) const;
  /// Distinct labels in first-seen order, or sorted when `sorted`.
  std::vector<std::string> labels(bool sorted = true) const;
};

/// Reads a manifest. RFC 4180 quoting is accepted (commas, doubled quotes and line breaks inside
/// quoted fields). Throws InputError naming the file and line for a missing or repeated header
/// column, ragged rows, an unterminated quote, or (when check_files) a missing image.
Manifest load_manifest(const std::string& csv, bool check_files = true);

/// The same from a stream: `name` is what errors name, `folder` what relative paths resolve
/// against.
Manifest parse_manifest(std::istream& in, const std::string& name, const std::string& folder, bool check_files);

}  // namespace medlens
