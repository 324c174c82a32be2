"""Orthogonal Procrustes alignment of A's activations onto B's, scored on held-out tokens.

``X_a [n_tokens, d_a]`` and ``X_b [n_tokens, d_b]`` share their rows. The tokens are split once
(``train_frac``, seeded; by sequence when ``groups`` gives each token's sequence id, so that the
held-out tokens come from unseen sequences). Everything is **fitted on the training split only**
(means, scales, PCA bases, the map) and **scored on the held-out split**; the reference fitted
and scored on the same tokens, which rewards fitting noise (the train error is reported beside
the held-out one to show the gap).

Preprocessing (training split): centre each neuron; with ``standardize=True`` also divide each
neuron by its standard deviation (the reference's 003 script; this breaks the invariance to a
rotation of B); then scale each side so that a token's activation vector has unit RMS norm.
Errors are relative, ``||A R - B||_F / ||B||_F``: 0 is a perfect map, 1 is no better than
predicting 0, and two unrelated representations give about ``sqrt(2) = 1.41``.

Different widths (:data:`METHODS`)
----------------------------------
- ``"semi_orthogonal"`` (default): keeps every neuron. ``R [d_a, d_b]`` maximises
  ``tr(R^T A^T B)`` subject to orthonormal rows (``d_a <= d_b``) or columns (``d_a > d_b``); it is
  SciPy's ``orthogonal_procrustes`` solution of the problem with the narrower side zero-padded
  (the square case is SciPy's plain solution). The prediction of B is ``A R``.
- ``"pca"``: both sides are reduced to their top ``k <= min(d_a, d_b)`` principal components
  (fitted on the training split), and ``R [k, k]`` is SciPy's orthogonal Procrustes between the
  component scores. Errors are measured in that ``k``-dimensional space; the prediction of B's
  neurons maps back through B's components.

``aligned_corr [d_b]`` is, per B neuron, the Pearson correlation over held-out tokens of its
prediction with its actual activation (the reference's "aligned correlation", but held out).
The null fits and scores the same way after shuffling B's token rows against A's
(``n_shuffles`` times): ``null_error`` and ``null_aligned_corr`` are what a map achieves when
no token corresponds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime import check_bool, check_choice, check_int, check_real

METHODS = ("semi_orthogonal", "pca")


def _matrix(name: str, x) -> np.ndarray:
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"{name} has shape {x.shape}; expected [n_tokens, n_neurons]")
    if not np.isfinite(x).all():
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
    """Centring and scaling fitted on the training split, applied to any tokens."""

    mean: np.ndarray
    std: np.ndarray
    scale: float

    @classmethod
    def fit(cls, x: np.ndarray, standardize: bool) -> _Prep:
        mean = x.mean(0)
        std = x.std(0) if standardize else np.ones(x.shape[1])
        std = np.where(std > 0, std, 1.0)
        z = (x - mean) / std
        scale = float(np.sqrt((z * z).sum(1).mean()))
        return cls(mean, std, scale if scale > 0 else 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.scale * self.std + self.mean


def _rel_error(pred: np.ndarray, target: np.ndarray) -> float:
    den = np.linalg.norm(target)
    return float(np.linalg.norm(pred - target) / den) if den > 0 else float("nan")


def column_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``x`` with the same column of ``y`` (0 where a
    column is constant)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    den = np.sqrt((xc * xc).sum(0) * (yc * yc).sum(0))
    num = (xc * yc).sum(0)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _fit(a: np.ndarray, b: np.ndarray, method: str, k: int | None):
    """The map from preprocessed training matrices: ``(R, basis_a, basis_b)``."""
    from scipy.linalg import orthogonal_procrustes

    if method == "pca":
        basis_a = np.linalg.svd(a, full_matrices=False)[2][:k].T  # [d_a, k]
        basis_b = np.linalg.svd(b, full_matrices=False)[2][:k].T
        r, _ = orthogonal_procrustes(a @ basis_a, b @ basis_b)
        return r, basis_a, basis_b
    # orthogonal_procrustes(A, B) depends on the tokens only through A^T B, so it is called on
    # (I, A^T B) with A^T B zero-padded to a square: the zero-padded problem's solution, without
    # padding the token matrices themselves
    d_a, d_b = a.shape[1], b.shape[1]
    d = max(d_a, d_b)
    cross = np.zeros((d, d))
    cross[:d_a, :d_b] = a.T @ b
    r, _ = orthogonal_procrustes(np.eye(d), cross)
    return r[:d_a, :d_b], None, None


@dataclass
class ProcrustesResult:
    """A fitted Procrustes map with its train, held-out and shuffle-null scores.

    ``R``: ``[d_a, d_b]`` (semi_orthogonal) or ``[k, k]`` (pca). ``aligned_corr [d_b]``: held-out
    correlation of each B neuron with its prediction; ``null_aligned_corr [n_shuffles, d_b]``:
    the same under the token-shuffle null. Use :meth:`transform` to predict B from A.
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

    @property
    def n_train(self) -> int:
        return len(self.train_idx)

    @property
    def n_test(self) -> int:
        return len(self.test_idx)

    def _predict(self, za: np.ndarray) -> np.ndarray:
        """Preprocessed B from preprocessed A."""
        if self.method == "pca":
            return za @ self.basis_a @ self.R @ self.basis_b.T
        return za @ self.R

    def transform(self, x_a) -> np.ndarray:
        """Predicted activations of B's neurons ``[n, d_b]`` (B's units) from A's ``[n, d_a]``."""
        x_a = _matrix("x_a", x_a)
        if x_a.shape[1] != len(self.prep_a.mean):
            raise ValueError(
                f"x_a has {x_a.shape[1]} neurons; the map expects {len(self.prep_a.mean)}"
            )
        return self.prep_b.inverse(self._predict(self.prep_a(x_a)))

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
        }


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
) -> ProcrustesResult:
    """Fit an orthogonal map from A to B on training tokens; score it on held-out tokens.

    ``method``: ``"semi_orthogonal"`` or ``"pca"`` (see the module docstring); ``k``: the common
    PCA dimension (default ``min(d_a, d_b, n_train - 1)``; pca only). ``train_frac``, ``seed``,
    ``groups``: the token split (:func:`split_tokens`). ``standardize``: z-score each neuron
    before the isotropic scaling. ``n_shuffles``: token-shuffle null fits (0 skips the null).
    """
    check_choice("method", method, METHODS)
    check_bool("standardize", standardize)
    n_shuffles = check_int("n_shuffles", n_shuffles, low=0)
    xa, xb = _matrix("X_a", X_a), _matrix("X_b", X_b)
    if xa.shape[0] != xb.shape[0]:
        raise ValueError(
            f"X_a has {xa.shape[0]} tokens and X_b has {xb.shape[0]}; they must be the same rows"
        )
    train, test = split_tokens(xa.shape[0], train_frac, seed, groups)
    if method == "pca":
        k_max = min(xa.shape[1], xb.shape[1], len(train) - 1)
        k = k_max if k is None else check_int("k", k, low=1, high=k_max)
    elif k is not None:
        raise ValueError("k is the PCA dimension: use it with method='pca'")

    def fit_and_score(b_train: np.ndarray, b_test: np.ndarray):
        pa = _Prep.fit(xa[train], standardize)
        pb = _Prep.fit(b_train, standardize)
        a_tr, b_tr = pa(xa[train]), pb(b_train)
        a_te, b_te = pa(xa[test]), pb(b_test)
        r, basis_a, basis_b = _fit(a_tr, b_tr, method, k)
        if method == "pca":
            err = lambda a_, b_: _rel_error(a_ @ basis_a @ r, b_ @ basis_b)
            pred_te = a_te @ basis_a @ r @ basis_b.T
        else:
            err = lambda a_, b_: _rel_error(a_ @ r, b_)
            pred_te = a_te @ r
        scores = (err(a_tr, b_tr), err(a_te, b_te), column_corr(pred_te, b_te))
        return (r, basis_a, basis_b, pa, pb), scores

    (r, basis_a, basis_b, pa, pb), (train_err, test_err, aligned) = fit_and_score(
        xb[train], xb[test]
    )
    rng = np.random.default_rng(seed + 1)
    null_errors, null_corr = [], []
    for _ in range(n_shuffles):
        _, (_, e, c) = fit_and_score(
            xb[train][rng.permutation(len(train))], xb[test][rng.permutation(len(test))]
        )
        null_errors.append(e)
        null_corr.append(c)
    return ProcrustesResult(
        method=method,
        R=r,
        k=k,
        standardize=standardize,
        train_error=train_err,
        test_error=test_err,
        null_error=float(np.mean(null_errors)) if null_errors else float("nan"),
        null_errors=null_errors,
        aligned_corr=aligned,
        null_aligned_corr=np.array(null_corr).reshape(n_shuffles, xb.shape[1]),
        train_idx=train,
        test_idx=test,
        prep_a=pa,
        prep_b=pb,
        basis_a=basis_a,
        basis_b=basis_b,
    )


__all__ = ["METHODS", "ProcrustesResult", "column_corr", "procrustes_align", "split_tokens"]
