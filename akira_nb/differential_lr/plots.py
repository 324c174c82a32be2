"""Figures of the differential-LR study (013); each function returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

COLORS = {
    "band": "C0",
    "band_geomean": "C1",
    "band_uniform": "C2",
    "baseline_differential": "C3",
}


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
    """Per band: measured ||dW||/||W|| ratio to band 0 against the prescribed LR ratio (log-log),
    each arm with a monitor; the diagonal (exact) and the 2x band (H4) dashed."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    lo, hi = 1.0, 1.0
    for arm, per_band in rates.items():
        p = np.array([v["prescribed"] for v in per_band.values()])
        m = np.array([max(v["measured"], 1e-12) for v in per_band.values()])
        ax.plot(p, m, "o-", color=COLORS.get(arm), label=arm, alpha=0.8)
        for k, x, y in zip(per_band, p, m):
            ax.annotate(
                k.replace("band_", ""),
                (x, y),
                fontsize=6,
                xytext=(2, 2),
                textcoords="offset points",
            )
        lo, hi = min(lo, p.min(), m.min()), max(hi, p.max(), m.max())
    grid = np.geomspace(lo / 2, hi * 2, 50)
    ax.plot(grid, grid, "k-", lw=0.8, label="prescribed")
    ax.plot(grid, 2 * grid, "k--", lw=0.6, label="2x band (H4)")
    ax.plot(grid, grid / 2, "k--", lw=0.6)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="prescribed LR ratio lr_b / lr_0",
        ylabel="measured (||dW||/||W||)_b / (...)_0",
        title="per-band weight change vs prescribed",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_sweep(sweep: list, geomean: float, stats: dict | None = None):
    """Final validation loss of the band model at each uniform LR (mean +- std over the sweep
    seeds), the geometric mean marked, the differential arm's loss as a line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    if sweep:
        lr = [r["lr"] for r in sweep]
        ax.errorbar(
            lr,
            [r["mean"] for r in sweep],
            yerr=[np.nan_to_num(r["std"]) for r in sweep],
            fmt="o-",
            color="C1",
            label="uniform LR (band model)",
        )
        for r in sweep:
            ax.annotate(
                r["label"],
                (r["lr"], r["mean"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.axvline(geomean, color="C1", ls=":", label=f"geometric mean {geomean:.2g}")
    if stats and "band" in stats:
        m = stats["band"]["final_val_loss"][0]
        ax.axhline(m, color="C0", ls="--", label=f"differential {m:.3f}")
    ax.set(
        xscale="log",
        xlabel="uniform learning rate",
        ylabel="final val loss",
        title="uniform-LR sweep",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
