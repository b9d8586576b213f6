// csrc/cpu/global_pointer.hpp - the CPU backend of kexue.global_pointer
// (internal). Inputs are checked by csrc/api/global_pointer.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "kexue/global_pointer.hpp"

namespace kexue {
namespace cpu {

struct GpShape {
  std::int64_t B, T, E, D;  ///< D: head size (scores) or d (efficient: h has 2d channels)
};

void gp_scores(const GpShape& s, const Array& q, const Array& k, const bool* mask,
               const global_pointer::Options& opt, const Array& out);
void gp_scores_backward(const GpShape& s, const Array& q, const Array& k, const Array& ds,
                        const bool* mask, const global_pointer::Options& opt, const Array& dq,
                        const Array& dk);
void gp_efficient(const GpShape& s, const Array& h, const Array& W, const Array* bias,
                  const bool* mask, const global_pointer::Options& opt, const Array& out);
void gp_efficient_backward(const GpShape& s, const Array& h, const Array& W, const Array& ds,
                           const Array* bias, const bool* mask, const global_pointer::Options& opt,
                           const Array& dh, const Array& dW, const Array& dbias);

/// Decode checked scores [B,E,T,T] (see kexue::global_pointer::decode).
std::vector<global_pointer::Span> gp_decode(const Array& scores, double threshold, const bool* mask,
                                            bool flat);

}  // namespace cpu
}  // namespace kexue
