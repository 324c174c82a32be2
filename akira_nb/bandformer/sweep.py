"""The rules of experiment 026's comparison, on plain numbers (no training here): the learning
rate sweep that tunes every arm, the budgets, and the learning check.

- LR sweep: an arm's LRs are scaled by a multiplier (a band-layout arm's band LRs and shared LR
  together, so its hierarchy stays; a GPT's one LR), first over the grid (at least 3 points
  spanning at least 10x, :data:`LR_GRID` by default). While the best point (the lowest final
  validation loss; a non-finite loss ranks last) is the lowest or the highest multiplier tried,
  one more point is tried beyond that edge, at the grid's spacing, up to ``max_extensions`` on
  each side (:func:`next_point`). A best point still at an edge then is reported as "the
  optimum may lie beyond" (:func:`outcome`).
- Learning check: an arm whose final validation loss is not at least :data:`LEARN_MARGIN` nats
  below the unigram cross-entropy of the same validation blocks "did not learn"
  (:func:`learned`); no claim that uses it is judged.
"""

from __future__ import annotations

import math

from akira_nb import runtime

LR_GRID = (10**-0.5, 1.0, 10**0.5)  # x the arm's preset LRs: 3 points spanning 10x
MAX_EXTENSIONS = 2  # points tried beyond an edge of the grid, per side
LEARN_MARGIN = 0.05  # nats below the unigram cross-entropy that count as having learned
MIN_SPAN = 10.0  # a sweep's grid spans at least this ratio ...
MIN_POINTS = 3  # ... with at least this many points


def tag(multiplier: float) -> str:
    """The multiplier as it appears in tags and tables: 3 significant digits (``0.316``)."""
    return f"{float(multiplier):.3g}"


def check_multipliers(value) -> list[float]:
    """``value`` as a list of LR multipliers: positive, ascending, distinct at 3 significant
    digits; one point (no sweep) or at least :data:`MIN_POINTS` spanning :data:`MIN_SPAN`x."""
    allowed = (
        f"one multiplier (no sweep), or at least {MIN_POINTS} ascending ones spanning at least "
        f"{MIN_SPAN:g}x, e.g. [0.316, 1, 3.16]"
    )
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"lr_multipliers={value!r} must be a list: {allowed}")
    out = [runtime.check_real("lr_multipliers", v, low=0.0, low_open=True) for v in value]
    out = [float(v) for v in out]
    tags = [tag(v) for v in out]
    if out != sorted(out) or len(set(tags)) != len(tags):
        raise ValueError(
            f"lr_multipliers={list(value)!r} must be ascending and distinct: {allowed}"
        )
    if len(out) > 1 and (len(out) < MIN_POINTS or out[-1] / out[0] < MIN_SPAN * (1 - 1e-9)):
        raise ValueError(f"lr_multipliers={list(value)!r} is too small a sweep: {allowed}")
    return out


def check_budgets(value) -> list[int]:
    """``value`` as a list of budgets (optimiser steps per arm): ascending, distinct, >= 1."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(
            f"budgets={value!r} must be a list of step counts per arm, ascending, e.g. [200, 1000]"
        )
    out = [runtime.check_int("budgets", v, low=1) for v in value]
    if out != sorted(set(out)):
        raise ValueError(
            f"budgets={list(value)!r} must be ascending and distinct step counts, e.g. [200, 1000]"
        )
    return out


def _rank(item: tuple[float, float]) -> tuple[float, float]:
    multiplier, loss = item
    return (loss if math.isfinite(loss) else math.inf, multiplier)


def best(losses: dict) -> float:
    """The multiplier with the lowest final loss (non-finite losses rank last; of equal
    losses, the smaller multiplier)."""
    if not losses:
        raise ValueError("losses is empty: no sweep point has been trained")
    return min(losses.items(), key=_rank)[0]


def next_point(losses: dict, grid, max_extensions: int = MAX_EXTENSIONS) -> float | None:
    """The next multiplier to train, given ``losses`` ``{multiplier: final loss}`` of the
    points trained so far: the grid's first untrained point; then, while the best point is the
    lowest (highest) multiplier tried and fewer than ``max_extensions`` points lie below (above)
    the grid, one grid spacing beyond it; None when the sweep is done."""
    grid = list(grid)
    missing = [m for m in grid if m not in losses]
    if missing:
        return missing[0]
    if len(grid) < 2:
        return None
    tried, top = sorted(losses), best(losses)
    if top == tried[0] and sum(m < grid[0] for m in tried) < max_extensions:
        return tried[0] / (grid[1] / grid[0])
    if top == tried[-1] and sum(m > grid[-1] for m in tried) < max_extensions:
        return tried[-1] * (grid[-1] / grid[-2])
    return None


def outcome(losses: dict, grid) -> dict:
    """What a finished sweep reports: ``points`` ``[[multiplier, loss], ...]`` in order,
    ``best``, ``swept`` (more than one point), ``edge`` ("low" / "high" when the best is the
    lowest / highest multiplier tried, else None) and ``note`` (the line for the tables)."""
    tried, top = sorted(losses), best(losses)
    swept = len(list(grid)) > 1
    edge = None
    if swept and top == tried[0]:
        edge = "low"
    elif swept and top == tried[-1]:
        edge = "high"
    if not swept:
        note = "not swept (the preset's LRs)"
    elif edge:
        side = "below" if edge == "low" else "above"
        note = (
            f"{len(tried)} points, best at the {edge} edge: the optimum may lie beyond "
            f"({side} x{tag(top)})"
        )
    else:
        note = f"{len(tried)} points, best inside"
    return {
        "points": [[m, losses[m]] for m in tried],
        "best": top,
        "swept": swept,
        "edge": edge,
        "note": note,
    }


def learned(loss: float, unigram: float, margin: float = LEARN_MARGIN) -> bool:
    """True when ``loss`` is finite and at least ``margin`` nats below ``unigram``."""
    return bool(math.isfinite(loss) and loss <= unigram - margin)


__all__ = [
    "LEARN_MARGIN",
    "LR_GRID",
    "MAX_EXTENSIONS",
    "best",
    "check_budgets",
    "check_multipliers",
    "learned",
    "next_point",
    "outcome",
    "tag",
]
