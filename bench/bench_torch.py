"""Benchmark of kexue.torch: kexue.torch.CRF in a BiLSTM-CRF tagger against pytorch-crf,
and kexue.torch.scaled_dot_product_attention in a transformer against torch's SDPA.

A BiLSTM-CRF tagger (float32): tokens [B,T] = [32,128] from a vocabulary of
5000, an embedding of 100, one bidirectional ``nn.LSTM`` of 128 per
direction over the padded batch, a ``nn.Linear`` to K=9 emissions and a CRF
(``batch_first=True``); lengths drawn from 64..128 (one row at 128), a bool
mask on the valid steps, random gold tags. Two copies of the tagger with
identical weights: one whose CRF is pytorch-crf's ``torchcrf.CRF``, one
whose CRF is ``kexue.torch.CRF``. At each thread count
(``torch.set_num_threads`` and kexue's matched):

- bilstm_crf.train_step: one training step, ``zero_grad`` + the negative
  log-likelihood ``-crf(emissions, tags, mask=mask)`` (reduction "sum") +
  ``backward`` + ``torch.optim.Adam.step`` over every parameter (the
  weights drift over the timed steps, the same way for both);
- crf.fwd+bwd (alone): the CRF's share of that step: the same negative
  log-likelihood + ``backward`` on the CRF alone, on the tagger's emissions
  (computed once, detached, ``requires_grad=True``); the report divides it
  by the step's time;
- crf.decode: ``crf.decode(emissions, mask=mask)`` on the same emissions
  (under ``torch.no_grad``), a list of tag lists;
- transformer_block.step (SDPA): one training step of a 4-layer
  pre-LayerNorm transformer (float32): x [B,N,d] = [8,256,256] (random
  inputs, no embedding), per layer LayerNorm -> Linear(d, 3d) -> q, k, v
  [B,4,N,64] (strided views of the projection, ``view`` + ``permute``:
  torch's kernel reads them in place, kexue.torch copies each to a
  contiguous array first, as any caller's layout would) -> causal
  attention (``is_causal=True``) -> Linear(d, d) + residual, LayerNorm ->
  Linear(d, 4d) -> GELU -> Linear(4d, d) + residual; a final LayerNorm, the
  mean squared error against a random target, ``backward`` and
  ``torch.optim.Adam.step``. Two copies with identical weights: the
  attention is ``torch.nn.functional.scaled_dot_product_attention`` in one
  (column torch) and ``kexue.torch.scaled_dot_product_attention`` in the
  other (column kexue); everything else is the same torch code. ``--quick``
  runs it at [B,N] = [2,128].

Columns: kexue (kexue.torch.CRF, or kexue.torch's SDPA) and its peer
(pytorch-crf, or torch's SDPA), the same step / call with the other
component. At each thread count the (case, implementation) measurements
take turns over a few rounds (3 with --quick, 5 without), each a harness
``time_median``; a row is the median of its rounds, so that a busy machine
weighs on both implementations, and on the step and the CRF alone, alike.

Before any timing the two taggers' losses must agree (1e-4 relative), the
CRF-alone gradients (emissions and the CRF's parameters) be close, and the
decoded paths be identical (a differing path is accepted only as an exact
tie in float64 path score, and reported); the two transformers' losses must
agree (1e-4 relative) and the gradients of every parameter after one
backward be close (atol 1e-3 of the largest entry). The end of the report
compares the numbers with issue 9's performance bar at 2 threads (informational):
the CRF's share of the step under 5% with kexue.torch.CRF (about half with
pytorch-crf), so the whole step close to 2x faster (taken as at least 1.8x
here; the line also gives the speedup that swapping pytorch-crf's CRF time
for kexue's in pytorch-crf's step accounts for, the ceiling the tagger
allows), and decode at least 20x faster; and it gives the transformer
step's time with kexue.torch's SDPA against torch's (no bar stated).

Without torch the file prints a note and no rows; without pytorch-crf the
CRF cases are left out; without kexue.torch.CRF or kexue.torch's SDPA
(kexue.attention) the kexue cell of those cases is '-'.

Run: ``python bench/bench_torch.py [--quick] [--threads 1 2]`` or
``python -m kexue bench torch``.
"""

from __future__ import annotations

import statistics
import sys
import warnings
from collections.abc import Sequence

import numpy as np

try:  # installed as kexue._bench, or run as a script from bench/
    from . import _harness
except ImportError:
    import _harness  # type: ignore[no-redef]

Budget = _harness.Budget
Case = _harness.Case
Row = _harness.Row
assert_close = _harness.assert_close
fmt_ratio = _harness.fmt_ratio
fmt_time = _harness.fmt_time
lookup = _harness.lookup
num_threads = _harness.num_threads
progress = _harness.progress
row = _harness.row
time_median = _harness.time_median

AREA = "torch"
DTYPE = np.float32

# the tagger
B, T, K = 32, 128, 9
VOCAB, EMBED, HIDDEN = 5000, 100, 128
LEN_MIN = 64  # lengths LEN_MIN..T
LR = 1e-3
SEED = 0

LOSS_RTOL = 1e-4  # float32 loss of the two taggers
GRAD_TOL = 1e-3  # CRF-alone gradients: atol relative to the largest |entry|
TIE_RTOL = 1e-6  # a differing decoded path must score the same as the other's (float64)

# Timing: at each thread count the six (case, CRF) calls take turns, ROUNDS
# times, each a time_median under ROUND_BUDGET; a row's time is the median of
# its rounds. Taking turns spreads a busy machine's noise over both CRFs and
# over the step and the CRF alone (whose ratio is the share).
QUICK_ROUNDS, FULL_ROUNDS = 3, 5
QUICK_ROUND_BUDGET = Budget(seconds=0.2, min_repeats=2, max_repeats=100)
FULL_ROUND_BUDGET = Budget(seconds=0.5, min_repeats=3, max_repeats=500)

OP_STEP = "bilstm_crf.train_step"
OP_CRF = "crf.fwd+bwd (alone)"
OP_DECODE = "crf.decode"
OP_SDPA = "transformer_block.step (SDPA)"
SHAPE_STEP = f"({B},{T},{K}) E={EMBED} H={HIDDEN}x2 V={VOCAB}"
SHAPE_CRF = f"({B},{T},{K})"

# the transformer: [B,N,d], heads, layers, MLP width factor
TF_B, TF_N, TF_D, TF_HEADS, TF_LAYERS, TF_MLP = 8, 256, 256, 4, 4, 4
TF_B_QUICK, TF_N_QUICK = 2, 128
TF_LOSS_RTOL = 1e-4
TF_GRAD_TOL = 1e-3  # atol relative to the largest |entry|, per parameter


def tf_shape(quick: bool) -> str:
    b, n = (TF_B_QUICK, TF_N_QUICK) if quick else (TF_B, TF_N)
    return f"({b},{n},{TF_D}) heads={TF_HEADS} layers={TF_LAYERS} causal"


KX, PT, TORCH = "kexue", "pytorch-crf", "torch"


# ---------------------------------------------------------------------------
# loading


def load_torch():
    """(torch, torchcrf.CRF or None, kexue.torch.CRF or None, kexue.torch's SDPA or None),
    or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    try:
        import torchcrf

        pt_crf = torchcrf.CRF
    except ImportError:
        progress(f"[{AREA}] pytorch-crf not installed (pip install pytorch-crf): "
                 "the CRF cases are left out")
        pt_crf = None
    # pytorch-crf 0.7.2 passes a uint8 mask to torch.where; recent torch warns on every call.
    warnings.filterwarnings(
        "ignore", message="where received a uint8 condition", category=UserWarning
    )
    kx_crf = kx_sdpa = None
    try:
        import kexue.torch
    except ImportError as e:
        progress(f"[{AREA}] kexue.torch unavailable ({e}): the kexue column is '-'")
        return torch, pt_crf, None, None
    try:
        kx_crf = kexue.torch.CRF
    except (ImportError, AttributeError) as e:
        progress(f"[{AREA}] kexue.torch.CRF unavailable ({e}): its kexue cells are '-'")
    try:
        kx_sdpa = kexue.torch.scaled_dot_product_attention
    except (ImportError, AttributeError) as e:
        progress(f"[{AREA}] kexue.torch.scaled_dot_product_attention unavailable ({e}): "
                 "its kexue cells are '-'")
    return torch, pt_crf, kx_crf, kx_sdpa


# ---------------------------------------------------------------------------
# inputs and the tagger


class Batch:
    """One padded batch: tokens, gold tags and the mask [B,T] (torch tensors)."""

    def __init__(self, torch, seed: int = SEED):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(LEN_MIN, T + 1, size=B)
        lengths[0] = T
        mask = np.arange(T)[None, :] < lengths[:, None]
        tokens = np.where(mask, rng.integers(1, VOCAB, size=(B, T)), 0)
        tags = np.where(mask, rng.integers(0, K, size=(B, T)), 0)
        self.lengths = lengths
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.tags = torch.from_numpy(tags.astype(np.int64))
        self.mask = torch.from_numpy(mask)


def make_tagger(torch, crf_cls):
    nn = torch.nn

    class Tagger(nn.Module):
        """Embedding -> BiLSTM -> Linear -> CRF."""

        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, EMBED, padding_idx=0)
            self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True, bidirectional=True)
            self.proj = nn.Linear(2 * HIDDEN, K)
            self.crf = crf_cls(K, batch_first=True)

        def emissions(self, tokens):
            return self.proj(self.lstm(self.embed(tokens))[0])

        def loss(self, tokens, tags, mask):
            return -self.crf(self.emissions(tokens), tags, mask=mask)

    return Tagger()


CRF_PARAMS = ("start_transitions", "end_transitions", "transitions")


def copy_weights(torch, dst, src) -> None:
    """Copy src's weights into dst (the CRF's three parameters by name)."""
    with torch.no_grad():
        for name in ("embed", "lstm", "proj"):
            getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
        for name in CRF_PARAMS:
            getattr(dst.crf, name).copy_(getattr(src.crf, name))


class Side:
    """One tagger (its CRF: pytorch-crf's or kexue's) with its optimizer and CRF-alone inputs."""

    def __init__(self, torch, crf_cls, batch: Batch, like=None):
        self.torch, self.batch = torch, batch
        torch.manual_seed(SEED)
        self.model = make_tagger(torch, crf_cls)
        if like is not None:
            copy_weights(torch, self.model, like.model)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        # The CRF-alone and decode cases: a CRF frozen at the initial weights,
        # on the initial tagger's emissions.
        self.crf = crf_cls(K, batch_first=True)
        with torch.no_grad():
            for name in CRF_PARAMS:
                getattr(self.crf, name).copy_(getattr(self.model.crf, name))
            em = self.model.emissions(batch.tokens)
        self.emissions = em.detach().clone().contiguous()
        self.emissions_grad = self.emissions.clone().requires_grad_(True)

    def loss(self):
        b = self.batch
        with self.torch.no_grad():
            return float(self.model.loss(b.tokens, b.tags, b.mask))

    def train_step(self):
        b = self.batch
        self.opt.zero_grad(set_to_none=True)
        loss = self.model.loss(b.tokens, b.tags, b.mask)
        loss.backward()
        self.opt.step()
        return loss

    def crf_fwd_bwd(self):
        b = self.batch
        self.crf.zero_grad(set_to_none=True)
        self.emissions_grad.grad = None
        nll = -self.crf(self.emissions_grad, b.tags, mask=b.mask)
        nll.backward()
        return nll

    def crf_grads(self) -> list:
        return [self.emissions_grad.grad.numpy().copy()] + [
            getattr(self.crf, n).grad.numpy().copy() for n in CRF_PARAMS
        ]

    def decode(self):
        with self.torch.no_grad():
            return self.crf.decode(self.emissions, mask=self.batch.mask)


# ---------------------------------------------------------------------------
# the transformer


def make_transformer(torch, attention):
    """A TF_LAYERS-layer pre-LayerNorm causal transformer whose attention is ``attention``."""
    nn = torch.nn
    F = torch.nn.functional
    d, h = TF_D, TF_HEADS

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, TF_MLP * d)
            self.fc2 = nn.Linear(TF_MLP * d, d)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
            a = attention(q, k, v, is_causal=True)  # [b, h, n, d/h]
            x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
            return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(TF_LAYERS))
            self.ln_f = nn.LayerNorm(d)

        def forward(self, x):
            for blk in self.blocks:
                x = blk(x)
            return self.ln_f(x)

    return Transformer()


class TransformerSide:
    """One transformer (its attention: torch's SDPA or kexue.torch's) with its optimizer."""

    def __init__(self, torch, attention, quick: bool, like=None):
        self.torch = torch
        b, n = (TF_B_QUICK, TF_N_QUICK) if quick else (TF_B, TF_N)
        g = torch.Generator().manual_seed(SEED)
        self.x = torch.randn(b, n, TF_D, generator=g)
        self.y = torch.randn(b, n, TF_D, generator=g)
        torch.manual_seed(SEED)
        self.model = make_transformer(torch, attention)
        if like is not None:
            self.model.load_state_dict(like.model.state_dict())
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)

    def loss_and_grads(self):
        """The loss and every parameter's gradient of one backward (no optimizer step)."""
        self.model.zero_grad(set_to_none=True)
        loss = ((self.model(self.x) - self.y) ** 2).mean()
        loss.backward()
        grads = {k: p.grad.numpy().copy() for k, p in self.model.named_parameters()}
        self.model.zero_grad(set_to_none=True)
        return float(loss.detach()), grads

    def train_step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = ((self.model(self.x) - self.y) ** 2).mean()
        loss.backward()
        self.opt.step()
        return loss


def check_transformers(kx: TransformerSide, pt: TransformerSide, shape: str) -> None:
    """Same loss and gradients with kexue.torch's SDPA as with torch's (identical weights)."""
    loss_kx, g_kx = kx.loss_and_grads()
    loss_pt, g_pt = pt.loss_and_grads()
    assert_close(f"{OP_SDPA} {shape} loss", loss_kx, loss_pt, rtol=TF_LOSS_RTOL, atol=0.0)
    for name, w in g_pt.items():
        scale = max(1e-30, float(np.max(np.abs(w))))
        assert_close(f"{OP_SDPA} {shape} d_{name}", g_kx[name], w, rtol=0.0,
                     atol=TF_GRAD_TOL * scale)


# ---------------------------------------------------------------------------
# correctness


def path_score(side: Side, b: int, path: Sequence[int]) -> float:
    """float64 CRF score of one sequence's tag path (its valid steps)."""
    e = side.emissions[b].numpy().astype(np.float64)
    tr = side.crf.transitions.detach().numpy().astype(np.float64)
    st = side.crf.start_transitions.detach().numpy().astype(np.float64)
    en = side.crf.end_transitions.detach().numpy().astype(np.float64)
    p = np.asarray(path, dtype=np.int64)
    return float(
        e[np.arange(len(p)), p].sum() + tr[p[:-1], p[1:]].sum() + st[p[0]] + en[p[-1]]
    )


def check_decode(what: str, kx: Side, got, want) -> int:
    """Same paths as pytorch-crf's; a differing path only as an exact tie. Returns the tie count."""
    assert len(got) == len(want) == B, f"{what}: {len(got)} paths, expected {len(want)}"
    ties = 0
    for b, (g, w) in enumerate(zip(got, want)):
        g, w = list(map(int, g)), list(map(int, w))
        assert len(g) == len(w) == int(kx.batch.lengths[b]), (
            f"{what}: sequence {b} has {len(g)} tags, expected {len(w)}"
        )
        if g == w:
            continue
        sg, sw = path_score(kx, b, g), path_score(kx, b, w)
        assert abs(sg - sw) <= TIE_RTOL * max(1.0, abs(sw)), (
            f"{what}: sequence {b} differs from pytorch-crf's path "
            f"(score {sg!r} vs {sw!r}, not a tie)"
        )
        ties += 1
    return ties


def check_sides(kx: Side, pt: Side) -> None:
    """The two taggers agree: loss, CRF-alone gradients, decoded paths."""
    what = f"{OP_STEP} {SHAPE_STEP} loss"
    assert_close(what, kx.loss(), pt.loss(), rtol=LOSS_RTOL, atol=0.0)
    kx.crf_fwd_bwd()
    pt.crf_fwd_bwd()
    names = ("d_emissions",) + tuple(f"d_{n}" for n in CRF_PARAMS)
    for name, g, w in zip(names, kx.crf_grads(), pt.crf_grads()):
        scale = max(1.0, float(np.max(np.abs(w))))
        assert_close(f"{OP_CRF} {SHAPE_CRF} {name}", g, w, rtol=0.0, atol=GRAD_TOL * scale)
    ties = check_decode(f"{OP_DECODE} {SHAPE_CRF}", kx, kx.decode(), pt.decode())
    if ties:
        progress(f"[{AREA}] {OP_DECODE}: {ties} path(s) differ from pytorch-crf's as exact ties")


# ---------------------------------------------------------------------------
# the bench


def run(quick: bool, threads: Sequence[int]) -> list[Row]:
    """Check and time every case at every thread count; return the rows."""
    loaded = load_torch()
    if loaded is None:
        progress(f"[{AREA}] skipped: needs torch (pip install torch pytorch-crf)")
        return []
    torch, pt_crf, kx_crf, kx_sdpa = loaded
    bud = QUICK_ROUND_BUDGET if quick else FULL_ROUND_BUDGET
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    rows: list[Row] = []
    dt = np.dtype(DTYPE).name

    # (op, shape, [(impl, the call or None)]), timed in turns
    cases = []
    if pt_crf is not None:
        progress(f"[{AREA}] inputs and taggers ...")
        batch = Batch(torch)
        pt = Side(torch, pt_crf, batch)
        kx = Side(torch, kx_crf, batch, like=pt) if kx_crf is not None else None
        if kx is not None:
            progress(f"[{AREA}] checking kexue.torch.CRF against pytorch-crf ...")
            check_sides(kx, pt)
        for op, shape, fn_name in ((OP_STEP, SHAPE_STEP, "train_step"),
                                   (OP_CRF, SHAPE_CRF, "crf_fwd_bwd"),
                                   (OP_DECODE, SHAPE_CRF, "decode")):
            calls = [(impl, getattr(side, fn_name) if side is not None else None)
                     for impl, side in ((KX, kx), (PT, pt))]
            cases.append((op, shape, calls))

    progress(f"[{AREA}] transformers ...")
    shape = tf_shape(quick)
    tf_pt = TransformerSide(torch, torch.nn.functional.scaled_dot_product_attention, quick)
    tf_kx = TransformerSide(torch, kx_sdpa, quick, like=tf_pt) if kx_sdpa is not None else None
    if tf_kx is not None:
        progress(f"[{AREA}] checking kexue.torch.scaled_dot_product_attention in the "
                 "transformer against torch's ...")
        check_transformers(tf_kx, tf_pt, shape)
    cases.append((OP_SDPA, shape, [(KX, tf_kx.train_step if tf_kx is not None else None),
                                   (TORCH, tf_pt.train_step)]))

    for n in threads:
        with num_threads(n):
            times: dict[tuple[str, str], list[float]] = {}
            for r in range(rounds):
                progress(f"[{AREA}] threads={n}: round {r + 1}/{rounds}")
                for op, _, calls in cases:
                    for impl, fn in calls:
                        if fn is not None:
                            times.setdefault((op, impl), []).append(time_median(fn, bud))
            for op, shape, calls in cases:
                case = Case(AREA, op, shape, dt, n)
                for impl, _ in calls:
                    got = times.get((op, impl))
                    rows.append(row(case, impl, statistics.median(got) if got else None))
    return rows


# ---------------------------------------------------------------------------
# the performance bar of issue 9


SHARE_MAX = 0.05
STEP_MIN = 1.8  # "close to 2x"
DECODE_MIN = 20.0


def report(rows: Sequence[Row], file=None) -> None:
    """Print issue 9's performance-bar numbers with PASS/FAIL (informational)."""
    file = file or sys.stdout
    have = sorted({r.threads for r in rows})
    if not have:
        print("Performance bar (issue 9): n/a (no rows: torch missing)", file=file)
        return
    n = 2 if 2 in have else max(have)
    note = "" if n == 2 else "; the bar is stated for 2 threads"
    print(f"Performance bar (issue 9; float32, threads={n}{note}; informational):", file=file)

    def t(impl: str, op: str) -> float | None:
        return lookup(rows, impl, op=op, threads=n)

    def share(impl: str) -> float | None:
        crf, step = t(impl, OP_CRF), t(impl, OP_STEP)
        return None if crf is None or not step else crf / step

    s_kx, s_pt = share(KX), share(PT)
    label = f"CRF share of the BiLSTM-CRF step {SHAPE_CRF} with kexue.torch.CRF"
    peer = "-" if s_pt is None else f"{100 * s_pt:.0f}%"
    if s_kx is None:
        print(f"  {label}: n/a (pytorch-crf: {peer})", file=file)
    else:
        verdict = "PASS" if s_kx < SHARE_MAX else "FAIL"
        print(
            f"  {label}: {100 * s_kx:.1f}% (bar < {100 * SHARE_MAX:g}%; "
            f"pytorch-crf: {peer}, about half expected)  {verdict}",
            file=file,
        )

    def bar(label: str, op: str, need: float, extra: str = "") -> None:
        mine, theirs = t(KX, op), t(PT, op)
        if mine is None or theirs is None:
            print(f"  {label}: n/a", file=file)
            return
        r = theirs / mine
        verdict = "PASS" if r >= need else "FAIL"
        print(f"  {label}: {fmt_ratio(r)} (bar >= {need:g}x{extra})  {verdict}", file=file)

    # pytorch-crf's step with its CRF's time swapped for kexue's: the speedup
    # the CRF alone accounts for (the rest of the step is the same work)
    implied = ""
    crf_kx, crf_pt, step_pt = t(KX, OP_CRF), t(PT, OP_CRF), t(PT, OP_STEP)
    if None not in (crf_kx, crf_pt, step_pt) and step_pt - crf_pt + crf_kx > 0:
        swapped = step_pt / (step_pt - crf_pt + crf_kx)
        implied = f"; pytorch-crf's step with the CRF times swapped: {fmt_ratio(swapped)}"
    label = f"whole step vs pytorch-crf's at {SHAPE_STEP}"
    bar(label, OP_STEP, STEP_MIN, ", close to 2x" + implied)
    bar(f"decode vs pytorch-crf's at {SHAPE_CRF}", OP_DECODE, DECODE_MIN)

    mine, theirs = t(KX, OP_SDPA), t(TORCH, OP_SDPA)
    shape = next((r.shape for r in rows if r.op == OP_SDPA), "")
    label = f"transformer step with kexue.torch's SDPA vs torch's at {shape}"
    if mine is None or theirs is None:
        print(f"  {label}: n/a", file=file)
    else:
        print(f"  {label}: {fmt_ratio(theirs / mine)} ({fmt_time(mine)} vs {fmt_time(theirs)}; "
              "no bar stated)", file=file)


def main(argv: Sequence[str] | None = None) -> int:
    return _harness.main(__doc__, run, report, argv)


if __name__ == "__main__":
    sys.exit(main())
