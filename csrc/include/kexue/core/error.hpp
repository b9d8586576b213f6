// kexue/core/error.hpp - the error type and the argument-check vocabulary.
//
// Every public entry point checks its arguments before any work and throws
// kexue::Error with a message of the form
//   [kexue.crf.viterbi] emissions must be 3-D [B,T,K]; got shape (4, 5)
// The Python module maps ErrorKind to ValueError / TypeError / IndexError.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

#include "kexue/core/macros.hpp"

namespace kexue {

enum class ErrorKind { Value, Type, Index, Runtime };  // Runtime: a CUDA runtime error

class KX_API Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

/// Throw a kexue::Error of `kind` with "[kexue.<op>] " prepended to the message.
template <class... Parts>
[[noreturn]] void fail(ErrorKind kind, const char* op, const Parts&... parts) {
  throw Error(kind, detail::concat("[kexue.", op, "] ", parts...));
}

}  // namespace kexue

/// Check a condition; on failure throw a ValueError-kind error naming the op.
#define KX_CHECK_VALUE(cond, op, ...) \
  do {                                \
    if (!(cond)) ::kexue::fail(::kexue::ErrorKind::Value, op, __VA_ARGS__); \
  } while (0)
#define KX_CHECK_TYPE(cond, op, ...) \
  do {                               \
    if (!(cond)) ::kexue::fail(::kexue::ErrorKind::Type, op, __VA_ARGS__); \
  } while (0)
#define KX_CHECK_INDEX(cond, op, ...) \
  do {                                \
    if (!(cond)) ::kexue::fail(::kexue::ErrorKind::Index, op, __VA_ARGS__); \
  } while (0)
