"""kexue.samplers (issue 5): the core against its numpy twin kexue.reference.samplers,
both against exact results (spec A3, A7), determinism, and the front door.

Layout:

* tests whose names contain ``reference`` need only the twin (numpy): the random
  stream, the word schedule written a second time as scalar loops, exact 4x4 Ising
  and 2x6 Potts results by enumeration, Metropolis acceptance and moments, chain
  splitting, bad inputs. ``pytest tests/test_samplers.py -k reference`` runs them
  before the core is built.
* every other test needs the compiled core (``kexue.samplers``): core == twin
  (lattices bitwise, Metropolis to 1e-12: numpy's log/sin/cos may differ from
  libm's in the last bit), exact results at the issue's sizes (64x64 Ising at
  beta = 0.6 and 0.3, a 10-D Gaussian, the 1-D acceptance formula), thread counts,
  chain_offset splits, callable == built-in target, and bad inputs.

Standard errors: lattices and acceptance rates use batch means across chains
(one mean per chain after burn-in; SE = sd / sqrt(C)); the Gaussian moments use
ESS (SE = sd / sqrt(ESS)). Every statistical check is at 4 SE with a fixed seed.
"""

from __future__ import annotations

import inspect
import math
import re

import kexue
import numpy as np
import pytest
from kexue.reference import optim as ref_optim
from kexue.reference import samplers as ref

U32 = 1 << 32
SE_TOL = 4.0
# Spec A7: 4x4 periodic Ising at beta = 0.4, by full enumeration.
ISING_4X4_B04 = dict(energy=-1.379116, abs_m=0.764712, m2=0.654826)


def core():
    """The compiled front door kexue.samplers (the test fails until it is built)."""
    import kexue.samplers as ks

    return ks


def targets():
    from kexue.samplers import targets as t

    return t


@pytest.fixture(params=["reference", "core"])
def impl(request):
    """Both implementations, for tests that hold for each (ids: reference / core)."""
    return ref if request.param == "reference" else core()


def chain_se(per_chain):
    """(mean, SE) from one number per chain (batch means across chains)."""
    a = np.asarray(per_chain, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))


def assert_within_se(what, got, se, want, k=SE_TOL):
    assert abs(got - want) <= k * se, (
        f"{what}: {got:.6f} vs exact {want:.6f}: {abs(got - want) / se:.1f} SE (SE {se:.2e})"
    )


def spd(rng, D, cond=5.0):
    """A random symmetric positive definite [D, D] with eigenvalues in [1, cond]."""
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    return (q * np.linspace(1.0, cond, D)) @ q.T


# ============================================================================
# exact results by enumeration (the oracles)


def ising_enumerate(H, W, beta, h=0.0):
    """Exact <E>/N, <|m|>, <m^2> of the periodic H x W Ising lattice (E = -sum of the
    right and down bonds s_i s_j - h sum s_i, the samplers' convention)."""
    N = H * W
    codes = np.arange(1 << N, dtype=np.int64)
    s = (((codes[:, None] >> np.arange(N)) & 1) * 2 - 1).astype(np.int8).reshape(-1, H, W)
    s32 = s.astype(np.int32)
    bonds = (s32 * np.roll(s32, -1, axis=2)).sum(axis=(1, 2)) + (
        s32 * np.roll(s32, -1, axis=1)
    ).sum(axis=(1, 2))
    m = s32.sum(axis=(1, 2)) / N
    e = -bonds / N - h * m
    logw = -beta * N * e
    w = np.exp(logw - logw.max())
    w /= w.sum()
    return float(w @ e), float(w @ np.abs(m)), float(w @ m**2)


def potts_enumerate(H, W, q, beta):
    """Exact <E>/N and <(q max_a frac_a - 1)/(q - 1)> of the periodic q-state Potts lattice."""
    N = H * W
    codes = np.arange(q**N, dtype=np.int64)
    digits = np.empty((codes.size, N), dtype=np.int8)
    c = codes.copy()
    for i in range(N):
        digits[:, i] = c % q
        c //= q
    s = digits.reshape(-1, H, W)
    bonds = (s == np.roll(s, -1, axis=2)).sum(axis=(1, 2)) + (s == np.roll(s, -1, axis=1)).sum(
        axis=(1, 2)
    )
    cnt = np.stack([(s == a).sum(axis=(1, 2)) for a in range(q)], axis=1)
    mag = (q * (cnt.max(axis=1) / N) - 1.0) / (q - 1)
    logw = beta * bonds.astype(np.float64)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    return float(w @ (-bonds / N)), float(w @ mag)


def test_reference_enumeration_matches_spec_numbers():
    e, am, m2 = ising_enumerate(4, 4, 0.4)
    assert abs(e - ISING_4X4_B04["energy"]) < 1e-6
    assert abs(am - ISING_4X4_B04["abs_m"]) < 1e-6
    assert abs(m2 - ISING_4X4_B04["m2"]) < 1e-6


def test_reference_exact_infinite_lattice_formulas():
    # spec A7: energy per site at T = 1.5, 2, 2.5, 3 and M at T = 1.5, 2, 2.2
    for T, u in [(1.5, -1.951117), (2.0, -1.745565), (2.5, -1.106079), (3.0, -0.817310)]:
        assert abs(ref.ising_exact_energy(1.0 / T) - u) < 1e-6, T
    for T, m in [(1.5, 0.986500), (2.0, 0.911319), (2.2, 0.784755)]:
        assert abs(ref.ising_exact_magnetization(1.0 / T) - m) < 1e-6, T
    assert ref.ising_exact_magnetization(1.0 / 2.5) == 0.0
    # K(m) by the AGM against known values (K(0) = pi/2, K(1/2) = 1.854074677301372)
    assert abs(ref.ellipk(0.0) - math.pi / 2) < 1e-15
    assert abs(ref.ellipk(0.5) - 1.854074677301372) < 1e-14
    # u(T_c) = -sqrt(2) (the log singularity of K is multiplied by 0 there)
    bc = math.log(1 + math.sqrt(2)) / 2
    assert abs(ref.ising_exact_energy(bc * (1 + 1e-9)) + math.sqrt(2)) < 1e-3


# ============================================================================
# the random stream (twin only: the core does not expose it)


def test_reference_stream_layout():
    seed, g, n = (7 << 32) + 123, (1 << 33) + 5, (1 << 40) + 9
    w = ref.philox_words(seed, g, n)
    want = ref_optim.philox4x32_10(
        (n & 0xFFFFFFFF, n >> 32, g & 0xFFFFFFFF, g >> 32), (seed & 0xFFFFFFFF, seed >> 32)
    )
    assert w.dtype == np.uint32 and w.shape == (4,)
    np.testing.assert_array_equal(w, want)
    # Random123's known-answer vector (all zero counter and key)
    np.testing.assert_array_equal(
        ref.philox_words(0, 0, 0), [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    )
    # broadcasting over chains and blocks
    ws = ref.philox_words(seed, np.arange(3)[:, None], np.arange(5)[None, :])
    assert ws.shape == (3, 5, 4)
    np.testing.assert_array_equal(ws[2, 4], ref.philox_words(seed, 2, 4))
    # the init stream lives at block 2^63 + ...
    assert ref.philox_words(1, 0, (1 << 63) + 3).shape == (4,)


def test_reference_uniform53_and_box_muller():
    assert ref.uniform53(0, 0) == 0.0
    assert ref.uniform53(U32 - 1, U32 - 1) == 1.0 - 2.0**-53
    assert ref.uniform53(1 << 5, 0) == 2.0**-27 and ref.uniform53(0, 1 << 6) == 2.0**-53
    seed, blocks = 11, np.arange(4000)
    w = ref.philox_words(seed, 3, blocks)
    u = ref.philox_uniforms(seed, 3, blocks)
    np.testing.assert_array_equal(u[:, 0], ((w[:, 0] >> 5).astype(np.float64) * 2**26
                                            + (w[:, 1] >> 6)) * 2.0**-53)
    np.testing.assert_array_equal(u[:, 1], ref.uniform53(w[:, 2], w[:, 3]))
    z = ref.philox_normals(seed, 3, blocks)
    r = np.sqrt(-2.0 * np.log(1.0 - u[:, 0]))
    np.testing.assert_array_equal(z[:, 0], r * np.cos(2 * np.pi * u[:, 1]))
    np.testing.assert_array_equal(z[:, 1], r * np.sin(2 * np.pi * u[:, 1]))
    # moments of 2e5 normals and uniforms (4 SE)
    zz = ref.philox_normals(5, np.arange(10)[:, None], np.arange(10000)[None, :]).reshape(-1)
    assert abs(zz.mean()) < 4 / math.sqrt(zz.size)
    assert abs(zz.var() - 1) < 4 * math.sqrt(2 / zz.size)
    uu = ref.philox_uniforms(5, 0, np.arange(50000)).reshape(-1)
    assert abs(uu.mean() - 0.5) < 4 * math.sqrt(1 / 12 / uu.size)


# ============================================================================
# the word schedule, written a second time as scalar loops (twin only)


def _word(seed, g, block, k):
    return int(ref.philox_words(seed, g, block)[k])


def _site_word(seed, g, base, q):
    """The contract's word of site q in the stream starting at block ``base``: groups of
    64 sites read 16 blocks word-major (word (q % 64) // 16 of block base + 16 (q // 64) + q % 16)."""
    return _word(seed, g, base + 16 * (q // 64) + q % 16, (q % 64) // 16)


def scalar_lattice(H, W, q, beta, h, n_sweeps, seed, chains, chain_offset, init, record_every):
    """The contract's lattice schedule site by site in plain Python (q = 0: Ising)."""
    NB = 16 * -(-(H * W // 2) // 64)
    out, mags, ens = [], [], []
    for c in range(chains):
        g = chain_offset + c
        s = [[0] * W for _ in range(H)]
        for r in range(H):
            for cc in range(W):
                if isinstance(init, str) and init == "random":
                    qq = r * W + cc
                    x = _site_word(seed, g, 1 << 63, qq)
                    s[r][cc] = (1 if x < 1 << 31 else -1) if q == 0 else (x * q) >> 32
                elif isinstance(init, str):
                    up = init == "up"
                    s[r][cc] = (1 if up else -1) if q == 0 else (0 if up else q - 1)
                else:
                    s[r][cc] = int(init[c, r, cc])
        mc, ec = [], []
        for sw in range(n_sweeps):
            for col in (0, 1):
                for r in range(H):
                    for k in range(W // 2):
                        cc = 2 * k + (r + col) % 2
                        site = r * (W // 2) + k
                        x = _site_word(seed, g, (2 * sw + col) * NB, site)
                        nb = [s[(r - 1) % H][cc], s[(r + 1) % H][cc], s[r][(cc - 1) % W],
                              s[r][(cc + 1) % W]]
                        if q == 0:
                            f = float(sum(nb)) + h
                            p = 1.0 / (1.0 + math.exp(-2.0 * beta * f))
                            T = min(math.floor(p * 2.0**32), U32)
                            s[r][cc] = 1 if x < T else -1
                        else:
                            e = [math.exp(beta * float(nb.count(a))) for a in range(q)]
                            Z = 0.0
                            for v in e:
                                Z += v
                            u = (x + 0.5) * 2.0**-32
                            cum, pick = 0.0, q - 1
                            for a in range(q):
                                cum += e[a]
                                if u * Z < cum:
                                    pick = a
                                    break
                            s[r][cc] = pick
            if (sw + 1) % record_every == 0:
                N = H * W
                if q == 0:
                    m = sum(map(sum, s))
                    b = sum(s[r][cc] * (s[r][(cc + 1) % W] + s[(r + 1) % H][cc])
                            for r in range(H) for cc in range(W))
                    mc.append(m / N)
                    ec.append(-b / N - h * (m / N))
                else:
                    b = sum((s[r][cc] == s[r][(cc + 1) % W]) + (s[r][cc] == s[(r + 1) % H][cc])
                            for r in range(H) for cc in range(W))
                    cnt = [sum(row.count(a) for row in s) for a in range(q)]
                    mc.append((q * (max(cnt) / N) - 1.0) / (q - 1))
                    ec.append(-b / N)
        out.append(s)
        mags.append(mc)
        ens.append(ec)
    return np.array(out, dtype=np.int8), np.array(mags), np.array(ens)


LATTICE_CASES = [
    dict(shape=(4, 6), beta=0.45, h=0.3, n_sweeps=3, seed=(1 << 40) + 7, chains=2,
         chain_offset=5, init="random", record_every=1),
    dict(shape=(2, 4), beta=0.0, h=0.0, n_sweeps=2, seed=3, chains=1, chain_offset=0,
         init="up", record_every=2),
    dict(shape=(6, 2), beta=1.3, h=-0.7, n_sweeps=4, seed=0, chains=2, chain_offset=1,
         init="down", record_every=3),
    # 84 sites per colour (two groups of 64), 168 init sites (three)
    dict(shape=(12, 14), beta=0.4, h=0.0, n_sweeps=2, seed=21, chains=1, chain_offset=2,
         init="random", record_every=1),
]


@pytest.mark.parametrize("case", LATTICE_CASES, ids=lambda c: "x".join(map(str, c["shape"])))
def test_reference_ising_schedule_by_scalar_loops(case):
    kw = dict(case)
    shape, beta, n_sweeps = kw.pop("shape"), kw.pop("beta"), kw.pop("n_sweeps")
    tr = ref.gibbs_ising(shape, beta, n_sweeps, **kw)
    s, m, e = scalar_lattice(*shape, 0, beta, case["h"], n_sweeps, case["seed"], case["chains"],
                             case["chain_offset"], case["init"], case["record_every"])
    assert tr.spins.dtype == np.int8 and tr.spins.shape == s.shape
    np.testing.assert_array_equal(tr.spins, s)
    assert tr.magnetization.shape == m.shape == (case["chains"], n_sweeps // case["record_every"])
    np.testing.assert_array_equal(tr.magnetization, m)
    np.testing.assert_array_equal(tr.energy, e)


@pytest.mark.parametrize("q", [2, 3, 5])
def test_reference_potts_schedule_by_scalar_loops(q):
    tr = ref.gibbs_potts((10, 14), q, 0.8, 2, chains=2, seed=(5 << 32) + 1, chain_offset=3)
    s, m, e = scalar_lattice(10, 14, q, 0.8, 0.0, 2, (5 << 32) + 1, 2, 3, "random", 1)
    np.testing.assert_array_equal(tr.spins, s)
    np.testing.assert_array_equal(tr.magnetization, m)
    np.testing.assert_array_equal(tr.energy, e)


def test_reference_ising_beta0_is_the_words():
    """beta = 0: every site is +1 iff its word < 2^31 (T = floor(0.5 * 2^32))."""
    H, W, seed = 10, 16, 99  # 80 sites per colour: two groups of 64, the second partial
    tr = ref.gibbs_ising((H, W), 0.0, 2, h=1.5, seed=seed, chains=1)
    NB = 32  # 16 blocks per group of 64 sites
    words = ref.philox_words(seed, 0, np.arange(2 * NB, 4 * NB)).reshape(2, 2, 16, 4)  # sweep 1
    words = words.transpose(0, 1, 3, 2).reshape(2, 128)  # site 64 j + 16 k + b: word k, block b
    last = np.empty((H, W), dtype=np.int8)
    for col in (0, 1):
        for r in range(H):
            for k in range(W // 2):
                last[r, 2 * k + (r + col) % 2] = 1 if words[col, r * W // 2 + k] < 1 << 31 else -1
    np.testing.assert_array_equal(tr.spins[0], last)
    init = ref.gibbs_ising((H, W), 0.7, 0, seed=seed).spins[0]
    w0 = ref.philox_words(seed, 0, np.uint64(1 << 63) + np.arange(48, dtype=np.uint64))
    w0 = w0.reshape(3, 16, 4).transpose(0, 2, 1).reshape(-1)[: H * W]
    np.testing.assert_array_equal(init.reshape(-1), np.where(w0 < 1 << 31, 1, -1))


def scalar_metropolis(logp, x0, n_steps, *, step_size, seed, burn, thin, adapt, chain_offset,
                      proposal="gaussian"):
    """The contract's Metropolis schedule chain by chain with Python floats."""
    C, D = x0.shape
    P = (D + 1) // 2
    s = np.broadcast_to(np.asarray(step_size, dtype=np.float64), (D,))
    S = -(-n_steps // thin)
    samples, lps, rates, steps = np.empty((C, S, D)), np.empty((C, S)), [], []
    for c in range(C):
        g = chain_offset + c
        x = [float(v) for v in x0[c]]
        lp = logp(x)
        f, acc = 1.0, 0
        if proposal != "gaussian":
            mu, L = proposal[1], np.linalg.cholesky(proposal[2])
            zx = np.linalg.solve(L, np.asarray(x) - mu)
            lq = -0.5 * float(zx @ zx)
        for t in range(burn + n_steps):
            base = t * (P + 1)
            z = []
            for i in range(P):
                z += list(ref.philox_normals(seed, g, base + i))
            z = z[:D]
            u = float(ref.philox_uniforms(seed, g, base + P)[0])
            if proposal == "gaussian":
                y = [x[i] + (f * s[i]) * z[i] for i in range(D)]
                lqy = 0.0
            else:
                y = list(mu + L @ np.asarray(z))
                lqy = -0.5 * sum(v * v for v in z)
            lpy = logp(y)
            lr = lpy - lp + ((lq - lqy) if proposal != "gaussian" else 0.0)
            take = (math.log(u) if u > 0 else -math.inf) < lr
            if adapt and proposal == "gaussian" and t < burn:
                a = 0.0 if lpy == -math.inf else min(1.0, math.exp(min(lr, 700.0)))
                f *= math.exp((a - 0.234) / (t + 1) ** 0.6)
            if take:
                x, lp = y, lpy
                if proposal != "gaussian":
                    lq = lqy
                if t >= burn:
                    acc += 1
            r = t - burn
            if r >= 0 and r % thin == 0:
                samples[c, r // thin] = x
                lps[c, r // thin] = lp
        rates.append(acc / n_steps if n_steps else 0.0)
        steps.append(f * float(np.mean(s)) if proposal == "gaussian" else 1.0)
    return samples, lps, np.array(rates), np.array(steps)


def _gauss_scalar(mean, cov):
    L = np.linalg.cholesky(cov)
    return lambda x: float(ref._gaussian_logp_chol(np.asarray(x)[None, :], mean, L)[0])


@pytest.mark.parametrize("variant", ["gaussian-adapt", "vector-step", "independent"])
def test_reference_metropolis_schedule_by_scalar_loops(variant):
    rng = np.random.default_rng(1)
    D, C = 3, 3
    mean, cov = rng.standard_normal(D), spd(rng, D)
    x0 = rng.standard_normal((C, D))
    kw = dict(step_size=0.7, seed=(1 << 35) + 2, burn=6, thin=2, adapt=True, chain_offset=4)
    if variant == "vector-step":
        kw["step_size"] = np.array([0.3, 1.1, 0.6])
    if variant == "independent":
        kw["proposal"] = ("independent", mean + 0.1, 1.5 * cov)
    tr = ref.metropolis(lambda x: ref.gaussian_logp(x, mean, cov), x0, 11, **kw)
    s, lp, rate, step = scalar_metropolis(_gauss_scalar(mean, cov), x0, 11, **kw)
    np.testing.assert_allclose(tr.samples, s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tr.logp, lp, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(tr.accept_rate, rate)
    np.testing.assert_allclose(tr.step_size, step, rtol=1e-12)
    assert tr.samples.shape == (C, 6, D)


def test_reference_metropolis_flat_target_accepts_everything():
    """logp = 0: log(u) < 0 always, so x_t = x0 + step * (z_0 + .. + z_t)."""
    C, D, seed = 2, 5, 17
    x0 = np.arange(C * D, dtype=np.float64).reshape(C, D)
    tr = ref.metropolis(lambda x: np.zeros(len(x)), x0, 4, step_size=0.5, seed=seed)
    P = 3
    for c in range(C):
        z = ref.philox_normals(seed, c, np.arange(4 * (P + 1))).reshape(4, P + 1, 2)
        z = z[:, :P].reshape(4, 2 * P)[:, :D]
        np.testing.assert_allclose(tr.samples[c], x0[c] + np.cumsum(0.5 * z, axis=0), rtol=1e-13)
    np.testing.assert_array_equal(tr.accept_rate, 1.0)
    np.testing.assert_array_equal(tr.step_size, 0.5)


def test_reference_target_logps():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 3))
    mean, cov = rng.standard_normal(3), spd(rng, 3)
    d = x - mean
    want = -0.5 * np.einsum("ci,ij,cj->c", d, np.linalg.inv(cov), d) - 0.5 * np.log(
        np.linalg.det(2 * np.pi * cov))
    np.testing.assert_allclose(ref.gaussian_logp(x, mean, cov), want, rtol=1e-12)
    x2 = x[:, :2]
    np.testing.assert_allclose(ref.rosenbrock_logp(x2, 1.5, 50.0),
                               -((1.5 - x2[:, 0]) ** 2 + 50 * (x2[:, 1] - x2[:, 0] ** 2) ** 2))
    w = np.array([0.2, 0.5, 0.3])
    means = rng.standard_normal((3, 3))
    covs = np.stack([spd(rng, 3) for _ in range(3)])
    dens = sum(w[k] * np.exp(ref.gaussian_logp(x, means[k], covs[k])) for k in range(3))
    np.testing.assert_allclose(ref.mixture_logp(x, 2 * w, means, covs), np.log(dens), rtol=1e-12)
    X = rng.standard_normal((20, 3))
    y = (rng.random(20) < 0.5).astype(np.float64)
    sg = 1 / (1 + np.exp(-(x @ X.T)))
    want = (y * np.log(sg) + (1 - y) * np.log(1 - sg)).sum(1) - (x**2).sum(1) / (2 * 2.0**2)
    np.testing.assert_allclose(ref.logistic_logp(x, X, y, 2.0), want, rtol=1e-12)
    v = x[:, 0]
    want = -v**2 / 18 + (-0.5 * x[:, 1:] ** 2 * np.exp(-v)[:, None] - 0.5 * v[:, None]).sum(1)
    np.testing.assert_allclose(ref.funnel_logp(x), want, rtol=1e-12)


# ============================================================================
# exact results with the twin (small sizes)


def test_reference_ising_4x4_matches_enumeration():
    tr = ref.gibbs_ising((4, 4), 0.4, 3000, chains=32, seed=5)
    e, se_e = chain_se(tr.energy[:, 200:].mean(axis=1))
    am, se_m = chain_se(np.abs(tr.magnetization[:, 200:]).mean(axis=1))
    assert_within_se("4x4 <E>/N", e, se_e, ISING_4X4_B04["energy"])
    assert_within_se("4x4 <|m|>", am, se_m, ISING_4X4_B04["abs_m"])


def test_reference_potts_2x6_matches_enumeration():
    e_x, m_x = potts_enumerate(2, 6, 3, 0.9)
    tr = ref.gibbs_potts((2, 6), 3, 0.9, 3000, chains=32, seed=6)
    e, se_e = chain_se(tr.energy[:, 200:].mean(axis=1))
    m, se_m = chain_se(tr.magnetization[:, 200:].mean(axis=1))
    assert_within_se("2x6 Potts <E>/N", e, se_e, e_x)
    assert_within_se("2x6 Potts <m>", m, se_m, m_x)


def test_reference_ising_64_quick():
    """A short 64x64 run: the twin stays usable at the issue's lattice size."""
    tr = ref.gibbs_ising((64, 64), 0.6, 150, chains=4, init="up", seed=1)
    assert abs(np.abs(tr.magnetization[:, 30:]).mean() - ref.ising_exact_magnetization(0.6)) < 0.01
    tr = ref.gibbs_ising((64, 64), 0.3, 150, chains=4, seed=1)
    assert abs(tr.energy[:, 30:].mean() - ref.ising_exact_energy(0.3)) < 0.01


def test_reference_acceptance_formula_1d():
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal((256, 1))
    for sigma in (0.5, 2.4):
        tr = ref.metropolis(lambda x: -0.5 * x[:, 0] ** 2, x0, 500, step_size=sigma,
                            adapt=False, seed=8)
        a, se = chain_se(tr.accept_rate)
        assert_within_se(f"acceptance sigma={sigma}", a, se, 2 / math.pi * math.atan(2 / sigma))


def test_reference_adapted_acceptance_and_independence():
    D = 10
    mean = np.linspace(-1, 1, D)
    x0 = np.tile(mean, (32, 1))
    tr = ref.metropolis(lambda x: ref.gaussian_logp(x, mean, np.eye(D)), x0, 1000, burn=1000,
                        seed=2)
    assert abs(tr.accept_rate.mean() - 0.234) < 0.05
    assert np.all(tr.step_size > 0) and tr.step_size.shape == (32,)
    cov = spd(np.random.default_rng(3), 4)
    m4 = np.arange(4.0)
    tr = ref.metropolis(lambda x: ref.gaussian_logp(x, m4, cov), np.zeros((8, 4)), 200,
                        proposal=("independent", m4, cov), seed=3)
    np.testing.assert_array_equal(tr.accept_rate, 1.0)


def test_reference_chain_offset_split():
    a = ref.gibbs_ising((6, 4), 0.5, 5, chains=6, seed=4)
    b = ref.gibbs_ising((6, 4), 0.5, 5, chains=3, seed=4)
    c = ref.gibbs_ising((6, 4), 0.5, 5, chains=3, seed=4, chain_offset=3)
    np.testing.assert_array_equal(a.spins, np.concatenate([b.spins, c.spins]))
    np.testing.assert_array_equal(a.energy, np.concatenate([b.energy, c.energy]))
    x0 = np.random.default_rng(1).standard_normal((6, 3))
    f = lambda x: -0.5 * (x**2).sum(1)  # noqa: E731
    a = ref.metropolis(f, x0, 20, burn=10, seed=4)
    b = ref.metropolis(f, x0[:3], 20, burn=10, seed=4)
    c = ref.metropolis(f, x0[3:], 20, burn=10, seed=4, chain_offset=3)
    np.testing.assert_array_equal(a.samples, np.concatenate([b.samples, c.samples]))
    np.testing.assert_array_equal(a.step_size, np.concatenate([b.step_size, c.step_size]))


def test_reference_object_target_equals_callable():
    class Flat:
        def logp(self, x):
            return -0.25 * (x**2).sum(1)

    x0 = np.ones((4, 2))
    a = ref.metropolis(Flat(), x0, 30, seed=9)
    b = ref.metropolis(Flat().logp, x0, 30, seed=9)
    np.testing.assert_array_equal(a.samples, b.samples)


# ============================================================================
# core == twin (needs the core)


def _lattice_equal(a, b):
    assert a.spins.dtype == b.spins.dtype == np.int8
    np.testing.assert_array_equal(a.spins, b.spins)
    np.testing.assert_array_equal(a.magnetization, b.magnetization)
    np.testing.assert_array_equal(a.energy, b.energy)


ISING_TWIN_CASES = [
    dict(shape=(16, 16), beta=0.44, n_sweeps=20),
    dict(shape=(8, 6), beta=0.3, n_sweeps=13, h=0.25, chains=5, seed=(1 << 40) + 3,
         record_every=3, chain_offset=7),
    dict(shape=(2, 2), beta=2.0, n_sweeps=5, h=-1.0, chains=3, init="up"),
    dict(shape=(10, 4), beta=0.0, n_sweeps=4, chains=2, init="down", seed=1),
    dict(shape=(30, 26), beta=0.6, n_sweeps=7, chains=3, seed=12, record_every=2),  # 390 sites
    dict(shape=(32, 32), beta=0.5, n_sweeps=3, chains=2, seed=13),  # 512 per colour: full groups
    # rows of 16 vectorised sites and more (half a row is W / 2 sites, 16, 17, 31, 32, 47 of
    # them updated in the row's middle): the last vector overlaps the one before it
    dict(shape=(6, 34), beta=0.4, n_sweeps=5, h=0.2, chains=2, seed=14),
    dict(shape=(4, 36), beta=0.45, n_sweeps=5, chains=1, seed=15),
    dict(shape=(6, 64), beta=0.44, n_sweeps=4, h=-0.3, chains=2, seed=16),
    dict(shape=(4, 66), beta=0.7, n_sweeps=4, chains=1, seed=17),
    dict(shape=(8, 96), beta=0.3, n_sweeps=3, chains=1, seed=18, record_every=3),
]


@pytest.mark.parametrize("case", ISING_TWIN_CASES, ids=lambda c: "x".join(map(str, c["shape"])))
def test_core_equals_twin_ising(case):
    kw = dict(case)
    args = (kw.pop("shape"), kw.pop("beta"), kw.pop("n_sweeps"))
    _lattice_equal(core().gibbs_ising(*args, **kw), ref.gibbs_ising(*args, **kw))


def test_core_equals_twin_ising_init_array():
    rng = np.random.default_rng(0)
    init = np.where(rng.random((3, 6, 8)) < 0.5, 1, -1).astype(np.int8)
    kept = init.copy()
    kw = dict(chains=3, seed=2, init=init, h=0.1)
    _lattice_equal(core().gibbs_ising((6, 8), 0.5, 6, **kw), ref.gibbs_ising((6, 8), 0.5, 6, **kw))
    np.testing.assert_array_equal(init, kept)  # the start is copied, never written


@pytest.mark.parametrize("q", [2, 3, 4, 7])
def test_core_equals_twin_potts(q):
    kw = dict(chains=3, seed=(2 << 33) + q, record_every=2, chain_offset=q)
    _lattice_equal(core().gibbs_potts((12, 10), q, 1.1, 9, **kw),
                   ref.gibbs_potts((12, 10), q, 1.1, 9, **kw))
    rng = np.random.default_rng(q)
    init = rng.integers(0, q, (2, 4, 6)).astype(np.int8)
    kw = dict(chains=2, init=init)
    _lattice_equal(core().gibbs_potts((4, 6), q, 0.5, 3, **kw),
                   ref.gibbs_potts((4, 6), q, 0.5, 3, **kw))


def _metropolis_cases():
    """(id, target factory, D, kwargs); factories take the targets module."""
    rng = np.random.default_rng(42)
    mean, cov = rng.standard_normal(5), spd(rng, 5)
    w = np.array([0.3, 0.7])
    means, covs = rng.standard_normal((2, 3)), np.stack([spd(rng, 3), spd(rng, 3)])
    X = rng.standard_normal((30, 4))
    y = (rng.random(30) < 0.5).astype(np.float64)
    return [
        ("gaussian", lambda t: t.Gaussian(mean, cov), 5,
         dict(step_size=0.5, burn=20, thin=3, seed=(1 << 40) + 11, chain_offset=3)),
        ("gaussian-vector-step", lambda t: t.Gaussian(mean, cov), 5,
         dict(step_size=np.linspace(0.2, 1.0, 5), burn=10, seed=5)),
        ("gaussian-independent", lambda t: t.Gaussian(mean, cov), 5,
         dict(proposal=("independent", mean + 0.2, 2.0 * cov), seed=6, burn=5)),
        ("rosenbrock", lambda t: t.Rosenbrock(a=1.0, b=100.0), 2,
         dict(step_size=0.05, burn=25, seed=7)),
        ("funnel", lambda t: t.Funnel(4), 4, dict(step_size=0.8, burn=20, thin=2, seed=8)),
        ("mixture", lambda t: t.GaussianMixture(w, means, covs), 3, dict(burn=10, seed=9)),
        ("logistic", lambda t: t.LogisticRegression(X, y, 2.0), 4,
         dict(step_size=0.3, adapt=False, seed=10)),
        ("callable", lambda t: (lambda x: ref.gaussian_logp(x, mean, cov)), 5,
         dict(burn=20, seed=11)),
    ]


@pytest.mark.parametrize("case", _metropolis_cases(), ids=lambda c: c[0])
def test_core_equals_twin_metropolis(case):
    _, make, D, kw = case
    target = make(targets())
    x0 = np.random.default_rng(D).standard_normal((6, D)) * 0.5
    n = 50 - kw.get("burn", 0)
    a = core().metropolis(target, x0, n, **kw)
    b = ref.metropolis(target, x0, n, **kw)
    S = -(-n // kw.get("thin", 1))
    assert a.samples.shape == b.samples.shape == (6, S, D)
    assert a.samples.dtype == np.float64
    np.testing.assert_allclose(a.samples, b.samples, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.logp, b.logp, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.accept_rate, b.accept_rate)
    np.testing.assert_allclose(a.step_size, b.step_size, rtol=1e-12)
    assert 0 < a.accept_rate.mean() <= 1


def test_core_builtin_logp_matches_twin_formulas():
    """The built-in targets' numpy .logp equals the twin's formula functions."""
    t = targets()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    mean, cov = rng.standard_normal(4), spd(rng, 4)
    np.testing.assert_allclose(t.Gaussian(mean, cov).logp(x), ref.gaussian_logp(x, mean, cov),
                               rtol=1e-12)
    np.testing.assert_allclose(t.Rosenbrock(a=1.0, b=100.0).logp(x[:, :2]),
                               ref.rosenbrock_logp(x[:, :2]), rtol=1e-12)
    np.testing.assert_allclose(t.Funnel(4).logp(x), ref.funnel_logp(x), rtol=1e-12)


def test_names_and_signatures_match_the_twin():
    ks = core()
    for name in ("metropolis", "gibbs_ising", "gibbs_potts"):
        assert inspect.signature(getattr(ks, name)) == inspect.signature(getattr(ref, name)), name


# ============================================================================
# exact results with the core (the sizes)


def test_ising_64_magnetization_beta06():
    beta = 0.6
    tr = core().gibbs_ising((64, 64), beta, 1500, chains=16, init="up", seed=1)
    assert tr.magnetization.shape == (16, 1500)
    m, se = chain_se(np.abs(tr.magnetization[:, 300:]).mean(axis=1))
    assert_within_se("64x64 |m| at beta=0.6", m, se, ref.ising_exact_magnetization(beta))


def test_ising_64_energy_beta03():
    beta = 0.3
    tr = core().gibbs_ising((64, 64), beta, 1500, chains=16, seed=2)
    e, se = chain_se(tr.energy[:, 300:].mean(axis=1))
    assert_within_se("64x64 energy at beta=0.3", e, se, ref.ising_exact_energy(beta))


def test_ising_4x4_matches_enumeration():
    tr = core().gibbs_ising((4, 4), 0.4, 20000, chains=64, seed=3)
    e, se_e = chain_se(tr.energy[:, 500:].mean(axis=1))
    am, se_m = chain_se(np.abs(tr.magnetization[:, 500:]).mean(axis=1))
    m2, se_2 = chain_se((tr.magnetization[:, 500:] ** 2).mean(axis=1))
    assert_within_se("4x4 <E>/N", e, se_e, ISING_4X4_B04["energy"])
    assert_within_se("4x4 <|m|>", am, se_m, ISING_4X4_B04["abs_m"])
    assert_within_se("4x4 <m^2>", m2, se_2, ISING_4X4_B04["m2"])


def test_ising_field_matches_enumeration():
    e_x, _, _ = ising_enumerate(2, 6, 0.5, h=0.4)
    tr = core().gibbs_ising((2, 6), 0.5, 10000, h=0.4, chains=32, seed=4)
    e, se = chain_se(tr.energy[:, 500:].mean(axis=1))
    assert_within_se("2x6 <E>/N with h=0.4", e, se, e_x)


def test_potts_matches_enumeration():
    e_x, m_x = potts_enumerate(2, 6, 3, 0.9)
    tr = core().gibbs_potts((2, 6), 3, 0.9, 20000, chains=32, seed=6)
    e, se_e = chain_se(tr.energy[:, 500:].mean(axis=1))
    m, se_m = chain_se(tr.magnetization[:, 500:].mean(axis=1))
    assert_within_se("2x6 Potts <E>/N", e, se_e, e_x)
    assert_within_se("2x6 Potts <m>", m, se_m, m_x)


def test_gaussian_moments_and_adapted_acceptance():
    ks, t = core(), targets()
    D, C = 10, 32
    rng = np.random.default_rng(10)
    mean, cov = rng.standard_normal(D), spd(rng, D, cond=4.0)
    x0 = mean + 0.1 * rng.standard_normal((C, D))
    tr = ks.metropolis(t.Gaussian(mean, cov), x0, 6000, burn=3000, thin=2, seed=11)
    assert abs(tr.accept_rate.mean() - 0.234) < 0.05, tr.accept_rate.mean()
    x = tr.samples
    # plain (not rank-normalised) ESS: the one behind the standard error of a mean
    ess = np.asarray(ks.ess(x, method="plain"))
    assert ess.shape == (D,) and np.all(ess > 200), ess
    got = x.mean(axis=(0, 1))
    se = np.sqrt(np.diag(cov) / ess)
    assert np.all(np.abs(got - mean) <= SE_TOL * se), (got - mean) / se
    d = x - mean
    iu = np.triu_indices(D)
    prod = (d[..., :, None] * d[..., None, :])[..., iu[0], iu[1]]  # [C, S, D(D+1)/2]
    ess_p = np.asarray(ks.ess(prod, method="plain"))
    got = prod.mean(axis=(0, 1))
    se = prod.reshape(-1, prod.shape[-1]).std(axis=0) / np.sqrt(ess_p)
    z = (got - cov[iu]) / se
    assert np.all(np.abs(z) <= SE_TOL), z


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.4, 5.0])
def test_acceptance_formula_1d(sigma):
    ks, t = core(), targets()
    x0 = np.random.default_rng(12).standard_normal((256, 1))
    tr = ks.metropolis(t.Gaussian(np.zeros(1), np.eye(1)), x0, 4000, step_size=sigma,
                       adapt=False, seed=13)
    np.testing.assert_array_equal(tr.step_size, sigma)
    a, se = chain_se(tr.accept_rate)
    assert_within_se(f"acceptance sigma={sigma}", a, se, 2 / math.pi * math.atan(2 / sigma))


def test_independence_with_exact_target_accepts_everything():
    ks, t = core(), targets()
    rng = np.random.default_rng(14)
    mean, cov = rng.standard_normal(4), spd(rng, 4)
    x0 = rng.standard_normal((16, 4))
    for target in (t.Gaussian(mean, cov), lambda x: ref.gaussian_logp(x, mean, cov)):
        tr = ks.metropolis(target, x0, 500, proposal=("independent", mean, cov), seed=15)
        np.testing.assert_array_equal(tr.accept_rate, 1.0)


# ============================================================================
# determinism


def test_same_seed_same_output():
    ks, t = core(), targets()
    a = ks.gibbs_ising((16, 8), 0.4, 10, chains=3, seed=5)
    b = ks.gibbs_ising((16, 8), 0.4, 10, chains=3, seed=5)
    _lattice_equal(a, b)
    c = ks.gibbs_ising((16, 8), 0.4, 10, chains=3, seed=6)
    assert not np.array_equal(a.spins, c.spins)
    x0 = np.zeros((4, 3))
    for target in (t.Gaussian(np.zeros(3), np.eye(3)), lambda x: -0.5 * (x**2).sum(1)):
        a = ks.metropolis(target, x0, 40, burn=10, seed=5)
        b = ks.metropolis(target, x0, 40, burn=10, seed=5)
        assert a.samples.tobytes() == b.samples.tobytes()
        assert a.logp.tobytes() == b.logp.tobytes()


def test_threads_give_identical_results():
    ks, t = core(), targets()
    x0 = np.random.default_rng(0).standard_normal((64, 6))
    gauss = t.Gaussian(np.zeros(6), np.eye(6))

    def run():
        return [
            ks.gibbs_ising((64, 64), 0.44, 5, chains=1, seed=1),  # rows in parallel
            ks.gibbs_ising((16, 16), 0.44, 5, chains=8, seed=1),  # chains in parallel
            ks.gibbs_potts((32, 32), 3, 1.0, 5, chains=1, seed=1),
            ks.gibbs_potts((8, 8), 4, 1.0, 5, chains=8, seed=1),
            ks.metropolis(gauss, x0, 50, burn=20, seed=1),
            ks.metropolis(lambda x: -0.5 * (x**2).sum(1), x0, 50, burn=20, seed=1),
        ]

    before = kexue.get_num_threads()
    try:
        kexue.set_num_threads(1)
        one = run()
        kexue.set_num_threads(2)
        two = run()
    finally:
        kexue.set_num_threads(before)
    for a, b in zip(one[:4], two[:4]):
        _lattice_equal(a, b)
    for a, b in zip(one[4:], two[4:]):
        for f in ("samples", "logp", "accept_rate", "step_size"):
            assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f


def test_chain_offset_split_equals_one_call():
    ks, t = core(), targets()
    C = 8
    a = ks.gibbs_ising((12, 10), 0.5, 7, chains=C, seed=9)
    b = ks.gibbs_ising((12, 10), 0.5, 7, chains=C // 2, seed=9)
    c = ks.gibbs_ising((12, 10), 0.5, 7, chains=C // 2, seed=9, chain_offset=C // 2)
    for f in ("spins", "magnetization", "energy"):
        np.testing.assert_array_equal(getattr(a, f),
                                      np.concatenate([getattr(b, f), getattr(c, f)]))
    a = ks.gibbs_potts((6, 6), 3, 1.0, 7, chains=C, seed=9)
    b = ks.gibbs_potts((6, 6), 3, 1.0, 7, chains=C // 2, seed=9)
    c = ks.gibbs_potts((6, 6), 3, 1.0, 7, chains=C // 2, seed=9, chain_offset=C // 2)
    np.testing.assert_array_equal(a.spins, np.concatenate([b.spins, c.spins]))
    x0 = np.random.default_rng(1).standard_normal((C, 4))
    for target in (t.Gaussian(np.zeros(4), np.eye(4)), lambda x: -0.5 * (x**2).sum(1)):
        a = ks.metropolis(target, x0, 30, burn=15, seed=9)
        b = ks.metropolis(target, x0[: C // 2], 30, burn=15, seed=9)
        c = ks.metropolis(target, x0[C // 2:], 30, burn=15, seed=9, chain_offset=C // 2)
        for f in ("samples", "logp", "accept_rate", "step_size"):
            np.testing.assert_array_equal(getattr(a, f),
                                          np.concatenate([getattr(b, f), getattr(c, f)]))


@pytest.mark.parametrize("kind", ["gaussian", "gaussian-independent", "funnel", "mixture"])
def test_metropolis_tiles_of_32_chains_equal_groups_of_8(kind):
    """The core steps 32 chains at a time (four interleaved groups of eight) and the rest
    eight at a time: a chain's bits must not depend on which of the two it falls in."""
    ks, t = core(), targets()
    rng = np.random.default_rng(12)
    D = 5
    mean, cov = rng.standard_normal(D), spd(rng, D)
    kw = dict(burn=10, thin=2, seed=(3 << 33) + 1)
    target = {"gaussian": t.Gaussian(mean, cov), "gaussian-independent": t.Gaussian(mean, cov),
              "funnel": t.Funnel(D),
              "mixture": t.GaussianMixture([0.4, 0.6], rng.standard_normal((2, D)),
                                           np.stack([spd(rng, D), spd(rng, D)]))}[kind]
    if kind == "gaussian-independent":
        kw["proposal"] = ("independent", mean + 0.1, 1.5 * cov)
    x0 = rng.standard_normal((40, D)) * 0.5 + (mean if kind.startswith("gaussian") else 0.0)
    a = ks.metropolis(target, x0, 25, **kw)  # chains 0-31: one tile; 32-39: a group
    b = ks.metropolis(target, x0[:8], 25, **kw)  # chains 0-7 alone: a group
    c = ks.metropolis(target, x0[8:], 25, chain_offset=8, **kw)  # chains 8-39: a tile
    for f in ("samples", "logp", "accept_rate", "step_size"):
        np.testing.assert_array_equal(getattr(a, f), np.concatenate([getattr(b, f), getattr(c, f)]))
    assert 0 < a.accept_rate.mean() < 1


def test_metropolis_many_dimensions_equals_twin():
    """D = 131 (odd, 67 Philox blocks a step) over a tile of 32 chains and a partial group."""
    rng = np.random.default_rng(13)
    D = 131
    x0 = rng.standard_normal((35, D))
    target = targets().Gaussian(np.zeros(D), np.eye(D))
    kw = dict(step_size=0.2, burn=2, seed=17, chain_offset=5)
    a = core().metropolis(target, x0, 4, **kw)
    b = ref.metropolis(target, x0, 4, **kw)
    np.testing.assert_allclose(a.samples, b.samples, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.logp, b.logp, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.accept_rate, b.accept_rate)


@pytest.mark.parametrize("n_steps", [1, 64, 130])
def test_metropolis_progress_builtin_target(capsys, n_steps):
    """Built-in targets report progress too (their chains advance on several threads: the
    line counts steps averaged over the chains, reaching n_steps exactly once); the chains
    are those of a run without it."""
    ks, t = core(), targets()
    x0 = np.random.default_rng(2).standard_normal((40, 3))
    target = t.Gaussian(np.zeros(3), np.eye(3))
    a = ks.metropolis(target, x0, n_steps, burn=5, seed=3, progress=True)
    err = capsys.readouterr().err
    total = n_steps + 5
    assert "[kexue.samplers.metropolis]" in err
    assert err.count(f"{total}/{total} (100%)") == 1 and err.endswith("\n")
    b = ks.metropolis(target, x0, n_steps, burn=5, seed=3)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.accept_rate, b.accept_rate)


def test_callable_target_equals_builtin():
    ks, t = core(), targets()
    rng = np.random.default_rng(4)
    mean, cov = rng.standard_normal(3), spd(rng, 3)
    x0 = rng.standard_normal((8, 3))
    for target in (t.Gaussian(mean, cov), t.Funnel(3), t.Rosenbrock(a=1.0, b=100.0)):
        x = x0[:, :2] if isinstance(target, t.Rosenbrock) else x0
        a = ks.metropolis(target, x, 60, burn=20, step_size=0.3, seed=16)
        b = ks.metropolis(target.logp, x, 60, burn=20, step_size=0.3, seed=16)
        np.testing.assert_allclose(a.samples, b.samples, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.logp, b.logp, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(a.accept_rate, b.accept_rate)


# ============================================================================
# bad inputs (both implementations; the twin's run with -k reference)


def _std(x):
    return -0.5 * (x**2).sum(1)


class _NaNAt:
    """A callable target that returns NaN for one chain at one step (call 0 is x0)."""

    def __init__(self, step, chain):
        self.calls, self.step, self.chain = 0, step, chain

    def __call__(self, x):
        out = _std(x)
        if self.calls == self.step + 1:
            out[self.chain] = np.nan
        self.calls += 1
        return out


def _m(name):
    return rf"\[kexue\.samplers\.{name}\]"


BAD_METROPOLIS = [
    ("x0-1d", lambda: (_std, np.zeros(3), 10), {}, ValueError, "x0"),
    ("x0-3d", lambda: (_std, np.zeros((2, 3, 1)), 10), {}, ValueError, "x0"),
    ("wrong-shape", lambda: (lambda x: np.zeros((len(x), 1)), np.zeros((2, 3)), 10), {},
     ValueError, "target"),
    ("wrong-length", lambda: (lambda x: np.zeros(len(x) + 1), np.zeros((2, 3)), 10), {},
     ValueError, "target"),
    ("nan", lambda: (_NaNAt(3, 1), np.zeros((2, 3)), 10), {}, ValueError,
     "target returned NaN at step 3 for chain 1"),
    ("nan-in-burn", lambda: (_NaNAt(0, 0), np.zeros((2, 3)), 10), dict(burn=5), ValueError,
     "target returned NaN at step 0 for chain 0"),
    ("thin-0", lambda: (_std, np.zeros((2, 3)), 10), dict(thin=0), ValueError, "thin"),
    ("n_steps-negative", lambda: (_std, np.zeros((2, 3)), -1), {}, ValueError, "n_steps"),
    ("burn-negative", lambda: (_std, np.zeros((2, 3)), 5), dict(burn=-1), ValueError, "burn"),
    ("step_size-shape", lambda: (_std, np.zeros((2, 3)), 5), dict(step_size=[0.1, 0.2]),
     ValueError, "step_size"),
    ("step_size-zero", lambda: (_std, np.zeros((2, 3)), 5), dict(step_size=0.0), ValueError,
     "step_size"),
    ("proposal", lambda: (_std, np.zeros((2, 3)), 5), dict(proposal="cauchy"), ValueError,
     "proposal"),
    ("target-type", lambda: (42, np.zeros((2, 3)), 5), {}, TypeError, "target"),
    ("x0-dtype", lambda: (_std, np.zeros((2, 3), dtype=np.int64), 5), {}, TypeError, "x0"),
]


@pytest.mark.parametrize("case", BAD_METROPOLIS, ids=lambda c: c[0])
def test_bad_metropolis_inputs(impl, case):
    _, args, kw, exc, msg = case
    with pytest.raises(exc, match=_m("metropolis") + " " + re.escape(msg)):
        impl.metropolis(*args(), **kw)


BAD_LATTICE = [
    ("beta-negative", "gibbs_ising", ((4, 4), -0.1, 3), {}, "beta"),
    ("beta-nan", "gibbs_ising", ((4, 4), float("nan"), 3), {}, "beta"),
    ("odd-H", "gibbs_ising", ((5, 4), 0.4, 3), {}, "shape"),
    ("odd-W", "gibbs_ising", ((4, 3), 0.4, 3), {}, "shape"),
    ("n_sweeps-negative", "gibbs_ising", ((4, 4), 0.4, -1), {}, "n_sweeps"),
    ("record_every-0", "gibbs_ising", ((4, 4), 0.4, 3), dict(record_every=0), "record_every"),
    ("init-values", "gibbs_ising", ((2, 2), 0.4, 3),
     dict(init=np.zeros((1, 2, 2), dtype=np.int8)), "init"),
    ("init-name", "gibbs_ising", ((2, 2), 0.4, 3), dict(init="sideways"), "init"),
    ("q-1", "gibbs_potts", ((4, 4), 1, 0.4, 3), {}, "q"),
    ("potts-beta", "gibbs_potts", ((4, 4), 3, -1.0, 3), {}, "beta"),
    ("potts-odd", "gibbs_potts", ((4, 7), 3, 1.0, 3), {}, "shape"),
    ("potts-init", "gibbs_potts", ((2, 2), 3, 0.4, 3),
     dict(init=np.full((1, 2, 2), 3, dtype=np.int8)), "init"),
]


@pytest.mark.parametrize("case", BAD_LATTICE, ids=lambda c: c[0])
def test_bad_lattice_inputs(impl, case):
    _, fn, args, kw, msg = case
    with pytest.raises(ValueError, match=_m(fn) + " " + re.escape(msg)):
        getattr(impl, fn)(*args, **kw)
