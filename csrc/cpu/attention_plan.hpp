// csrc/cpu/attention_plan.hpp - one checked attention problem as the per-ISA
// kernels see it (internal). Built by csrc/cpu/attention.cpp after the front
// door's checks; every pointer is valid for the sizes given.
#pragma once
#include <cstdint>

namespace kexue {
namespace cpu {

/// Query rows per block (a multiple of every vector width) and keys per block.
constexpr std::int64_t kAttnBq = 64;
constexpr std::int64_t kAttnBk = 64;
/// Keys per split-K chunk of decode (fixed: results never depend on threads).
constexpr std::int64_t kDecodeChunk = 512;

struct AttnPlan {
  std::int64_t B = 0, H = 0, Hkv = 0, N = 0, M = 0, D = 0, Dv = 0;
  const void* q = nullptr;  ///< [B,H,N,D] (decode: [B,H,D])
  const void* k = nullptr;  ///< [B,Hkv,M,D]
  const void* v = nullptr;  ///< [B,Hkv,M,Dv]
  void* out = nullptr;      ///< [B,H,N,Dv]
  void* lse = nullptr;      ///< [B,H,N], may be null in the forward

  bool causal = false;
  std::int64_t window = 0;             ///< 0: none
  const bool* bmask = nullptr;         ///< bool mask, strides ms
  const void* bias = nullptr;          ///< float mask (q's dtype), strides ms
  std::int64_t ms[4] = {0, 0, 0, 0};   ///< element strides of the mask over (b,h,i,j); 0 broadcasts
  const std::int64_t* cseg = nullptr;  ///< [B,N] cumsum of the segment ids
  double scale = 1.0;
  const double* row_scale = nullptr;   ///< [B,H,N] per-query scale (logn), else `scale`
  const double* alibi = nullptr;       ///< [H]
  bool interleaved = false;
  const double* qcos = nullptr;        ///< [N, D/2] RoPE of the query rows, null: no rope
  const double* qsin = nullptr;
  const double* kcos = nullptr;        ///< [M, D/2]
  const double* ksin = nullptr;

  // backward
  const void* dout = nullptr;  ///< [B,H,N,Dv]
  const void* delta = nullptr; ///< [B,H,N] rowsum(dout * out), q's dtype
  void* dq = nullptr;          ///< [B,H,N,D]
  void* dq_acc = nullptr;      ///< [G,B,H,N,Dp] q's dtype, zeroed
  void* dk = nullptr;          ///< [B,Hkv,M,D]
  void* dv = nullptr;          ///< [B,Hkv,M,Dv]
  std::int64_t G = 1;          ///< key-block groups per (b, kv head)
  std::int64_t Dp = 0;         ///< D rounded up to the vector width
  std::int64_t Dvp = 0;        ///< Dv rounded up to the vector width
  // the query side packed once (bwd_pack) for every key block:
  void* qt = nullptr;   ///< [B,H,nqb,D,Bq] scale_i * R q_i, transposed, zero columns past N
  void* qr = nullptr;   ///< [B,H,N,Dp] the same rows
  void* dot = nullptr;  ///< [B,H,nqb,Dv,Bq] dout transposed
  void* dor = nullptr;  ///< [B,H,N,Dvp] dout rows (null: dout itself, Dv == Dvp)
  void* ls = nullptr;   ///< [B,H,nqb*Bq] lse, +inf for empty rows and padding
  void* dl = nullptr;   ///< [B,H,nqb*Bq] delta, 0 for padding

  // decode (N = 1, q [B,H,D], k/v caches of M = Mmax rows)
  const std::int64_t* lengths = nullptr;  ///< [B]
  std::int64_t chunks = 0;                ///< split-K chunks per sequence
  double* part_ml = nullptr;              ///< [B,H,chunks,2] (m, l)
  void* part_o = nullptr;                 ///< [B,H,chunks,Dv] q's dtype
};

struct AttnKernels {
  /// Items [begin, end) of B*H*ceil(N/Bq) query blocks.
  void (*fwd_f32)(const AttnPlan&, std::int64_t begin, std::int64_t end);
  void (*fwd_f64)(const AttnPlan&, std::int64_t begin, std::int64_t end);
  /// Items [begin, end) of B*H*ceil(N/Bq): the packed query side of the backward.
  void (*pack_f32)(const AttnPlan&, std::int64_t begin, std::int64_t end);
  void (*pack_f64)(const AttnPlan&, std::int64_t begin, std::int64_t end);
  /// Items [begin, end) of B*Hkv*G (batch, kv head, key-block group).
  void (*bwd_f32)(const AttnPlan&, std::int64_t begin, std::int64_t end);
  void (*bwd_f64)(const AttnPlan&, std::int64_t begin, std::int64_t end);
  /// Items [begin, end) of B*Hkv*chunks.
  void (*dec_f32)(const AttnPlan&, std::int64_t begin, std::int64_t end);
  void (*dec_f64)(const AttnPlan&, std::int64_t begin, std::int64_t end);
};

const AttnKernels& attn_kernels();

}  // namespace cpu
}  // namespace kexue
