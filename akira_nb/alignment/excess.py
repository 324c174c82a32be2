"""Excess correlation over Haar-rotated baselines, from a streamed correlation.

A Haar-random rotation ``Q`` of B's neuron basis gives the correlations of A with ``B @ Q``
without a second pass over the tokens (``cov(A, BQ) = cov(A, B) Q``). :func:`basic_excess` is
the seed's basic method (index-matched correlation minus its mean over rotations of B, B kept
whole); :func:`gurnee_excess` is Gurnee et al.'s form (per A neuron, its max correlation over
B's neurons minus the same max under a rotated B basis).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from akira_nb.alignment.correlation import (
    F64,
    SEED_N_ROTATIONS,
    SEED_THRESHOLD,
    StreamingCorrelation,
    analysis_dtype,
)
from akira_nb.runtime import check_bool, check_int, check_real, get_device


def haar_orthogonal(
    d: int, generator: torch.Generator | None = None, device=None, dtype=F64
) -> torch.Tensor:
    """A ``[d, d]`` orthogonal matrix drawn from the Haar (uniform) measure on O(d).

    QR of a standard Gaussian matrix, with each column multiplied by the sign of R's diagonal
    (without that fix the distribution is not uniform). The Gaussian is drawn on the CPU from
    ``generator``, so a seed gives the same rotation on every device; the QR runs on ``device``
    in ``dtype``.
    """
    d = check_int("d", d, low=1)
    z = torch.randn(d, d, generator=generator, dtype=F64)
    q, r = torch.linalg.qr(z.to(get_device(device), dtype))
    sign = torch.sign(torch.diagonal(r))
    sign[sign == 0] = 1.0
    return (q * sign).to(dtype)


@dataclass
class Excess:
    """Per-A-neuron excess correlation ``actual - baseline`` (CPU float64 tensors).

    ``method``: ``"basic"`` (index-matched, the seed's) or ``"gurnee"`` (max over B).
    ``baselines``: ``[n_rotations, m]``, one row per Haar rotation; ``baseline`` is their mean.
    ``best_b``: for ``"gurnee"``, the B neuron (column within the B neurons compared) of the max.
    """

    method: str
    actual: torch.Tensor
    baseline: torch.Tensor
    excess: torch.Tensor
    baselines: torch.Tensor
    n_rotations: int
    seed: int
    layer_a: object = None
    layer_b: object = None
    best_b: torch.Tensor | None = None
    absolute: bool = False
    extra: dict = field(default_factory=dict)

    def aq_mask(self, threshold: float = SEED_THRESHOLD) -> torch.Tensor:
        """Neurons whose excess exceeds ``threshold`` (strictly)."""
        return self.excess > check_real("threshold", threshold)

    def count(self, threshold: float = SEED_THRESHOLD) -> int:
        return int(self.aq_mask(threshold).sum())

    def summary(self, threshold: float = SEED_THRESHOLD) -> dict:
        """The seed's per-layer printout: count, %, mean/std/max/min of the excess."""
        e = self.excess
        count = self.count(threshold)
        return {
            "method": self.method,
            "threshold": float(threshold),
            "total": e.numel(),
            "aq": count,
            "pct": 100.0 * count / max(e.numel(), 1),
            "mean": float(e.mean()),
            "std": float(e.std()) if e.numel() > 1 else 0.0,
            "max": float(e.max()),
            "min": float(e.min()),
            "n_rotations": self.n_rotations,
        }


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(check_int("seed", seed, low=0))


_HAAR_CACHE: dict = {}


def haar_rotations(d: int, n: int, seed: int, device=None, dtype=F64) -> list[torch.Tensor]:
    """The first ``n`` rotations :func:`haar_orthogonal` draws from one generator seeded with
    ``seed`` (what :func:`basic_excess` and :func:`gurnee_excess` use). The rotations of the
    last ``(d, seed, device, dtype)`` asked for are kept (``n d^2`` numbers: 670 MB at five
    4096-wide float64 rotations), so the real and null baselines of every layer pair and input
    type of a run reuse one set of QR decompositions; :func:`clear_rotations` frees them."""
    n = check_int("n", n, low=1)
    key = (check_int("d", d, low=1), check_int("seed", seed, low=0), str(get_device(device)))
    key += (dtype,)
    kept = _HAAR_CACHE.get(key, [])
    if len(kept) < n:
        g = _generator(seed)
        kept = [haar_orthogonal(d, g, device, dtype) for _ in range(n)]
        _HAAR_CACHE.clear()
        _HAAR_CACHE[key] = kept
    return kept[:n]


def clear_rotations() -> None:
    """Free the rotations :func:`haar_rotations` keeps."""
    _HAAR_CACHE.clear()


def basic_excess(
    stats: StreamingCorrelation,
    layer_a=None,
    layer_b=None,
    n_rotations: int = SEED_N_ROTATIONS,
    seed: int = 0,
    dtype=None,
) -> Excess:
    """The seed's basic method: ``corr(A_i, B_i) - mean_k corr(A_i, (B Q_k)_i)``.

    ``Q_k`` are ``n_rotations`` Haar rotations of B's full neuron basis (``layer_b``'s width);
    ``i`` runs over ``min(w_a, w_b)`` neurons. Needs ``track_b_cov``. The rotations and their
    products run in :func:`analysis_dtype` (float32 on CUDA, float64 elsewhere; ``dtype``
    overrides).
    """
    n_rotations = check_int("n_rotations", n_rotations, low=1)
    dt = analysis_dtype(stats.device, dtype)
    actual = stats.index_matched(layer_a, layer_b)
    w_b = stats._cols(layer_b).stop - stats._cols(layer_b).start
    qs = haar_rotations(w_b, n_rotations, seed, stats.device, dt)
    base = torch.stack([stats.rotated_index_matched(q, layer_a, layer_b) for q in qs]).cpu()
    actual = actual.cpu()
    baseline = base.mean(0)
    return Excess(
        "basic", actual, baseline, actual - baseline, base, n_rotations, seed, layer_a, layer_b
    )


def gurnee_excess(
    stats: StreamingCorrelation,
    layer_a=None,
    layer_b=None,
    n_rotations: int = 1,
    seed: int = 0,
    absolute: bool = False,
    dtype=None,
) -> Excess:
    """Gurnee et al.'s form: per A neuron, ``max_j corr(A_i, B_j) - max_j corr(A_i, (BQ)_j)``.

    ``j`` runs over every neuron of ``layer_b`` (None: every tracked B layer, each rotated by its
    own Haar ``Q``, as their code does). ``n_rotations > 1`` averages the baseline max over
    several rotations. ``absolute``: use ``|corr|`` (their code uses the signed max). ``dtype``:
    as in :func:`basic_excess`.
    """
    n_rotations = check_int("n_rotations", n_rotations, low=1)
    check_bool("absolute", absolute)
    dt = analysis_dtype(stats.device, dtype)
    g = _generator(seed)
    f = torch.abs if absolute else (lambda t: t)
    actual, best = f(stats.corr(layer_a, layer_b)).max(dim=1)
    blocks = stats._blocks_b(layer_b)
    widths = [s.stop - s.start for _, s in blocks]
    if len(widths) == 1:  # the sequence basic_excess draws: shared
        rotations = [[q] for q in haar_rotations(widths[0], n_rotations, seed, stats.device, dt)]
    else:
        rotations = [
            [haar_orthogonal(w, g, stats.device, dt) for w in widths] for _ in range(n_rotations)
        ]
    base = []
    for qs in rotations:
        base.append(f(stats.rotated_corr(qs, layer_a, layer_b)).max(dim=1).values)
    base = torch.stack(base).cpu()
    actual = actual.cpu()
    baseline = base.mean(0)
    return Excess(
        "gurnee",
        actual,
        baseline,
        actual - baseline,
        base,
        n_rotations,
        seed,
        layer_a,
        layer_b,
        best_b=best.cpu(),
        absolute=absolute,
    )


__all__ = [
    "Excess",
    "basic_excess",
    "clear_rotations",
    "gurnee_excess",
    "haar_orthogonal",
    "haar_rotations",
]
