"""Fourier progress measures for grokking on ``a + b mod p`` (Nanda et al., ICLR 2023).

Pure, model-agnostic functions on tensors, computed in float64 on the input's device (inputs
detached; losses and scalars come back as Python floats). ``p`` is an odd prime; the "all pairs"
table has ``p*p`` rows ordered ``a*p + b``. The Fourier basis is orthonormal (Nanda's
``make_fourier_basis``: row 0 constant, rows ``2k-1``, ``2k`` the unit-norm cos / sin of
``2 pi k x / p``), so energy fractions lie in [0, 1] and sum to 1.

- :func:`frequency_energy` / :func:`fourier_norms` of ``W_E[:p]`` or of the neuron-logit map
  ``W_L``; :func:`gini` of the Fourier norms measures sparsity in frequency.
- :func:`key_frequencies` / :func:`neuron_frequencies` pick the key frequencies once, from the
  final checkpoint. :func:`restricted_loss` keeps only the constant and the key frequencies'
  ``cos / sin(w_k(a+b))`` components of the logits; :func:`excluded_loss` removes those (meant
  for the training split). :func:`weight_norm`: the total sum of squared parameters.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from akira_nb.modular_arithmetic.data import check_p as _check_p
from akira_nb.runtime import check_range

__all__ = [
    "fourier_basis",
    "basis_names",
    "frequency_energy",
    "fourier_norms",
    "gini",
    "key_frequencies",
    "neuron_frequencies",
    "restricted_logits",
    "restricted_loss",
    "excluded_logits",
    "excluded_loss",
    "weight_norm",
]


# ---------------------------------------------------------------------------------------------
# validation helpers


def _as_float64(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be a tensor or array-like of numbers ({err})") from err
    if x.is_complex():
        raise ValueError(f"{name} must be real, got dtype {x.dtype}")
    x = x.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return x


def _check_residue_matrix(name: str, W, p: int) -> torch.Tensor:
    W = _as_float64(name, W)
    if W.ndim != 2 or W.shape[0] != p:
        raise ValueError(
            f"{name} has shape {tuple(W.shape)}; expected [p, d] = [{p}, d] "
            "(rows indexed by residue, e.g. W_E[:p] or W_L laid out as [p, d_mlp])"
        )
    return W


def _check_logits(logits, p: int) -> torch.Tensor:
    logits = _as_float64("logits", logits)
    if logits.ndim != 2 or tuple(logits.shape) != (p * p, p):
        raise ValueError(
            f"logits has shape {tuple(logits.shape)}; expected [p*p, p] = [{p * p}, {p}] "
            "(all pairs ordered a*p+b; drop any extra classes such as '=' first)"
        )
    return logits


def _check_key_freqs(key_freqs, p: int) -> list[int]:
    if isinstance(key_freqs, torch.Tensor):
        key_freqs = key_freqs.flatten().tolist()
    if isinstance(key_freqs, (str, bytes)) or not isinstance(key_freqs, Iterable):
        raise ValueError(f"key_freqs={key_freqs!r} must be an iterable of ints in 1..{p // 2}")
    out = []
    for k in key_freqs:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= p // 2:
            raise ValueError(
                f"key_freqs contains {k!r}; every key frequency must be an int in 1..{p // 2}"
            )
        out.append(int(k))
    return sorted(set(out))


def _check_indices(indices, p: int, device) -> torch.Tensor:
    n = p * p
    if indices is None:
        return torch.arange(n, device=device)
    idx = torch.as_tensor(indices, device=device)
    if idx.dtype == torch.bool:
        if idx.ndim != 1 or idx.numel() != n:
            raise ValueError(
                f"indices is a boolean mask of shape {tuple(idx.shape)}; expected [{n}] (p*p)"
            )
        idx = idx.nonzero().flatten()
    elif idx.is_floating_point() or idx.is_complex() or idx.ndim != 1:
        raise ValueError(
            f"indices must be a 1-D integer tensor of row numbers in [0, {n}) or a boolean "
            f"mask of length {n}; got dtype {idx.dtype}, shape {tuple(idx.shape)}"
        )
    if idx.numel() == 0:
        raise ValueError("indices selects no rows; pass at least one pair")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= n:
        raise ValueError(f"indices has values in [{lo}, {hi}]; allowed row numbers are [0, {n})")
    return idx.long()


# ---------------------------------------------------------------------------------------------
# basis and energy


def fourier_basis(p: int, device=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Orthonormal Fourier basis of functions on Z_p, shape ``[p, p]`` (rows are basis vectors).

    Row 0 is ``1/sqrt(p)``; rows ``2k-1``, ``2k`` are ``cos(2 pi k x / p)`` and
    ``sin(2 pi k x / p)`` normalised to unit norm, ``k = 1..p//2``. ``B @ B.T == I``.
    """
    p = _check_p(p)
    x = torch.arange(p, dtype=torch.float64, device=device)
    k = torch.arange(1, p // 2 + 1, dtype=torch.float64, device=device)
    angle = 2 * math.pi * k[:, None] * x[None, :] / p  # [p//2, p]
    B = torch.empty(p, p, dtype=torch.float64, device=device)
    B[0] = 1.0
    B[1::2] = torch.cos(angle)
    B[2::2] = torch.sin(angle)
    B = B / B.norm(dim=1, keepdim=True)
    return B.to(dtype)


def basis_names(p: int) -> list[str]:
    """Names of the rows of :func:`fourier_basis`: ``["const", "cos 1", "sin 1", ...]``."""
    p = _check_p(p)
    names = ["const"]
    for k in range(1, p // 2 + 1):
        names += [f"cos {k}", f"sin {k}"]
    return names


def _freq_of_row(p: int, device=None) -> torch.Tensor:
    """Frequency of each basis row: 0 for const, k for rows 2k-1 and 2k. Shape ``[p]``."""
    return (torch.arange(p, device=device) + 1) // 2


def _freq_pool(p: int, device=None) -> torch.Tensor:
    """One-hot pooling matrix ``[p//2 + 1, p]`` summing basis rows into frequencies."""
    f = _freq_of_row(p, device)
    return (f[None, :] == torch.arange(p // 2 + 1, device=device)[:, None]).to(torch.float64)


def fourier_norms(W, p: int) -> torch.Tensor:
    """L2 norm of each Fourier component of ``W``: ``(fourier_basis(p) @ W).norm(dim=1)``.

    ``W`` has shape ``[p, d]`` with rows indexed by residue (e.g. ``W_E[:p]``, or the
    neuron-logit map laid out as ``[p, d_mlp]``). Returns float64 ``[p]`` in basis order
    (see :func:`basis_names`). Feed it to :func:`gini` for the paper's sparsity measure.
    """
    p = _check_p(p)
    W = _check_residue_matrix("W", W, p)
    return (fourier_basis(p, device=W.device) @ W).norm(dim=1)


def frequency_energy(W, p: int) -> torch.Tensor:
    """Fraction of ``||W||_F^2`` in each frequency, float64 shape ``[p//2 + 1]``, sums to 1.

    Entry 0 is the constant component; entry ``k`` pools the ``cos k`` and ``sin k`` components.
    Values lie in ``[0, 1]`` (orthonormal basis) and are invariant to any orthogonal mixing of
    the ``d`` columns of ``W``. A random Gaussian ``W`` gives about ``2/p`` per frequency.
    Raises ``ValueError`` when ``W`` is all zeros (no energy to split).
    """
    p = _check_p(p)
    W = _check_residue_matrix("W", W, p)
    row_energy = (fourier_basis(p, device=W.device) @ W).pow(2).sum(dim=1)  # [p]
    total = row_energy.sum()
    if total <= 0:
        raise ValueError("W is all zeros; its frequency energy is undefined")
    return (_freq_pool(p, W.device) @ row_energy) / total


def gini(x) -> float:
    """Hurley-Rickard Gini sparsity of non-negative magnitudes ``x`` (1-D), a float in [0, 1).

    With ``c_(1) <= ... <= c_(N)`` sorted ascending,
    ``G = 1 - 2 * sum_k (c_(k) / ||c||_1) * (N - k + 1/2) / N``.
    0 for a constant vector, ``1 - 1/N`` for a one-hot vector; invariant to scaling ``x``.
    """
    c = _as_float64("x", x)
    if c.ndim != 1 or c.numel() == 0:
        raise ValueError(f"x must be a non-empty 1-D vector, got shape {tuple(c.shape)}")
    if (c < 0).any():
        raise ValueError("x must be non-negative magnitudes (e.g. fourier_norms); got negatives")
    total = c.sum()
    if total <= 0:
        raise ValueError("x is all zeros; its Gini coefficient is undefined")
    n = c.numel()
    c = torch.sort(c).values / total
    k = torch.arange(1, n + 1, dtype=torch.float64, device=c.device)
    return float(1.0 - 2.0 * (c * (n - k + 0.5) / n).sum())


def key_frequencies(energy, threshold: float = 0.25) -> list[int]:
    """Frequencies ``k >= 1`` with ``energy[k] >= threshold * max_{k>=1} energy[k]``, ascending.

    ``energy`` is the output of :func:`frequency_energy` (index 0, the constant, is ignored).
    The default 0.25 is the TransformerLens grokking demo's max/4 rule. ``threshold`` must lie
    in (0, 1]. Returns ``[]`` when every non-constant entry is zero.
    """
    e = _as_float64("energy", energy)
    if e.ndim != 1 or e.numel() < 2:
        raise ValueError(
            f"energy must be a 1-D vector of length p//2 + 1 >= 2, got shape {tuple(e.shape)}"
        )
    if (e < 0).any():
        raise ValueError("energy must be non-negative (use frequency_energy)")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold={threshold!r} must be a number in (0, 1]")
    check_range("threshold", threshold, low=0, high=1, low_open=True)
    e = e[1:]
    top = e.max()
    if top <= 0:
        return []
    return [int(i) + 1 for i in torch.nonzero(e >= threshold * top).flatten().tolist()]


def neuron_frequencies(acts, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dominant frequency of each neuron (Nanda's ``calculate_key_freqs``), batched.

    ``acts``: ``[p*p, n_neurons]`` MLP post-activations at the ``=`` position over all pairs
    (row ``a*p + b``). Each neuron is centred, its ``p x p`` table is 2D-transformed in the
    orthonormal basis, and for every ``k`` in ``1..p//2`` the share of its variance in the
    3x3 block ``{const, cos k, sin k}^2`` is computed (the const-const term is 0 after
    centring). Returns ``(freqs, frac_explained)``: int64 ``[n_neurons]`` with the best ``k``
    and float64 ``[n_neurons]`` with its share in [0, 1]. Neurons with zero variance (dead)
    get ``k = 0`` and share 0. Nanda's code searches ``k`` in ``1..p//2 - 1``; this searches
    all of ``1..p//2``. Key frequencies: ``freqs[frac_explained > 0.85].unique()``.
    """
    p = _check_p(p)
    A = _as_float64("acts", acts)
    if A.ndim != 2 or A.shape[0] != p * p:
        raise ValueError(
            f"acts has shape {tuple(A.shape)}; expected [p*p, n_neurons] = [{p * p}, n] "
            "(all pairs ordered a*p+b)"
        )
    n = A.shape[1]
    scale = A.abs().amax(dim=0)  # [n], for telling dead neurons from centring round-off
    A = (A - A.mean(dim=0, keepdim=True)).reshape(p, p, n)
    B = fourier_basis(p, device=A.device)
    F2 = torch.einsum("fa,abn->fbn", B, A)
    F2 = torch.einsum("gb,fbn->fgn", B, F2).pow(2)  # [p, p, n] energy per 2D component
    M = _freq_pool(p, A.device)  # [K+1, p]
    S = torch.einsum("if,fgn,jg->ijn", M, F2, M)  # [K+1, K+1, n] energy per frequency pair
    total = F2.sum(dim=(0, 1))  # [n]
    diag = torch.diagonal(S, dim1=0, dim2=1).T  # [K+1, n]: S[k, k]
    block = S[0, 0][None] + S[0, 1:] + S[1:, 0] + diag[1:]  # [K, n]
    alive = total > (1e-10 * scale) ** 2 * (p * p)
    frac = torch.where(alive, block / torch.where(alive, total, 1.0), 0.0)
    best, arg = frac.max(dim=0)
    freqs = torch.where(alive, arg + 1, 0).long()
    return freqs, torch.where(alive, best, 0.0)


# ---------------------------------------------------------------------------------------------
# restricted / excluded logits and losses


def _xpy_directions(key_freqs: list[int], p: int, device) -> torch.Tensor:
    """Unit directions cos(w_k(a+b)), sin(w_k(a+b)) over the p*p grid, shape ``[2K, p*p]``.

    ``(cos_k x cos_k - sin_k x sin_k)/sqrt(2)`` and ``(sin_k x cos_k + cos_k x sin_k)/sqrt(2)``,
    flattened in ``a*p + b`` order; orthonormal across all k.
    """
    if not key_freqs:
        return torch.zeros(0, p * p, dtype=torch.float64, device=device)
    B = fourier_basis(p, device=device)
    k = torch.tensor(key_freqs, device=device)
    c, s = B[2 * k - 1], B[2 * k]  # [K, p]
    cos_xpy = torch.einsum("ka,kb->kab", c, c) - torch.einsum("ka,kb->kab", s, s)
    sin_xpy = torch.einsum("ka,kb->kab", s, c) + torch.einsum("ka,kb->kab", c, s)
    D = torch.cat([cos_xpy, sin_xpy]) / math.sqrt(2)
    return D.reshape(2 * len(key_freqs), p * p)


def _xpy_projection(logits: torch.Tensor, key_freqs: list[int], p: int) -> torch.Tensor:
    D = _xpy_directions(key_freqs, p, logits.device)
    return D.T @ (D @ logits)


def _labels(p: int, device) -> torch.Tensor:
    ab = torch.arange(p * p, device=device)
    return (ab // p + ab % p) % p


def _ce(logits: torch.Tensor, p: int, indices) -> float:
    idx = _check_indices(indices, p, logits.device)
    return float(F.cross_entropy(logits[idx], _labels(p, logits.device)[idx]))


def restricted_logits(logits, key_freqs, p: int) -> torch.Tensor:
    """Logits restricted to the key-frequency ``a+b`` waves plus the per-class mean.

    ``logits``: ``[p*p, p]`` over all pairs (row ``a*p+b``, one column per output class ``c``).
    For each class column, keeps its projections on the unit directions ``cos(w_k(a+b))`` and
    ``sin(w_k(a+b))`` (``w_k = 2 pi k / p``) for every ``k`` in ``key_freqs`` and adds back the
    class's mean over all pairs (the constant term). Float64 ``[p*p, p]``.
    Identity: ``restricted + excluded - logits.mean(0) == logits``.
    """
    p = _check_p(p)
    L = _check_logits(logits, p)
    K = _check_key_freqs(key_freqs, p)
    return _xpy_projection(L, K, p) + L.mean(dim=0, keepdim=True)


def restricted_loss(logits, key_freqs, p: int, indices=None) -> float:
    """Cross-entropy (float64) of :func:`restricted_logits` against ``(a+b) % p``.

    ``indices``: rows to score (1-D int row numbers or a length-``p*p`` bool mask); default all
    ``p*p`` pairs (Nanda's ``mode='all'``). Near the full loss once the model has grokked;
    about ``ln p`` when ``key_freqs`` carry no signal.
    """
    return _ce(restricted_logits(logits, key_freqs, p), p, indices)


def excluded_logits(logits, key_freqs, p: int) -> torch.Tensor:
    """Logits with the ``cos(w_k(a+b))``, ``sin(w_k(a+b))`` components of every key frequency
    removed together (no mean correction). Float64 ``[p*p, p]``."""
    p = _check_p(p)
    L = _check_logits(logits, p)
    K = _check_key_freqs(key_freqs, p)
    return L - _xpy_projection(L, K, p)


def excluded_loss(logits, key_freqs, p: int, indices) -> float:
    """Cross-entropy (float64) of :func:`excluded_logits` on ``indices``.

    Intended for the **training split** (paper section 5.1): rising excluded loss while train
    loss stays low means the model relies on the key frequencies rather than memorisation.
    ``indices`` is required (1-D int row numbers or a bool mask of length ``p*p``; ``None``
    scores all pairs).
    """
    return _ce(excluded_logits(logits, key_freqs, p), p, indices)


# ---------------------------------------------------------------------------------------------
# weight norm


def weight_norm(model_or_params) -> float:
    """Total sum of squared parameters (Nanda's ``sum_sq_weights``), a float. Not square-rooted.

    Accepts an ``nn.Module`` (all of ``model.parameters()``, trainable or frozen; buffers are
    not counted), a mapping such as a ``state_dict`` (all its tensor values, so buffers in a
    state_dict *are* counted) or any iterable of tensors.
    """
    if isinstance(model_or_params, nn.Module):
        tensors = list(model_or_params.parameters())
    elif isinstance(model_or_params, Mapping):
        tensors = [v for v in model_or_params.values() if isinstance(v, torch.Tensor)]
    elif isinstance(model_or_params, torch.Tensor):
        tensors = [model_or_params]
    elif isinstance(model_or_params, Iterable) and not isinstance(model_or_params, (str, bytes)):
        tensors = list(model_or_params)
        bad = [type(t).__name__ for t in tensors if not isinstance(t, torch.Tensor)]
        if bad:
            raise ValueError(f"model_or_params must hold only tensors; found {sorted(set(bad))}")
    else:
        raise ValueError(
            f"model_or_params={type(model_or_params).__name__} must be an nn.Module, a mapping "
            "of tensors or an iterable of tensors"
        )
    return float(sum(t.detach().to(torch.float64).pow(2).sum() for t in tensors))
