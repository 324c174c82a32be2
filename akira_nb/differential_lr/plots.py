"""Figures of the differential-LR study (013); each function returns a matplotlib Figure. The
look-inside figure of a trained band model is the library's (``bandformer.look_inside``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

COLORS = {
    "band": "C0",
    "band_geomean": "C1",
    "band_uniform": "C2",
    "baseline_differential": "C3",
}
MARKERS = {"band": "o", "band_geomean": "s", "band_uniform": "D", "baseline_differential": "^"}


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    """Trailing mean over ``k`` steps along the last axis (the first k - 1 over fewer)."""
    c = np.cumsum(np.pad(y, [(0, 0)] * (y.ndim - 1) + [(1, 0)]), axis=-1)
    n = np.minimum(np.arange(1, y.shape[-1] + 1), k)
    idx = np.arange(1, y.shape[-1] + 1)
    return (c[..., idx] - c[..., idx - n]) / n


def plot_curves(
    curves: dict, target: float | None = None, unigram: float | None = None, arms=None, fig=None
):
    """Validation loss (left) and per-step train loss (right, trailing mean over 5 steps) of
    each arm: the mean over seeds with a band from the lowest to the highest seed. ``fig``: an
    empty figure to draw on (the explorer's, which pyplot does not track); None: a new pyplot
    figure."""
    fig = plt.figure(figsize=(11, 3.8)) if fig is None else fig
    a, b = fig.subplots(1, 2)
    for arm, c in curves.items():
        if arms is not None and arm not in arms:
            continue
        color = COLORS.get(arm)
        steps = np.asarray(c["step"])
        v = np.asarray(c["val_loss"], dtype=float)
        a.plot(steps, v.mean(0), color=color, label=f"{arm} ({len(v)} seeds)")
        a.fill_between(steps, v.min(0), v.max(0), color=color, alpha=0.2)
        t = _smooth(np.asarray(c["step_losses"], dtype=float), 5)
        x = np.arange(1, t.shape[-1] + 1)
        b.plot(x, t.mean(0), color=color, label=arm)
        b.fill_between(x, t.min(0), t.max(0), color=color, alpha=0.2)
    for ax in (a, b):
        if unigram is not None:
            ax.axhline(unigram, color="gray", ls=":", label="unigram (val)")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss (nats/token)")
    if target is not None:
        a.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:.3f}")
    a.set_title("validation loss (band: seed min..max)")
    b.set_title("train loss per step (5-step mean)")
    a.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_rates(rates: dict):
    """H4 per band, as points (bands are categories, so no line joins them). Left: each band's
    measured ||dW||/||W|| ratio to band 0 against its prescribed LR ratio (log-log), the
    diagonal (exact) and the 2x band dashed. Right: the factor measured / prescribed per band,
    the 2x band shaded (H4 asks every band inside it)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    lo, hi = 1.0, 1.0
    arms = list(rates)
    for i, (arm, per_band) in enumerate(rates.items()):
        keys = list(per_band)
        p = np.array([per_band[k]["prescribed"] for k in keys])
        m = np.array([max(per_band[k]["measured"], 1e-12) for k in keys])
        style = dict(color=COLORS.get(arm), marker=MARKERS.get(arm, "o"), ls="none", alpha=0.85)
        a.plot(p, m, label=arm, **style)
        for k, x, y in zip(keys, p, m):
            a.annotate(
                k.replace("band_", ""),
                (x, y),
                fontsize=6,
                xytext=(3, 2),
                textcoords="offset points",
            )
        offset = (i - (len(arms) - 1) / 2) * 0.15
        b.plot(np.arange(len(keys)) + offset, m / p, label=arm, **style)
        b.set_xticks(np.arange(len(keys)), [k.replace("band_", "") for k in keys])
        lo, hi = min(lo, p.min(), m.min()), max(hi, p.max(), m.max())
    grid = np.geomspace(lo / 2, hi * 2, 50)
    a.plot(grid, grid, "k-", lw=0.8, label="prescribed")
    a.plot(grid, 2 * grid, "k--", lw=0.6, label="2x band (H4)")
    a.plot(grid, grid / 2, "k--", lw=0.6)
    a.set(
        xscale="log",
        yscale="log",
        xlabel="prescribed LR ratio lr_b / lr_0",
        ylabel="measured (||dW||/||W||)_b / (...)_0",
        title="per-band weight change vs prescribed",
    )
    b.axhspan(0.5, 2.0, color="0.9", label="within 2x (H4)")
    b.axhline(1.0, color="k", lw=0.8)
    b.set(
        yscale="log",
        xlabel="band",
        ylabel="measured / prescribed ratio",
        title="factor per band (1 = as prescribed)",
    )
    _log_ticks(b.yaxis, subs=(1.0, 2.0, 5.0))
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _log_ticks(axis, subs=(1.0, 3.0)) -> None:
    """A log axis labelled at ``subs`` per decade as plain numbers, with no minor labels (which
    collide with the major ones when the axis spans less than a few decades)."""
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _log_axis(ax) -> None:
    ax.set_xscale("log")
    _log_ticks(ax.xaxis)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)


def plot_sweep(sweep: list, tuned: dict, unigram: float | None = None, margin: float = 0.05):
    """One panel per budget: each arm's final validation loss at each LR of its sweep (the mean
    over the sweep seeds, the statistic the sweep picks by) against the geometric mean of the
    LRs its bands get (log axis), the tuned point starred and, where more seeds ran there, the
    tuned arm's mean +- std over every seed (the numbers the verdicts and the recommendation
    compare). The learning bar (unigram - ``margin``) dotted. The y label says how many
    predictions each is over when the rows say (``predictions``)."""
    budgets = sorted({r["budget"] for r in sweep}) or [None]
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.2), squeeze=False)
    for ax, budget in zip(axes[0], budgets):
        for r in (r for r in sweep if r["budget"] == budget):
            _sweep_line(ax, r, (tuned or {}).get(budget, {}).get(r["arm"]))
        if unigram is not None:
            ax.axhline(unigram - margin, color="gray", ls=":", label=f"unigram - {margin:g}")
        _log_axis(ax)
        ax.set(
            xlabel="LR (geometric mean over the bands)",
            ylabel=_sweep_ylabel(sweep, tuned),
            title=f"LR sweep at {budget} steps",
        )
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _sweep_ylabel(sweep: list, tuned: dict) -> str:
    """``final val loss``, with the sizes of its sets when the rows carry them: the sweep's
    (the lines) and the tuned arms' reported one (the circles)."""
    lines = {r["predictions"] for r in sweep if "predictions" in r}
    circles = {r.get("predictions") for t in (tuned or {}).values() for r in t.values()}
    circles.discard(None)
    if len(lines) != 1 or len(circles) != 1:
        return "final val loss"
    return (
        f"final val loss (lines: {lines.pop():,} predictions;\n"
        f"circles: {circles.pop():,} held-out predictions)"
    )


def _sweep_line(ax, r: dict, tuned: dict | None) -> None:
    color = COLORS.get(r["arm"])
    lr = [p["lr"] for p in r["points"]]
    loss = [p["loss"] for p in r["points"]]
    edge = " (optimum may lie beyond)" if r["note"].startswith("the optimum") else ""
    ax.plot(lr, loss, marker=MARKERS.get(r["arm"], "o"), color=color, label=f"{r['arm']}{edge}")
    best = next(p for p in r["points"] if p["mult"] == r["best"])
    ax.plot(best["lr"], best["loss"], "*", ms=14, color=color, mec="k", mew=0.6)
    if tuned and len(tuned["seeds"]) > 1:
        m, s = tuned["final_val_loss"]
        ax.errorbar(
            tuned["lr"] * 1.08,
            m,
            yerr=0 if np.isnan(s) else s,
            fmt="o",
            mfc="white",
            color=color,
            capsize=3,
            label=f"{r['arm']} tuned, mean of {len(tuned['seeds'])} seeds",
        )
