"""Look inside a trained band model in the TransformerLens way: from a ``run_with_cache`` cache,
each band's activation norm per block (the numbers and their figure), for 026 and 013 alike."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def _numpy(tensor) -> np.ndarray:
    """A cached activation as a float numpy array (a torch tensor without importing torch)."""
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().float().cpu().numpy()
    return np.asarray(tensor, dtype=float)


def band_norms(cache, hook: str = "hook_band_out") -> np.ndarray:
    """``[n_layers, n_bands]``: the mean (over batch and positions) L2 norm of each band's slot
    of ``blocks.{l}.<hook>`` (``[B, T, n_bands, max(band_dims)]``, the padded band layout; a
    band's pad entries are zeros and add nothing) in ``cache`` (``run_with_cache``'s)."""
    layers = []
    while f"blocks.{len(layers)}.{hook}" in cache:
        act = _numpy(cache[f"blocks.{len(layers)}.{hook}"])
        layers.append(np.linalg.norm(act, axis=-1).mean(axis=(0, 1)))
    if not layers:
        raise ValueError(f"the cache holds no blocks.<l>.{hook} (a band model's per-band hook)")
    return np.stack(layers)


def plot_band_norms(cache, hook: str = "hook_band_out"):
    """One hook's activations in the band layout, read from a ``run_with_cache`` cache: each
    band's mean activation norm (:func:`band_norms`) per block, as points (bands are
    categories, so no line joins them), the blocks side by side."""
    norms = band_norms(cache, hook)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    bands = np.arange(norms.shape[1])
    for layer, row in enumerate(norms):
        offset = (layer - (len(norms) - 1) / 2) * 0.15
        ax.plot(bands + offset, row, marker="o", ls="none", label=f"block {layer}")
    ax.set_xticks(bands, [str(b) for b in bands])
    ax.set(
        xlabel="band",
        ylabel="mean ||activation|| per token",
        title=f"blocks.<l>.{hook}: activation norm per band",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
