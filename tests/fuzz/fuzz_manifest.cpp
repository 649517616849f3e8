// libFuzzer target for the manifest CSV reader: RFC 4180 quoting across lines, BOM, header
// checks, ragged rows. Anything but a medlens::Error escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "core/error.h"
#include "io/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    const medlens::Manifest m = medlens::parse_manifest(in, "fuzz.csv", "/data", false);
    for (const auto& r : m.rows) (void)r.channel_paths({"path", "T2"});
    (void)m.labels();
  } catch (const medlens::Error&) {
  }
  return 0;
}
