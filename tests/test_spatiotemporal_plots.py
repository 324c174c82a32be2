"""033 figures: readable layout, colour bars, a labelled rollout GIF."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from akira_nb.spatiotemporal import plots, widgets
from akira_nb.spatiotemporal.model import SpectralPredictor
from akira_nb.spatiotemporal.presets import get_config


def _overlaps_a_panel_title(fig, gap_px: float = 4.0) -> list[str]:
    """Panel titles that the figure title overlaps or touches (less than ``gap_px`` apart)."""
    fig.set_dpi(100)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    sup = fig._suptitle.get_window_extent(renderer)
    return [
        ax.get_title()
        for ax in fig.axes
        if ax.get_title() and ax.title.get_window_extent(renderer).y1 > sup.y0 - gap_px
    ]


@pytest.fixture(scope="module")
def explorer_figure():
    torch.manual_seed(0)
    model = SpectralPredictor(get_config("turbo", grid_size=16, wormhole_threshold=0.0))
    fig = widgets.explore_frame(
        model, "blob", threshold=0.0, max_connections=3, freq_cutoff=0.3, t=10000.4, grid_size=16
    )
    yield fig
    plt.close(fig)


def test_explorer_title_clears_the_panel_titles(explorer_figure):
    assert _overlaps_a_panel_title(explorer_figure) == []


def test_explorer_error_panel_has_a_colour_bar(explorer_figure):
    error = next(ax for ax in explorer_figure.axes if ax.get_title() == "|error|")
    assert error.images[0].colorbar is not None


def test_snapshot_title_clears_the_panel_titles():
    frame = torch.rand(16, 16)
    title = "Step 5 | T(Ent)=1.2 T(MaxW)=0.5 | N(Ent)=2 N(MaxW)=0.3 | WH(conns)=4 pos=3 sp=0.9"
    fig = plots.snapshot_figure(frame, frame, frame, title)
    assert _overlaps_a_panel_title(fig) == []
    plt.close(fig)


def test_rollout_gif_is_large_and_labelled(tmp_path):
    truth = torch.rand(3, 16, 16)
    path = plots.rollout_gif(truth, truth.flip(-1), tmp_path / "r.gif", label="spectral")
    gif = Image.open(path)
    assert gif.n_frames == 3
    assert gif.width >= 3 * 128 and gif.height >= 128 + 2 * 20  # 3 panels, 2 label strips
    footers = []
    for i in range(3):
        gif.seek(i)
        frame = np.asarray(gif.convert("L"))
        assert frame[:20].std() > 0  # the panel names are drawn above the panels
        footers.append(frame[-20:])
    assert not np.array_equal(footers[0], footers[1])  # the step number changes


def test_look_inside_caches_the_hooks_of_a_tiny_model_and_plots_one():
    from akira_nb.spatiotemporal.evaluate import look_inside

    torch.manual_seed(0)
    model = SpectralPredictor(get_config("turbo", grid_size=8))
    pred, cache = look_inside(model, "blob", 10000.4, 8)
    assert pred.shape == (1, 8, 8) and model.step == 0  # the model itself is left untouched
    assert {"hook_embed", "temporal.hook_pattern", "hook_fused", "hook_pred"} <= set(cache.keys())
    pattern = cache["temporal.hook_pattern"]  # [B, H, W, time_depth]: weights over past frames
    assert pattern.shape == (1, 8, 8, 4) and torch.allclose(pattern.sum(-1), torch.ones(1, 8, 8))
    fig = plots.hook_figure(cache, "temporal.hook_pattern")
    assert [ax.get_title() for ax in fig.axes[:4]] == ["t-4", "t-3", "t-2", "t-1"]
    plt.close(fig)
    fig = plots.hook_figure(cache, "hook_pred")  # [B, H, W]: one image
    assert fig.axes[0].get_title() == "hook_pred"
    plt.close(fig)
