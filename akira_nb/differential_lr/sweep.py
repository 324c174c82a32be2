"""013's side of the per-arm LR sweep: its trainings' names and the sweep's form in its tables.
The rule (grid, best point, edge extensions and their cap, the learning check) is
:mod:`akira_nb.lr_sweep`, shared with 026.

Every arm is compared at its own tuned LR: a sweep of multipliers of the arm's prescribed LRs
(every band LR and the shared LR scaled together, so a differential arm keeps its ratios; a
uniform arm's one LR scaled). ``[]`` is no sweep (the prescribed LRs). A longer budget's sweep
is centred on the shorter one's tuned multiplier (:func:`.trainings.tune`).

- :func:`check_grid`: a sweep's multipliers, checked (``[]``: no sweep);
- :func:`run_sweep`: :func:`akira_nb.lr_sweep.run_sweep` with 013's points and note.
"""

from __future__ import annotations

from typing import Callable

from akira_nb import lr_sweep

TAG_DIGITS = 4  # significant digits of a multiplier in a training's tag (x3.162)
NO_SWEEP = "[] for no sweep: every arm at its prescribed LRs"


def norm(multiplier: float) -> float:
    """``multiplier`` rounded to 10 significant digits (so that 10**0.5 * 10**0.5 is 10)."""
    return float(f"{multiplier:.10g}")


def tag(multiplier: float) -> str:
    """The multiplier as it appears in a training's tag: 4 significant digits (x3.162)."""
    return lr_sweep.tag(multiplier, TAG_DIGITS)


def check_grid(name: str, grid) -> list[float]:
    """``grid`` sorted and :func:`norm` ed: ``[]`` (no sweep) or a sweep
    (:func:`akira_nb.lr_sweep.check_grid`, distinct in its 4-digit tags); else ``ValueError``
    naming ``name``."""
    if isinstance(grid, (list, tuple)) and not grid:
        return []
    return [norm(m) for m in lr_sweep.check_grid(name, grid, TAG_DIGITS, NO_SWEEP)]


def run_sweep(
    loss_at: Callable[[float], float], grid, extensions: int = lr_sweep.MAX_EXTENSIONS
) -> dict:
    """:func:`akira_nb.lr_sweep.run_sweep` over ``grid`` (``loss_at(multiplier)`` trains).
    Returns ``{"points": [{"mult", "loss"}] sorted, "best", "edge", "extensions", "note"}``
    (multipliers :func:`norm` ed); ``note`` says "the optimum may lie beyond" when the best is
    still at an edge (``""`` when it is interior)."""
    out = lr_sweep.run_sweep(lambda m: loss_at(norm(m)), [norm(m) for m in grid], extensions)
    best, side = norm(out["best"]), out["edge"]
    note = ""
    if side is not None:
        note = (
            f"the optimum may lie beyond x{best:.3g} (the best point is at the {side} edge "
            f"after {out['extensions']} extension(s))"
        )
    return {
        "points": [{"mult": norm(m), "loss": loss} for m, loss in out["points"]],
        "best": best,
        "edge": side,
        "extensions": out["extensions"],
        "note": note,
    }


__all__ = [
    "NO_SWEEP",
    "TAG_DIGITS",
    "check_grid",
    "norm",
    "run_sweep",
    "tag",
]
