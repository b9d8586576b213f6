"""kexue.text: the Kneser-Ney n-gram model, keyword-constrained MH and MLM-style Gibbs,
held to the pure-Python twins bit for bit, to hand-worked numbers, and to the exact
stationary distribution of a small sentence space."""
from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import kexue
import kexue.reference.text as rt
from kexue.text import corpus


@pytest.fixture(scope="module")
def lines():
    return corpus.generate(2000, seed=1)


@pytest.fixture(scope="module")
def lms(lines):
    """(core, twin) trigram models of the small corpus."""
    return kexue.text.NGramLM.fit_text(lines, order=3), rt.NGramLM.fit_text(lines, order=3)


def _same_run(a, b):
    assert len(a.trajectory) == len(b.trajectory)
    for ta, tb in zip(a.trajectory, b.trajectory):
        assert [s for s, _, _ in ta] == [s for s, _, _ in tb]
        for (_, xa, fa), (_, xb, fb) in zip(ta, tb):
            np.testing.assert_array_equal(xa, xb)
            assert fa == fb
    assert a.proposed == b.proposed and a.accepted == b.accepted
    np.testing.assert_array_equal(a.best_score, b.best_score)
    np.testing.assert_array_equal(a.final_score, b.final_score)
    for x, y in zip(a.best + a.final, b.best + b.final):
        np.testing.assert_array_equal(x, y)


def _holds_keywords(seq, kws):
    """The keywords appear in order, each contiguous (greedy earliest match)."""
    seq = list(seq)
    at = 0
    for k in kws:
        k = list(k)
        while at + len(k) <= len(seq) and seq[at:at + len(k)] != k:
            at += 1
        if at + len(k) > len(seq):
            return False
        at += len(k)
    return True


# ---------------------------------------------------------------------------- NGramLM


def test_hand_worked_bigram():
    """Corpus [0 1], [0], order 2 (spec: interpolated KN, one discount per order).
    Order 2 raw counts: (B,0)=2, (0,1)=1, (1,E)=1, (0,E)=1 -> D2 = 3/(3+2*1) = 0.6.
    Continuation counts: 0:1, 1:1, E:2 -> T1=4, U1=3, D1 = 2/(2+2) = 0.5, u = 1/3:
    p1 = (0.25, 0.25, 0.5); p(1|0) = 0.4/2 + (0.6*2/2)*0.25 = 0.35, p(E|0) = 0.5,
    p(0|0) = 0.15; p(0|B) = 1.4/2 + 0.3*0.25 = 0.775; p(E|1) = 0.4 + 0.6*0.5 = 0.7."""
    lm = kexue.text.NGramLM.fit([[0, 1], [0]], order=2)
    assert lm.discounts == [0.5, 0.6]
    np.testing.assert_allclose(np.exp(lm.next_logprobs([[]])[0]), [0.775, 0.0 + 0.3 * 0.25, 0.0 + 0.3 * 0.5],
                               rtol=1e-15)
    np.testing.assert_allclose(np.exp(lm.next_logprobs([[0]])[0]), [0.15, 0.35, 0.5], rtol=1e-15)
    np.testing.assert_allclose(lm.logprob([[0, 1]]), [math.log(0.775 * 0.35 * 0.7)], rtol=1e-15)
    np.testing.assert_allclose(np.exp(lm.position_logprobs([0, 1])), [0.775, 0.35, 0.7], rtol=1e-15)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_ngram_matches_twin_bitwise(lines, order):
    lm = kexue.text.NGramLM.fit_text(lines[:600], order=order)
    ref = rt.NGramLM.fit_text(lines[:600], order=order)
    assert lm.vocab == ref.vocab and lm.discounts == ref.discounts
    rng = np.random.default_rng(order)
    seqs = [lm.encode(s) for s in lines[:80]] + [np.zeros(0, np.int64), np.array([3]),
                                                 rng.integers(0, lm.vocab_size, 9)]
    seqs += [rng.integers(0, lm.vocab_size, int(rng.integers(0, 70))) for _ in range(5)]  # > 64 positions too
    np.testing.assert_array_equal(lm.logprob(seqs), ref.logprob(seqs))
    np.testing.assert_array_equal(lm.next_logprobs(seqs[:12]), ref.next_logprobs(seqs[:12]))
    for s in seqs[-3:]:
        np.testing.assert_array_equal(lm.position_logprobs(s), ref.logprobs_per_position(s))
        assert lm.logprob([s])[0] == sum(lm.position_logprobs(s).tolist())


@pytest.mark.parametrize("order", [2, 3, 5])
def test_conditionals_sum_to_one(order):
    rng = np.random.default_rng(10 + order)
    sents = [rng.zipf(1.4, int(rng.integers(0, 9))) % 40 for _ in range(400)]
    lm = kexue.text.NGramLM.fit(sents, order=order, vocab_size=50)  # ids 40..49 never seen
    prefixes = [sents[i][: int(rng.integers(0, 6))] for i in range(30)] + [rng.integers(0, 50, 4), []]
    p = np.exp(lm.next_logprobs(prefixes))
    assert p.shape == (len(prefixes), 51)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    assert (p > 0).all()


@pytest.mark.parametrize("order", [2, 3, 4])
def test_topk_is_the_sorted_prefix(lines, order):
    lm = kexue.text.NGramLM.fit_text(lines[:800], order=order)
    V = lm.vocab_size
    rng = np.random.default_rng(order)
    for _ in range(25):
        pre = lm.encode(lines[int(rng.integers(800))])[: int(rng.integers(0, 5))]
        row = lm.next_logprobs([pre])[0][:V]
        want = np.lexsort((np.arange(V), -row))
        for k in (1, 5, 64, V + 3):
            np.testing.assert_array_equal(lm.topk(pre, k), want[:k])


def test_fit_text_vocabulary(lines):
    lm = kexue.text.NGramLM.fit_text(["b a", "a c a"], order=2)
    assert lm.vocab == ["a", "b", "c"]  # by count, ties by first appearance
    np.testing.assert_array_equal(lm.encode("c a b"), [2, 0, 1])
    assert lm.decode([1, 0]) == "b a"
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        lm.encode("a zebra")
    ints = kexue.text.NGramLM.fit([[0, 1]], order=2)
    with pytest.raises(ValueError, match="has no vocabulary"):
        ints.encode("a")
    assert "NGramLM(order=2" in repr(ints)


def test_save_load_round_trip_and_refusals(tmp_path, lms):
    lm, _ = lms
    path = tmp_path / "lm.kxlm"
    lm.save(path)
    back = kexue.text.NGramLM.load(path)
    assert back.vocab == lm.vocab and back.order == 3 and back.discounts == lm.discounts
    seqs = [lm.encode("the cat sat on the mat"), []]
    np.testing.assert_array_equal(back.logprob(seqs), lm.logprob(seqs))
    np.testing.assert_array_equal(back.next_logprobs(seqs), lm.next_logprobs(seqs))
    data = path.read_bytes()
    cases = {"truncated": data[:-5], "header": data[:20], "magic": b"XXNGRAM\0" + data[8:],
             "flip": data[:100] + bytes([data[100] ^ 1]) + data[101:], "trailing": data + b"\0"}
    for name, blob in cases.items():
        bad = tmp_path / f"{name}.kxlm"
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match=r"\[kexue\.text\.NGramLM\.load\] .* not a valid kexue n-gram file"):
            kexue.text.NGramLM.load(bad)
    with pytest.raises(ValueError, match="cannot open"):
        kexue.text.NGramLM.load(tmp_path / "missing.kxlm")


def test_ngram_bad_inputs():
    with pytest.raises(ValueError, match=r"\[kexue\.text\.NGramLM\.fit\] order must be in \[2, 5\]"):
        kexue.text.NGramLM.fit([[0, 1]], order=6)
    with pytest.raises(TypeError, match=r"order must be an int"):
        kexue.text.NGramLM.fit([[0, 1]], order=2.0)
    with pytest.raises(TypeError, match=r"sentences\[1\] must hold integer token ids"):
        kexue.text.NGramLM.fit([[0, 1], [0.5]])
    with pytest.raises(IndexError, match=r"sentences must hold token ids >= 0"):
        kexue.text.NGramLM.fit([[0, -1]])
    with pytest.raises(IndexError, match=r"vocab_size \(2\) must exceed every token id"):
        kexue.text.NGramLM.fit([[0, 5]], vocab_size=2)
    with pytest.raises(ValueError, match="at least one sentence"):
        kexue.text.NGramLM.fit([])
    lm = kexue.text.NGramLM.fit([[0, 1, 2]], order=2)
    with pytest.raises(IndexError, match=r"\[kexue\.text\.NGramLM\.logprob\] seqs must hold token ids in \[0, 3\)"):
        lm.logprob([[0, 3]])
    with pytest.raises(IndexError, match=r"NGramLM\.next_logprobs\] prefixes must hold token ids"):
        lm.next_logprobs([[-1]])
    with pytest.raises(ValueError, match=r"seqs\[0\] must be a 1-D sequence"):
        lm.logprob([[0, [1]]])
    with pytest.raises(TypeError, match=r"seqs\[0\] must hold integer token ids; got float64"):
        lm.logprob([[0.0, float("nan")]])
    with pytest.raises(TypeError, match=r"seqs must be a list of integer sequences"):
        lm.logprob("0 1")
    with pytest.raises(ValueError, match=r"k must be >= 1"):
        lm.topk([0], 0)


# ---------------------------------------------------------------------------- MH


@pytest.mark.parametrize("kw", [dict(), dict(exact_acceptance=False), dict(gamma=0.8, anneal=("geometric", 2.0, 0.1)),
                                dict(moves=(0.2, 0.5, 0.3), proposal_topk=5, seed=3), dict(moves=(0, 1, 1), max_len=6)])
def test_generate_matches_twin(lms, kw):
    lm, ref = lms
    kws = ["cat", "the mat"]
    a = kexue.text.constrained_generate(lm, kws, n_steps=40, chains=2, **{"seed": 7, **kw})
    b = rt.constrained_generate(ref, kws, n_steps=40, chains=2, **{"seed": 7, **kw})
    _same_run(a, b)
    assert sum(a.proposed.values()) > 0


class _Wrapped:
    """A Python scorer forwarding to the n-gram model: the core's callback path."""

    def __init__(self, lm, next_logprobs=True):
        self.lm, self.vocab_size, self.calls = lm, lm.vocab_size, 0
        self.encode = lm.encode
        if next_logprobs:
            self.next_logprobs = lm.next_logprobs

    def logprob(self, seqs):
        self.calls += 1
        return self.lm.logprob(seqs)


@pytest.mark.parametrize("exact", [True, False])
def test_python_scorer_gives_the_builtin_chains(lms, exact):
    lm, _ = lms
    w = _Wrapped(lm)
    a = kexue.text.constrained_generate(lm, ["dog"], n_steps=80, chains=4, seed=2, exact_acceptance=exact)
    b = kexue.text.constrained_generate(w, ["dog"], n_steps=80, chains=4, seed=2, exact_acceptance=exact)
    _same_run(a, b)
    assert w.calls <= 81  # batched over chains: one logprob call per step (plus the start)


def test_keywords_hold_in_every_state(lms):
    lm, _ = lms
    kws = [lm.encode("the cat").tolist(), lm.encode("on").tolist(), lm.encode("red").tolist()]
    r = kexue.text.constrained_generate(lm, kws, n_steps=400, chains=6, seed=11, max_len=12)
    assert sum(r.accepted.values()) > 50
    for c, tr in enumerate(r.trajectory):
        assert tr[0][0] == 0 and np.array_equal(tr[0][1], sum(kws, []))
        for step, x, f in tr:
            assert _holds_keywords(x, kws), (step, x)
            assert len(x) <= 12
            assert f == lm.logprob([x])[0]
        assert r.best_score[c] == max(f for _, _, f in tr)
        np.testing.assert_array_equal(r.final[c], tr[-1][1])


def test_determinism_offsets_and_threads(lms):
    lm, _ = lms
    run = lambda **kw: kexue.text.constrained_generate(lm, ["cat"], n_steps=60, **{"chains": 6, "seed": 5, **kw})
    whole = run()
    _same_run(whole, run())
    part1, part2 = run(chains=2), run(chains=4, chain_offset=2)
    for x, y in zip(whole.trajectory, part1.trajectory + part2.trajectory):
        assert [(s, t.tolist(), f) for s, t, f in x] == [(s, t.tolist(), f) for s, t, f in y]
    other = run(seed=6)
    assert any(len(x) != len(y) or any(not np.array_equal(a[1], b[1]) for a, b in zip(x, y))
               for x, y in zip(whole.trajectory, other.trajectory))
    before = kexue.get_num_threads()
    try:
        kexue.set_num_threads(1)
        one = run()
        kexue.set_num_threads(2)
        _same_run(one, run())
    finally:
        kexue.set_num_threads(before)


class _Tiny:
    """An unnormalised bigram score over V = 3 tokens (no next_logprobs: every token
    is a candidate), so every sentence up to max_len can be enumerated."""

    vocab_size = 3

    def __init__(self):
        self.B = np.random.default_rng(3).normal(size=(5, 4))

    def logprob(self, seqs):
        out = []
        for s in seqs:
            prev, tot = 3, 0.0
            for t in list(s):
                tot += self.B[prev, t]
                prev = t
            out.append(tot + self.B[prev, 3] - 1.0)
        return np.asarray(out)


def _occupancy(r, keys, T, burn):
    idx = {k: i for i, k in enumerate(keys)}
    occ = np.zeros((len(r.trajectory), len(keys)))
    for c, tr in enumerate(r.trajectory):
        ends = [s for s, _, _ in tr[1:]] + [T]
        for (s, tok, _), e in zip(tr, ends):
            lo = max(s, burn)
            if e > lo:
                occ[c, idx[tuple(tok.tolist())]] += e - lo
    return occ / (T - burn)


@pytest.mark.parametrize("builtin", [False, True])
def test_stationary_distribution_exact_vs_cgmh(builtin):
    """Keyword token 0, vocabulary of 3, sentences up to 4 tokens: the chain's
    occupancy of every sentence matches rho / Z (rho = exp(score), counted once
    per possible keyword position) within 4 standard errors over 48 independent
    chains; CGMH's approximation (exact_acceptance=False) is measurably biased."""
    if builtin:
        rng = np.random.default_rng(4)
        scorer = kexue.text.NGramLM.fit([rng.integers(0, 3, int(rng.integers(0, 5))) for _ in range(40)], order=2,
                                        vocab_size=3)
        extra = dict(proposal_topk=3)  # the top-3 is every token: the same move set
    else:
        scorer, extra = _Tiny(), {}
    maxlen, T, burn, C = 4, 3000, 300, 48
    keys, w = [], []
    for n in range(1, maxlen + 1):
        for seq in itertools.product(range(3), repeat=n):
            if 0 in seq:
                keys.append(seq)
                w.append(seq.count(0) * math.exp(scorer.logprob([np.array(seq)])[0]))
    p = np.asarray(w) / sum(w)
    big = p > 2e-3
    zs = {}
    for exact in (True, False):
        r = kexue.text.constrained_generate(scorer, [[0]], n_steps=T, chains=C, max_len=maxlen, seed=5,
                                            exact_acceptance=exact, **extra)
        occ = _occupancy(r, keys, T, burn)
        se = occ.std(0, ddof=1) / math.sqrt(C)
        zs[exact] = (occ.mean(0) - p)[big] / se[big]
    assert np.abs(zs[True]).max() < 4.0, np.abs(zs[True]).max()
    assert (zs[True] ** 2).mean() < 2.0
    assert (zs[False] ** 2).mean() > 3 * (zs[True] ** 2).mean() and np.abs(zs[False]).max() > 4.0


def test_spec_worked_acceptance():
    """Spec A6 (Su form, gamma = 0.8): log p(x) = -20, log p(x') = -21, q(w) = 0.25:
    alpha_ins = e^-0.8 / 0.25 = 1.797316; the reverse delete e^0.8 * 0.25 = 0.556385."""
    a_ins = math.exp(rt.log_alpha("insert", 0.8 * (-21 + 20), math.log(0.25), exact=False))
    a_del = math.exp(rt.log_alpha("delete", 0.8 * (-20 + 21), math.log(0.25), exact=False))
    assert round(a_ins, 6) == 1.797316 and round(a_del, 6) == 0.556385
    # the exact form multiplies by the position counts: |D(x')| = 2, |I(x)| = 3
    a_exact = math.exp(rt.log_alpha("insert", -0.8, math.log(0.25), n_from=3, n_to=2, exact=True))
    assert a_exact == pytest.approx(1.797316 * 3 / 2, rel=1e-6)


def test_annealing_beats_the_sampler(lms):
    lm, _ = lms
    kws = ["dog", "river"]
    T = 300
    mh = kexue.text.constrained_generate(lm, kws, n_steps=T, chains=8, seed=1)
    scores = []
    for tr in mh.trajectory:
        ends = [s for s, _, _ in tr[1:]] + [T]
        for (s, _, f), e in zip(tr, ends):
            scores += [f] * (e - s)
    sa = kexue.text.constrained_generate(lm, kws, n_steps=T, chains=8, seed=1, anneal=("geometric", 1.0, 0.02))
    assert sa.best_score.max() >= np.quantile(scores, 0.95)
    assert np.median(sa.best_score) >= np.quantile(scores, 0.5)
    assert sa.temperatures[0] == 1.0 and sa.temperatures[-1] == pytest.approx(0.02)
    assert all(_holds_keywords(b, [lm.encode(k) for k in kws]) for b in sa.best)


def test_generate_progress_and_decode(lms, capsys):
    lm, _ = lms
    r = kexue.text.constrained_generate(lm, ["cat"], n_steps=20, chains=2, progress=True)
    assert "20/20" in capsys.readouterr().err
    assert all("cat" in s.split() for s in r.decode(lm))


def test_generate_bad_inputs(lms):
    lm, _ = lms
    pre = r"^\[kexue\.text\.constrained_generate\] "
    gen = kexue.text.constrained_generate
    with pytest.raises(ValueError, match=pre + "keywords must hold at least one keyword"):
        gen(lm, [])
    with pytest.raises(ValueError, match=pre + r"keywords\[1\] must be a non-empty"):
        gen(lm, [[1], []])
    with pytest.raises(IndexError, match=pre + r"keywords\[0\] holds token ids outside the vocabulary"):
        gen(lm, [[lm.vocab_size]])
    with pytest.raises(IndexError, match=pre + r"keywords\[0\] \('zebra'\) is out of the vocabulary"):
        gen(lm, ["zebra"])
    with pytest.raises(TypeError, match=pre + r"keywords\[0\] must hold integer token ids"):
        gen(lm, [[1.5]])
    with pytest.raises(ValueError, match=pre + r"max_len \(1\) is shorter than the keywords"):
        gen(lm, ["the cat"], max_len=1)
    with pytest.raises(ValueError, match=pre + "moves must be 3 finite"):
        gen(lm, ["cat"], moves=(1, -1, 1))
    with pytest.raises(ValueError, match=pre + "moves must be 3 finite"):
        gen(lm, ["cat"], moves=(0, 0, 0))
    with pytest.raises(ValueError, match=pre + "gamma must be finite and > 0"):
        gen(lm, ["cat"], gamma=float("nan"))
    with pytest.raises(ValueError, match=pre + "proposal_topk must be >= 1"):
        gen(lm, ["cat"], proposal_topk=0)
    with pytest.raises(ValueError, match=pre + "n_steps must be >= 0"):
        gen(lm, ["cat"], n_steps=-1)
    with pytest.raises(TypeError, match=pre + "scorer must have logprob"):
        gen(object(), [[0]])

    class NoVocab:
        def logprob(self, seqs):
            return np.zeros(len(seqs))

    with pytest.raises(TypeError, match=pre + "scorer.vocab_size must be an int"):
        gen(NoVocab(), [[0]])

    class Bad(_Wrapped):
        def __init__(self, lm, mode):
            super().__init__(lm)
            self.mode = mode

        def logprob(self, seqs):
            out = self.lm.logprob(seqs)
            if self.mode == "shape":
                return out[:-1] if len(seqs) > 1 else out
            if self.mode == "nan" and len(seqs) > 1:
                out[1] = np.nan
            return out

    with pytest.raises(ValueError, match=pre + r"scorer\.logprob must return a float array of shape"):
        gen(Bad(lm, "shape"), ["cat"], n_steps=5)
    with pytest.raises(ValueError, match=pre + r"scorer\.logprob returned NaN"):
        gen(Bad(lm, "nan"), ["cat"], n_steps=5)
    w = _Wrapped(lm)
    w.next_logprobs = lambda p: np.zeros((len(p), 3))
    with pytest.raises(ValueError, match=pre + r"scorer\.next_logprobs must return an array of shape"):
        gen(w, ["cat"], n_steps=5)
    w.next_logprobs = lambda p: np.full((len(p), lm.vocab_size), np.nan)
    with pytest.raises(ValueError, match=pre + r"scorer\.next_logprobs returned NaN"):
        gen(w, ["cat"], n_steps=5)

    class MinusInf(_Wrapped):
        def logprob(self, seqs):
            return np.full(len(seqs), -np.inf)

    with pytest.raises(ValueError, match=pre + "the starting sentence"):
        gen(MinusInf(lm), ["cat"], n_steps=5)


# ---------------------------------------------------------------------------- Gibbs


def _mlm(V=6, seed=0):
    W = np.random.default_rng(seed).normal(size=(V, V))

    def cond(seqs, pos):
        left = np.where(pos > 0, seqs[np.arange(len(seqs)), np.maximum(pos - 1, 0)], 0)
        return W[left] + 0.1 * pos[:, None]

    return cond


@pytest.mark.parametrize("kw", [dict(), dict(temperature=0.5, positions=[1, 3]), dict(record_every=3, chain_offset=4)])
def test_gibbs_matches_twin(kw):
    x0 = np.random.default_rng(1).integers(0, 6, (5, 4))
    a = kexue.text.gibbs_resample(_mlm(), x0, 30, seed=9, **kw)
    b = rt.gibbs_resample(_mlm(), x0, 30, seed=9, **kw)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.samples.shape == (5, 30 // kw.get("record_every", 1), 4)
    if "positions" in kw:
        np.testing.assert_array_equal(a.tokens[:, [0, 2]], x0[:, [0, 2]])


def test_gibbs_oracle_independent_tokens():
    """A conditional that ignores the context: every position's stationary law is
    softmax(logits / T) exactly; 256 chains x 4 positions after 200 steps."""
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    for T in (1.0, 0.5):
        r = kexue.text.gibbs_resample(lambda s, p: np.tile(logits, (len(s), 1)), np.zeros((256, 4), np.int64), 200,
                                      temperature=T, seed=1)
        want = np.exp(logits / T) / np.exp(logits / T).sum()
        freq = np.bincount(r.tokens.ravel(), minlength=4) / r.tokens.size
        se = np.sqrt(want * (1 - want) / r.tokens.size)
        assert (np.abs(freq - want) < 4 * se + 1e-12).all(), (freq, want)


def test_gibbs_bad_inputs():
    pre = r"^\[kexue\.text\.gibbs_resample\] "
    x0 = np.zeros((2, 3), np.int64)
    g = kexue.text.gibbs_resample
    with pytest.raises(ValueError, match=pre + r"conditional must return logits of shape \(2, V\)"):
        g(lambda s, p: np.zeros(3), x0, 2)
    with pytest.raises(ValueError, match=pre + "conditional returned NaN at step 0"):
        g(lambda s, p: np.full((2, 3), np.nan), x0, 2)
    with pytest.raises(ValueError, match=pre + "conditional returned no finite logit"):
        g(lambda s, p: np.full((2, 3), -np.inf), x0, 2)
    with pytest.raises(IndexError, match=pre + r"positions must be in \[0, 3\)"):
        g(lambda s, p: np.zeros((2, 3)), x0, 2, positions=[3])
    with pytest.raises(ValueError, match=pre + "positions must not repeat"):
        g(lambda s, p: np.zeros((2, 3)), x0, 2, positions=[1, 1])
    with pytest.raises(ValueError, match=pre + "tokens must be 2-D"):
        g(lambda s, p: np.zeros((2, 3)), np.zeros(3, np.int64), 2)
    with pytest.raises(TypeError, match=pre + "tokens must be an integer array"):
        g(lambda s, p: np.zeros((2, 3)), np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match=pre + "temperature must be finite and > 0"):
        g(lambda s, p: np.zeros((2, 3)), x0, 2, temperature=0.0)
    with pytest.raises(TypeError, match=pre + "conditional must be callable"):
        g(None, x0, 2)


# ---------------------------------------------------------------------------- corpus and CLI


def test_corpus_is_deterministic_and_sized():
    a, b = corpus.generate(500, seed=3), corpus.generate(500, seed=3)
    assert a == b and a != corpus.generate(500, seed=4)
    assert all(3 <= len(s.split()) <= 15 for s in a)
    lex = corpus.lexicons()
    words = [w for ws in lex.values() for w in ws]
    assert len(words) == len(set(words)) > 50_000  # the classes never share a word


def test_cli_generates_sentences_with_the_keywords(tmp_path):
    path = tmp_path / "c.txt"
    assert corpus.write(path, 1500, seed=2) == 1500
    env = dict(os.environ, KEXUE_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-m", "kexue", "text", "--corpus", str(path), "--keywords", "cat mat",
                          "--steps", "40", "--chains", "3", "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    body = [line for line in out.stdout.splitlines() if line[:1] == " " or line[:1] == "-"]
    assert len(body) == 3
    for line in body:
        words = line.split()[1:]
        assert words.index("cat") < words.index("mat")
    bad = subprocess.run([sys.executable, "-m", "kexue", "text", "--corpus", str(path), "--keywords", "zebraish"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "not in the corpus vocabulary: zebraish" in bad.stderr


@pytest.mark.parametrize("case", ["empty", "oov", "steps", "topk", "maxlen", "gamma", "nan"])
def test_twin_refuses_what_the_core_refuses(lms, case):
    """The twin raises the core's exception type, its message naming the same argument."""
    lm, ref = lms

    class NaNScorer:
        def __init__(self, m):
            self.vocab_size, self.m = m.vocab_size, m

        def logprob(self, seqs):
            out = np.asarray(self.m.logprob(seqs), np.float64)
            if len(seqs) > 1:
                out[0] = np.nan
            return out

    args = {"empty": ([], {}, "keywords"), "oov": ([[lm.vocab_size]], {}, "keywords"),
            "steps": ([[1]], dict(n_steps=-1), "n_steps"), "topk": ([[1]], dict(proposal_topk=0), "proposal_topk"),
            "maxlen": ([[1, 2]], dict(max_len=1), "max_len"), "gamma": ([[1]], dict(gamma=0.0), "gamma"),
            "nan": ([[1]], dict(n_steps=20), "NaN")}[case]
    kws, kw, word = args
    errors = []
    for gen, scorer in ((kexue.text.constrained_generate, lm), (rt.constrained_generate, ref)):
        s = NaNScorer(scorer) if case == "nan" else scorer
        with pytest.raises((ValueError, TypeError, IndexError)) as e:
            gen(s, kws, **kw)
        assert word in str(e.value)
        errors.append(type(e.value))
    assert errors[0] is errors[1]


def test_twin_gibbs_refuses_what_the_core_refuses():
    x0 = np.zeros((2, 3), np.int64)
    cond = lambda s, p: np.zeros((len(s), 3))  # noqa: E731
    for kw, exc in ((dict(positions=[1, 1]), ValueError), (dict(record_every=0), ValueError),
                    (dict(n_steps=-1), ValueError), (dict(positions=[5]), IndexError)):
        n = kw.pop("n_steps", 2)
        for g in (kexue.text.gibbs_resample, rt.gibbs_resample):
            with pytest.raises(exc):
                g(cond, x0, n, **kw)
    for g in (kexue.text.gibbs_resample, rt.gibbs_resample):
        with pytest.raises(TypeError, match="tokens must be an integer array"):
            g(cond, np.zeros((2, 3)), 2)
