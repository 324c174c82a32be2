"""026's comparison settings on plain numbers (no training here): its budgets, its LR
multipliers and the sweep lines of its tables. The sweep rule itself (grid, best point, edge
extensions and their cap, the learning check) is :mod:`akira_nb.lr_sweep`, shared with 013; its
names are re-exported here for the 026 code that reads them as ``sweep.<name>``.

- LR sweep: an arm's LRs are scaled by a multiplier (a band-layout arm's band LRs and shared LR
  together, so its hierarchy stays; a GPT's one LR) over ``lr_multipliers`` (:data:`LR_GRID`
  by default), extended past an edge optimum by :func:`akira_nb.lr_sweep.run_sweep`. One
  multiplier is no sweep (the preset's LRs).
- Learning check: :func:`akira_nb.lr_sweep.learned` against the unigram cross-entropy of the
  same validation blocks.
"""

from __future__ import annotations

from akira_nb import lr_sweep, runtime
from akira_nb.lr_sweep import LEARN_MARGIN, MAX_EXTENSIONS, best, learned, next_point, tag

LR_GRID = lr_sweep.GRID  # x the arm's preset LRs: 3 points spanning 10x
NO_SWEEP = "one multiplier: no sweep, the preset's LRs"


def check_multipliers(value) -> list[float]:
    """``value`` as a list of LR multipliers: one (no sweep), or a sweep
    (:func:`akira_nb.lr_sweep.check_grid`) given in ascending order."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return [runtime.check_real("lr_multipliers[0]", value[0], low=0.0, low_open=True)]
    out = lr_sweep.check_grid("lr_multipliers", value, no_sweep=NO_SWEEP)
    if [float(v) for v in value] != out:
        raise ValueError(
            f"lr_multipliers={list(value)!r} must be ascending, e.g. [0.316, 1, 3.16] (or "
            f"{NO_SWEEP})"
        )
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


def described(out: dict) -> dict:
    """A sweep's :func:`akira_nb.lr_sweep.outcome` with ``note``, its line in the tables."""
    n, top = len(out["points"]), out["best"]
    if not out["swept"]:
        note = "not swept (the preset's LRs)"
    elif out["edge"]:
        side = "below" if out["edge"] == "low" else "above"
        note = (
            f"{n} points, best at the {out['edge']} edge: the optimum may lie beyond "
            f"({side} x{tag(top)})"
        )
    else:
        note = f"{n} points, best inside"
    return {**out, "note": note}


def outcome(losses: dict, grid) -> dict:
    """:func:`akira_nb.lr_sweep.outcome` of a finished sweep, :func:`described`."""
    return described(lr_sweep.outcome(losses, grid))


def run_sweep(loss_at, grid, max_extensions: int = MAX_EXTENSIONS) -> dict:
    """:func:`akira_nb.lr_sweep.run_sweep`, :func:`described`."""
    return described(lr_sweep.run_sweep(loss_at, grid, max_extensions))


__all__ = [
    "LEARN_MARGIN",
    "LR_GRID",
    "MAX_EXTENSIONS",
    "NO_SWEEP",
    "best",
    "check_budgets",
    "check_multipliers",
    "described",
    "learned",
    "next_point",
    "outcome",
    "run_sweep",
    "tag",
]
