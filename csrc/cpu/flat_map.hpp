// csrc/cpu/flat_map.hpp - an open-addressing hash map from uint64 keys to
// int64 values (internal): linear probing over a power-of-two table, no
// deletion. The n-gram model's (context, token) look-ups go through it.
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
      const std::uint64_t k = keys_[i];
      if (k == key) return vals_[i];
      if (k == kEmpty) return missing;
      i = (i + 1) & mask_;
    }
  }

  /// A reference to the value of `key`, inserted as `init` when absent.
  std::int64_t& at(std::uint64_t key, std::int64_t init = 0) {
    if ((size_ + 1) * 4 > keys_.size() * 3) rehash(keys_.size() * 2);
    std::size_t i = slot(key);
    while (true) {
      const std::uint64_t k = keys_[i];
      if (k == key) return vals_[i];
      if (k == kEmpty) {
        keys_[i] = key;
        vals_[i] = init;
        ++size_;
        return vals_[i];
      }
      i = (i + 1) & mask_;
    }
  }

  /// Calls fn(key, value) for every entry (table order).
  template <class F>
  void for_each(F&& fn) const {
    for (std::size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] != kEmpty) fn(keys_[i], vals_[i]);
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
  void rehash(std::size_t cap) {
    std::vector<std::uint64_t> ok = std::move(keys_);
    std::vector<std::int64_t> ov = std::move(vals_);
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, 0);
    mask_ = cap - 1;
    size_ = 0;
    for (std::size_t i = 0; i < ok.size(); ++i)
      if (ok[i] != kEmpty) at(ok[i], ov[i]);
  }

  std::vector<std::uint64_t> keys_;
  std::vector<std::int64_t> vals_;
  std::size_t mask_ = 0, size_ = 0;
};

}  // namespace cpu
}  // namespace kexue
