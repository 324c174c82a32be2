"""The learning-rate sweep rule of the kit's comparisons (026 and 013), on plain numbers: which
multiplier of an arm's LRs to train next, which one won, and whether the winner learned. No
training here and no torch; an experiment supplies the losses.

The rule:

1. An arm's LRs are scaled together by a multiplier (a differential arm keeps its ratios). A
   sweep's grid is at least :data:`MIN_POINTS` multipliers spanning at least :data:`MIN_SPAN`
   x (:func:`check_grid`; :data:`GRID` by default: x0.316, x1, x3.16); every grid point is
   trained first.
2. The best point has the lowest final validation loss; a non-finite loss (a diverged
   training) ranks last, and of equal losses the smaller multiplier wins (:func:`best`).
3. While the best point is the lowest (highest) multiplier tried, one more point is trained
   beyond that edge, one grid spacing further (the ratio of the grid's two points at that
   edge), up to ``max_extensions`` points beyond the grid (:func:`next_point`,
   :data:`MAX_EXTENSIONS` by default). Only one side can be extended: a point added below the
   best is either the new best (still the low edge) or leaves the best inside.
4. A best point still at an edge when the cap is reached is reported as such (``edge``
   "low" / "high" of :func:`outcome`): the optimum may lie beyond.
5. Learning check (:func:`learned`): an arm learned when its final validation loss is finite
   and at least :data:`LEARN_MARGIN` nats below the unigram cross-entropy of the same
   validation blocks; an arm that did not learn judges nothing.

:func:`run_sweep` applies 1-4 to a loss function.
"""

from __future__ import annotations

import math
from typing import Callable

from akira_nb import runtime

GRID = (10**-0.5, 1.0, 10**0.5)  # x an arm's preset LRs: 3 points spanning 10x
MIN_POINTS = 3  # a sweep's grid has at least this many points ...
MIN_SPAN = 10.0  # ... spanning at least this ratio
MAX_EXTENSIONS = 2  # points tried beyond an edge of the grid
LEARN_MARGIN = 0.05  # nats below the unigram cross-entropy that count as having learned


def tag(multiplier: float, digits: int = 3) -> str:
    """``multiplier`` as it names a training: ``digits`` significant digits (``0.316``)."""
    return f"{float(multiplier):.{digits}g}"


def check_grid(name: str, grid, digits: int = 3, no_sweep: str = "") -> list[float]:
    """``grid`` sorted, as floats: at least :data:`MIN_POINTS` positive multipliers spanning at
    least :data:`MIN_SPAN` x, distinct in their first ``digits`` significant digits (the tags
    of their trainings). Else ``ValueError`` naming ``name``, the value and what is allowed
    (``no_sweep``: how the caller asks for no sweep, added to the message when given)."""
    allowed = (
        f"at least {MIN_POINTS} points spanning at least {MIN_SPAN:g}x: distinct positive LR "
        "multipliers, e.g. [0.316, 1, 3.16]" + (f" (or {no_sweep})" if no_sweep else "")
    )
    if isinstance(grid, (str, bytes)) or not isinstance(grid, (list, tuple)):
        raise ValueError(f"{name}={grid!r} must be a list: {allowed}")
    values = [
        runtime.check_real(f"{name}[{i}]", m, low=0, low_open=True) for i, m in enumerate(grid)
    ]
    tags = [tag(v, digits) for v in values]
    repeated = [g for i, g in enumerate(grid) if tags[i] in tags[:i]]
    if repeated:
        raise ValueError(
            f"{name}={list(grid)!r} repeats {repeated[0]!r} (multipliers must differ in their "
            f"first {digits} significant digits: they name the trainings); allowed: {allowed}"
        )
    span = max(values) / min(values) if values else 1.0
    if len(values) < MIN_POINTS or span < MIN_SPAN * (1 - 1e-9):
        raise ValueError(
            f"{name}={list(grid)!r} has {len(values)} point(s) spanning {span:.3g}x; a sweep "
            f"needs {allowed}"
        )
    return sorted(values)


def _rank(item: tuple[float, float]) -> tuple[float, float]:
    multiplier, loss = item
    finite = loss is not None and math.isfinite(loss)
    return (loss if finite else math.inf, multiplier)


def best(losses: dict) -> float:
    """The multiplier of the lowest loss (``losses``: ``{multiplier: final loss}``; a
    non-finite or None loss ranks last; of equal losses, the smaller multiplier)."""
    if not losses:
        raise ValueError("losses={} is empty: no sweep point has been trained")
    return min(losses.items(), key=_rank)[0]


def edge(losses: dict) -> str | None:
    """``"low"`` / ``"high"`` when the best multiplier is the smallest / largest of at least 2
    tried, else None."""
    if len(losses) < 2:
        return None
    tried, top = sorted(losses), best(losses)
    return "low" if top == tried[0] else "high" if top == tried[-1] else None


def next_point(losses: dict, grid, max_extensions: int = MAX_EXTENSIONS) -> float | None:
    """The next multiplier to train, given ``losses`` of the points trained so far: the grid's
    first untrained point; then, while the best point is at an edge and fewer than
    ``max_extensions`` points lie beyond the grid, one grid spacing beyond that edge; None when
    the sweep is done."""
    grid = sorted(grid)
    missing = [m for m in grid if m not in losses]
    if missing:
        return missing[0]
    side = edge(losses) if len(grid) > 1 else None
    beyond = sum(m < grid[0] or m > grid[-1] for m in losses)
    if side is None or beyond >= max_extensions:
        return None
    tried = sorted(losses)
    if side == "low":
        return tried[0] / (grid[1] / grid[0])
    return tried[-1] * (grid[-1] / grid[-2])


def outcome(losses: dict, grid) -> dict:
    """What a finished sweep reports: ``points`` ``[[multiplier, loss], ...]`` by multiplier,
    ``best``, ``swept`` (the grid has more than one point), ``edge`` ("low" / "high" when the
    best is still at an edge of a sweep: the optimum may lie beyond; else None) and
    ``extensions`` (the points tried beyond the grid)."""
    grid = sorted(grid)
    swept = len(grid) > 1
    return {
        "points": [[m, losses[m]] for m in sorted(losses)],
        "best": best(losses),
        "swept": swept,
        "edge": edge(losses) if swept else None,
        "extensions": sum(m < grid[0] or m > grid[-1] for m in losses),
    }


def run_sweep(
    loss_at: Callable[[float], float], grid, max_extensions: int = MAX_EXTENSIONS
) -> dict:
    """The rule applied to ``loss_at`` (a multiplier's final validation loss: one training):
    every point of ``grid``, then the edge extensions (:func:`next_point`); each multiplier is
    asked for once. Returns :func:`outcome`."""
    if not list(grid):
        raise ValueError("grid=[] has no point to train")
    runtime.check_int("max_extensions", max_extensions, low=0)
    losses: dict = {}
    while (m := next_point(losses, grid, max_extensions)) is not None:
        losses[m] = loss_at(m)
    return outcome(losses, grid)


def learned(loss: float, unigram: float, margin: float = LEARN_MARGIN) -> bool:
    """True when ``loss`` is finite and at least ``margin`` nats below ``unigram``."""
    return bool(loss is not None and math.isfinite(loss) and loss <= unigram - margin)


__all__ = [
    "GRID",
    "LEARN_MARGIN",
    "MAX_EXTENSIONS",
    "MIN_POINTS",
    "MIN_SPAN",
    "best",
    "check_grid",
    "edge",
    "learned",
    "next_point",
    "outcome",
    "run_sweep",
    "tag",
]
