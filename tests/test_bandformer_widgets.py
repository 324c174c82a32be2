"""akira_nb.band_transformer.widgets: the 026 explorer's callback over a run's results.json (the
arm's validation curve, a band's spectrum, ablation and weight change against its prescribed
LR) and the widgets wired to it."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from akira_nb.band_transformer import widgets

LRS = {"band_0": 1e-4, "band_1": 1e-3, "band_2": 1e-2, "shared": 1e-3}


def _arm(arm, seed, final, lrs, bands=True):
    wc = {"step": [2, 4], "shared": [0.01, 0.01]}
    if bands:  # band 2 moves 50x band 0 in the last interval, band 1 5x
        wc.update(band_0=[0.01, 0.002], band_1=[0.02, 0.01], band_2=[0.3, 0.1])
    return {
        "config": {"arm": arm, "seed": seed},
        "history": {"tokens": [64, 128], "val_loss": [final + 0.5, final]},
        "final_val_loss": final,
        "weight_change": wc,
        "prescribed_lrs": lrs,
    }


def _stats(centroids):
    return {
        "band_dims": [8, 4, 4],
        "rms": [1.0, 0.5, 0.25],
        "centroid": centroids,
        "low_share": [0.6, 0.4, 0.2],
        "power": [[0.5, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.4, 0.1, 0.1, 0.4]],
        "freqs": [0.0, 0.1, 0.2, 0.3],
    }


@pytest.fixture(scope="module")
def results():
    """The keys of a 026 results.json that the explorer reads: two seeds of the band model, the
    baseline, band_uniform (no ablation recorded), the band arms' statistics."""
    uniform = {k: 1e-3 for k in LRS}
    return {
        "unigram_val_loss": 3.2,
        "arms": [
            _arm("baseline", 0, 2.9, {"shared": 1e-3}, bands=False),
            _arm("band", 0, 2.5, LRS),
            _arm("band", 1, 2.6, LRS),
            _arm("band_uniform", 0, 2.7, uniform),
        ],
        "band_statistics": {"band": _stats([0.1, 0.2, 0.3]), "band_uniform": _stats([0.2] * 3)},
        "ablations": {
            "band": {
                "steps": [2, 4],
                "loss": [2.8, 2.5],
                "increase": [[0.1, 0, 0.05], [0.2, 0.01, 0.07]],
            }
        },
        "maturation": {"band": {"steps": [2, 4], "maturity": [4, None, 2]}},
    }


def test_the_callback_reads_the_band_and_draws_it_beside_the_others(results):
    plt.close("all")
    lines, fig = widgets.explore(results, "band", 2)
    assert plt.get_fignums() == []  # the explorer's figure is not pyplot's (explorers.figure)
    assert lines[0].startswith("band, band 2 (4 dims, prescribed LR 0.01 = 100x band 0's)")
    assert "2.5000 (seed 0), 2.6000 (seed 1); baseline 2.9000 (seed 0); unigram 3.2000" in lines[0]
    assert "centroid 0.300 cycles/token" in lines[1] and "low-frequency share 0.20" in lines[1]
    assert "+0.0700 when the band is zeroed at step 4 (clean 2.5000); maturity step 2" in lines[2]
    assert "50x band 0's ||dW||/||W|| against a prescribed 100x" in lines[3]
    val, spec, abl, wc = fig.axes
    assert [ln.get_label() for ln in val.get_lines()[:3]] == [
        "band seed 0",
        "band seed 1",
        "baseline seed 0",
    ]
    chosen = [ln for ln in spec.get_lines() if ln.get_label() == "band 2"]
    assert len(chosen) == 1 and chosen[0].get_linewidth() > 2  # the band, over grey others
    np.testing.assert_allclose(chosen[0].get_ydata(), np.array([0.1, 0.1, 0.4]) / 0.6)
    np.testing.assert_allclose(abl.get_lines()[2].get_ydata(), [0.05, 0.07])  # band 2's curve
    assert any(ln.get_label() == "maturity" and ln.get_xdata()[0] == 2 for ln in abl.get_lines())
    point = next(ln for ln in wc.get_lines() if ln.get_label() == "band 2")
    assert (point.get_xdata()[0], point.get_ydata()[0]) == pytest.approx((100, 50))
    # an arm without an ablation record says so
    lines, _ = widgets.explore(results, "band_uniform", 0)
    assert lines[2] == "  ablation: not recorded for this arm" and "prescribed 1x" in lines[3]


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(arm="baseline", band=0), r"arm='baseline' has no per-band records.*'band'"),
        (dict(arm="band", band=3), r"band=3 is not a band of band; choose an integer in 0..2"),
        (dict(arm="band", band=True), "band=True"),
    ],
)
def test_the_callback_refuses_what_the_run_does_not_hold(results, kw, match):
    with pytest.raises(ValueError, match=match):
        widgets.explore(results, **kw)


def test_widgets_are_wired_to_the_callback(results, capsys):
    box, controls = widgets.build_explorer(results)
    assert controls["arm"].options == ("band", "band_uniform") and controls["band"].value == 0
    assert controls["band"].label == "band 0 (8 dims)" and "akira-explorer" in box._dom_classes
    capsys.readouterr()
    controls["band"].value = 1  # outside a kernel the Output lets the print through
    shown = capsys.readouterr().out
    assert "band, band 1 (4 dims, prescribed LR 0.001 = 10x band 0's)" in shown
    assert "Figure(1200x660)" in shown and plt.get_fignums() == []
    with pytest.raises(ValueError, match="no band-layout arm"):
        widgets.build_explorer(dict(results, band_statistics={}))


def test_the_callback_reads_each_arms_longest_budget(results):
    """A run with two budgets: the arm's curves, LRs and baseline come from its longest one."""
    arms = []
    for steps, (band_loss, base_loss) in ((200, (2.5, 2.6)), (1000, (2.3, 2.2))):
        for a in (_arm("baseline", 0, base_loss, {"shared": 1e-3}, bands=False),
                  _arm("band", 0, band_loss, LRS)):  # fmt: skip
            a["config"]["total_steps"] = steps
            arms.append(a)
    lines, fig = widgets.explore(dict(results, arms=arms), "band", 1)
    assert "2.3000 (seed 0) at 1,000 steps; baseline 2.2000 (seed 0)" in lines[0]
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()[:2]]
    assert labels == ["band seed 0, 1,000 steps", "baseline seed 0, 1,000 steps"]
