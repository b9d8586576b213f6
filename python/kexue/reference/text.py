"""Pure-Python twins of :mod:`kexue.text` (spec kernels §A1, §A4-§A6).

* :class:`NGramLM` -- interpolated Kneser-Ney over token ids with plain dicts
  keyed by tuples (also the "pure-Python" peer of the bench);
* :func:`constrained_generate` -- CGMH-style MH, one chain at a time, every
  candidate sentence re-scored in full through ``scorer.logprob``;
* :func:`gibbs_resample` -- MLM-style Gibbs;
* :func:`log_alpha` -- the acceptance ratio of spec A6 as a function.

The core gives the same bits: same formulas in the same order, ``math.log``
(the C library's log, as the core's ``std::log``), sequential sums.

**Kneser-Ney.** Tokens 0..V-1, end of sentence ``eos = V``, begin ``bos = V + 1``
(context only). A sentence x is padded ``[bos, x_0 .. x_{n-1}, eos]``; raw
counts r(g) of every n-gram of order 1..N that ends at a predicted token.
Adjusted counts: raw for order N and for n-grams starting with bos, else the
continuation count ``#{v : r(v g) > 0}``. Per context h of order m:
``T = sum_w a(h, w)``, ``U = #{w : a(h, w) > 0}``; discount per order
``D_m = n1 / (n1 + 2 n2)`` (n1, n2: order-m n-grams with a == 1, 2; 0.5 if
n1 == 0). Then, with ``u = 1 / (V + 1)``::

    p_1(w) = max(a_1(w) - D_1, 0) / T_1 + (D_1 U_1 / T_1) u
    p_m(w | h) = max(a_m(h, w) - D_m, 0) / T_m(h) + (D_m U_m(h) / T_m(h)) p_{m-1}(w | h[1:])
               (= p_{m-1}(w | h[1:]) when h never occurs as a context)

Position t of x (t = n: eos) uses the context of the last min(N-1, t+1)
tokens of ``(bos, x_0 .. x_{t-1})``; ``logprob(x)`` sums the ``math.log`` of
the positions in order.

**Randomness** (as kexue.samplers): block n of chain g = chain_offset + c is
Philox4x32-10 of ``(n_lo, n_hi, g_lo, g_hi)`` under ``(seed_lo, seed_hi)``;
``U0 = uniform53(w0, w1)``, ``U1 = uniform53(w2, w3)``; ``pick(u, L) =
min(floor(u L), L - 1)``.

**constrained_generate**, step t of a chain: block 2t gives the move (U0:
replace if ``U0 < p_rep``, insert if ``U0 < p_rep + p_ins`` or ``p_del == 0``,
else delete) and its place (U1 over the legal set, ascending: replace and
delete at non-keyword positions; insert at slot 0 and after every token
that is not a keyword token followed by more of its keyword, none at
``max_len``); no legal place: nothing happens. The candidates C are the
top-k tokens of ``next_logprobs(x[:i])`` by (log p desc, id asc), finite
only (every token without ``next_logprobs``). Candidate sentences: replace
``x[i] := v``; insert v at i; delete: x without x_i, then v inserted at i.
``l_v = f_v / T_t``, ``f = gamma * logprob``; ``M = max l``;
``lq_v = l_v - M - log(sum_v exp(l_v - M))``; block 2t+1 draws the token with
U0 (the first v with ``U0 Z < cumsum`` and a positive weight) and decides with
``log(U1) < log_alpha`` (see :func:`log_alpha`). Inexact replace puts the
current token at the end of C when it is missing; exact replace and both
kinds of delete reject when the current token is not in C.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .samplers import _words, temperatures, uniform53

_MOVES = ("replace", "insert", "delete")


def _err(fn, msg, exc=ValueError):
    return exc(f"[kexue.text.{fn}] {msg}")


def _ids(fn, name, seq, V=None):
    a = np.asarray(seq)
    if a.size == 0:
        return []
    if a.ndim != 1:
        raise _err(fn, f"{name} must be a 1-D sequence of token ids; got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise _err(fn, f"{name} must hold integer token ids; got {a.dtype}", TypeError)
    out = [int(v) for v in a]
    if V is not None and (min(out) < 0 or max(out) >= V):
        raise _err(fn, f"{name} must hold token ids in [0, {V}); got {min(out)}..{max(out)}", IndexError)
    return out


def _int(fn, name, v, lo):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise _err(fn, f"{name} must be an int; got {type(v).__name__}", TypeError)
    if int(v) < lo:
        raise _err(fn, f"{name} must be >= {lo}; got {int(v)}")
    return int(v)


class NGramLM:
    """Interpolated Kneser-Ney over token ids, in dicts (the twin of kexue.text.NGramLM)."""

    def __init__(self, order, V, adj, ctx_T, ctx_U, D, vocab=None):
        self.order = order
        self.vocab_size = V
        self.eos = V
        self.bos = V + 1
        self._adj = adj        # (h, w) -> adjusted count, h a tuple
        self._T = ctx_T        # h -> T
        self._U = ctx_U        # h -> U
        self.discounts = D     # [D_1 .. D_N]
        self.vocab = vocab
        self._index = None if vocab is None else {w: i for i, w in enumerate(vocab)}

    @classmethod
    def fit(cls, sentences, order=3, vocab_size=None):
        fn = "NGramLM.fit"
        if not 2 <= order <= 5:
            raise _err(fn, f"order must be in [2, 5]; got {order}")
        sents = [_ids(fn, f"sentences[{i}]", s) for i, s in enumerate(sentences)]
        if not sents:
            raise _err(fn, "sentences must hold at least one sentence")
        top = max((max(s) for s in sents if s), default=-1) + 1
        V = max(top, 1) if vocab_size is None else int(vocab_size)
        if any(s and min(s) < 0 for s in sents) or V < top:
            raise _err(fn, "token ids must be in [0, vocab_size)", IndexError)
        N, BOS, EOS = order, V + 1, V
        raw = {}
        for s in sents:
            pad = [BOS] + s + [EOS]
            for j in range(1, len(pad)):
                for m in range(1, min(N, j + 1) + 1):
                    key = (tuple(pad[j - m + 1:j]), pad[j])
                    raw[key] = raw.get(key, 0) + 1
        adj = {}
        for (h, w), c in raw.items():
            if len(h) == N - 1 or (h and h[0] == BOS):
                adj[(h, w)] = c
            if h:  # (h, w) extends (h[1:], w) to the left by h[0]
                lo = h[1:]
                if not (len(lo) == N - 1 or (lo and lo[0] == BOS)):
                    adj[(lo, w)] = adj.get((lo, w), 0) + 1
        T, U = {}, {}
        n1 = [0] * (N + 1)
        n2 = [0] * (N + 1)
        for (h, w), a in adj.items():
            T[h] = T.get(h, 0) + a
            U[h] = U.get(h, 0) + 1
            m = len(h) + 1
            n1[m] += a == 1
            n2[m] += a == 2
        D = [n1[m] / (n1[m] + 2 * n2[m]) if n1[m] > 0 else 0.5 for m in range(1, N + 1)]
        return cls(N, V, adj, T, U, D)

    @classmethod
    def fit_text(cls, lines, tokenizer=str.split, order=3):
        words = [list(tokenizer(line)) for line in lines]
        counts = {}
        for ws in words:
            for w in ws:
                counts[w] = counts.get(w, 0) + 1
        first = {w: i for i, w in enumerate(counts)}
        vocab = sorted(counts, key=lambda w: (-counts[w], first[w]))
        index = {w: i for i, w in enumerate(vocab)}
        lm = cls.fit([[index[w] for w in ws] for ws in words], order=order, vocab_size=max(len(vocab), 1))
        lm.vocab = vocab
        lm._index = index
        return lm

    def encode(self, words):
        if isinstance(words, str):
            words = words.split()
        return np.asarray([self._index[w] for w in words], np.int64)

    def decode(self, ids):
        return " ".join(self.vocab[int(i)] for i in ids)

    # ------------------------------------------------------------------ queries
    def prob(self, w, history):
        """p(w | history) (history: the tokens before, bos included)."""
        D, N, V = self.discounts, self.order, self.vocab_size
        h0 = ()
        T1 = self._T[h0]
        p = max(self._adj.get((h0, w), 0) - D[0], 0.0) / T1 + (D[0] * self._U[h0] / T1) * (1.0 / (V + 1))
        for k in range(1, min(N - 1, len(history)) + 1):
            h = tuple(history[-k:])
            T = self._T.get(h)
            if T is None:
                continue
            Dm = D[k]
            p = max(self._adj.get((h, w), 0) - Dm, 0.0) / T + (Dm * self._U[h] / T) * p
        return p

    def logprobs_per_position(self, seq):
        x = _ids("NGramLM.logprob", "seq", seq, self.vocab_size)
        hist = [self.bos] + x
        return [math.log(self.prob(w, hist[:t + 1])) for t, w in enumerate(x + [self.eos])]

    def logprob(self, seqs):
        out = []
        for s in seqs:
            tot = 0.0
            for v in self.logprobs_per_position(s):
                tot += v
            out.append(tot)
        return np.asarray(out, np.float64)

    def next_logprobs(self, prefixes):
        rows = []
        for s in prefixes:
            hist = [self.bos] + _ids("NGramLM.next_logprobs", "prefix", s, self.vocab_size)
            rows.append([math.log(self.prob(w, hist)) for w in range(self.vocab_size + 1)])
        return np.asarray(rows, np.float64).reshape(len(rows), self.vocab_size + 1)


# ---------------------------------------------------------------------- MH
def log_alpha(move, d_score, lq, *, n_from=1, n_to=1, moves=(1 / 3, 1 / 3, 1 / 3), exact=True, tau=1.0):
    """log of the MH acceptance ratio of spec A6 (before min(1, .)).

    d_score = f(x') - f(x) (f = gamma log p); lq = log q of the token inserted
    (insert), of the token deleted under the reverse insertion (delete), or
    ``lq[current] - lq[new]`` (replace). Position counts: insert n_from =
    |I(x)|, n_to = |D(x')|; delete n_from = |D(x)|, n_to = |I(x')|.

    >>> round(math.exp(log_alpha("insert", 0.8 * (-21 + 20), math.log(0.25), exact=False)), 6)
    1.797316
    """
    S = moves[0] + moves[1] + moves[2]
    p_ins, p_del = moves[1] / S, moves[2] / S

    def lg(v):
        return math.log(v) if v > 0 else -math.inf

    if move == "replace":
        return d_score / tau + lq
    if move == "insert":
        if exact:
            return d_score / tau + (lg(p_del / n_to) - lg(p_ins / n_from)) - lq
        return d_score / tau - lq
    if move == "delete":
        if exact:
            return d_score / tau + (lg(p_ins / n_to) - lg(p_del / n_from)) + lq
        return d_score / tau + lq
    raise _err("log_alpha", f"move must be one of {_MOVES}; got {move!r}")


@dataclass
class GenerateResult:
    best: list
    best_score: np.ndarray
    final: list
    final_score: np.ndarray
    trajectory: list
    acceptance: dict
    proposed: dict
    accepted: dict
    temperatures: np.ndarray = field(repr=False)


def _uniforms(seed, g, n_blocks):
    """(U0, U1) of blocks 0..n_blocks-1 of chain g, as lists of floats."""
    w = _words(seed, g, np.arange(n_blocks, dtype=np.uint64)).reshape(n_blocks, 4)
    return (uniform53(w[:, 0], w[:, 1]).tolist(), uniform53(w[:, 2], w[:, 3]).tolist())


def _pick(u, L):
    i = int(u * L)
    return i if i < L else L - 1


def _slots(kw, max_len):
    n = len(kw)
    if n >= max_len:
        return []
    return [s for s in range(n + 1) if s == 0 or kw[s - 1] != 1]


def _draw(l, M, u):
    Z = 0.0
    for v in l:
        Z += math.exp(v - M)
    target = u * Z
    cum, pick = 0.0, -1
    for a, v in enumerate(l):
        e = math.exp(v - M)
        cum += e
        if e > 0.0:
            pick = a
        if target < cum and e > 0.0:
            return a
    return pick


def constrained_generate(scorer, keywords, *, n_steps=200, chains=8, gamma=1.0, proposal_topk=64,
                         moves=(1 / 3, 1 / 3, 1 / 3), seed=0, anneal=None, exact_acceptance=True, max_len=40,
                         chain_offset=0):
    """The twin of :func:`kexue.text.constrained_generate` (see the module docstring)."""
    fn = "constrained_generate"
    if not callable(getattr(scorer, "logprob", None)):
        raise _err(fn, "scorer must have logprob(seqs)", TypeError)
    V = _int(fn, "scorer.vocab_size", getattr(scorer, "vocab_size", None), 1)
    if isinstance(keywords, str):
        keywords = [keywords]
    kws = []
    for j, k in enumerate(list(keywords)):
        if isinstance(k, str):
            if not callable(getattr(scorer, "encode", None)):
                raise _err(fn, f"keywords[{j}] is a string but the scorer has no encode(); pass token ids",
                           TypeError)
            try:
                k = scorer.encode(k)
            except KeyError as e:
                raise _err(fn, f"keywords[{j}] ({k!r}) is out of the vocabulary: {e}", IndexError) from None
        ids = _ids(fn, f"keywords[{j}]", np.atleast_1d(k), V)
        if not ids:
            raise _err(fn, f"keywords[{j}] is empty")
        kws.append(ids)
    if not kws:
        raise _err(fn, "keywords must hold at least one keyword")
    n_steps = _int(fn, "n_steps", n_steps, 0)
    chains = _int(fn, "chains", chains, 1)
    proposal_topk = _int(fn, "proposal_topk", proposal_topk, 1)
    chain_offset = _int(fn, "chain_offset", chain_offset, 0)
    seed = _int(fn, "seed", seed, 0)
    max_len = _int(fn, "max_len", max_len, 1)
    if max_len < sum(len(k) for k in kws):
        raise _err(fn, f"max_len ({max_len}) is shorter than the keywords ({sum(len(k) for k in kws)} tokens)")
    if not (math.isfinite(gamma) and gamma > 0):
        raise _err(fn, f"gamma must be finite and > 0; got {gamma}")
    mv = [float(m) for m in moves]
    if len(mv) != 3 or not all(math.isfinite(m) and m >= 0 for m in mv) or sum(mv) <= 0:
        raise _err(fn, f"moves must be 3 finite probabilities >= 0, not all 0; got {moves!r}")
    S = mv[0] + mv[1] + mv[2]
    p = [m / S for m in mv]
    c_rep, c_ins = p[0], p[0] + p[1]
    temps = np.ones(n_steps) if anneal is None else temperatures(anneal, n_steps)
    has_next = callable(getattr(scorer, "next_logprobs", None))

    where = ["at the start"]

    def score(seqs):
        lp = np.asarray(scorer.logprob([np.asarray(s, np.int64) for s in seqs]), np.float64)
        if lp.shape != (len(seqs),):
            raise _err(fn, f"scorer.logprob must return shape ({len(seqs)},); got {lp.shape} {where[0]}")
        if np.isnan(lp).any():
            raise _err(fn, f"scorer returned NaN from scorer.logprob {where[0]}")
        return [gamma * float(v) for v in lp]

    def candidates(prefix):
        if not has_next:
            return list(range(V))
        row = np.asarray(scorer.next_logprobs([np.asarray(prefix, np.int64)]), np.float64)
        if row.ndim != 2 or row.shape[0] != 1 or row.shape[1] < V:
            raise _err(fn, f"scorer.next_logprobs must return shape (1, >= {V}); got {row.shape} {where[0]}")
        row = row[0, :V]
        if np.isnan(row).any():
            raise _err(fn, f"scorer returned NaN from scorer.next_logprobs {where[0]}")
        ok = [w for w in range(V) if math.isfinite(row[w])]
        ok.sort(key=lambda w: (-row[w], w))
        return ok[:proposal_topk]

    best, best_score, final, final_score, traj = [], [], [], [], []
    proposed = dict.fromkeys(_MOVES, 0)
    accepted = dict.fromkeys(_MOVES, 0)
    for c in range(chains):
        g = chain_offset + c
        x = [v for k in kws for v in k]
        kw = [2 if j + 1 == len(k) else 1 for k in kws for j in range(len(k))]
        where[0] = f"at the start (chain {g})"
        f = score([x])[0]
        if not math.isfinite(f):
            raise _err(fn, f"the starting sentence (the keywords) has score {f} (chain {g}); it must be finite")
        tr = [(0, np.asarray(x, np.int64), f)]
        bx, bf = list(x), f
        U0, U1 = _uniforms(seed, g, 2 * n_steps)
        for t in range(n_steps):
            u0, u1 = U0[2 * t], U1[2 * t]
            if u0 < c_rep:
                move = "replace"
            elif u0 < c_ins or p[2] == 0.0:
                move = "insert"
            else:
                move = "delete"
            free = [i for i in range(len(x)) if kw[i] == 0]
            slots = _slots(kw, max_len)
            legal = slots if move == "insert" else free
            if not legal:
                continue
            i = legal[_pick(u1, len(legal))]
            proposed[move] += 1
            where[0] = f"at step {t} (chain {g})"
            tau = float(temps[t])
            C = candidates(x[:i])
            cur = None if move == "insert" else x[i]
            if move == "insert":
                ys = [x[:i] + [v] + x[i:] for v in C]
            else:
                ys = [x[:i] + [v] + x[i + 1:] for v in C]
            fv = score(ys) if ys else []
            f_del = score([x[:i] + x[i + 1:]])[0] if move == "delete" else None
            if move == "replace" and not exact_acceptance and cur not in C:
                C = C + [cur]
                fv = fv + [f]
            b0, b1 = U0[2 * t + 1], U1[2 * t + 1]
            if not C:
                continue
            ls = [v / tau for v in fv]
            M = max(ls)
            if M == -math.inf:
                continue
            Z = 0.0
            for v in ls:
                Z += math.exp(v - M)
            logZ = math.log(Z)
            lq = [v - M - logZ for v in ls]
            at_cur = C.index(cur) if (cur is not None and cur in C) else -1
            if move == "replace":
                w_at = _draw(ls, M, b0)
                f_new = fv[w_at]
                la = -math.inf if at_cur < 0 else (f_new - f) / tau + (lq[at_cur] - lq[w_at])
            elif move == "insert":
                w_at = _draw(ls, M, b0)
                f_new = fv[w_at]
                la = log_alpha("insert", f_new - f, lq[w_at], n_from=len(slots), n_to=len(free) + 1, moves=mv,
                               exact=exact_acceptance, tau=tau)
            else:
                f_new = f_del
                if at_cur < 0:
                    la = -math.inf
                else:
                    kw2 = kw[:i] + kw[i + 1:]
                    la = log_alpha("delete", f_new - f, lq[at_cur], n_from=len(free),
                                   n_to=len(_slots(kw2, max_len)), moves=mv, exact=exact_acceptance, tau=tau)
            lu = math.log(b1) if b1 > 0 else -math.inf
            if not lu < la:
                continue
            accepted[move] += 1
            if move == "replace":
                x = x[:i] + [C[w_at]] + x[i + 1:]
            elif move == "insert":
                x = x[:i] + [C[w_at]] + x[i:]
                kw = kw[:i] + [0] + kw[i:]
            else:
                x = x[:i] + x[i + 1:]
                kw = kw[:i] + kw[i + 1:]
            f = f_new
            tr.append((t + 1, np.asarray(x, np.int64), f))
            if f > bf:
                bx, bf = list(x), f
        best.append(np.asarray(bx, np.int64))
        best_score.append(bf)
        final.append(np.asarray(x, np.int64))
        final_score.append(f)
        traj.append(tr)
    acceptance = {m: (accepted[m] / proposed[m] if proposed[m] else float("nan")) for m in _MOVES}
    return GenerateResult(best, np.asarray(best_score), final, np.asarray(final_score), traj, acceptance,
                          proposed, accepted, np.asarray(temps, np.float64))


# ---------------------------------------------------------------------- Gibbs
@dataclass
class GibbsTextResult:
    tokens: np.ndarray
    samples: np.ndarray


def gibbs_resample(conditional, tokens, n_steps, *, positions=None, temperature=1.0, seed=0, chain_offset=0,
                   record_every=1):
    """The twin of :func:`kexue.text.gibbs_resample`: step t, chain g, block t:
    position = positions[pick(U0, P)]; the new token is drawn from
    ``exp(logits / temperature - max)`` with U1 (the first token with
    ``U1 Z < cumsum`` and a positive weight)."""
    fn = "gibbs_resample"
    if not callable(conditional):
        raise _err(fn, f"conditional must be callable; got {type(conditional).__name__}", TypeError)
    x0 = np.asarray(tokens)
    if x0.dtype.kind not in "iu":
        raise _err(fn, f"tokens must be an integer array [C, L]; got {x0.dtype}", TypeError)
    x = np.array(x0, dtype=np.int64)
    if x.ndim != 2:
        raise _err(fn, f"tokens must be 2-D [C, L]; got shape {x.shape}")
    if x.size and x.min() < 0:
        raise _err(fn, f"tokens must be >= 0; got {x.min()}", IndexError)
    n_steps = _int(fn, "n_steps", n_steps, 0)
    record_every = _int(fn, "record_every", record_every, 1)
    chain_offset = _int(fn, "chain_offset", chain_offset, 0)
    seed = _int(fn, "seed", seed, 0)
    C, L = x.shape
    if positions is None:
        pos = list(range(L))
    else:
        pa = np.asarray(positions)
        if pa.ndim != 1 or (pa.size and pa.dtype.kind not in "iu"):
            raise _err(fn, f"positions must be a 1-D integer array; got {pa.dtype} {pa.shape}", TypeError)
        pos = [int(v) for v in pa]
    if not pos:
        raise _err(fn, "positions must not be empty")
    if min(pos) < 0 or max(pos) >= L:
        raise _err(fn, f"positions must be in [0, {L}); got {min(pos)}..{max(pos)}", IndexError)
    if len(set(pos)) != len(pos):
        raise _err(fn, "positions must not repeat")
    if not (math.isfinite(temperature) and temperature > 0):
        raise _err(fn, f"temperature must be finite and > 0; got {temperature}")
    R = n_steps // record_every
    samples = np.zeros((C, R, L), np.int64)
    streams = [_uniforms(seed, chain_offset + c, n_steps) for c in range(C)]
    for t in range(n_steps):
        us = [(streams[c][0][t], streams[c][1][t]) for c in range(C)]
        pc = np.asarray([pos[_pick(u0, len(pos))] for u0, _ in us], np.int64)
        logits = np.asarray(conditional(x.copy(), pc.copy()), np.float64)
        if logits.ndim != 2 or logits.shape[0] != C or logits.shape[1] < 1:
            raise _err(fn, f"conditional must return logits of shape ({C}, V); got {logits.shape} at step {t}")
        for c in range(C):
            z = [float(v) / temperature for v in logits[c]]
            if any(math.isnan(v) for v in z):
                raise _err(fn, f"conditional returned NaN at step {t} (chain {c})")
            m = max(z)
            if m in (-math.inf, math.inf):
                raise _err(fn, f"conditional returned no finite logit or +inf at step {t} (chain {c})")
            x[c, pc[c]] = _draw(z, m, us[c][1])
        if (t + 1) % record_every == 0:
            samples[:, (t + 1) // record_every - 1] = x
    return GibbsTextResult(x, samples)
