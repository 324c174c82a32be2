"""Centred kernel alignment (CKA) between two activation matrices over the same tokens.

``X [n_tokens, d_x]`` and ``Y [n_tokens, d_y]`` share their rows; their widths may differ.
:func:`linear_cka` (Kornblith et al. 2019, from the ``d x d`` feature-space Grams),
:func:`debiased_linear_cka` (every HSIC unbiased, Song et al. 2012: near 0 for independent
representations), :class:`MinibatchCKA` (Nguyen et al. 2021: unbiased HSIC averaged over
minibatches, memory independent of the token count), :func:`rbf_cka` (Gaussian kernels, small
``n`` only), :func:`cka_matrix` (layer x layer) and :func:`linear_cka_from_stats` (exact linear
CKA over every streamed token from a :class:`~.correlation.StreamingCorrelation`). The linear
ones run their feature-space products in :func:`~.correlation.analysis_dtype` (float32 on CUDA,
float64 on the CPU), every sum of squares in float64. Constant inputs raise ``ValueError``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import torch

from akira_nb.alignment.correlation import analysis_dtype
from akira_nb.runtime import check_choice, check_int, check_real

F64 = torch.float64
METHODS = ("linear", "debiased", "rbf")


def _matrix(name: str, x, device=None, dtype=F64) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [n_tokens, n_neurons]")
    x = x.detach().to(device if device is not None else x.device, dtype)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def _linear_dtype(x, device, dtype) -> tuple:
    """``(device, dtype)`` of linear CKA for input ``x``: ``device`` (default ``x``'s) and
    :func:`~.correlation.analysis_dtype` there."""
    dev = device if device is not None else torch.as_tensor(x).device
    return dev, analysis_dtype(dev, dtype)


def _pair(x, y, n_min: int, device=None, dtype=F64) -> tuple[torch.Tensor, torch.Tensor]:
    x = _matrix("X", x, device, dtype)
    y = _matrix("Y", y, x.device, dtype)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"X has {x.shape[0]} tokens and Y has {y.shape[0]}; CKA needs the same tokens (rows)"
        )
    if x.shape[0] < n_min:
        raise ValueError(f"need at least {n_min} tokens, got {x.shape[0]}")
    return x, y


def _centre(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(0, keepdim=True)


def _ratio(num: torch.Tensor, den_x: torch.Tensor, den_y: torch.Tensor) -> float:
    if float(den_x) <= 0 or float(den_y) <= 0:
        which = "X" if float(den_x) <= 0 else "Y"
        raise ValueError(f"{which} has no variance over tokens: CKA is undefined")
    return float(num / (den_x * den_y))


def _sq_sum(m: torch.Tensor) -> torch.Tensor:
    """``||m||_F^2`` summed in float64 (``matrix_norm`` of a large float32 matrix is off by
    1e-4 on the CPU)."""
    return (m * m).sum(dtype=F64)


class _Features:
    """The per-matrix terms of (debiased) feature-space linear CKA, computed once per layer:
    products in ``x``'s dtype, sums of squares in float64."""

    def __init__(self, x: torch.Tensor):
        self.x = _centre(x)
        self.n = x.shape[0]
        self.self_hsic = _sq_sum(self.x.T @ self.x)  # ||X^T X||_F^2
        self.row_sq = (self.x * self.x).sum(1, dtype=F64)  # diagonal of the token Gram matrix
        self.sq_norm = self.row_sq.sum()

    def dot(self, other: _Features) -> torch.Tensor:
        return _sq_sum(self.x.T @ other.x)

    def debias(self, xty: torch.Tensor, other: _Features) -> torch.Tensor:
        """Kornblith's ``_debiased_dot_product_similarity_helper`` (= n(n-3) unbiased HSIC)."""
        n = self.n
        return (
            xty
            - n / (n - 2.0) * (self.row_sq @ other.row_sq)
            + self.sq_norm * other.sq_norm / ((n - 1) * (n - 2))
        )


def _linear(fx: _Features, fy: _Features) -> float:
    return _ratio(fx.dot(fy), fx.self_hsic.sqrt(), fy.self_hsic.sqrt())


def _debiased(fx: _Features, fy: _Features) -> float:
    num = fx.debias(fx.dot(fy), fy)
    nx, ny = fx.debias(fx.self_hsic, fx), fy.debias(fy.self_hsic, fy)
    if float(nx) <= 0 or float(ny) <= 0:
        if float(fx.sq_norm) == 0 or float(fy.sq_norm) == 0:
            _ratio(num, fx.sq_norm, fy.sq_norm)  # raises: no variance
        warnings.warn("debiased HSIC(X, X) or HSIC(Y, Y) <= 0: CKA is NaN", stacklevel=3)
        return math.nan
    return float(num / (nx.sqrt() * ny.sqrt()))


def linear_cka(X, Y, device=None, dtype=None) -> float:
    """Linear CKA of ``X [n, d_x]`` and ``Y [n, d_y]`` (columns centred here), on ``device``
    (default ``X``'s) in :func:`~.correlation.analysis_dtype` (``dtype`` overrides)."""
    x, y = _pair(X, Y, 2, *_linear_dtype(X, device, dtype))
    return _linear(_Features(x), _Features(y))


def linear_cka_from_stats(stats, layer_a=None, layer_b=None) -> float:
    """Linear CKA over every token a :class:`~.correlation.StreamingCorrelation` has seen, from
    its float64 sums: ``||C_ab||_F^2 / (||C_aa||_F ||C_bb||_F)`` with the population
    (cross-)covariances, which is :func:`linear_cka` of the full matrices (the ``1/n`` factors
    cancel) without holding them. Needs ``track_a_cov`` and ``track_b_cov``; ``layer_a`` /
    ``layer_b`` pick one layer of each when several were concatenated. A token-shuffled
    :class:`~.correlation.SharedMarginalsCorrelation` gives the shuffled pair's CKA."""
    if not getattr(stats, "track_a_cov", False):
        raise ValueError("linear CKA from the sums needs A's covariance (track_a_cov=True)")
    ca, cb = stats.cov_a(layer_a), stats.cov_b(layer_b)
    num = torch.linalg.matrix_norm(stats.cov(layer_a, layer_b)) ** 2
    return _ratio(num, torch.linalg.matrix_norm(ca), torch.linalg.matrix_norm(cb))


def debiased_linear_cka(X, Y, device=None, dtype=None) -> float:
    """Linear CKA with the unbiased HSIC estimator (needs ``n >= 4`` tokens); ``device`` and
    ``dtype`` as in :func:`linear_cka`."""
    x, y = _pair(X, Y, 4, *_linear_dtype(X, device, dtype))
    return _debiased(_Features(x), _Features(y))


def cka_scores(X, Y, null_perm=None, device=None, dtype=None) -> dict:
    """Linear and debiased linear CKA of ``X`` and ``Y`` (``linear``, ``debiased``) and, with
    ``null_perm`` (a permutation of the tokens), of ``X`` and ``Y[null_perm]``, the
    token-shuffled pair (``linear_null``, ``debiased_null``). Each matrix's Gram terms are
    computed once (``Y[perm]^T Y[perm] = Y^T Y``); ``device`` and ``dtype`` as in
    :func:`linear_cka`."""
    x, y = _pair(X, Y, 4, *_linear_dtype(X, device, dtype))
    fx, fy = _Features(x), _Features(y)
    out = {"linear": _linear(fx, fy), "debiased": _debiased(fx, fy)}
    if null_perm is not None:
        perm = torch.as_tensor(null_perm, device=y.device)
        if sorted(perm.tolist()) != list(range(y.shape[0])):
            raise ValueError(f"null_perm must be a permutation of the {y.shape[0]} tokens")
        fn = _Features.__new__(_Features)
        fn.x, fn.n, fn.self_hsic = fy.x[perm], fy.n, fy.self_hsic
        fn.row_sq, fn.sq_norm = fy.row_sq[perm], fy.sq_norm
        out.update(linear_null=_linear(fx, fn), debiased_null=_debiased(fx, fn))
    return out


# ------------------------------------------------------------------------------- Gram matrices
def _zero_diag(k: torch.Tensor) -> torch.Tensor:
    return k - torch.diag_embed(torch.diagonal(k, dim1=-2, dim2=-1))


def hsic_unbiased_pairs(KA: torch.Tensor, KB: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC of every Gram matrix in ``KA [p, n, n]`` with every one in ``KB [q, n, n]``:
    ``[p, q]``, without forming ``p x q`` Gram-sized products."""
    n = KA.shape[-1]
    if n < 4:
        raise ValueError(f"unbiased HSIC needs at least 4 tokens, got {n}")
    k, l = _zero_diag(KA), _zero_diag(KB)
    term1 = k.flatten(1) @ l.flatten(1).T
    term2 = k.sum((-2, -1))[:, None] * l.sum((-2, -1))[None, :] / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (k.sum(-1) @ l.sum(-1).T)
    return (term1 + term2 - term3) / (n * (n - 3))


def hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Song et al. 2012's unbiased HSIC of two ``[n, n]`` Gram matrices (``n >= 4``)::

        [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3))

    with ``K~``, ``L~`` the Gram matrices with their diagonals set to 0.
    """
    return hsic_unbiased_pairs(K[None], L[None])[0, 0]


def hsic_biased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """``tr(K H L H) / (n-1)^2`` with ``H = I - 11^T / n``."""
    n = K.shape[0]
    kc = K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()
    return (kc * L).sum() / (n - 1) ** 2


def gram_linear(X) -> torch.Tensor:
    """Token Gram matrix ``X X^T`` (``[n, n]``, float64)."""
    x = _matrix("X", X)
    return x @ x.T


def gram_rbf(X, sigma_frac: float = 0.5) -> torch.Tensor:
    """Gaussian-kernel token Gram matrix ``exp(-d^2 / (2 sigma^2))`` with
    ``sigma^2 = sigma_frac^2 * median(d^2)`` over all token pairs (Kornblith's demo)."""
    sigma_frac = check_real("sigma_frac", sigma_frac, 0.0, None, low_open=True)
    x = _matrix("X", X)
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0)
    med = d2.median()
    if float(med) <= 0:
        raise ValueError("X: the median squared distance between tokens is 0; RBF CKA undefined")
    return torch.exp(-d2 / (2.0 * sigma_frac**2 * med))


def rbf_cka(X, Y, sigma_frac: float = 0.5, debiased: bool = False, max_tokens: int = 5000):
    """CKA with Gaussian kernels (``n x n`` Gram matrices: at most ``max_tokens`` tokens; subsample
    with :func:`sample_tokens` for more). ``debiased`` uses the unbiased HSIC."""
    max_tokens = check_int("max_tokens", max_tokens, low=4)
    x, y = _pair(X, Y, 4 if debiased else 2)
    if x.shape[0] > max_tokens:
        raise ValueError(
            f"rbf_cka builds n x n Gram matrices: n={x.shape[0]} tokens is over "
            f"max_tokens={max_tokens}; subsample tokens (sample_tokens) or raise max_tokens"
        )
    k, l = gram_rbf(x, sigma_frac), gram_rbf(y, sigma_frac)
    hsic = hsic_unbiased if debiased else hsic_biased
    kk, ll = hsic(k, k), hsic(l, l)
    if float(kk) <= 0 or float(ll) <= 0:
        warnings.warn("HSIC(K, K) or HSIC(L, L) <= 0: CKA is NaN", stacklevel=2)
        return math.nan
    return float(hsic(k, l) / (kk.sqrt() * ll.sqrt()))


def sample_tokens(n_total: int, n: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of ``min(n, n_total)`` distinct tokens, drawn without replacement."""
    n_total, n = check_int("n_total", n_total, low=1), check_int("n", n, low=1)
    g = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    return torch.randperm(n_total, generator=g)[: min(n, n_total)].sort().values


# ----------------------------------------------------------------------------------- minibatch
class MinibatchCKA:
    """Minibatch CKA (Nguyen et al. 2021) of every layer of A against every layer of B.

    ``update(xa, xb)`` takes one minibatch of the same tokens: matrices ``[n_b, d]`` or dicts
    ``{layer: [n_b, d]}``. Each minibatch needs ``n_b >= 4`` tokens (the unbiased estimator
    divides by ``(n_b - 3)``); every minibatch should have the same size. Use sizes of a few
    hundred to a few thousand tokens; the Gram matrices are ``n_b x n_b``.
    """

    def __init__(self, device=None):
        self.device = device
        self.layers_a: list | None = None
        self.layers_b: list | None = None
        self.n_batches = 0
        self.n_tokens = 0

    @staticmethod
    def _dict(name: str, x) -> dict:
        if isinstance(x, Mapping):
            if not x:
                raise ValueError(f"{name} names no layer")
            return dict(x)
        return {0: x}

    @torch.no_grad()
    def update(self, xa, xb) -> MinibatchCKA:
        xa, xb = self._dict("xa", xa), self._dict("xb", xb)
        if self.layers_a is None:
            self.layers_a, self.layers_b = list(xa), list(xb)
            self.hsic_ab = torch.zeros(len(xa), len(xb), dtype=F64)
            self.hsic_aa = torch.zeros(len(xa), dtype=F64)
            self.hsic_bb = torch.zeros(len(xb), dtype=F64)
        if list(xa) != self.layers_a or list(xb) != self.layers_b:
            raise ValueError(
                f"layers changed between minibatches: expected A {self.layers_a}, "
                f"B {self.layers_b}; got A {list(xa)}, B {list(xb)}"
            )
        mats = [_matrix(f"xa[{k!r}]", v, self.device) for k, v in xa.items()]
        mats += [_matrix(f"xb[{k!r}]", v, self.device) for k, v in xb.items()]
        n = {m.shape[0] for m in mats}
        if len(n) != 1:
            raise ValueError(f"every layer of a minibatch needs the same tokens; got sizes {n}")
        (n,) = n
        if n < 4:
            raise ValueError(f"minibatch of {n} tokens: minibatch CKA needs at least 4")
        grams = torch.stack([m @ m.T for m in mats])
        ka, kb = grams[: len(xa)], grams[len(xa) :]
        self.hsic_ab += hsic_unbiased_pairs(ka, kb).cpu()
        self.hsic_aa += torch.diagonal(hsic_unbiased_pairs(ka, ka)).cpu()
        self.hsic_bb += torch.diagonal(hsic_unbiased_pairs(kb, kb)).cpu()
        self.n_batches += 1
        self.n_tokens += n
        return self

    def matrix(self) -> tuple[np.ndarray, list, list]:
        """``(cka [n_layers_a, n_layers_b], layers_a, layers_b)``."""
        if not self.n_batches:
            raise ValueError("no minibatch seen yet")
        den = torch.sqrt(self.hsic_aa[:, None].clamp_min(0) * self.hsic_bb[None].clamp_min(0))
        out = torch.where(den > 0, self.hsic_ab / den, torch.full_like(den, math.nan))
        return out.numpy(), list(self.layers_a), list(self.layers_b)

    def cka(self) -> float:
        """The CKA of the single layer pair (use :meth:`matrix` for several layers)."""
        m, la, lb = self.matrix()
        if m.shape != (1, 1):
            raise ValueError(f"several layers ({la} x {lb}): use matrix()")
        return float(m[0, 0])

    def state_dict(self) -> dict:
        return {
            "layers_a": self.layers_a,
            "layers_b": self.layers_b,
            "n_batches": self.n_batches,
            "n_tokens": self.n_tokens,
            **(
                {"hsic_ab": self.hsic_ab, "hsic_aa": self.hsic_aa, "hsic_bb": self.hsic_bb}
                if self.layers_a is not None
                else {}
            ),
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.layers_a, self.layers_b = state["layers_a"], state["layers_b"]
        self.n_batches, self.n_tokens = int(state["n_batches"]), int(state["n_tokens"])
        if self.layers_a is not None:
            self.hsic_ab = state["hsic_ab"].to(F64)
            self.hsic_aa = state["hsic_aa"].to(F64)
            self.hsic_bb = state["hsic_bb"].to(F64)


# -------------------------------------------------------------------------------------- matrix
def cka_matrix(
    acts_a: Mapping, acts_b: Mapping, method: str = "linear", *, device=None, dtype=None, **kwargs
) -> tuple[np.ndarray, list, list]:
    """CKA of every layer of A against every layer of B: ``(matrix, layers_a, layers_b)``.

    ``acts_a``/``acts_b``: ``{layer: [n_tokens, width]}`` over the same tokens. ``method``:
    ``"linear"``, ``"debiased"`` or ``"rbf"`` (``kwargs`` go to :func:`rbf_cka`). Each layer's
    centred matrix and self-similarity are computed once; linear and debiased on ``device``
    (default: the first matrix's) in :func:`~.correlation.analysis_dtype` (``dtype``
    overrides).
    """
    check_choice("method", method, METHODS)
    for name, acts in (("acts_a", acts_a), ("acts_b", acts_b)):
        if not isinstance(acts, Mapping) or not acts:
            raise ValueError(f"{name} must be a non-empty dict {{layer: [n_tokens, width]}}")
    la, lb = list(acts_a), list(acts_b)
    out = np.zeros((len(la), len(lb)))
    if method == "rbf":
        for i, ka in enumerate(la):
            for j, kb in enumerate(lb):
                out[i, j] = rbf_cka(acts_a[ka], acts_b[kb], **kwargs)
        return out, la, lb
    if kwargs:
        raise ValueError(f"method={method!r} takes no options; got {sorted(kwargs)}")
    n_min = 4 if method == "debiased" else 2
    dev, dt = _linear_dtype(next(iter(acts_a.values())), device, dtype)
    fa = {k: _Features(_matrix(f"acts_a[{k!r}]", v, dev, dt)) for k, v in acts_a.items()}
    fb = {k: _Features(_matrix(f"acts_b[{k!r}]", v, dev, dt)) for k, v in acts_b.items()}
    sizes = {f.n for f in (*fa.values(), *fb.values())}
    if len(sizes) != 1:
        raise ValueError(f"every layer needs the same tokens; got token counts {sorted(sizes)}")
    if sizes.pop() < n_min:
        raise ValueError(f"need at least {n_min} tokens")
    pair = _linear if method == "linear" else _debiased
    for i, ka in enumerate(la):
        for j, kb in enumerate(lb):
            out[i, j] = pair(fa[ka], fb[kb])
    return out, la, lb


__all__ = [
    "METHODS",
    "MinibatchCKA",
    "cka_matrix",
    "cka_scores",
    "debiased_linear_cka",
    "gram_linear",
    "gram_rbf",
    "hsic_biased",
    "hsic_unbiased",
    "hsic_unbiased_pairs",
    "linear_cka",
    "linear_cka_from_stats",
    "rbf_cka",
    "sample_tokens",
]
