#include "core/voxel_buffer.h"

#include <sys/mman.h>

#include <cstdint>
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

void advise_huge_pages(const void* p, size_t n) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  if (n < 2 * kHuge) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}

std::vector<float> float_buffer(size_t n) {
  std::vector<float> v;
  v.reserve(n);
  advise_huge_pages(v.data(), n * sizeof(float));
  v.resize(n);
  return v;
}

}  // namespace medlens
