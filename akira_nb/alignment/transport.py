"""Match every neuron of model A to one neuron of model B from their correlation matrix.

The input is ``corr [d_a, d_b]`` (or two activation matrices over the same tokens); the cost is
``1 - |corr|``, so a neuron and its sign-flipped copy match alike. Every A neuron gets one B
neuron, whatever the widths. :data:`METHODS`: ``"hungarian"`` (SciPy ``linear_sum_assignment``,
one-to-one when ``d_a <= d_b``, else B's columns repeated), ``"emd"`` (exact OT, POT ``ot.emd``
with uniform marginals and :data:`EMD_NUM_ITER_MAX` iterations; an A neuron's match is its plan
row's argmax; a non-optimal stop is reported and warned about) and ``"sinkhorn"`` (log-domain
entropic OT, ``reg`` in cost units, on the GPU for a CUDA input). ``total_cost`` is the plan's
mass-weighted mean of ``1 - |corr|``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

from akira_nb.alignment.choices import MATCH_METHODS as METHODS
from akira_nb.runtime import check_bool, check_choice, check_int, check_real

EMD_NUM_ITER_MAX = 10_000_000
SINKHORN_NUM_ITER_MAX = 2_000
SINKHORN_REG = 0.05


@dataclass
class NeuronMatching:
    """One B neuron per A neuron.

    ``a_idx [d_a]`` (0..d_a-1) and ``b_idx [d_a]``: the pairs; ``corr [d_a]``: the signed
    correlation of each pair; ``total_cost``: ``sum(P * (1 - |corr|))`` (see the module
    docstring); ``mass [d_a]``: the share of each A neuron's mass the plan sends to its match
    (1 for ``hungarian``); ``converged``/``warning``: what the solver reported; ``plan``: the
    transport plan when ``keep_plan=True``.
    """

    method: str
    a_idx: np.ndarray
    b_idx: np.ndarray
    corr: np.ndarray
    total_cost: float
    n_a: int
    n_b: int
    converged: bool = True
    warning: str | None = None
    mass: np.ndarray | None = None
    reg: float | None = None
    seconds: float = 0.0
    plan: np.ndarray | None = None

    @property
    def abs_corr(self) -> np.ndarray:
        return np.abs(self.corr)

    @property
    def one_to_one(self) -> bool:
        """True when no B neuron is matched twice."""
        return len(np.unique(self.b_idx)) == len(self.b_idx)

    def accuracy(self, true_b_idx) -> float:
        """Fraction of A neurons matched to ``true_b_idx`` (e.g. a planted permutation)."""
        true_b_idx = np.asarray(true_b_idx)
        if true_b_idx.shape != self.b_idx.shape:
            raise ValueError(
                f"true_b_idx has shape {true_b_idx.shape}; expected {self.b_idx.shape}"
            )
        return float((true_b_idx == self.b_idx).mean())

    def agreement(self, other: NeuronMatching) -> float:
        """Fraction of A neurons both matchings send to the same B neuron."""
        return self.accuracy(other.b_idx)

    def summary(self, threshold: float = 0.5) -> dict:
        """JSON-able scalars: the reference's 'OT cost', mean |corr| and the count above a cut."""
        return {
            "method": self.method,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "total_cost": self.total_cost,
            "mean_abs_corr": float(self.abs_corr.mean()),
            "above": int((self.abs_corr > threshold).sum()),
            "threshold": float(threshold),
            "one_to_one": self.one_to_one,
            "converged": self.converged,
            "warning": self.warning,
            "seconds": self.seconds,
        }


def _to_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _correlation(a, b):
    """The correlation matrix from the inputs (validated), and the torch tensor if one was given."""
    if b is not None:
        from akira_nb.alignment.correlation import correlation_of

        return correlation_of(a, b, device="cpu").corr().numpy(), None
    if hasattr(a, "corr") and callable(a.corr):  # a StreamingCorrelation
        a = a.corr()
    torch_in = a if hasattr(a, "detach") else None
    c = np.asarray(_to_numpy(a), dtype=np.float64)
    if c.ndim != 2 or 0 in c.shape:
        raise ValueError(
            f"corr has shape {c.shape}; expected a [d_a, d_b] correlation matrix "
            "(or pass two activation matrices [n_tokens, d])"
        )
    if not np.isfinite(c).all():
        raise ValueError("corr holds NaN or infinite values")
    if np.abs(c).max() > 1 + 1e-6:
        raise ValueError(
            f"corr has |values| up to {np.abs(c).max():.3g}; correlations lie in [-1, 1]"
        )
    return c, torch_in


def _argmax_rows(plan: np.ndarray, abs_corr: np.ndarray) -> np.ndarray:
    """Each row's argmax of the plan; ties (within 1e-9 relative) go to the larger |corr|."""
    top = plan.max(axis=1, keepdims=True)
    tied = plan >= top * (1 - 1e-9)
    return np.where(tied, abs_corr, -np.inf).argmax(axis=1)


def _solve_with_warnings(fn):
    """Run a POT solver, collecting its warnings instead of letting them through."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught]


def _hungarian(cost: np.ndarray, keep_plan: bool):
    """``(b_idx, total_cost, mass, plan)`` of SciPy's assignment (B's columns repeated
    ``ceil(d_a / d_b)`` times when A is wider)."""
    from scipy.optimize import linear_sum_assignment

    d_a, d_b = cost.shape
    reps = max(1, math.ceil(d_a / d_b))
    rows, cols = linear_sum_assignment(np.tile(cost, (1, reps)) if reps > 1 else cost)
    b_idx = np.empty(d_a, dtype=np.int64)
    b_idx[rows] = cols % d_b
    plan = None
    if keep_plan:
        plan = np.zeros((d_a, d_b))
        plan[np.arange(d_a), b_idx] = 1.0 / d_a
    return b_idx, float(cost[np.arange(d_a), b_idx].mean()), np.ones(d_a), plan


def _emd(cost: np.ndarray, num_iter_max: int | None):
    """``(plan, total_cost, converged, message, caught warnings)`` of POT's exact OT."""
    import ot

    d_a, d_b = cost.shape
    iters = num_iter_max or EMD_NUM_ITER_MAX
    wa, wb = np.full(d_a, 1.0 / d_a), np.full(d_b, 1.0 / d_b)
    (plan, log), caught = _solve_with_warnings(
        lambda: ot.emd(wa, wb, cost, numItermax=iters, log=True)
    )
    converged = int(log["result_code"]) == 1
    message = None
    if not converged:
        message = (
            f"ot.emd stopped before optimality (result_code {log['result_code']}: "
            f"{log['warning']}) at num_iter_max={iters}; raise num_iter_max"
        )
    return plan, float(log["cost"]), converged, message, caught


def _sinkhorn(cost: np.ndarray, torch_in, reg: float, num_iter_max: int | None, stop_thr: float):
    """``(plan, total_cost, converged, message, caught warnings)`` of POT's log-domain
    Sinkhorn (on the GPU when the input was a CUDA tensor)."""
    import ot

    d_a, d_b = cost.shape
    iters = num_iter_max or SINKHORN_NUM_ITER_MAX
    m = cost
    if torch_in is not None and torch_in.device.type == "cuda":
        import torch

        m = torch.as_tensor(cost, device=torch_in.device)
    nx = ot.backend.get_backend(m)
    wa = nx.full((d_a,), 1.0 / d_a, type_as=m)
    wb = nx.full((d_b,), 1.0 / d_b, type_as=m)
    (plan, log), caught = _solve_with_warnings(
        lambda: ot.sinkhorn(
            wa, wb, m, reg, method="sinkhorn_log", numItermax=iters, stopThr=stop_thr, log=True
        )
    )
    plan = np.asarray(_to_numpy(plan), dtype=np.float64)
    err = float(_to_numpy(log["err"][-1])) if log.get("err") else math.nan
    finite = bool(np.isfinite(plan).all())
    converged = finite and err <= stop_thr and not any("converge" in c for c in caught)
    if not finite:
        plan = np.nan_to_num(plan, nan=0.0, posinf=0.0, neginf=0.0)
    message = None
    if not converged:
        message = (
            f"sinkhorn (log-domain, reg={reg}) did not converge in num_iter_max={iters} "
            f"iterations (marginal error {err:.3g} > stop_thr={stop_thr}); raise "
            "num_iter_max or reg"
        )
    return plan, float((plan * cost).sum()), converged, message, caught


def match_neurons(
    a,
    b=None,
    method: str | None = None,
    *,
    reg: float = SINKHORN_REG,
    num_iter_max: int | None = None,
    stop_thr: float = 1e-9,
    keep_plan: bool = False,
) -> NeuronMatching:
    """Match each A neuron to one B neuron with cost ``1 - |corr|`` (see the module docstring).

    ``a``: a correlation matrix ``[d_a, d_b]`` (numpy, torch, or a ``StreamingCorrelation``), or
    A's activations ``[n_tokens, d_a]`` when ``b`` (B's activations ``[n_tokens, d_b]``) is given.
    ``method``: ``"emd"`` (default), ``"sinkhorn"`` or ``"hungarian"``; with a correlation matrix
    it may come second, ``match_neurons(corr, "hungarian")``. ``reg``: Sinkhorn's entropic
    regularisation (> 0). ``num_iter_max``: the solver's iteration cap (default
    :data:`EMD_NUM_ITER_MAX` for emd, :data:`SINKHORN_NUM_ITER_MAX` for sinkhorn).
    ``stop_thr``: Sinkhorn's marginal-error tolerance. ``keep_plan``: keep the ``[d_a, d_b]``
    plan (100 MB at 3072 x 4096).
    """
    if isinstance(b, str):  # match_neurons(corr, "hungarian")
        if method is not None:
            raise ValueError(f"b={b!r}: B's activations, not a method (method={method!r})")
        b, method = None, b
    method = "emd" if method is None else method
    check_choice("method", method, METHODS)
    check_bool("keep_plan", keep_plan)
    if method == "sinkhorn":
        reg = check_real("reg", reg, 0.0, None, low_open=True)
        stop_thr = check_real("stop_thr", stop_thr, 0.0, None, low_open=True)
    if num_iter_max is not None:
        num_iter_max = check_int("num_iter_max", num_iter_max, low=1)
    corr, torch_in = _correlation(a, b)
    d_a, d_b = corr.shape
    abs_corr = np.abs(corr)
    cost = np.ascontiguousarray(1.0 - abs_corr)
    start = time.perf_counter()
    converged, message = True, None
    if method == "hungarian":
        b_idx, total_cost, mass, plan = _hungarian(cost, keep_plan)
    else:
        if method == "emd":
            plan, total_cost, converged, message, caught = _emd(cost, num_iter_max)
        else:
            solved = _sinkhorn(cost, torch_in, reg, num_iter_max, stop_thr)
            plan, total_cost, converged, message, caught = solved
        others = [c for c in caught if "numItermax" not in c and "converge" not in c]
        if message and others:
            message += f" (solver warnings: {'; '.join(sorted(set(others)))})"
        elif others:  # other solver warnings pass through unchanged
            for c in others:
                warnings.warn(c, RuntimeWarning, stacklevel=2)
        b_idx = _argmax_rows(plan, abs_corr)
        mass = plan[np.arange(d_a), b_idx] * d_a
        if not keep_plan:
            plan = None
    if message:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return NeuronMatching(
        method=method,
        a_idx=np.arange(d_a, dtype=np.int64),
        b_idx=b_idx.astype(np.int64),
        corr=corr[np.arange(d_a), b_idx],
        total_cost=total_cost,
        n_a=d_a,
        n_b=d_b,
        converged=converged,
        warning=message,
        mass=mass,
        reg=reg if method == "sinkhorn" else None,
        seconds=time.perf_counter() - start,
        plan=plan,
    )


__all__ = [
    "EMD_NUM_ITER_MAX",
    "METHODS",
    "NeuronMatching",
    "SINKHORN_NUM_ITER_MAX",
    "SINKHORN_REG",
    "match_neurons",
]
