#include "core/voxel_buffer.h"

#include <cstdlib>

namespace medlens {

int64_t max_voxels() {
  static const int64_t limit = [] {
    if (const char* env = std::getenv("MEDLENS_MAX_VOXELS")) {
      char* end = nullptr;
      const long long v = std::strtoll(env, &end, 10);
      if (end && *end == '\0' && v > 0) return static_cast<int64_t>(v);
    }
    return int64_t{1} << 29;
  }();
  return limit;
}

}  // namespace medlens
