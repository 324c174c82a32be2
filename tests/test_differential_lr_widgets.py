"""akira_nb.differential_lr.widgets: the 013 explorer over saved studies (an arm beside another,
the measures, the verdicts), opening on the study the notebook ran."""

import matplotlib.pyplot as plt
import pytest

from akira_nb.differential_lr import widgets

ARMS = ["band", "band_geomean", "band_uniform"]


def _study(preset: str, final: float) -> dict:
    """The keys of a 013 results.json that the explorer reads (two seeds per arm)."""
    curve = {"step": [10, 20], "val_loss": [[3.6, final], [3.7, final + 0.02]]}
    curve["step_losses"] = [[4.0 - 0.04 * i for i in range(20)]] * 2
    stats = {
        "seeds": 2,
        "steps_to_target": [15.0, 1.0],
        "final_val_loss": [final, 0.01],
        "test_loss": [final + 0.05, 0.02],
        "variance": [0.01, None],  # JSON keeps a NaN std as null
        "spikes": [0, 0],
    }
    return {
        "config": {"lr_preset": preset},
        "curves": {arm: curve for arm in ARMS},
        "stats": {
            arm: dict(stats, final_val_loss=[final + i / 10, 0.01]) for i, arm in enumerate(ARMS)
        },
        "target": 3.3,
        "unigram_val_loss": 3.4,
        "claims": [
            {"claim": "H1", "seed_verdict": "NOT SUPPORTED", "measured": "0.9x", "rule": "r"}
        ],
        "recommendation": {"line": "Differential LR is NOT RECOMMENDED."},
    }


@pytest.fixture(scope="module")
def results():
    return {"013": _study("013", 3.1), "026_v1": _study("026_v1", 3.0)}


def test_the_callback_draws_the_arm_beside_the_chosen_one(results):
    plt.close("all")
    lines, fig = widgets.explore(results, "013", "band")
    assert plt.get_fignums() == []  # the explorer's figure is not pyplot's (explorers.figure)
    assert lines[0] == "013: band (differential (band LRs)), 2 seeds, target 3.3000"
    assert "  final_val_loss: 3.1 +- 0.01" in lines and "  variance: 0.01" in lines
    assert any(
        x.startswith("  beside band_geomean (uniform (from the geometric mean)): ") for x in lines
    )
    assert "final_val_loss 3.2" in lines[6]  # the control's measures
    assert lines[-2:] == [
        "H1: NOT SUPPORTED (0.9x); rule: r",
        "Differential LR is NOT RECOMMENDED.",
    ]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:2] == ["band (2 seeds)", "band_geomean (2 seeds)"]
    _, fig = widgets.explore(results, "013", "band", beside="band_uniform")
    assert fig.axes[0].get_legend().get_texts()[1].get_text() == "band_uniform (2 seeds)"
    lines, fig = widgets.explore(results, "013", "band", beside="none")
    assert not any("beside" in x for x in lines)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["band (2 seeds)", "unigram (val)", "target 3.300"]


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(lr_preset="canonical_7", arm="band"), r"lr_preset='canonical_7' has no saved study"),
        (dict(lr_preset="013", arm="baseline"), r"arm='baseline' was not run for 013"),
        (dict(lr_preset="013", arm="band", beside="sweep"), r"beside='sweep' was not run"),
    ],
)
def test_the_callback_refuses_what_was_not_saved(results, kw, match):
    with pytest.raises(ValueError, match=match):
        widgets.explore(results, **kw)


def test_the_explorer_opens_on_the_study_it_is_given(results, capsys):
    box, controls = widgets.build_explorer(results)  # no study named: the last one
    assert controls["lr_preset"].value == "026_v1"
    box, controls = widgets.build_explorer(results, lr_preset="013")
    assert controls["lr_preset"].value == "013" and controls["beside"].value == "band_geomean"
    assert controls["beside"].options == ("none", *ARMS) and "akira-explorer" in box._dom_classes
    capsys.readouterr()
    controls["beside"].value = "band_uniform"  # outside a kernel the Output lets the print through
    shown = capsys.readouterr().out
    assert (
        "013: band (differential" in shown
        and "beside band_uniform (uniform (from the shared LR)" in shown
    )
    assert "Figure(1100x380)" in shown and plt.get_fignums() == []
    for bad, match in [({}, "no saved 013 study"), (results, "lr_preset='x' has no saved study")]:
        with pytest.raises(ValueError, match=match):
            widgets.build_explorer(bad, lr_preset="x")
