"""Figures of experiment 000 (Action Quanta). Each function returns a matplotlib Figure.

- :func:`seed_figure`: the seed's 2 x 2 figure of the basic method for one layer pair (actual vs
  rotation baseline, excess histogram with the threshold and the null's histogram, excess by
  neuron index with AQ in green, a summary box with the counts beside the chance counts).
- :func:`cka_heatmap`: linear CKA of every compared layer of A against every one of B.
- :func:`ot_matches`: the OT-matched |corr| of every A neuron, sorted, beside the same under the
  token-shuffle null, with the rule's threshold.
- :func:`universality`: structural, semantic and universal AQ counts per method and layer pair,
  with the overlap expected by chance.
- :func:`spectral_figure`: spectral centroids (with and without DC) of AQ vs other neurons of
  the model the AQ indices name, and their mean share of power in each of the 7 bands.
- :func:`grokking_figure`: the grokking ground truth (matched |corr| and key-frequency agreement
  against chance).
- :func:`count_figure`: the histogram of one method's scores and nulls under a rule (the
  explorer's figure).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from akira_nb.alignment import aq

GREEN, GREY, RED, BLUE = "#2ca02c", "#7f7f7f", "#d62728", "#1f77b4"


def _null_histograms(ax, nulls: dict, bins) -> None:
    """Each null's scores as a step histogram, per replicate (weights 1 / replicates), so a
    null's bars read on the same neuron scale as the measured scores'."""
    for name, null in nulls.items():
        ax.hist(
            null.ravel(),
            bins=bins,
            histtype="step",
            lw=1.2,
            label=f"{name} null",
            weights=np.full(null.size, 1.0 / null.shape[0]),
        )


def _title(pr: aq.PairResult) -> str:
    return f"{pr.input_type} tokens, layer {pr.layer_a} of A vs layer {pr.layer_b} of B"


def seed_figure(pr: aq.PairResult, threshold: float | None = None) -> plt.Figure:
    """The seed's four panels for the basic method of one layer pair (see the module)."""
    m = pr.methods["basic"]
    rule, value = m.rules[0] if threshold is None else ("fixed", float(threshold))
    count = m.count(rule, value)
    actual, baseline, excess = m.extra["actual"], m.extra["baseline"], m.scores
    aq_mask = count.mask
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), layout="constrained")
    ax = axes[0, 0]
    ax.scatter(baseline[~aq_mask], actual[~aq_mask], s=4, color=GREY, alpha=0.5, label="other")
    ax.scatter(baseline[aq_mask], actual[aq_mask], s=8, color=GREEN, label="AQ")
    lim = [min(actual.min(), baseline.min()), max(actual.max(), baseline.max())]
    ax.plot(lim, lim, "k--", lw=0.8, label="y = x")
    ax.set(xlabel="rotation baseline corr", ylabel="actual index-matched corr")
    ax.set_title("actual vs baseline")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    bins = np.linspace(min(excess.min(), -0.5), max(excess.max(), 0.8), 51)
    ax.hist(excess, bins=bins, color=BLUE, alpha=0.7, label="excess")
    _null_histograms(ax, m.nulls, bins)
    ax.axvline(count.threshold, color=RED, ls="--", label=f"threshold {count.threshold:g}")
    ax.set(xlabel="excess correlation (actual - baseline)", ylabel="neurons")
    ax.set_title("excess histogram")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    idx = np.arange(len(excess))
    ax.scatter(idx[~aq_mask], excess[~aq_mask], s=3, color=GREY, alpha=0.5)
    ax.scatter(idx[aq_mask], excess[aq_mask], s=8, color=GREEN, label="AQ")
    ax.axhline(count.threshold, color=RED, ls="--")
    ax.set(xlabel="neuron index (A)", ylabel="excess correlation")
    ax.set_title("excess by neuron index")
    ax = axes[1, 1]
    ax.axis("off")
    pct = 100 * count.fraction
    chance = m.chance(rule, value)
    excess_n = count.count - chance
    net = 100 * excess_n / count.total
    word = aq.chance_word(excess_n, m.chance_variance(rule, value) ** 0.5)
    text = [
        f"AQ (excess > {count.threshold:g}): {count.count} / {count.total} ({pct:.1f}%)",
        *(f"  {name} null: {c.null_count:.1f}" for name, c in m.counts(rule, value).items()),
        f"  vs chance: {excess_n:+.1f} ({net:+.1f}% of neurons): {word}",
        f"excess: mean {excess.mean():.4f}, std {excess.std():.4f}",
        f"        max {excess.max():.4f}, min {excess.min():.4f}",
        f"rotation baseline spread: {m.extra['baseline_spread']:.3f}",
        f"seed's reading of the raw %: {aq.interpret(pct)}",
        "... of the % above chance: " + (aq.interpret(net) if word == "above chance" else word),
    ]
    ax.text(0.02, 0.98, "\n".join(text), va="top", family="monospace", fontsize=9)
    ax.set_title("summary")
    fig.suptitle(f"basic method: {_title(pr)}")
    return fig


def cka_heatmap(matrix, layers_a, layers_b, title: str = "") -> plt.Figure:
    """Linear CKA of every layer of A (rows) against every layer of B (columns), at least 7 x
    5.5 inches (about the width of the run's other figures) with readable labels, growing with
    the matrix up to 20 x 14; each cell's value is written in it while the cells are large
    enough to hold it."""
    m = np.asarray(matrix)
    n_a, n_b = len(layers_a), len(layers_b)
    fig, ax = plt.subplots(
        figsize=(min(max(7.0, 2.0 + 0.75 * n_b), 20.0), min(max(5.5, 1.5 + 0.6 * n_a), 14.0)),
        layout="constrained",
    )
    im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(n_b), [str(v) for v in layers_b], fontsize=11)
    ax.set_yticks(range(n_a), [str(v) for v in layers_a], fontsize=11)
    ax.set_xlabel("layer of B", fontsize=12)
    ax.set_ylabel("layer of A", fontsize=12)
    if n_a <= 16 and n_b <= 24:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=14 if max(n_a, n_b) <= 6 else 10,
                    color="white" if m[i, j] < 0.6 else "black",
                )
    bar = fig.colorbar(im, ax=ax)
    bar.set_label("linear CKA", fontsize=12)
    ax.set_title(f"linear CKA, {title}" if title else "linear CKA", fontsize=13)
    return fig


def ot_matches(pr: aq.PairResult) -> plt.Figure:
    """Matched |corr| of every A neuron (sorted), the token-shuffle null's, and the threshold."""
    m = pr.methods["ot"]
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    ranks = np.arange(len(m.scores))
    ax.plot(ranks, np.sort(m.scores)[::-1], color=BLUE, label="matched |corr|")
    ax.plot(
        ranks, np.sort(m.nulls["token-shuffle"][0])[::-1], color=GREY, label="token-shuffle null"
    )
    styles = [dict(ls="--", color=RED, lw=1.5), dict(ls=":", color="k", lw=1.5)]
    thresholds = []
    for i, (rule, value) in enumerate(m.rules):
        c = m.count(rule, value)
        thresholds.append(c.threshold)
        where = f"{c.rule_text} = {c.threshold:.3g}" if rule != "fixed" else c.rule_text
        note = " (above every score)" if c.threshold_above_every_score else ""
        ax.axhline(
            c.threshold,
            **styles[min(i, len(styles) - 1)],
            label=f"{where}{note}: {c.count} AQ (chance {c.null_count:.1f})",
        )
    method = pr.matching.get("method", "?")
    top = max([1.02, *(t + 0.03 for t in thresholds)])  # every threshold inside the axes
    ax.set(xlabel="A neuron (sorted)", ylabel="|corr| with its matched B neuron", ylim=(0, top))
    ax.set_title(f"OT matches ({method}): {_title(pr)}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def universality(result: aq.AQResult) -> plt.Figure | None:
    """Per method and layer pair: structural (random), semantic (text) and universal (both) AQ
    counts, with the universal count expected by chance (the paired null) and the independence
    bound (hypergeometric) beside it. None without both input types."""
    if not result.universal:
        return None
    methods = list(result.universal)
    keys = list(next(iter(result.universal.values())))
    fig, axes = plt.subplots(
        1, len(methods), figsize=(3.6 * len(methods), 3.8), layout="constrained", squeeze=False
    )
    for ax, method in zip(axes[0], methods):
        by = result.universal[method]
        x = np.arange(len(keys))
        w = 0.16
        rows = [by[k] for k in keys]
        ax.bar(x - 2 * w, [u["n_a"] for u in rows], w, label="random (structural)")
        ax.bar(x - w, [u["n_b"] for u in rows], w, label="text (semantic)")
        ax.bar(x, [u["observed"] for u in rows], w, color=GREEN, label="universal")
        ax.bar(x + w, [u["chance"] for u in rows], w, color=GREY, label="by chance (paired null)")
        ax.bar(
            x + 2 * w,
            [u["independent_expected"] for u in rows],
            w,
            color=GREY,
            alpha=0.4,
            label="independence bound",
        )
        ax.set_xticks(x, [f"L{k}" for k in keys])
        ax.set_title(f"{method} ({aq.METHOD_MODEL[method]}'s neurons)", fontsize=10)
        ax.set_ylabel("AQ neurons")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=9)
    fig.suptitle("structural, semantic and universal AQ, with the overlap expected by chance")
    return fig


def spectral_figure(s: dict) -> plt.Figure:
    """Centroid distributions (no DC, with DC) of AQ vs other neurons, and each group's mean
    share of non-DC power in the 7 equal-width bands."""
    prof = s["profile"]
    is_aq = np.zeros(s["n_neurons"], dtype=bool)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    n_bands = len(s["band_counts_aq"])
    n_aq = s["n_aq"]
    is_aq[np.asarray(s["aq_indices"], dtype=int)] = True
    for ax, key, label in (
        (axes[0], "centroid", "spectral centroid, DC excluded"),
        (axes[1], "centroid_dc", "spectral centroid, DC included"),
    ):
        values = prof[key]
        bins = np.linspace(values.min(), values.max() + 1e-9, 31)
        ax.hist(values[~is_aq], bins=bins, density=True, alpha=0.6, color=GREY, label="other")
        if is_aq.any():
            ax.hist(
                values[is_aq], bins=bins, density=True, alpha=0.6, color=GREEN, label=f"AQ ({n_aq})"
            )
        entry = s[key]
        p = entry["p_value"]
        ax.set_title(f"{label}\nMann-Whitney p = {p:.2g}" if p is not None else label, fontsize=9)
        ax.set(xlabel="cycles per token", ylabel="density")
        ax.legend(fontsize=8)
    ax = axes[2]
    bands = np.arange(n_bands)
    if s["band_share_other"] is not None:
        ax.bar(bands - 0.2, s["band_share_other"], 0.4, color=GREY, label="other")
    if s["band_share_aq"] is not None:
        ax.bar(bands + 0.2, s["band_share_aq"], 0.4, color=GREEN, label="AQ")
    edges = prof["band_edges"]
    ax.set_xticks(bands, [f"{edges[i]:.2f}-\n{edges[i + 1]:.2f}" for i in bands], fontsize=7)
    ax.set(xlabel="band (cycles per token)", ylabel="mean share of non-DC power")
    ax.set_title("power per band (7 equal-width bands)", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(
        f"spectra of {s['method']} AQ: {s['model']}'s neurons on {s['model']}'s activations "
        f"({s['input_type']} tokens); {s['verdict']}",
        fontsize=10,
    )
    return fig


def grokking_figure(gk: dict) -> plt.Figure:
    """Matched |corr| (sorted) against the null, and how often matched neurons share their key
    frequency against chance."""
    arr = gk["arrays"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    ax = axes[0]
    ranks = np.arange(len(arr["abs_corr"]))
    ax.plot(ranks, np.sort(arr["abs_corr"])[::-1], color=BLUE, label="OT-matched |corr|")
    ax.plot(ranks, np.sort(arr["null_abs_corr"])[::-1], color=GREY, label="token-shuffle null")
    ax.axhline(gk["config"]["threshold"], color=RED, ls="--", label="AQ threshold")
    ax.set(xlabel="neuron of model A (sorted)", ylabel="|corr|", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    ax.set_title("grokking models: matched neurons", fontsize=10)
    ax = axes[1]
    keys = ["alive", "well_explained", "aq", "index_matched"]
    labels = ["OT, alive", "OT, well\nexplained", "OT, AQ", "index\n(seed)"]
    ag = gk["agreement"]
    rates = [ag[k]["rate"] or 0.0 for k in keys]
    chance = [ag[k]["chance"] for k in keys]
    x = np.arange(len(keys))
    ax.bar(x - 0.2, rates, 0.4, color=GREEN, label="same key frequency")
    ax.bar(x + 0.2, chance, 0.4, color=GREY, label="chance")
    ax.axhline(gk["null_agreement_rate"], color="k", ls=":", label="token-shuffle null")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(ylabel="share of matched pairs", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    grok = "both grokked" if gk["grokked"] else "NOT both grokked"
    ax.set_title(f"key-frequency agreement (p = {gk['config']['p']}, {grok})", fontsize=10)
    return fig


def count_figure(m: aq.MethodResult, rule: str, value: float | None = None, title: str = ""):
    """Histogram of one method's scores and its nulls, the rule's threshold, and the counts.
    The explorer's figure: not tracked by pyplot (:func:`akira_nb.explorers.figure`), so
    display it (``IPython.display.display``) or save it; ``plt.show`` does not see it."""
    from akira_nb.explorers import figure

    count = m.count(rule, value)
    fig = figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.subplots()
    all_vals = np.concatenate([m.scores] + [v.ravel() for v in m.nulls.values()])
    bins = np.linspace(all_vals.min(), all_vals.max() + 1e-9, 51)
    ax.hist(m.scores, bins=bins, color=BLUE, alpha=0.7, label="scores")
    _null_histograms(ax, m.nulls, bins)
    ax.axvline(
        count.threshold, color=RED, ls="--", label=f"{count.rule_text} = {count.threshold:.3g}"
    )
    chance = m.chance(rule, value)
    ax.set_title(
        f"{title} {m.name} [{m.model}'s neurons]: {count.count}/{count.total} AQ, "
        f"{chance:.1f} expected by chance".strip(),
        fontsize=10,
    )
    ax.set(xlabel="score", ylabel="neurons")
    ax.legend(fontsize=8)
    return fig


__all__ = [
    "cka_heatmap",
    "count_figure",
    "grokking_figure",
    "ot_matches",
    "seed_figure",
    "spectral_figure",
    "universality",
]


def neuron_activations(cache, hook: str, n_neurons: int = 64) -> plt.Figure:
    """One hook's activations from a ``run_with_cache`` cache (the TransformerLens way): the
    first sequence's ``[positions, neurons]`` slice of ``cache[hook]`` (``[batch, pos, d_mlp]``)
    for its first ``n_neurons`` neurons, as a heatmap."""
    if hook not in cache:
        raise ValueError(f"hook={hook!r} is not in the cache; it holds e.g. {list(cache)[:3]}")
    act = cache[hook]
    act = np.asarray(act.detach().float().cpu() if hasattr(act, "detach") else act, dtype=float)
    if act.ndim != 3:
        raise ValueError(f"hook={hook!r} holds shape {act.shape}; want [batch, pos, neurons]")
    grid = act[0, :, :n_neurons]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    lim = float(np.abs(grid).max()) or 1.0
    im = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set(
        xlabel=f"neuron (first {grid.shape[1]} of {act.shape[2]})",
        ylabel="position",
        title=f"{hook}: activations of one sequence",
    )
    fig.colorbar(im, ax=ax, label="activation")
    fig.tight_layout()
    return fig
