// kexue/core/parallel.hpp - the one thread pool of kexue.
//
// parallel_for(n, grain, fn) splits [0, n) into chunks of `grain` items (the
// last may be shorter) and calls fn(begin, end) once per chunk, on the pool's
// threads and the caller's. The chunks depend only on n and grain, never on
// the thread count, so a kernel that writes per-chunk results and reduces
// them in chunk order is bitwise identical for 1 and N threads. An exception
// thrown by fn is carried back and rethrown in the caller (the first one, by
// chunk order); the remaining chunks are skipped. Nested calls and calls made
// while another thread holds the pool run serially on the calling thread.
#pragma once
#include <cstdint>
#include <functional>

#include "kexue/core/macros.hpp"

namespace kexue {

KX_API void parallel_for(std::int64_t n, std::int64_t grain,
                         const std::function<void(std::int64_t, std::int64_t)>& fn);

/// Number of threads parallel_for uses (the caller included). Default: the
/// KEXUE_NUM_THREADS environment variable, else the hardware concurrency.
KX_API int get_num_threads();
/// Set the thread count (>= 1); throws kexue::Error (ValueError kind) otherwise.
KX_API void set_num_threads(int n);

}  // namespace kexue
