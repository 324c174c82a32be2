"""akira_nb.spatiotemporal.widgets: the 033 explorer's callback (a line with the knobs, the
error and the links kept; the five-panel figure) and the widgets wired to it."""

import re

import matplotlib.pyplot as plt
import pytest
import torch

from akira_nb.spatiotemporal import widgets
from akira_nb.spatiotemporal.model import SpectralPredictor
from akira_nb.spatiotemporal.presets import get_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SpectralPredictor(get_config("turbo", grid_size=16, wormhole_threshold=0.0))


def test_the_callback_says_what_it_drew(model):
    plt.close("all")
    knobs = dict(max_connections=3, freq_cutoff=0.3, t=10000.4, grid_size=16)
    (line,), fig = widgets.explore(model, "blob", threshold=0.0, **knobs)
    assert plt.get_fignums() == []  # the explorer's figure is not pyplot's (explorers.figure)
    kept = int(fig.axes[4].get_title().split("(")[1].split()[0])
    assert line.startswith("blob t=10000.4: per-pixel MSE ")
    assert f"threshold 0.00, max connections 3: {kept} wormhole links kept" in line
    assert line.endswith("freq cutoff 0.30")
    mse = float(re.search(r"per-pixel MSE (\S+) ", line).group(1))
    assert mse == pytest.approx(float(fig._suptitle.get_text().split()[-1]), rel=1e-2)
    (line,), _ = widgets.explore(model, "blob", threshold=1.0, **knobs)
    assert "threshold 1.00, max connections 3: 0 wormhole links kept" in line


def test_widgets_are_wired_to_the_callback(model, capsys):
    box, controls = widgets.build_explorer(model, grid_size=16)
    assert "akira-explorer" in box._dom_classes
    capsys.readouterr()
    controls["threshold"].value = 1.0  # outside a kernel the Output lets the print through
    shown = capsys.readouterr().out
    assert "threshold 1.00, max connections" in shown and "Figure(1800x390)" in shown
    assert plt.get_fignums() == []
