"""The 033 explorer: pattern, wormhole threshold, max connections, frequency cutoff, time step.

``explore`` is the plain callback (pytest calls it; ``explore_frame`` is its figure alone);
``build_explorer`` wires ipywidgets (only the subset shared by 7.7 and 8.x: Dropdown,
FloatSlider, IntSlider, Output, VBox/HBox, interactive_output) to it. Its figure is one pyplot
does not track (:func:`akira_nb.explorers.figure`; that module says why): display it.
"""

from __future__ import annotations

import copy

import torch

from akira_nb import explorers
from akira_nb.spatiotemporal import patterns as P
from akira_nb.spatiotemporal.plots import links_figure


@torch.no_grad()
def _run_explorer(model, pattern, threshold, max_connections, freq_cutoff, t, grid_size):
    """Feed a knob-adjusted copy of ``model`` the ``time_depth + 1`` frames up to ``t``."""
    m = copy.deepcopy(model).cpu().eval()
    m.set_wormhole(threshold=threshold, max_connections=max_connections)
    m.set_freq_cutoff(freq_cutoff)
    m.cfg.wormhole_skip_steps = 1
    m.reset()
    T = m.cfg.time_depth
    seq = P.frames(pattern, float(t) + torch.arange(-T, 2, dtype=torch.float64), grid_size)
    stats, pred = {}, None
    for i in range(T + 1):
        pred, stats = m(seq[i][None])
    # the prediction as an output frame, clamped to [0, 1]: shown and scored as evaluate() does
    return seq[T], seq[T + 1], pred[0].clamp(0, 1), stats


def explore(
    model,
    pattern="blob",
    threshold=0.9,
    max_connections=4,
    freq_cutoff=0.25,
    t=10000.4,
    grid_size=32,
):
    """Run a copy of ``model`` (a SpectralPredictor) over ``time_depth`` frames up to ``t``
    with the given wormhole and band knobs; plot current / target / prediction / error and the
    wormhole links. Returns ``(lines, figure)``: one line with the knobs, the per-pixel MSE and
    the number of wormhole links kept; the figure is not tracked by pyplot (display it)."""
    from akira_nb import runtime
    from akira_nb.spatiotemporal.train import TrainConfig, threads

    with runtime.cpu_threads(threads(TrainConfig(grid_size=grid_size)), "cpu"):
        cur, target, pred, stats = _run_explorer(
            model, pattern, threshold, max_connections, freq_cutoff, t, grid_size
        )
    # constrained layout keeps the figure title clear of the panel titles and makes room for
    # the colour bars
    fig = explorers.figure(figsize=(18, 3.9), layout="constrained")
    axes = fig.subplots(1, 5)
    panels = [
        ("current t", cur),
        ("target t+1", target),
        ("prediction", pred),
        ("|error|", (pred - target).abs()),
    ]
    for ax, (name, img) in zip(axes, panels):
        im = ax.imshow(img.numpy(), cmap="magma", vmin=0, vmax=1 if name != "|error|" else None)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        if name == "|error|":  # its own scale: say what the colours mean
            fig.colorbar(im, ax=ax, fraction=0.046, label="|prediction - target|")
    mse = float(((pred - target) ** 2).mean())
    if "wormhole" in stats:
        links_figure(cur, stats["wormhole"], ax=axes[4])
        kept = f"{int(stats['wormhole']['link_mask'][0].sum())} wormhole links kept"
    else:
        axes[4].set_axis_off()
        kept = "no wormhole"
    fig.suptitle(f"{pattern} t={float(t):g}  per-pixel MSE {mse:.2e}", fontsize=11)
    line = (
        f"{pattern} t={float(t):g}: per-pixel MSE {mse:.3e} (prediction clamped to [0, 1]); "
        f"threshold {threshold:.2f}, max connections {max_connections}: {kept}; "
        f"freq cutoff {freq_cutoff:.2f}"
    )
    return [line], fig


def explore_frame(model, *args, **kwargs):
    """The figure of :func:`explore` alone (same arguments)."""
    return explore(model, *args, **kwargs)[1]


def build_explorer(model, grid_size=32, t0=10000.4):
    """Widgets wired to :func:`explore_frame`; returns ``(box, controls)``."""
    import ipywidgets as W

    style = {"description_width": "initial"}
    controls = {
        "pattern": W.Dropdown(options=list(P.PATTERNS), value="blob", description="pattern"),
        "threshold": W.FloatSlider(
            value=float(model.wormhole.threshold),
            min=0.0,
            max=1.0,
            step=0.01,
            description="wormhole threshold",
            style=style,
            continuous_update=False,
        ),
        "max_connections": W.IntSlider(
            value=int(model.wormhole.max_connections),
            min=1,
            max=32,
            description="max connections",
            style=style,
            continuous_update=False,
        ),
        "freq_cutoff": W.FloatSlider(
            value=float(model.cfg.freq_cutoff),
            min=0.05,
            max=1.0,
            step=0.05,
            description="freq cutoff",
            style=style,
            continuous_update=False,
        ),
        "t": W.FloatSlider(
            value=t0,
            min=t0,
            max=t0 + 100,
            step=1.0,
            description="time step",
            continuous_update=False,
        ),
    }

    def draw(**kw):
        lines, fig = explore(model, grid_size=grid_size, **kw)
        explorers.show(lines, fig)

    names = list(controls)
    return explorers.build(draw, controls, [names[:3], names[3:]])
