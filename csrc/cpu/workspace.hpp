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

/// Rows per parallel chunk: fixed by B alone (never by the thread count), so
/// per-chunk gradient accumulators reduce in the same order for any threads.
inline std::int64_t row_grain(std::int64_t B) { return B <= 32 ? 1 : (B + 31) / 32; }

}  // namespace cpu
}  // namespace kexue
