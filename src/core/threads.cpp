#include <ATen/Parallel.h>

#include <mutex>

#include "core/parallel.h"

namespace medlens {

void init_threads() {
  static std::once_flag once;
  std::call_once(once, [] { at::set_num_threads(thread_count()); });
}

}  // namespace medlens
