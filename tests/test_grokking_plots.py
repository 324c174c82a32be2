"""The look-inside figure: the cached attention pattern of a model, one map per head."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from akira_nb.grokking import plots
from akira_nb.modular_arithmetic.data import make_dataset
from akira_nb.modular_arithmetic.models import build_model


def test_attention_pattern_maps_draws_each_heads_weights_over_the_pairs():
    p = 7
    torch.manual_seed(0)
    model = build_model(p, "standard", d_model=16, n_heads=2, d_mlp=32)
    data = make_dataset(p, 0.5, 0)
    _, cache = model.run_with_cache(data.inputs)
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert tuple(pattern.shape) == (p * p, 2, 1, 3)
    open_before = set(plt.get_fignums())
    fig = plots.attention_pattern_maps(pattern, p, key=1)
    assert set(plt.get_fignums()) == open_before  # not tracked by pyplot: display(fig) shows it
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2  # one map per head (the colorbar is the third axes)
    for head, image in enumerate(images):
        expected = pattern[:, head, 0, 1].reshape(p, p).numpy()
        np.testing.assert_allclose(image.get_array(), expected, rtol=1e-6)
    assert "to b" in fig._suptitle.get_text()
    fig.canvas.draw()


def test_attention_pattern_maps_refuses_what_is_no_pattern():
    with pytest.raises(ValueError, match="hook_pattern"):
        plots.attention_pattern_maps(torch.zeros(48, 2, 1, 3), 7)
    with pytest.raises(ValueError, match="key"):
        plots.attention_pattern_maps(torch.zeros(49, 2, 1, 3), 7, key=3)
