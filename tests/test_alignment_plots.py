"""akira_nb.action_quanta.plots: what a reader needs from 000's figures (hand-made results, no
model): legends clear of the bars, every threshold drawn inside the axes in its own style, the
CKA heatmap at the size of the other figures, the basic method's summary signed against chance."""

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from PIL import Image

from akira_nb.action_quanta import plots
from akira_nb.alignment import aq


def _cfg():
    return aq.AQConfig(model_a="A", model_b="B", layers=(0,), device="cpu").validate()


def _png_size(fig, dpi=110):
    """The PNG's size in pixels as the run folder saves it (``Run.save_figure``)."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, bbox_inches="tight")
    return Image.open(io.BytesIO(buf.getvalue())).size


def _universal(n_a, n_b, observed, chance, independent):
    return dict(
        n_a=n_a,
        n_b=n_b,
        observed=observed,
        chance=chance,
        independent_expected=independent,
        n_null=100,
        null="neuron-permutation",
    )


def test_the_universality_legend_covers_no_bar():
    res = aq.AQResult(_cfg(), [(0, 0), (1, 1)], {})
    tall = {"0-0": _universal(85, 63, 43, 45.7, 20.9), "1-1": _universal(64, 82, 44, 46.7, 20.5)}
    res.universal = {m: tall for m in ("basic", "gurnee", "ot", "procrustes")}
    fig = plots.universality(res)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 1
    box = legends[0].get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for ax in fig.axes for p in ax.patches]
    assert len(bars) == 4 * 2 * 5
    overlapping = [b for b in bars if b.width > 0 and b.height > 0 and box.overlaps(b)]
    assert not overlapping, (box, overlapping[:3])
    assert all(ax.get_legend() is None for ax in fig.axes)  # one legend, outside the panels


def _ot_pair(scores, null):
    ot = aq.MethodResult(
        "ot",
        "A",
        np.asarray(scores),
        {"token-shuffle": np.asarray(null)[None]},
        [("statistical", 2.0), ("fixed", 0.5)],
    )
    return aq.PairResult("text", 1, 1, 4000, {"ot": ot}, matching={"method": "emd"})


def test_ot_thresholds_are_distinct_labelled_and_inside_the_axes():
    rng = np.random.default_rng(0)
    scores = np.sort(1 - rng.exponential(0.15, 256).clip(max=0.7))  # piled up near 1
    pr = _ot_pair(scores, rng.uniform(0.0, 0.07, 256))
    main = pr.methods["ot"].main
    assert main.threshold > 1.02  # mean + 2 std above every |corr|, as in the tiny run
    fig = plots.ot_matches(pr)
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    lines = [ln for ln in ax.get_lines() if "AQ (chance" in ln.get_label()]
    assert len(lines) == 2
    ys = [ln.get_ydata()[0] for ln in lines]
    assert sorted(ys) == pytest.approx(sorted([main.threshold, 0.5]))
    assert all(low <= y <= high for y in ys), (ys, (low, high))
    assert len({ln.get_linestyle() for ln in lines}) == 2
    assert len({matplotlib.colors.to_hex(ln.get_color()) for ln in lines}) == 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("mean + 2 std = ") for t in labels), labels
    assert any(t.startswith("fixed 0.5") for t in labels), labels


def test_the_cka_heatmap_is_saved_at_the_size_of_the_other_figures():
    fig = plots.cka_heatmap(np.array([[0.86, 0.4], [0.5, 0.68]]), [0, 1], [0, 1], "random")
    width, height = _png_size(fig)
    assert width >= 600 and height >= 450, (width, height)  # was 298 x 253
    ax = fig.axes[0]
    sizes = [t.get_fontsize() for t in ax.texts] + [ax.xaxis.label.get_fontsize()]
    assert min(sizes) >= 10
    big = plots.cka_heatmap(np.eye(12) * 0.5, list(range(12)), list(range(24)))
    assert _png_size(big)[0] <= 2400  # a 12 x 24 matrix stays a sensible figure


def test_the_basic_summary_panel_is_signed_against_chance():
    n = 256
    scores = np.zeros(n)
    scores[:64] = 0.4  # 64 AQ against 80 by chance: below it, never "above"
    nulls = np.zeros((20, n))
    nulls[:, :80] = 0.4
    basic = aq.MethodResult(
        "basic",
        "A",
        scores,
        {"neuron-permutation": nulls},
        [("fixed", 0.3)],
        extra={"actual": scores, "baseline": np.zeros(n), "baseline_spread": 0.1},
    )
    fig = plots.seed_figure(aq.PairResult("random", 0, 0, 4000, {"basic": basic}))
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "-16.0 (-6.2% of neurons): below chance" in text, text
