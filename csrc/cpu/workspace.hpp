// csrc/cpu/workspace.hpp - 64-byte-aligned scratch memory for one chunk (internal).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace kexue {
namespace cpu {

class Workspace {
 public:
  explicit Workspace(std::size_t bytes) : buf_(new char[bytes + 64]) {
    const auto addr = reinterpret_cast<std::uintptr_t>(buf_.get());
    ptr_ = buf_.get() + ((64 - addr % 64) % 64);
  }
  char* data() const { return ptr_; }

 private:
  std::unique_ptr<char[]> buf_;
  char* ptr_;
};

/// 64-byte-aligned scratch of at least `bytes`, owned by the calling thread
/// and kept between calls (grown, never shrunk): for kernels that parallel_for
/// calls once per small work item, so no item pays an allocation. One user at
/// a time per thread (the kernels using it call no other user).
inline char* thread_scratch(std::size_t bytes) {
  thread_local std::unique_ptr<char[]> buf;
  thread_local std::size_t cap = 0;
  if (cap < bytes + 64) {
    buf.reset(new char[bytes + 64]);
    cap = bytes + 64;
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(buf.get());
  return buf.get() + ((64 - addr % 64) % 64);
}

/// Rows per parallel chunk: fixed by B alone (never by the thread count), so
/// per-chunk gradient accumulators reduce in the same order for any threads.
/// Small batches split in two (both threads of a 2-core machine busy); from
/// 16 rows on, chunks are multiples of 8 rows (full groups for the 8-lane
/// kernels), at most 64 chunks.
inline std::int64_t row_grain(std::int64_t B) {
  if (B < 16) return B < 2 ? 1 : (B + 1) / 2;
  const std::int64_t groups = (B + 7) / 8;
  return 8 * ((groups + 63) / 64);
}

}  // namespace cpu
}  // namespace kexue
