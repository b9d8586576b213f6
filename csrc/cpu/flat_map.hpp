// csrc/cpu/flat_map.hpp - an open-addressing hash map from uint64 keys to
// int64 values (internal): linear probing over a power-of-two table, no
// deletion. The n-gram model's (context, token) look-ups go through it; a
// key and its value share a slot, so a hit costs one cache line.
#pragma once
#include <cstdint>
#include <vector>

namespace kexue {
namespace cpu {

class FlatMap {
 public:
  static constexpr std::uint64_t kEmpty = ~0ull;

  explicit FlatMap(std::size_t expected = 16) { rehash(capacity_for(expected)); }

  std::size_t size() const { return size_; }

  /// The value of `key`, or `missing`.
  std::int64_t get(std::uint64_t key, std::int64_t missing = -1) const {
    std::size_t i = slot(key);
    while (true) {
      const Slot& sl = slots_[i];
      if (sl.key == key) return sl.val;
      if (sl.key == kEmpty) return missing;
      i = (i + 1) & mask_;
    }
  }

  /// Hint the cache about the slot of `key` (a look-up that will follow).
  void prefetch(std::uint64_t key) const { __builtin_prefetch(&slots_[slot(key)]); }

  /// A reference to the value of `key`, inserted as `init` when absent.
  std::int64_t& at(std::uint64_t key, std::int64_t init = 0) {
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(slots_.size() * 2);
    std::size_t i = slot(key);
    while (true) {
      Slot& sl = slots_[i];
      if (sl.key == key) return sl.val;
      if (sl.key == kEmpty) {
        sl.key = key;
        sl.val = init;
        ++size_;
        return sl.val;
      }
      i = (i + 1) & mask_;
    }
  }

  /// Calls fn(key, value) for every entry (table order).
  template <class F>
  void for_each(F&& fn) const {
    for (const Slot& sl : slots_)
      if (sl.key != kEmpty) fn(sl.key, sl.val);
  }

 private:
  static std::size_t capacity_for(std::size_t n) {
    std::size_t c = 16;
    while (c * 3 < n * 4 + 4) c *= 2;
    return c;
  }
  std::size_t slot(std::uint64_t key) const {
    std::uint64_t h = key * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing
    h ^= h >> 29;
    return static_cast<std::size_t>(h) & mask_;
  }
  struct Slot {
    std::uint64_t key;
    std::int64_t val;
  };
  void rehash(std::size_t cap) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{kEmpty, 0});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& sl : old)
      if (sl.key != kEmpty) at(sl.key, sl.val);
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0, size_ = 0;
};

}  // namespace cpu
}  // namespace kexue
