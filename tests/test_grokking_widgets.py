"""akira_nb.grokking.widgets: the explorer over a run folder (an arm's curves with a snapshot
epoch marked, the embedding's Fourier spectrum of that snapshot) and the widgets wired to it."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from akira_nb.grokking import experiment, presets, widgets


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real run folder: p = 7, two mixers, 40 epochs, evaluated and snapshotted every 10."""
    plan = presets.study(
        "tiny",
        primes=[7],
        mixers=["standard", "fnet"],
        n_epochs=40,
        eval_every=10,
        progress_every=10,
        checkpoint_every=0,
    )
    out = experiment.run_experiment(plan, root=tmp_path_factory.mktemp("runs"), progress=False)
    return widgets.load_run(out["run"].path)


def test_the_callback_shows_the_snapshot_of_the_chosen_epoch(saved):
    assert list(saved["by_tag"]) == ["p7_standard_s0", "p7_fnet_s0"]
    assert widgets.snapshot_epochs(saved, "p7_fnet_s0") == [0, 10, 20, 30, 40]
    plt.close("all")
    lines, fig = widgets.explore(saved, "p7_fnet_s0", 20)
    assert plt.get_fignums() == []  # the explorer's figure is not pyplot's (explorers.figure)
    assert lines[0].startswith("p=7 fnet seed 0 at epoch 20 (snapshot 3 of 5; trained 40 epochs")
    arm = saved["by_tag"]["p7_fnet_s0"]
    h = arm["history"]
    i = h["epoch"].index(20)
    assert f"logged epoch 20: train acc {h['train_acc'][i]:.3f}" in lines[1]
    assert "restricted loss" in lines[3]
    loss, acc, spec = fig.axes
    for ax in (loss, acc):  # the epoch is marked
        assert any(
            ln.get_label() == "epoch 20" and ln.get_xdata()[0] == 20 for ln in ax.get_lines()
        )
    # known answer: the spectrum of the snapshot's W_E is the one training logged at that epoch
    bars = np.array([b.get_height() for b in spec.patches])
    np.testing.assert_allclose(bars, h["embed_energy"][i], rtol=1e-6)
    assert bars.sum() == pytest.approx(1.0)
    stars = [ln for ln in spec.get_lines() if ln.get_label() == "final key frequencies"]
    assert [list(s.get_xdata()) for s in stars] == ([arm["key_freqs"]] if arm["key_freqs"] else [])
    # the final epoch's snapshot is the final model
    _, fig = widgets.explore(saved, "p7_fnet_s0", 40)
    final = np.array([b.get_height() for b in fig.axes[2].patches])
    np.testing.assert_allclose(final, arm["embed_energy"], rtol=1e-6)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(arm="p7_full_s0", epoch=10), r"arm='p7_full_s0' is not in this run"),
        (dict(arm="p7_fnet_s0", epoch=15), r"epoch=15 has no snapshot of p7_fnet_s0; choose one"),
    ],
)
def test_the_callback_refuses_what_the_run_does_not_hold(saved, kw, match):
    with pytest.raises(ValueError, match=match):
        widgets.explore(saved, **kw)


def test_load_run_refuses_a_folder_without_results(tmp_path):
    with pytest.raises(ValueError, match="holds no results.json"):
        widgets.load_run(tmp_path)


def test_widgets_are_wired_to_the_callback(saved, capsys):
    box, controls = widgets.build_explorer(saved)
    assert (
        controls["arm"].value == "p7_standard_s0" and controls["arm"].label == "p=7 standard seed 0"
    )
    assert controls["epoch"].options == (0, 10, 20, 30, 40) and controls["epoch"].value == 40
    assert "akira-explorer" in box._dom_classes
    capsys.readouterr()
    controls["epoch"].value = 10  # outside a kernel the Output lets the print through
    shown = capsys.readouterr().out
    assert (
        "p=7 standard seed 0 at epoch 10 (snapshot 2 of 5" in shown and "Figure(1500x390)" in shown
    )
    assert plt.get_fignums() == []
