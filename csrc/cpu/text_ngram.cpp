// csrc/cpu/text_ngram.cpp - the interpolated Kneser-Ney n-gram model:
// counting, the adjusted counts and discounts, queries, top-k candidates and
// the binary file format.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <tuple>
#include <unordered_map>

#include "cpu/text.hpp"
#include "kexue/core/error.hpp"

namespace kexue {
namespace text {

namespace {

constexpr const char* kOp = "text.NGramLM";
std::atomic<std::uint64_t> g_uid{1};

struct Entry {
  std::int32_t node, w;
  std::int64_t c;
};

/// Everything that follows from the contexts (parent, token) and the sorted
/// adjusted-count entries: the look-up tables, T, U, the discounts, p_1 and
/// the unigram order.
std::shared_ptr<NGramImpl> finalize(int N, std::int64_t V, std::vector<std::int32_t> parent,
                                    std::vector<std::int32_t> token,
                                    const std::vector<Entry>& entries) {
  auto m = std::make_shared<NGramImpl>();
  m->N = N;
  m->V = V;
  m->A = V + 2;
  m->uid = g_uid.fetch_add(1);
  const std::size_t nn = parent.size();
  m->len.assign(nn, 0);
  m->child = cpu::FlatMap(nn);
  for (std::size_t h = 1; h < nn; ++h) {
    m->len[h] = static_cast<std::int8_t>(m->len[static_cast<std::size_t>(parent[h])] + 1);
    m->child.at(m->key(parent[h], token[h])) = static_cast<std::int64_t>(h);
  }
  m->ctx1.assign(static_cast<std::size_t>(m->A), -1);
  for (std::size_t h = 1; h < nn; ++h)
    if (parent[h] == 0) m->ctx1[static_cast<std::size_t>(token[h])] = static_cast<std::int32_t>(h);
  m->parent = std::move(parent);
  m->token = std::move(token);
  m->succ_off.assign(nn + 1, 0);
  m->succ_w.resize(entries.size());
  m->succ_c.resize(entries.size());
  m->count = cpu::FlatMap(entries.size());
  std::vector<std::int64_t> Tn(nn, 0), n1(static_cast<std::size_t>(N) + 1, 0),
      n2(static_cast<std::size_t>(N) + 1, 0);
  m->U.assign(nn, 0);
  for (std::size_t e = 0; e < entries.size(); ++e) {
    const Entry& en = entries[e];
    const auto h = static_cast<std::size_t>(en.node);
    m->succ_off[h + 1] += 1;
    m->succ_w[e] = en.w;
    m->succ_c[e] = en.c;
    m->count.at(m->key(en.node, en.w)) = en.c;
    Tn[h] += en.c;
    m->U[h] += 1;
    const auto order = static_cast<std::size_t>(m->len[h] + 1);
    if (en.c == 1) n1[order] += 1;
    if (en.c == 2) n2[order] += 1;
  }
  for (std::size_t h = 0; h < nn; ++h) m->succ_off[h + 1] += m->succ_off[h];
  m->D.assign(static_cast<std::size_t>(N) + 1, 0.0);
  for (int o = 1; o <= N; ++o) {
    const auto a = static_cast<double>(n1[static_cast<std::size_t>(o)]);
    const auto b = static_cast<double>(n2[static_cast<std::size_t>(o)]);
    m->D[static_cast<std::size_t>(o)] = a > 0.0 ? a / (a + 2.0 * b) : 0.5;
  }
  m->T.resize(nn);
  m->lam.resize(nn);
  for (std::size_t h = 0; h < nn; ++h) {
    m->T[h] = static_cast<double>(Tn[h]);
    const double D = m->D[static_cast<std::size_t>(m->len[h] + 1)];
    m->lam[h] = Tn[h] > 0 ? D * static_cast<double>(m->U[h]) / m->T[h] : 1.0;
  }
  // p_1(w) = max(a_1(w) - D_1, 0) / T_1 + (D_1 U_1 / T_1) / (V + 1)
  const double u = 1.0 / static_cast<double>(V + 1);
  m->p1.assign(static_cast<std::size_t>(V + 1), 0.0);
  for (std::int64_t w = 0; w <= V; ++w) {
    const double c = static_cast<double>(m->count.get(m->key(0, w), 0));
    m->p1[static_cast<std::size_t>(w)] =
        (Tn[0] > 0 ? std::max(c - m->D[1], 0.0) / m->T[0] : 0.0) + (Tn[0] > 0 ? m->lam[0] : 1.0) * u;
  }
  m->uni_order.resize(static_cast<std::size_t>(V));
  std::iota(m->uni_order.begin(), m->uni_order.end(), 0);
  std::stable_sort(m->uni_order.begin(), m->uni_order.end(), [&](std::int32_t a, std::int32_t b) {
    return m->p1[static_cast<std::size_t>(a)] > m->p1[static_cast<std::size_t>(b)];
  });
  return m;
}

}  // namespace

NGramModel NGramModel::fit(const std::int64_t* tokens, const std::int64_t* offsets,
                           std::int64_t n_sent, int order, std::int64_t V) {
  if (order < 2 || order > 5) fail(ErrorKind::Value, kOp, "order must be in [2, 5]; got ", order);
  if (V < 1 || V > (1ll << 30)) fail(ErrorKind::Value, kOp, "vocab_size must be in [1, 2^30]; got ", V);
  const std::int64_t A = V + 2, BOS = V + 1, EOS = V;
  const int N = order;
  std::vector<std::int32_t> parent{-1}, token{-1};
  std::vector<std::int8_t> len{0};
  std::int64_t total = offsets[n_sent] - offsets[0];
  cpu::FlatMap child(static_cast<std::size_t>(total) / 2 + 16);
  cpu::FlatMap raw(static_cast<std::size_t>(total) * static_cast<std::size_t>(N) / 2 + 16);
  auto key = [A](std::int64_t h, std::int64_t w) {
    return static_cast<std::uint64_t>(h) * static_cast<std::uint64_t>(A) + static_cast<std::uint64_t>(w);
  };
  for (std::int64_t s = 0; s < n_sent; ++s) {
    const std::int64_t* x = tokens + offsets[s];
    const std::int64_t n = offsets[s + 1] - offsets[s];
    for (std::int64_t i = 0; i < n; ++i)
      if (x[i] < 0 || x[i] >= V)
        fail(ErrorKind::Index, kOp, "sentences must hold token ids in [0, ", V, "); sentence ", s,
             " has ", x[i]);
    auto tok = [&](std::int64_t j) { return j == 0 ? BOS : (j == n + 1 ? EOS : x[j - 1]); };
    for (std::int64_t j = 1; j <= n + 1; ++j) {
      const std::int64_t w = tok(j);
      std::int64_t node = 0;
      raw.at(key(0, w)) += 1;
      for (std::int64_t k = 1; k < N && k <= j; ++k) {
        const std::int64_t t = tok(j - k);
        std::int64_t& c = child.at(key(node, t), -1);
        if (c < 0) {
          c = static_cast<std::int64_t>(parent.size());
          if (c >= (1ll << 31) - 1) fail(ErrorKind::Value, kOp, "too many contexts (2^31)");
          parent.push_back(static_cast<std::int32_t>(node));
          token.push_back(static_cast<std::int32_t>(t));
          len.push_back(static_cast<std::int8_t>(len[static_cast<std::size_t>(node)] + 1));
        }
        node = c;
        raw.at(key(node, w)) += 1;
      }
    }
  }
  // adjusted counts: raw for the highest order and for contexts starting with
  // BOS, else the number of distinct tokens that precede the n-gram.
  auto uses_raw = [&](std::int64_t h) {
    const auto l = len[static_cast<std::size_t>(h)];
    return l == N - 1 || (l > 0 && token[static_cast<std::size_t>(h)] == BOS);
  };
  cpu::FlatMap adj(raw.size());
  raw.for_each([&](std::uint64_t k, std::int64_t c) {
    const auto h = static_cast<std::int64_t>(k / static_cast<std::uint64_t>(A));
    const auto w = static_cast<std::int64_t>(k % static_cast<std::uint64_t>(A));
    if (uses_raw(h)) adj.at(k) += c;
    if (h > 0) {
      const std::int64_t p = parent[static_cast<std::size_t>(h)];
      if (!uses_raw(p)) adj.at(key(p, w)) += 1;
    }
  });
  std::vector<Entry> entries;
  entries.reserve(adj.size());
  adj.for_each([&](std::uint64_t k, std::int64_t c) {
    entries.push_back(Entry{static_cast<std::int32_t>(k / static_cast<std::uint64_t>(A)),
                            static_cast<std::int32_t>(k % static_cast<std::uint64_t>(A)), c});
  });
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.node, a.w) < std::tie(b.node, b.w);
  });
  return NGramModel(finalize(N, V, std::move(parent), std::move(token), entries));
}

int NGramModel::order() const { return impl_->N; }
std::int64_t NGramModel::vocab_size() const { return impl_->V; }
std::int64_t NGramModel::n_contexts() const { return static_cast<std::int64_t>(impl_->parent.size()); }
std::int64_t NGramModel::n_ngrams() const { return static_cast<std::int64_t>(impl_->succ_w.size()); }
std::vector<double> NGramModel::discounts() const {
  return std::vector<double>(impl_->D.begin() + 1, impl_->D.end());
}

void NGramModel::position_logprobs(const std::int64_t* x, std::int64_t n, double* out) const {
  impl_->positions(x, n, 0, n + 1, out);
}

double NGramModel::logprob(const std::int64_t* x, std::int64_t n) const {
  double buf[64];
  double s = 0.0;
  for (std::int64_t t0 = 0; t0 <= n; t0 += 64) {
    const std::int64_t t1 = std::min(n + 1, t0 + 64);
    impl_->positions(x, n, t0, t1, buf);
    for (std::int64_t t = t0; t < t1; ++t) s += buf[t - t0];
  }
  return s;
}

void NGramModel::next_logprobs(const std::int64_t* prefix, std::int64_t n, double* out) const {
  // prob() for every w at once: p = a + lam * p level by level, where a = 0
  // (so p = lam * p, the same bits) for the tokens a context never saw; the
  // seen ones come from the context's entry list instead of one look-up per token.
  const NGramImpl& m = *impl_;
  std::int32_t chain[8];
  const int depth = m.contexts(prefix, n, chain);
  const auto W = static_cast<std::size_t>(m.V + 1);
  std::copy(m.p1.begin(), m.p1.begin() + static_cast<std::ptrdiff_t>(W), out);
  for (int k = 1; k <= depth; ++k) {
    const auto h = static_cast<std::size_t>(chain[k]);
    const double lam = m.lam[h], T = m.T[h], D = m.D[static_cast<std::size_t>(k + 1)];
    for (std::size_t w = 0; w < W; ++w) out[w] = lam * out[w];
    for (std::int64_t e = m.succ_off[h]; e < m.succ_off[h + 1]; ++e) {
      const auto w = static_cast<std::size_t>(m.succ_w[static_cast<std::size_t>(e)]);
      const double a = std::max(static_cast<double>(m.succ_c[static_cast<std::size_t>(e)]) - D, 0.0) / T;
      out[w] = a + out[w];
    }
  }
  for (std::size_t w = 0; w < W; ++w) out[w] = std::log(out[w]);
}

void NGramModel::topk(const std::int64_t* prefix, std::int64_t n, std::int64_t k,
                      std::vector<std::int32_t>& out) const {
  std::int32_t chain[8];
  const int depth = impl_->contexts(prefix, n, chain);
  const TopK top = topk_cached(*impl_, chain, depth, k);
  out.assign(top.ids, top.ids + top.n);
}

namespace {

/// Per node, its tokens (end excluded) sorted by (log p desc, id asc) under
/// that node's context chain: a prefix of the full order, or all of it.
struct NodeList {
  std::vector<std::int32_t> ids;
  bool complete = false;
};

struct TopkCache {
  std::uint64_t uid = 0;
  std::unordered_map<std::int32_t, NodeList> lists;
  std::size_t held = 0;  ///< ids held over all lists
  NodeList root;         ///< the unigram order
  std::vector<std::uint32_t> stamp;
  std::uint32_t epoch = 0;
};

/// The sorted prefix of at least `need` tokens (or all) for the contexts
/// chain[1..d]. Tokens seen after chain[d] get their exact probability; every
/// other token has p_d(w) = lam * p_{d-1}(w), so among them the order is the
/// order one level down (the unigram order at the root), and the first `need`
/// of those not seen here are the only ones that can enter.
const NodeList& top_list(TopkCache& cache, const NGramImpl& m, const std::int32_t* chain, int d,
                         std::int64_t need) {
  if (d == 0) {
    if (!cache.root.complete) {
      cache.root.ids = m.uni_order;
      cache.root.complete = true;
    }
    return cache.root;
  }
  const std::int32_t node = chain[d];
  NodeList& nl = cache.lists[node];
  if (nl.complete || static_cast<std::int64_t>(nl.ids.size()) >= need) return nl;
  const auto h = static_cast<std::size_t>(node);
  const std::int64_t n_seen = m.succ_off[h + 1] - m.succ_off[h];
  std::int64_t want = std::max<std::int64_t>(need, 2 * static_cast<std::int64_t>(nl.ids.size()));
  const NodeList& lower = top_list(cache, m, chain, d - 1, want + n_seen);
  if (cache.stamp.size() != static_cast<std::size_t>(m.V)) {
    cache.stamp.assign(static_cast<std::size_t>(m.V), 0);
    cache.epoch = 0;
  }
  if (++cache.epoch == 0) {
    std::fill(cache.stamp.begin(), cache.stamp.end(), 0);
    cache.epoch = 1;
  }
  std::vector<std::pair<double, std::int32_t>> cand;
  for (std::int64_t e = m.succ_off[h]; e < m.succ_off[h + 1]; ++e) {
    const std::int32_t w = m.succ_w[static_cast<std::size_t>(e)];
    if (w >= m.V) continue;
    cache.stamp[static_cast<std::size_t>(w)] = cache.epoch;
    cand.emplace_back(std::log(m.prob(chain, d, w)), w);
  }
  std::int64_t taken = 0;
  for (std::size_t j = 0; j < lower.ids.size() && taken < want; ++j) {
    const std::int32_t w = lower.ids[j];
    if (cache.stamp[static_cast<std::size_t>(w)] == cache.epoch) continue;
    cand.emplace_back(std::log(m.prob(chain, d, w)), w);
    ++taken;
  }
  const bool complete = lower.complete && taken < want;  // every token is in cand
  const auto kk = static_cast<std::size_t>(
      complete ? static_cast<std::int64_t>(cand.size()) : std::min<std::int64_t>(want, static_cast<std::int64_t>(cand.size())));
  auto better = [](const std::pair<double, std::int32_t>& a, const std::pair<double, std::int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(kk), cand.end(), better);
  // Only the first `want` seen-or-lower tokens are certain: a seen token
  // sorted below them might be outranked by a lower-list token not taken.
  cache.held -= nl.ids.size();
  nl.ids.resize(kk);
  for (std::size_t j = 0; j < kk; ++j) nl.ids[j] = cand[j].second;
  nl.complete = complete;
  cache.held += kk;
  return nl;
}

}  // namespace

TopK topk_cached(const NGramImpl& m, const std::int32_t* chain, int depth, std::int64_t k) {
  thread_local TopkCache cache;
  if (cache.uid != m.uid || cache.held > (std::size_t{1} << 24)) {
    cache.lists.clear();
    cache.held = 0;
    cache.root = NodeList();
    cache.uid = m.uid;
  }
  const NodeList& nl = top_list(cache, m, chain, depth, k);
  return TopK{nl.ids.data(), std::min(static_cast<std::size_t>(k), nl.ids.size())};
}

// ------------------------------------------------------------------ file format
// Little-endian, in this order:
//   char[8]  magic "KXNGRAM\0"; uint32 version (1); uint32 order N;
//   int64 V; int64 n_nodes; int64 n_entries;
//   int32 parent[n_nodes - 1], int32 token[n_nodes - 1]   (nodes 1..n_nodes-1)
//   int32 entry_node[n_entries], int32 entry_token[n_entries], int64 entry_count[n_entries]
//   uint64 FNV-1a-64 of every byte before it.
// Everything else (T, U, discounts, p_1) is recomputed on load.
namespace {

constexpr char kMagic[8] = {'K', 'X', 'N', 'G', 'R', 'A', 'M', '\0'};

std::uint64_t fnv1a(const char* p, std::size_t n, std::uint64_t h = 1469598103934665603ull) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 1099511628211ull;
  }
  return h;
}

template <class T>
void put(std::string& buf, const T* p, std::size_t n) {
  buf.append(reinterpret_cast<const char*>(p), n * sizeof(T));
}

}  // namespace

void NGramModel::save(const std::string& path) const {
  const NGramImpl& m = *impl_;
  std::string buf(kMagic, 8);
  const std::uint32_t version = 1, order = static_cast<std::uint32_t>(m.N);
  const std::int64_t nn = static_cast<std::int64_t>(m.parent.size()),
                     ne = static_cast<std::int64_t>(m.succ_w.size());
  put(buf, &version, 1);
  put(buf, &order, 1);
  put(buf, &m.V, 1);
  put(buf, &nn, 1);
  put(buf, &ne, 1);
  put(buf, m.parent.data() + 1, static_cast<std::size_t>(nn - 1));
  put(buf, m.token.data() + 1, static_cast<std::size_t>(nn - 1));
  std::vector<std::int32_t> en(static_cast<std::size_t>(ne));
  for (std::int64_t h = 0; h < nn; ++h)
    for (std::int64_t e = m.succ_off[static_cast<std::size_t>(h)]; e < m.succ_off[static_cast<std::size_t>(h) + 1]; ++e)
      en[static_cast<std::size_t>(e)] = static_cast<std::int32_t>(h);
  put(buf, en.data(), en.size());
  put(buf, m.succ_w.data(), m.succ_w.size());
  put(buf, m.succ_c.data(), m.succ_c.size());
  const std::uint64_t sum = fnv1a(buf.data(), buf.size());
  put(buf, &sum, 1);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(ErrorKind::Value, "text.NGramLM.save", "cannot open '", path, "' for writing");
  f.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  if (!f) fail(ErrorKind::Value, "text.NGramLM.save", "writing '", path, "' failed");
}

NGramModel NGramModel::load(const std::string& path) {
  const char* op = "text.NGramLM.load";
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorKind::Value, op, "cannot open '", path, "'");
  std::string buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto bad = [&](const char* why) { fail(ErrorKind::Value, op, "'", path, "' is not a valid kexue n-gram file: ", why); };
  constexpr std::size_t head = 8 + 4 + 4 + 8 + 8 + 8;
  if (buf.size() < head + 8) bad("truncated (shorter than its header)");
  if (std::memcmp(buf.data(), kMagic, 8) != 0) bad("wrong magic (not written by NGramLM.save)");
  std::uint32_t version, order;
  std::int64_t V, nn, ne;
  std::memcpy(&version, buf.data() + 8, 4);
  std::memcpy(&order, buf.data() + 12, 4);
  std::memcpy(&V, buf.data() + 16, 8);
  std::memcpy(&nn, buf.data() + 24, 8);
  std::memcpy(&ne, buf.data() + 32, 8);
  if (version != 1) bad("unsupported version");
  if (order < 2 || order > 5) bad("order outside [2, 5]");
  if (V < 1 || V > (1ll << 30) || nn < 1 || nn > (1ll << 31) || ne < 0 || ne > (1ll << 40)) bad("corrupt sizes");
  const auto want = static_cast<std::uint64_t>(head) + static_cast<std::uint64_t>(nn - 1) * 8u +
                    static_cast<std::uint64_t>(ne) * 16u + 8u;
  if (buf.size() < want) bad("truncated");
  if (buf.size() > want) bad("trailing bytes after the checksum");
  std::uint64_t sum;
  std::memcpy(&sum, buf.data() + want - 8, 8);
  if (fnv1a(buf.data(), static_cast<std::size_t>(want - 8)) != sum) bad("checksum mismatch (corrupt)");
  const char* p = buf.data() + head;
  const auto n1 = static_cast<std::size_t>(nn - 1), n2 = static_cast<std::size_t>(ne);
  std::vector<std::int32_t> parent(n1 + 1, -1), token(n1 + 1, -1);
  std::memcpy(parent.data() + 1, p, n1 * 4);
  p += n1 * 4;
  std::memcpy(token.data() + 1, p, n1 * 4);
  p += n1 * 4;
  std::vector<std::int32_t> enode(n2), ew(n2);
  std::vector<std::int64_t> ec(n2);
  std::memcpy(enode.data(), p, n2 * 4);
  p += n2 * 4;
  std::memcpy(ew.data(), p, n2 * 4);
  p += n2 * 4;
  std::memcpy(ec.data(), p, n2 * 8);
  std::vector<std::int8_t> len(n1 + 1, 0);
  cpu::FlatMap seen(n1 + 1);
  for (std::size_t h = 1; h <= n1; ++h) {
    if (parent[h] < 0 || static_cast<std::size_t>(parent[h]) >= h) bad("context parent out of order");
    if (token[h] < 0 || token[h] > V + 1) bad("context token out of range");
    len[h] = static_cast<std::int8_t>(len[static_cast<std::size_t>(parent[h])] + 1);
    if (len[h] > static_cast<int>(order) - 1) bad("context longer than the order allows");
    std::int64_t& s = seen.at(static_cast<std::uint64_t>(parent[h]) * static_cast<std::uint64_t>(V + 2) +
                              static_cast<std::uint64_t>(token[h]), -1);
    if (s >= 0) bad("duplicate context");
    s = static_cast<std::int64_t>(h);
  }
  std::vector<Entry> entries(n2);
  for (std::size_t e = 0; e < n2; ++e) {
    if (enode[e] < 0 || enode[e] >= nn || ew[e] < 0 || ew[e] > V || ec[e] < 1) bad("n-gram entry out of range");
    if (e > 0 && std::tie(enode[e - 1], ew[e - 1]) >= std::tie(enode[e], ew[e])) bad("n-gram entries not sorted");
    entries[e] = Entry{enode[e], ew[e], ec[e]};
  }
  return NGramModel(finalize(static_cast<int>(order), V, std::move(parent), std::move(token), entries));
}

}  // namespace text
}  // namespace kexue
