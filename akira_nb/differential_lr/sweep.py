"""The per-arm learning-rate sweep of 013, as pure functions of a loss per multiplier.

Every arm is compared at its own tuned LR: a small sweep of multipliers of the arm's prescribed
LRs (every band LR and the shared LR scaled together, so a differential arm keeps its ratios; a
uniform arm's one LR scaled). The first points (``grid``: at least 3, spanning at least 10x) are
trained; when the best one is at an edge, one more point is added beyond that edge, as far from
it as the edge is from its neighbour, up to ``extensions`` times. A best still at an edge after
that is reported with "the optimum may lie beyond".

- :func:`check_grid`: a sweep's multipliers, checked (``[]``: no sweep, the prescribed LRs);
- :func:`next_point`: the point the edge rule adds (None: the best is interior);
- :func:`run_sweep`: the rule applied to a loss function, with the outcome and its note.
"""

from __future__ import annotations

import math
from typing import Callable

from akira_nb import runtime

MIN_POINTS, MIN_SPAN = 3, 10.0
EXTENSIONS = 2  # points the edge rule may add beyond an edge, per sweep


def norm(multiplier: float) -> float:
    """``multiplier`` rounded to 10 significant digits (so that 10**0.5 * 10**0.5 is 10)."""
    return float(f"{multiplier:.10g}")


def tag(multiplier: float) -> str:
    """The multiplier as it appears in a training's tag: 4 significant digits (x3.162)."""
    return f"{multiplier:.4g}"


def check_grid(name: str, grid) -> list[float]:
    """``grid`` sorted: ``[]`` (no sweep) or at least ``MIN_POINTS`` distinct positive
    multipliers spanning at least ``MIN_SPAN`` x, distinct in their 4 significant digits (the
    tags of their trainings); else ``ValueError`` naming ``name``."""
    if not isinstance(grid, (list, tuple)):
        raise ValueError(f"{name}={grid!r} must be a list of LR multipliers (or [] for none)")
    values = [
        norm(runtime.check_real(f"{name}[{i}]", m, low=0, low_open=True))
        for i, m in enumerate(grid)
    ]
    if not values:
        return []
    tags = [tag(v) for v in values]
    repeated = [g for i, g in enumerate(grid) if tags[i] in tags[:i]]
    if repeated:
        raise ValueError(
            f"{name}={list(grid)!r} repeats {repeated[0]!r} (multipliers must differ in their "
            "first 4 significant digits: they name the trainings)"
        )
    span = max(values) / min(values)
    if len(values) < MIN_POINTS or span < MIN_SPAN * (1 - 1e-9):
        raise ValueError(
            f"{name}={list(grid)!r} has {len(values)} point(s) spanning {span:.3g}x; a sweep "
            f"needs at least {MIN_POINTS} points spanning at least {MIN_SPAN:g}x (or [] for "
            "no sweep: every arm at its prescribed LRs)"
        )
    return sorted(values)


def _key(loss: float) -> float:
    """A loss as the sweep ranks it: NaN (a diverged training) ranks last."""
    return math.inf if loss is None or math.isnan(loss) else loss


def best(losses: dict) -> float:
    """The multiplier of the lowest loss (``losses``: multiplier -> loss; NaN ranks last)."""
    return min(sorted(losses), key=lambda m: _key(losses[m]))


def edge(losses: dict) -> str | None:
    """``"low"`` / ``"high"`` when the best multiplier is the smallest / largest tried (with at
    least 2 points), else None."""
    points = sorted(losses)
    if len(points) < 2:
        return None
    b = best(losses)
    return "low" if b == points[0] else "high" if b == points[-1] else None


def next_point(losses: dict) -> float | None:
    """The point the edge rule adds: beyond the edge the best sits at, as far from it (as a
    factor) as the edge is from its neighbour; None when the best is interior."""
    side, points = edge(losses), sorted(losses)
    if side == "low":
        return norm(points[0] * points[0] / points[1])
    if side == "high":
        return norm(points[-1] * points[-1] / points[-2])
    return None


def run_sweep(loss_at: Callable[[float], float], grid, extensions: int = EXTENSIONS) -> dict:
    """Train (``loss_at(multiplier)``) every point of ``grid``, then apply the edge rule up to
    ``extensions`` times. Returns ``{"points": [{"mult", "loss"}] sorted, "best", "edge",
    "extensions", "note"}``; ``note`` says "the optimum may lie beyond" when the best is still
    at an edge (``""`` when it is interior)."""
    if not grid:
        raise ValueError("grid=[] has no point to train")
    losses = {norm(m): loss_at(norm(m)) for m in grid}
    added = 0
    while added < extensions and (m := next_point(losses)) is not None:
        losses[m] = loss_at(m)
        added += 1
    b, side = best(losses), edge(losses)
    note = ""
    if side is not None:
        note = (
            f"the optimum may lie beyond x{b:.3g} (the best point is at the {side} edge after "
            f"{added} extension(s))"
        )
    return {
        "points": [{"mult": m, "loss": losses[m]} for m in sorted(losses)],
        "best": b,
        "edge": side,
        "extensions": added,
        "note": note,
    }


__all__ = [
    "EXTENSIONS",
    "MIN_POINTS",
    "MIN_SPAN",
    "best",
    "check_grid",
    "edge",
    "next_point",
    "norm",
    "run_sweep",
    "tag",
]
