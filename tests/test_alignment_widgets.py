"""akira_nb.action_quanta.widgets: the explorer's callback (counts beside the nulls, the histogram)
and the widgets wired to it."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from akira_nb.action_quanta import widgets
from akira_nb.alignment import aq


@pytest.fixture(scope="module")
def result():
    """A result with planted copies: 12 of A's 48 neurons have a noisy copy in B."""
    g = torch.Generator().manual_seed(0)
    n, d_a, d_b, k = 2000, 48, 64, 12
    a = torch.randn(n, d_a, generator=g, dtype=torch.float64)
    b = torch.randn(n, d_b, generator=g, dtype=torch.float64)
    b[:, :k] = a[:, -k:] + 0.2 * torch.randn(n, k, generator=g, dtype=torch.float64)
    cfg = aq.AQConfig(model_a="A", model_b="B", layers=(0,), device="cpu").validate()
    stream = aq.PairStream([(0, 0)], d_a, d_b, "cpu")
    for s in range(0, n, 250):
        stream.update({0: a[s : s + 250]}, {0: b[s : s + 250]})
    groups = torch.arange(n) // 20
    pr = aq.analyse_pair(stream.stats[(0, 0)], stream.null[(0, 0)], cfg, a, b, groups)
    return aq.AQResult(cfg, [(0, 0)], {"random": {pr.key: pr}})


def test_the_callback_gives_counts_beside_the_nulls_and_a_histogram(result):
    counts, line, fig = widgets.explore(result, "random", "0-0", "ot", "fixed", 0.5)
    c = counts["token-shuffle"]
    assert c.count == 12 and c.null_count == 0 and c.threshold == 0.5
    assert "AQ 12/48" in line and "token-shuffle null 0.0" in line and "fixed 0.5" in line
    ax = fig.axes[0]
    assert ax.get_title().endswith("12/48 AQ, 0.0 expected by chance")
    assert any(abs(l.get_xdata()[0] - 0.5) < 1e-12 for l in ax.get_lines())  # threshold line
    plt.close(fig)
    # another rule and value move the threshold; the basic method shows both of its nulls
    counts, line, fig = widgets.explore(result, method="basic", rule="fixed", value=0.3)
    assert set(counts) == {"token-shuffle", "neuron-permutation"}
    assert "neuron-permutation null" in line
    plt.close(fig)
    counts, _, fig = widgets.explore(result, method="procrustes", rule="percentile", value=75)
    assert counts["token-shuffle"].count == 16  # B's neurons: the top quarter of 64
    plt.close(fig)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(input_type="text"), "input_type"),
        (dict(pair="3-3"), "pair"),
        (dict(method="cca"), "method"),
        (dict(rule="zscore"), "rule"),
        (dict(rule="percentile", value=150), "value"),
    ],
)
def test_the_callback_refuses_what_was_not_run(result, kw, match):
    with pytest.raises(ValueError, match=match):
        widgets.explore(result, **kw)


def test_widgets_are_wired_to_the_callback(result):
    box, controls = widgets.build_explorer(result)
    assert set(controls) == {"input_type", "pair", "method", "rule", "value"}
    assert controls["pair"].options == ("0-0",) and controls["method"].value == "ot"
    controls["rule"].value = "percentile"  # a new rule brings its default value
    assert controls["value"].value == 95.0
    controls["rule"].value = "fixed"
    assert controls["value"].value == 0.3
    controls["method"].value = "gurnee"
    kw = {name: w.value for name, w in controls.items()}
    counts, line, fig = widgets.explore(result, **kw)
    assert line.startswith("random tokens, layers 0-0: gurnee [A's neurons]")
    plt.close("all")


def test_the_explorer_figure_is_outside_pyplot_and_the_widgets_display_it(result, capsys):
    """In JupyterLab 4 / ipykernel 7 a widget comm message handled on a second thread runs
    pyplot's post_execute hooks, which draw and close every figure pyplot tracks: the
    explorer's figure must not be one of them (it came out white after a control changed)."""
    plt.close("all")
    _, _, fig = widgets.explore(result, "random", "0-0", "ot", "fixed", 0.5)
    assert plt.get_fignums() == []  # not tracked by pyplot
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    assert (pixels.min(axis=2) < 200).mean() > 0.02  # it draws: bars, axes, text
    box, controls = widgets.build_explorer(result)
    capsys.readouterr()
    controls["method"].value = "basic"  # outside a kernel display() prints the figure's repr
    shown = capsys.readouterr().out
    assert "basic [A's neurons]" in shown and "Figure(700x380)" in shown
    assert plt.get_fignums() == [] and "akira-explorer" in box._dom_classes
