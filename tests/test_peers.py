"""kexue against the peers it replaces: pytorch-crf (log-likelihood,
gradients through torch autograd, Viterbi decode). Skipped when the peer is
not installed; .ci/run installs it (torch==2.13.0 from the wheel on disk)."""
from __future__ import annotations

import numpy as np
import pytest

import kexue

torch = pytest.importorskip("torch")
torchcrf = pytest.importorskip("torchcrf")


def _peer(K, A, s, e, dtype):
    crf = torchcrf.CRF(K, batch_first=True).to(dtype)
    with torch.no_grad():
        crf.transitions.copy_(torch.from_numpy(A))
        crf.start_transitions.copy_(torch.from_numpy(s))
        crf.end_transitions.copy_(torch.from_numpy(e))
    return crf


@pytest.mark.parametrize("B,T,K", [(1, 1, 1), (3, 7, 4), (8, 33, 9), (2, 200, 5)])
def test_matches_pytorch_crf(B, T, K):
    rng = np.random.default_rng(B * 100 + T + K)
    em = rng.normal(size=(B, T, K))
    A, s, e = rng.normal(size=(K, K)), rng.normal(size=K), rng.normal(size=K)
    tags = rng.integers(0, K, (B, T))
    lengths = rng.integers(1, T + 1, B)  # pytorch-crf needs mask[:, 0] on: prefix masks
    mask = np.arange(T)[None, :] < lengths[:, None]
    crf = _peer(K, A, s, e, torch.float64)

    em_t = torch.from_numpy(em).requires_grad_(True)
    ll_t = crf(em_t, torch.from_numpy(tags), mask=torch.from_numpy(mask), reduction="none")
    (-ll_t.sum()).backward()

    ll = kexue.crf.log_likelihood(em, tags, A, mask=mask, start=s, end=e)
    np.testing.assert_allclose(ll, ll_t.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = kexue.crf.nll_grad(em, tags, A, mask=mask, start=s, end=e)
    np.testing.assert_allclose(g.d_emissions, em_t.grad.numpy(), rtol=1e-9, atol=1e-10)
    # with T == 1 no transition is used and torch leaves its grad unset
    dA_t = crf.transitions.grad
    dA_t = np.zeros((K, K)) if dA_t is None else dA_t.numpy()
    np.testing.assert_allclose(g.d_transitions, dA_t, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(g.d_start, crf.start_transitions.grad.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(g.d_end, crf.end_transitions.grad.numpy(), rtol=1e-9, atol=1e-10)

    decoded = crf.decode(torch.from_numpy(em), mask=torch.from_numpy(mask))
    paths, _ = kexue.crf.viterbi(em, A, mask=mask, start=s, end=e)
    for b in range(B):
        assert paths[b, : lengths[b]].tolist() == decoded[b]
        assert (paths[b, lengths[b]:] == -1).all()


def test_float32_matches_pytorch_crf():
    rng = np.random.default_rng(5)
    B, T, K = 16, 64, 9
    em = rng.normal(size=(B, T, K)).astype(np.float32)
    A, s, e = (rng.normal(size=sh).astype(np.float32) for sh in ((K, K), K, K))
    tags = rng.integers(0, K, (B, T))
    crf = _peer(K, A, s, e, torch.float32)
    full = torch.ones((B, T), dtype=torch.bool)  # mask=None makes pytorch-crf warn (uint8)
    ll_t = crf(torch.from_numpy(em), torch.from_numpy(tags), mask=full, reduction="none")
    ll_t = ll_t.detach().numpy()
    ll = kexue.crf.log_likelihood(em, tags, A, start=s, end=e)
    # pytorch-crf accumulates in float32 over T steps; kexue in float64
    np.testing.assert_allclose(ll, ll_t, rtol=1e-5, atol=1e-3)
