// Threads: one place decides how many, so LibTorch, our own loops and the CLI agree.
#pragma once

#include <cstdint>
#include <functional>

namespace medlens {

/// Threads medlens uses: MEDLENS_THREADS if set, else the machine's hardware threads.
int thread_count();

/// Sets LibTorch's intra-op threads to thread_count() (LibTorch defaults to one here).
/// Idempotent; call once at program start.
void init_threads();

/// Runs fn(i) for i in [0, n) on up to thread_count() threads. The first exception thrown by
/// any fn is rethrown on the calling thread after all workers stop.
void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

}  // namespace medlens
