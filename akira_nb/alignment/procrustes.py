"""Orthogonal Procrustes alignment of A's activations onto B's, scored on held-out tokens.

``X_a [n, d_a]`` and ``X_b [n, d_b]`` share their rows. The tokens are split once (seeded; by
sequence when ``groups`` is given); everything (means, scales, PCA bases, the map) is fitted on
the training split and scored on the held-out split, the train error beside it. Each side is
centred (``standardize``: z-scored) and scaled to unit RMS norm per token; errors are
``||A R - B||_F / ||B||_F`` (0 perfect, 1 = predicting 0). ``"semi_orthogonal"`` keeps every
neuron (``R = U V^T`` from the thin SVD of ``A^T B``; with no more training tokens than
``min(d_a, d_b)`` the unique least-norm map, computed in token space); ``"pca"`` maps the top
``k`` principal components. ``aligned_corr [d_b]``: each B neuron's held-out correlation with
its prediction; the null refits after shuffling B's rows against A's (``n_shuffles``, batched).
Runs in torch on ``device`` in :func:`~.correlation.analysis_dtype`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from akira_nb.alignment.correlation import analysis_dtype
from akira_nb.runtime import check_bool, check_choice, check_int, check_real, get_device

METHODS = ("semi_orthogonal", "pca")
CPU_BATCH_BYTES = 2**28


def _matrix(name: str, x) -> torch.Tensor:
    x = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x))
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [n_tokens, n_neurons]")
    if not torch.is_floating_point(x):
        x = x.double()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def split_tokens(n: int, train_frac: float = 0.5, seed: int = 0, groups=None):
    """``(train_idx, test_idx)``, sorted, disjoint, covering all ``n`` tokens. With ``groups``
    (one id per token, e.g. its sequence) whole groups go to one side."""
    n = check_int("n", n, low=4)
    train_frac = check_real("train_frac", train_frac, 0.0, 1.0, low_open=True, high_open=True)
    rng = np.random.default_rng(check_int("seed", seed, low=0))
    if groups is None:
        perm = rng.permutation(n)
        n_train = min(max(int(round(train_frac * n)), 2), n - 2)
        return np.sort(perm[:n_train]), np.sort(perm[n_train:])
    groups = np.asarray(groups.cpu() if hasattr(groups, "cpu") else groups)
    if groups.shape != (n,):
        raise ValueError(f"groups has shape {groups.shape}; expected one id per token ({n},)")
    ids = rng.permutation(np.unique(groups))
    if len(ids) < 2:
        raise ValueError("groups: need at least 2 distinct groups to split by group")
    n_train = min(max(int(round(train_frac * len(ids))), 1), len(ids) - 1)
    train = np.isin(groups, ids[:n_train])
    return np.flatnonzero(train), np.flatnonzero(~train)


@dataclass
class _Prep:
    """Centring and scaling fitted on the training split, applied to any tokens (torch, in the
    fit's dtype and device)."""

    mean: torch.Tensor
    std: torch.Tensor
    scale: float

    @classmethod
    def fit(cls, x: torch.Tensor, standardize: bool) -> _Prep:
        mean = x.mean(0)
        std = x.std(0, correction=0) if standardize else torch.ones_like(mean)
        std = torch.where(std > 0, std, torch.ones_like(std))
        z = (x - mean) / std
        scale = float(z.pow(2).sum(1).mean().sqrt())
        return cls(mean, std, scale if scale > 0 else 1.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.mean) - self.mean) / (self.std * self.scale)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * (self.std * self.scale) + self.mean


def _column_corr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over tokens (``dim=-2``) of each column of ``x`` with the same
    column of ``y``, batched over leading dimensions; 0 where a column is constant."""
    xc, yc = x - x.mean(-2, keepdim=True), y - y.mean(-2, keepdim=True)
    den = ((xc * xc).sum(-2) * (yc * yc).sum(-2)).sqrt()
    num = (xc * yc).sum(-2)
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), 0.0)


def column_corr(x, y) -> np.ndarray:
    """Pearson correlation of each column of ``x`` with the same column of ``y`` (0 where a
    column is constant); float64."""
    as_t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64))
    return _column_corr(as_t(x), as_t(y)).numpy()


def _rel_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||pred - target||_F / ||target||_F`` over the last two dimensions (NaN for a zero
    target). The squares are summed in float64: ``torch.linalg.matrix_norm`` of a float32
    matrix of 33M entries is off by 3e-4 on the CPU."""
    sq = lambda x: (x * x).sum((-2, -1), dtype=torch.float64)
    return (sq(pred - target) / sq(target)).sqrt()


def _polar(m: torch.Tensor, least_norm: bool = False) -> torch.Tensor:
    """``U V^T`` from the thin SVD of ``m [..., d_a, d_b]``: the orthogonal Procrustes map.
    ``least_norm``: only over the singular values above ``max(d) eps sigma_max`` (the map of
    least norm when ``m`` is rank-deficient: zero on its null space)."""
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    if least_norm:
        tol = s[..., :1] * max(m.shape[-2:]) * torch.finfo(s.dtype).eps
        u = u * (s > tol)[..., None, :]
    return u @ vh


@dataclass
class ProcrustesResult:
    """A fitted Procrustes map with its train, held-out and shuffle-null scores.

    ``R``: ``[d_a, d_b]`` (semi_orthogonal) or ``[k, k]`` (pca). ``aligned_corr [d_b]``: held-out
    correlation of each B neuron with its prediction; ``null_aligned_corr [n_shuffles, d_b]``:
    the same under the token-shuffle null. Arrays are NumPy float64 (computed in ``dtype`` on
    ``device``). Use :meth:`transform` to predict B from A.
    """

    method: str
    R: np.ndarray
    k: int | None
    standardize: bool
    train_error: float
    test_error: float
    null_error: float
    null_errors: list
    aligned_corr: np.ndarray
    null_aligned_corr: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    prep_a: _Prep
    prep_b: _Prep
    basis_a: np.ndarray | None = None
    basis_b: np.ndarray | None = None
    device: str = "cpu"
    dtype: str = "float64"

    @property
    def n_train(self) -> int:
        return len(self.train_idx)

    @property
    def n_test(self) -> int:
        return len(self.test_idx)

    def transform(self, x_a) -> np.ndarray:
        """Predicted activations of B's neurons ``[n, d_b]`` (B's units) from A's ``[n, d_a]``."""
        x_a = _matrix("x_a", x_a)
        if x_a.shape[1] != len(self.prep_a.mean):
            raise ValueError(
                f"x_a has {x_a.shape[1]} neurons; the map expects {len(self.prep_a.mean)}"
            )
        t = lambda v: torch.as_tensor(v).to(self.prep_a.mean)
        r = t(self.R)
        if self.method == "pca":
            r = t(self.basis_a) @ r @ t(self.basis_b).T
        z = self.prep_a(x_a) @ r
        return self.prep_b.inverse(z).cpu().double().numpy()

    def summary(self) -> dict:
        return {
            "method": self.method,
            "k": self.k,
            "standardize": self.standardize,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "train_error": self.train_error,
            "test_error": self.test_error,
            "null_error": self.null_error,
            "mean_aligned_corr": float(self.aligned_corr.mean()),
            "max_aligned_corr": float(self.aligned_corr.max()),
            "device": self.device,
            "dtype": self.dtype,
        }


class _Fitter:
    """The prepared train / held-out sides of one Procrustes fit, and the fits on them: ``fit``
    gives the maps for B's training rows as they are or permuted, ``scores`` the held-out error
    and per-neuron correlation of maps. With no more training tokens than ``min(d_a, d_b)``
    the maps are the least-norm ones, computed in token space (``A^T = Qa Ra``)."""

    def __init__(self, xa, xb, split, method, k, standardize, dev, dt):
        train, test = split
        tr, te = torch.as_tensor(train), torch.as_tensor(test)
        side = lambda x, idx: x[idx].to(dev, dt)
        a_tr, b_tr = side(xa, tr), side(xb, tr)
        self.pa, self.pb = _Prep.fit(a_tr, standardize), _Prep.fit(b_tr, standardize)
        a_tr, b_tr = self.pa(a_tr), self.pb(b_tr)
        a_te, self.b_te = self.pa(side(xa, te)), self.pb(side(xb, te))
        self.method, self.basis_a, self.basis_b = method, None, None
        self.fa_tr, self.fa_te, self.fb_tr, self.fb_te = a_tr, a_te, b_tr, self.b_te
        if method == "pca":  # a row shuffle leaves both bases unchanged: fitted once
            self.basis_a = torch.linalg.svd(a_tr, full_matrices=False)[2][:k].T  # [d_a, k]
            self.basis_b = torch.linalg.svd(b_tr, full_matrices=False)[2][:k].T
            self.fa_tr, self.fa_te = a_tr @ self.basis_a, a_te @ self.basis_a
            self.fb_tr, self.fb_te = b_tr @ self.basis_b, self.b_te @ self.basis_b
        n_tr, d_a, d_b = self.fa_tr.shape[0], self.fa_tr.shape[1], self.fb_tr.shape[1]
        self.few = n_tr <= min(d_a, d_b)  # centred A^T B has rank < n_tr: the least-norm map
        if self.few:
            self.qa, self.ra = torch.linalg.qr(self.fa_tr.T)  # A^T = Qa Ra: [d_a, n_tr], [n_tr]^2
            self.qb, self.rb = torch.linalg.qr(self.fb_tr.T)
            self.qa_te = self.fa_te @ self.qa

    def fit(self, p_tr: torch.Tensor | None):
        """The maps for B's training rows permuted by ``p_tr [s, n_tr]`` (None: as they are,
        ``s = 1``): ``R [s, d_a, d_b]``, or its token-space core ``[s, n_tr, n_tr]`` with
        ``R = Qa core Qb^T``."""
        if self.few:  # A^T B[p] = Qa Ra (Rb^T)[p] Qb^T
            rb_t = self.rb.T[None] if p_tr is None else self.rb.T[p_tr]
            return _polar(self.ra @ rb_t, least_norm=True)
        return _polar(self.fa_tr.T @ (self.fb_tr[None] if p_tr is None else self.fb_tr[p_tr]))

    def full_map(self, maps: torch.Tensor) -> torch.Tensor:
        """The first of ``maps`` as ``R`` in the (PCA) neuron space."""
        return (self.qa @ maps[0] @ self.qb.T) if self.few else maps[0]

    def scores(self, maps: torch.Tensor, p_te: torch.Tensor | None):
        """Held-out error and per-neuron correlation, B's held-out rows permuted by
        ``p_te [s, n_te]`` (None: as they are)."""
        rows = lambda x: x if p_te is None else x[p_te]
        pred = (self.qa_te @ maps) @ self.qb.T if self.few else self.fa_te @ maps
        err = _rel_error(pred, rows(self.fb_te))
        if self.method == "pca":
            pred = pred @ self.basis_b.T
        return err, _column_corr(pred, rows(self.b_te))

    def null(self, perms: list, dev, dt, batch_bytes: int | None) -> tuple[list, list]:
        """``(errors, corr chunks)`` of the token-shuffle fits ``perms`` (``(train, held-out)``
        permutations), in batches of as many fits as ``batch_bytes`` holds."""
        n_tr, d_a, d_b = self.fa_tr.shape[0], self.fa_tr.shape[1], self.fb_tr.shape[1]
        n_te, d_out = self.b_te.shape
        work = 3 * n_tr * n_tr if self.few else n_tr * d_b + 4 * d_a * d_b
        per_fit = dt.itemsize * (work + n_te * (2 * d_b + 3 * d_out))
        if batch_bytes is None:
            batch_bytes = (
                torch.cuda.mem_get_info(dev)[0] // 2 if dev.type == "cuda" else CPU_BATCH_BYTES
            )
        batch = max(1, min(len(perms), batch_bytes // per_fit))
        null_errors, null_corr = [], []
        for start in range(0, len(perms), batch):
            chunk = perms[start : start + batch]
            p_tr = torch.as_tensor(np.stack([p for p, _ in chunk]), device=dev)
            p_te = torch.as_tensor(np.stack([p for _, p in chunk]), device=dev)
            e, c = self.scores(self.fit(p_tr), p_te)
            null_errors += e.tolist()
            null_corr.append(c.cpu())
        return null_errors, null_corr


def procrustes_align(
    X_a,
    X_b,
    method: str = "semi_orthogonal",
    *,
    k: int | None = None,
    train_frac: float = 0.5,
    seed: int = 0,
    groups=None,
    standardize: bool = False,
    n_shuffles: int = 1,
    device="cpu",
    dtype=None,
    batch_bytes: int | None = None,
) -> ProcrustesResult:
    """Fit an orthogonal map from A to B on training tokens; score it on held-out tokens.

    ``method``: ``"semi_orthogonal"`` or ``"pca"`` (see the module docstring); ``k``: the common
    PCA dimension (default ``min(d_a, d_b, n_train - 1)``; pca only). ``train_frac``, ``seed``,
    ``groups``: the token split (:func:`split_tokens`). ``standardize``: z-score each neuron
    before the isotropic scaling. ``n_shuffles``: token-shuffle null fits (0 skips the null).
    ``device`` / ``dtype``: where and in what precision (default
    :func:`~.correlation.analysis_dtype`: float32 on CUDA, float64 elsewhere). ``batch_bytes``:
    memory for one batch of shuffle fits (default: half the free GPU memory, 256 MiB on the CPU).
    """
    check_choice("method", method, METHODS)
    check_bool("standardize", standardize)
    n_shuffles = check_int("n_shuffles", n_shuffles, low=0)
    if batch_bytes is not None:
        batch_bytes = check_int("batch_bytes", batch_bytes, low=1)
    xa, xb = _matrix("X_a", X_a), _matrix("X_b", X_b)
    if xa.shape[0] != xb.shape[0]:
        raise ValueError(
            f"X_a has {xa.shape[0]} tokens and X_b has {xb.shape[0]}; they must be the same rows"
        )
    dev = get_device(device)
    dt = analysis_dtype(dev, dtype)
    train, test = split_tokens(xa.shape[0], train_frac, seed, groups)
    if method == "pca":
        k_max = min(xa.shape[1], xb.shape[1], len(train) - 1)
        k = k_max if k is None else check_int("k", k, low=1, high=k_max)
    elif k is not None:
        raise ValueError("k is the PCA dimension: use it with method='pca'")
    f = _Fitter(xa, xb, (train, test), method, k, standardize, dev, dt)
    del xa, xb
    maps = f.fit(None)
    r = f.full_map(maps)
    train_err = float(_rel_error(f.fa_tr @ r, f.fb_tr))
    test_err, aligned = f.scores(maps, None)
    rng = np.random.default_rng(seed + 1)
    perms = [(rng.permutation(len(train)), rng.permutation(len(test))) for _ in range(n_shuffles)]
    null_errors, null_corr = f.null(perms, dev, dt, batch_bytes)
    np64 = lambda v: None if v is None else v.detach().cpu().double().numpy()
    return ProcrustesResult(
        method=method,
        R=np64(r),
        k=k,
        standardize=standardize,
        train_error=train_err,
        test_error=float(test_err[0]),
        null_error=float(np.mean(null_errors)) if null_errors else float("nan"),
        null_errors=null_errors,
        aligned_corr=np64(aligned[0]),
        null_aligned_corr=(
            np64(torch.cat(null_corr)) if null_corr else np.zeros((0, f.b_te.shape[1]))
        ),
        train_idx=train,
        test_idx=test,
        prep_a=f.pa,
        prep_b=f.pb,
        basis_a=np64(f.basis_a),
        basis_b=np64(f.basis_b),
        device=str(dev),
        dtype=str(dt).removeprefix("torch."),
    )


__all__ = ["METHODS", "ProcrustesResult", "column_corr", "procrustes_align", "split_tokens"]
