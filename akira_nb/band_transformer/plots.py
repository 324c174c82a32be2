"""Figures of the band transformer experiment (026). Each function returns a matplotlib Figure
(or None when there is nothing to draw); :func:`akira_nb.band_transformer.experiment.save_figures`
saves them into the run folder."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

ARM_COLORS = {
    "baseline": "tab:gray",
    "baseline_wide": "black",
    "band": "tab:blue",
    "band_uniform": "tab:orange",
    "band_geomean": "tab:purple",
    "band_no_wormhole": "tab:green",
    "reference": "tab:red",
}


def arm_color(arm: str):
    return ARM_COLORS.get(arm, "black")


def band_colors(n: int):
    return plt.cm.viridis(np.linspace(0.0, 0.9, n))


def _budget_style(budget: int, budgets: list[int]) -> str:
    """The longest budget solid, shorter ones dashed."""
    return "-" if budget == max(budgets) else "--"


def _curve_axes(ax, curves: list[dict], key: str, unigram: float | None) -> None:
    budgets = sorted({c["budget"] for c in curves})
    seen = set()
    for c in curves:
        label = f"{c['arm']} ({c['budget']:,} steps)"
        if not c["learned"]:
            label += " did not learn"
        first = (c["arm"], c["budget"]) not in seen
        seen.add((c["arm"], c["budget"]))
        style = _budget_style(c["budget"], budgets)
        x = c[key]
        ax.plot(x, c["val_loss"], style, color=arm_color(c["arm"]), lw=1.4,
                label=label if first else None)  # fmt: skip
        ax.plot(x[-1:], [c["final"]], "o", color=arm_color(c["arm"]), ms=4)
    if unigram is not None:
        ax.axhline(unigram, color="black", ls=":", lw=1, label=f"unigram {unigram:.3f}")


def _loss_against(curves: list[dict], x: str, unigram, xlabel: str, what: str, **axes):
    """One figure of every curve against ``x`` (``tokens`` or ``flops``)."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    _curve_axes(ax, curves, x, unigram)
    ax.set(
        xlabel=xlabel,
        ylabel="validation loss (nats/token)",
        title=f"validation loss against {what}, each arm at its tuned LR\n(lines: the evaluation "
        "set during training; dots: the final loss on the larger final set)",
        **axes,
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_curves(curves: list[dict], unigram: float | None = None) -> plt.Figure | None:
    """Validation loss of every reported training (each arm at its tuned LR, every budget:
    the longest solid, shorter ones dashed) against the tokens seen; a dot marks each final
    loss (on the larger final validation set), beside the unigram cross-entropy.
    ``curves``: :func:`akira_nb.band_transformer.experiment.curve_rows`."""
    return _loss_against(curves, "tokens", unigram, "training tokens", "tokens")


def plot_loss_vs_flops(curves: list[dict], unigram: float | None = None) -> plt.Figure | None:
    """The curves of :func:`plot_curves` against training FLOPs (forward + backward, counted per
    token on one step; log axis): an arm that needs more FLOPs per token sits further right at
    the same tokens."""
    xlabel = "training FLOPs (forward + backward)"
    return _loss_against(curves, "flops", unigram, xlabel, "training compute", xscale="log")


def plot_lr_sweep(rows: list[dict]) -> plt.Figure | None:
    """Final validation loss against the LR of each arm's sweep (its shared group's LR: a GPT's
    one LR, a band-layout arm's shared LR, its band LRs scaled with it), one line per arm and
    budget (the longest solid), log x; a star marks the chosen point, a ring an arm that did
    not learn. ``rows``: :func:`akira_nb.band_transformer.tables.loss_rows`."""
    rows = [r for r in rows if r["sweep"]["points"]]
    if not rows:
        return None
    budgets = sorted({r["budget"] for r in rows})
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for r in rows:
        base = _shared_lr(r)
        pts = np.asarray(r["sweep"]["points"], dtype=float)
        x = pts[:, 0] * base
        style = _budget_style(r["budget"], budgets)
        label = f"{r['arm']} ({r['budget']:,} steps)"
        ax.plot(x, pts[:, 1], style + "o", ms=3, color=arm_color(r["arm"]), label=label)
        best = r["sweep"]["best"] * base
        y = pts[pts[:, 0] == r["sweep"]["best"], 1]
        ax.plot([best], y, "*", ms=13, color=arm_color(r["arm"]), mec="black", mew=0.6)
        if not r["learned"]:
            ax.plot([best], y, "o", ms=16, mfc="none", mec="red")
    ax.axhline(rows[0]["unigram"], color="black", ls=":", lw=1, label="unigram")
    ax.set(
        xscale="log",
        xlabel="LR of the shared group (band LRs scaled with it)",
        ylabel="final validation loss (nats/token)",
        title="LR sweeps (first seed): * the point each arm reports",
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _shared_lr(row: dict) -> float:
    """The LR of ``row``'s shared group at multiplier 1 (its tuned LRs over its multiplier)."""
    lrs = row["lrs"]
    lr = lrs.get("shared", max(lrs.values()) if lrs else 1.0)
    return float(lr) / float(row["lr_multiplier"])


def plot_parameters(rows: list[dict]) -> plt.Figure | None:
    """Per arm, its parameters split into groups (bands bottom-up, shared on top), with the
    share of the non-embedding parameters that sit in bands."""
    if not rows:
        return None
    keys = sorted(
        {k for r in rows for k in r["groups"]},
        key=lambda k: (k == "shared", int(k.split("_")[1]) if k != "shared" else 0),
    )
    colors = {k: c for k, c in zip([k for k in keys if k != "shared"], band_colors(len(keys)))}
    colors["shared"] = "lightgray"
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 3, 4.2))
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for k in keys:
        vals = np.array([r["groups"].get(k, {"params": 0})["params"] for r in rows], float)
        ax.bar(x, vals, bottom=bottom, color=colors[k], label=k, edgecolor="white", lw=0.5)
        bottom += vals
    for i, r in enumerate(rows):
        ax.text(
            i,
            bottom[i],
            f"{r['total']:,}\n{r['band_fraction']:.0%} in bands",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(x, [r["arm"] for r in rows], rotation=20, fontsize=8)
    ax.set(ylabel="parameters", title="parameters per group (embeddings in 'shared')")
    ax.set_ylim(0, bottom.max() * 1.25)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_band_statistics(stats: dict) -> plt.Figure | None:
    """Per band of each band-layout arm: the RMS and the spectral centroid (DC excluded, along
    the sequence, median over the band's dims) of its state after the last block on the
    validation set."""
    if not stats:
        return None
    fig, (ax_rms, ax_c) = plt.subplots(1, 2, figsize=(11, 3.8))
    n_arms = len(stats)
    width = 0.8 / n_arms
    for j, (arm, s) in enumerate(stats.items()):
        x = np.arange(len(s["rms"])) + (j - (n_arms - 1) / 2) * width
        ax_rms.bar(x, s["rms"], width, color=arm_color(arm), label=arm)
        ax_c.bar(x, s["centroid"], width, color=arm_color(arm), label=arm)
    n = len(next(iter(stats.values()))["rms"])
    for ax in (ax_rms, ax_c):
        ax.set_xticks(range(n), [f"band {i}" for i in range(n)], fontsize=8)
    ax_rms.set(ylabel="RMS", title="band state after the last block: RMS")
    ax_c.set(ylabel="cycles / token", title="spectral centroid along the sequence (no DC)")
    ax_rms.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_band_spectra(stats: dict) -> plt.Figure | None:
    """The normalised power spectrum along the sequence of each band's state (mean over its
    dims and the validation sequences; DC bin dropped), one panel per band-layout arm."""
    if not stats:
        return None
    fig, axes = plt.subplots(1, len(stats), figsize=(4.2 * len(stats), 3.4), squeeze=False)
    for ax, (arm, s) in zip(axes[0], stats.items()):
        freqs = np.asarray(s["freqs"])
        for i, (p, c) in enumerate(zip(s["power"], band_colors(len(s["power"])))):
            p = np.asarray(p)[1:]
            ax.plot(freqs[1:], p / max(p.sum(), 1e-30), color=c, label=f"band {i}")
        ax.set(xlabel="cycles / token", ylabel="share of power", title=arm, yscale="log")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_weight_change(results) -> plt.Figure | None:
    """Per band-layout arm (first seed): each band's relative weight change per monitor
    interval, ||dW|| / ||W||, against the step (left), and the last interval's change relative
    to band 0 against the prescribed LR ratio (right; on the diagonal the bands move at their
    prescribed rates)."""
    firsts = {}
    for r in results:
        wc = r.weight_change
        if wc and wc.get("step") and not r.config["arm"].startswith("baseline"):
            firsts.setdefault(r.config["arm"], r)
    if not firsts:
        return None
    fig, axes = plt.subplots(1, len(firsts) + 1, figsize=(4 * (len(firsts) + 1), 3.6))
    axes = np.atleast_1d(axes)
    ratio_ax = axes[-1]
    for ax, (arm, r) in zip(axes, firsts.items()):
        wc = r.weight_change
        bands = [k for k in wc if k.startswith("band_")]
        for k, c in zip(bands, band_colors(len(bands))):
            ax.plot(wc["step"], wc[k], color=c, label=k.replace("_", " "))
        if "shared" in wc:
            ax.plot(wc["step"], wc["shared"], color="gray", ls="--", label="shared")
        ax.set(xlabel="step", ylabel="||dW|| / ||W|| per interval", yscale="log", title=arm)
        lrs = {k.removeprefix("lr/"): r.history[k][0] for k in r.history if k.startswith("lr/")}
        if bands and wc[bands[0]][-1] > 0 and lrs.get(bands[0]):
            measured = [wc[k][-1] / wc[bands[0]][-1] for k in bands]
            prescribed = [lrs.get(k, np.nan) / lrs[bands[0]] for k in bands]
            ratio_ax.plot(prescribed, measured, "o-", color=arm_color(arm), label=arm)
    axes[0].legend(fontsize=6)
    lim = ratio_ax.get_xlim()
    ratio_ax.plot(lim, lim, color="black", lw=0.8, ls=":")
    ratio_ax.set(
        xscale="log",
        yscale="log",
        xlabel="prescribed LR ratio (band / band 0)",
        ylabel="measured change ratio",
        title="last interval vs prescribed",
    )
    ratio_ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_ablation(ablations: dict) -> plt.Figure | None:
    """Per band-layout arm: the validation-loss increase when one band's sublayer outputs are
    zeroed, at every checkpoint (one line per band)."""
    if not ablations:
        return None
    fig, axes = plt.subplots(1, len(ablations), figsize=(4 * len(ablations), 3.4), squeeze=False)
    for ax, (arm, ab) in zip(axes[0], ablations.items()):
        inc = np.asarray(ab["increase"], dtype=float)
        for i, c in zip(range(inc.shape[1]), band_colors(inc.shape[1])):
            ax.plot(ab["steps"], inc[:, i], "o-", ms=3, color=c, label=f"band {i}")
        ax.axhline(0, color="black", lw=0.6)
        ax.set(xlabel="step", ylabel="loss increase when ablated", title=arm)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_aq(aq_out: dict) -> plt.Figure | None:
    """AQ % of the band model's neurons per band (bars) beside each band's chance level (the
    null's count above the same threshold; hatched), per input type, with the baseline's whole
    layer % and chance as horizontal lines."""
    band = (aq_out.get("band") or {}).get("summary")
    base = (aq_out.get("baseline") or {}).get("summary")
    if band is None:
        return None
    kinds = [k for k in band["by_kind"] if "bands" in band["by_kind"][k]]
    if not kinds:
        return None
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        bands = band["by_kind"][kind]["bands"]
        found = base["by_kind"].get(kind, {}).get("pct", 0) if base else 0
        empty = not any(b["pct"] > 0 or b["chance_pct"] > 0 for b in bands)
        if empty and not found:
            _no_aq(ax, kind, band)
            continue
        if empty:  # the baseline's line is drawn below
            ax.text(0.5, 0.5, "no AQ found in the band model at this size", ha="center",
                    transform=ax.transAxes)  # fmt: skip
        x = np.arange(len(bands))
        ax.bar(x - 0.2, [b["pct"] for b in bands], 0.4, color="tab:blue", label="band model AQ %")
        ax.bar(
            x + 0.2,
            [b["chance_pct"] for b in bands],
            0.4,
            color="white",
            edgecolor="tab:blue",
            hatch="//",
            label="chance %",
        )
        if base and kind in base["by_kind"]:
            e = base["by_kind"][kind]
            ax.axhline(e["pct"], color="tab:gray", label=f"baseline AQ {e['pct']:.1f}%")
            ax.axhline(e["chance_pct"], color="tab:gray", ls=":", label="baseline chance")
        ax.set_xticks(x, [f"band {b['band']}" for b in bands], fontsize=8)
        ax.set(
            ylabel="% of the band's neurons",
            title=f"{kind} tokens ({band['method']}, {band['rule']})",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _no_aq(ax, kind: str, band: dict) -> None:
    """A panel that says no AQ was found (every band's count and chance at 0)."""
    ax.text(
        0.5,
        0.5,
        f"no AQ found at this size\n({kind} tokens: 0 neurons above the threshold in every\n"
        "band of the band model and in the baseline, chance 0 too)",
        ha="center",
        va="center",
        fontsize=10,
        transform=ax.transAxes,
    )
    ax.set(title=f"{kind} tokens ({band['method']}, {band['rule']})", xticks=[], yticks=[])


__all__ = [
    "plot_ablation",
    "plot_aq",
    "plot_band_spectra",
    "plot_band_statistics",
    "plot_curves",
    "plot_loss_vs_flops",
    "plot_lr_sweep",
    "plot_parameters",
    "plot_weight_change",
]
