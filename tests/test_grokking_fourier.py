"""Known-answer tests for akira_nb.modular_arithmetic.fourier (Fourier progress measures)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from akira_nb.modular_arithmetic import fourier as fo


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _single_freq_W(p, k, d=32, seed=0, amp=1.0):
    """W = amp * (cos_k (x) u + sin_k (x) v): all energy in frequency k."""
    g = _gen(seed)
    B = fo.fourier_basis(p)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    v = torch.randn(d, generator=g, dtype=torch.float64)
    return amp * (torch.outer(B[2 * k - 1], u) + torch.outer(B[2 * k], v))


def _ideal_logits(p, freqs, s):
    """logits[a*p+b, c] = s * sum_k cos(2 pi k (a+b-c) / p): the ideal Fourier algorithm."""
    a = torch.arange(p, dtype=torch.float64)
    d = a[:, None, None] + a[None, :, None] - a[None, None, :]  # [a, b, c]
    out = sum(torch.cos(2 * math.pi * k * d / p) for k in freqs)
    return (s * out).reshape(p * p, p)


def _labels(p):
    ab = torch.arange(p * p)
    return (ab // p + ab % p) % p


# --------------------------------------------------------------------------------- basis


@pytest.mark.parametrize("p", [3, 5, 7, 53, 113])
def test_basis_is_orthonormal_and_named(p):
    B = fo.fourier_basis(p)
    assert B.shape == (p, p) and B.dtype == torch.float64
    torch.testing.assert_close(B @ B.T, torch.eye(p, dtype=torch.float64), atol=1e-12, rtol=0)
    names = fo.basis_names(p)
    assert len(names) == p
    assert names[:3] == ["const", "cos 1", "sin 1"] and names[-1] == f"sin {p // 2}"


def test_basis_rows_are_the_stated_waves():
    p, k = 13, 4
    B = fo.fourier_basis(p)
    x = torch.arange(p, dtype=torch.float64)
    torch.testing.assert_close(B[0], torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64))
    scale = math.sqrt(2 / p)
    torch.testing.assert_close(B[2 * k - 1], scale * torch.cos(2 * math.pi * k * x / p))
    torch.testing.assert_close(B[2 * k], scale * torch.sin(2 * math.pi * k * x / p))
    assert fo.fourier_basis(p, dtype=torch.float32).dtype == torch.float32


# ------------------------------------------------------------------------ energy and Gini


def test_single_frequency_embedding_energy_and_gini():
    p, k = 53, 7
    W = _single_freq_W(p, k).float()  # float32 input, as a real W_E would be
    e = fo.frequency_energy(W, p)
    assert e.shape == (p // 2 + 1,)
    assert e[k].item() == pytest.approx(1.0, abs=1e-6)
    assert e.sum().item() == pytest.approx(1.0, abs=1e-12)
    norms = fo.fourier_norms(W, p)
    assert norms.shape == (p,)
    assert set(torch.nonzero(norms > 1e-5).flatten().tolist()) == {2 * k - 1, 2 * k}
    # two non-zero entries out of N: Gini close to its maximum 1 - 1/N (about 1 - 2/N here)
    assert fo.gini(norms) > 1 - 2.5 / p


def test_random_gaussian_embedding_is_spread_out():
    p = 53
    W = torch.randn(p, 128, generator=_gen(1), dtype=torch.float64)
    e = fo.frequency_energy(W, p)
    uniform = 2 / p
    assert e[1:].max().item() < 3 * uniform
    assert fo.gini(fo.fourier_norms(W, p)) < 0.2


def test_energy_is_the_orthonormal_fraction_not_the_wave_repo_scale():
    # a pure cos_k column with the *unnormalised* wave gets fraction 1, not 1/(2p)
    p, k = 53, 5
    x = torch.arange(p, dtype=torch.float64)
    W = torch.cos(2 * math.pi * k * x / p)[:, None]
    assert fo.frequency_energy(W, p)[k].item() == pytest.approx(1.0, abs=1e-12)


def test_energy_sums_to_one_and_ignores_column_rotation():
    p, d = 31, 24
    W = torch.randn(p, d, generator=_gen(2), dtype=torch.float64) + 0.5  # nonzero constant part
    e = fo.frequency_energy(W, p)
    assert e.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (e >= 0).all() and (e <= 1).all()
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=_gen(3), dtype=torch.float64))
    torch.testing.assert_close(fo.frequency_energy(W @ Q, p), e, atol=1e-12, rtol=0)
    # the constant entry is the share of the column means
    const_share = (p * W.mean(0).pow(2).sum() / W.pow(2).sum()).item()
    assert e[0].item() == pytest.approx(const_share, abs=1e-12)


def test_gini_known_answers():
    assert fo.gini(torch.ones(10)) == pytest.approx(0.0, abs=1e-12)
    for n in (2, 7, 100):
        x = torch.zeros(n)
        x[n // 2] = 3.0
        assert fo.gini(x) == pytest.approx(1 - 1 / n, abs=1e-12)
    x = torch.rand(50, generator=_gen(4), dtype=torch.float64)
    assert fo.gini(7.5 * x) == pytest.approx(fo.gini(x), abs=1e-12)
    assert fo.gini(x[torch.randperm(50, generator=_gen(5))]) == pytest.approx(fo.gini(x))
    # hand values: c = (0, 1) -> 1 - 2 * (1 * 0.5 / 2) = 0.5
    assert fo.gini([0.0, 1.0]) == pytest.approx(0.5)
    assert fo.gini([1.0, 3.0]) == pytest.approx(1 - 2 * (0.25 * 1.5 + 0.75 * 0.5) / 2)


def test_key_frequencies_pick_planted_pair():
    p = 53
    W = _single_freq_W(p, 5, seed=6, amp=1.0) + _single_freq_W(p, 17, seed=7, amp=0.7)
    W = W + 0.02 * torch.randn(p, 32, generator=_gen(8), dtype=torch.float64)
    e = fo.frequency_energy(W, p)
    assert fo.key_frequencies(e) == [5, 17]
    # energy ratio about 0.49 (amplitude 0.7 squared): a 0.75 threshold keeps only the stronger
    assert fo.key_frequencies(e, threshold=0.75) == [5]
    assert fo.key_frequencies(e, threshold=1.0) == [5]
    # the constant entry is ignored even when it is the largest
    e2 = e.clone()
    e2[0] = 10.0
    assert fo.key_frequencies(e2) == [5, 17]
    assert fo.key_frequencies(torch.tensor([1.0, 0.0, 0.0])) == []


# ------------------------------------------------------------------- neuron frequencies


def test_neuron_frequencies_recover_planted_waves():
    p = 31
    g = _gen(9)
    ks = torch.tensor([1, 2, 5, 9, 15, 15, 7, 3])  # includes p//2 = 15
    phase = 2 * math.pi * torch.rand(len(ks), generator=g, dtype=torch.float64)
    amp = 0.5 + torch.rand(len(ks), generator=g, dtype=torch.float64)
    offset = torch.randn(len(ks), generator=g, dtype=torch.float64)
    ab = torch.arange(p * p)
    a, b = (ab // p).double(), (ab % p).double()
    w = 2 * math.pi * ks.double() / p
    acts = amp * torch.cos(w * (a + b)[:, None] + phase) + offset
    freqs, frac = fo.neuron_frequencies(acts.float(), p)
    assert freqs.dtype == torch.long and freqs.tolist() == ks.tolist()
    torch.testing.assert_close(frac, torch.ones(len(ks), dtype=torch.float64), atol=1e-6, rtol=0)


def test_neuron_frequencies_mixed_dead_and_one_variable_neurons():
    p = 23
    ab = torch.arange(p * p)
    a, b = (ab // p).double(), (ab % p).double()
    w = lambda k: 2 * math.pi * k / p
    mixed = 0.8 * torch.cos(w(4) * (a + b)) + 0.6 * torch.sin(w(9) * (a - b))
    only_a = torch.sin(w(6) * a)  # lies in the {cos6, sin6} x const part of the block
    dead = torch.full_like(a, 0.3)
    freqs, frac = fo.neuron_frequencies(torch.stack([mixed, only_a, dead], dim=1), p)
    assert freqs.tolist() == [4, 6, 0]
    assert frac[0].item() == pytest.approx(0.64, abs=1e-9)  # 0.8^2 / (0.8^2 + 0.6^2)
    assert frac[1].item() == pytest.approx(1.0, abs=1e-9)
    assert frac[2].item() == 0.0


# --------------------------------------------------------------- restricted / excluded


def test_restricted_and_excluded_loss_on_ideal_algorithm():
    p, K, s = 23, [3, 8], 20.0
    logits = _ideal_logits(p, K, s)
    full = F.cross_entropy(logits, _labels(p)).item()
    ln_p = math.log(p)
    assert full < 1e-3
    restricted = fo.restricted_loss(logits, K, p)
    assert restricted == pytest.approx(full, abs=1e-9)
    assert restricted < 0.01 * ln_p
    train = torch.randperm(p * p, generator=_gen(10))[: p * p // 3]
    assert fo.excluded_loss(logits, K, p, train) == pytest.approx(ln_p, abs=1e-9)
    assert fo.restricted_loss(logits, [1, 5, 11], p) == pytest.approx(ln_p, abs=1e-9)
    # removing only one of the two key frequencies leaves a working (worse) algorithm
    partial = fo.excluded_loss(logits, [3], p, train)
    assert full < partial < 0.5 * ln_p
    # a bool mask and the equivalent row list give the same loss
    mask = torch.zeros(p * p, dtype=torch.bool)
    mask[train] = True
    assert fo.excluded_loss(logits, [3], p, mask) == pytest.approx(partial, abs=1e-12)


def test_restricted_keeps_a_plus_b_waves_and_class_means_only():
    p, k = 19, 4
    ab = torch.arange(p * p)
    a, b = (ab // p).double(), (ab % p).double()
    w = 2 * math.pi * k / p
    bias = torch.randn(p, generator=_gen(11), dtype=torch.float64)
    plus = torch.cos(w * (a + b) + 0.3)[:, None] * torch.linspace(1, 2, p, dtype=torch.float64)
    minus = torch.cos(w * (a - b))[:, None].expand(p * p, p)  # cos(w(a-b)): not an a+b wave
    r = fo.restricted_logits(plus + minus + bias, [k], p)
    torch.testing.assert_close(r, plus + bias, atol=1e-10, rtol=0)
    x = fo.excluded_logits(plus + minus + bias, [k], p)
    torch.testing.assert_close(x, minus + bias, atol=1e-10, rtol=0)


def test_restricted_plus_excluded_minus_mean_reconstructs_logits():
    p = 29
    logits = torch.randn(p * p, p, generator=_gen(12), dtype=torch.float64) * 3
    K = [2, 7, 14]
    r = fo.restricted_logits(logits, K, p)
    x = fo.excluded_logits(logits, K, p)
    recon = r + x - logits.mean(0, keepdim=True)
    assert (recon - logits).abs().max().item() < 1e-9
    # duplicates do not double-count a frequency
    torch.testing.assert_close(fo.restricted_logits(logits, [7, 2, 7, 14], p), r)


# --------------------------------------------------------------------------- weight norm


def test_weight_norm_is_sum_of_squares():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]]))
        lin.bias.copy_(torch.tensor([0.5, -0.5]))
    expected = 1 + 4 + 1 + 9 + 0.25 + 0.25
    assert fo.weight_norm(lin) == pytest.approx(expected)
    assert fo.weight_norm(list(lin.parameters())) == pytest.approx(expected)
    assert fo.weight_norm(lin.state_dict()) == pytest.approx(expected)
    assert fo.weight_norm([]) == 0.0


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad_p", [4, 2, 9, "7", 7.0, True, 1, -7])
def test_bad_p_is_rejected(bad_p):
    with pytest.raises(ValueError, match="p="):
        fo.fourier_basis(bad_p)
    with pytest.raises(ValueError, match="p="):
        fo.basis_names(bad_p)
    with pytest.raises(ValueError, match="p="):
        fo.frequency_energy(torch.ones(7, 3), bad_p)
    with pytest.raises(ValueError, match="p="):
        fo.restricted_loss(torch.zeros(49, 7), [1], bad_p)


def test_wrong_shapes_and_values_are_rejected():
    p = 7
    with pytest.raises(ValueError, match="W has shape"):
        fo.frequency_energy(torch.ones(p + 1, 3), p)
    with pytest.raises(ValueError, match="W has shape"):
        fo.fourier_norms(torch.ones(p), p)
    with pytest.raises(ValueError, match="W is all zeros"):
        fo.frequency_energy(torch.zeros(p, 3), p)
    with pytest.raises(ValueError, match="logits has shape"):
        fo.restricted_loss(torch.zeros(p * p, p + 1), [1], p)
    with pytest.raises(ValueError, match="logits has shape"):
        fo.excluded_loss(torch.zeros(p * p - 1, p), [1], p, None)
    with pytest.raises(ValueError, match="acts has shape"):
        fo.neuron_frequencies(torch.zeros(p * p + 1, 4), p)
    with pytest.raises(ValueError, match="key_freqs"):
        fo.restricted_logits(torch.zeros(p * p, p), [0], p)
    with pytest.raises(ValueError, match="key_freqs"):
        fo.restricted_logits(torch.zeros(p * p, p), [p // 2 + 1], p)
    with pytest.raises(ValueError, match="indices"):
        fo.excluded_loss(torch.zeros(p * p, p), [1], p, [0, p * p])
    with pytest.raises(ValueError, match="indices"):
        fo.excluded_loss(torch.zeros(p * p, p), [1], p, torch.zeros(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="^x must be non-negative"):
        fo.gini(torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="^x is all zeros"):
        fo.gini(torch.zeros(3))
    with pytest.raises(ValueError, match="model_or_params"):
        fo.weight_norm(3)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), "0.25"])
def test_bad_threshold_is_rejected(bad):
    e = fo.frequency_energy(_single_freq_W(7, 2), 7)
    with pytest.raises(ValueError, match="threshold"):
        fo.key_frequencies(e, threshold=bad)
