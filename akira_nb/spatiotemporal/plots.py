"""Figures for experiment 033. Every function returns a matplotlib Figure (or writes a file)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from akira_nb import runs


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def stats_title(step, stats: dict) -> str:
    """The reference's snapshot title: temporal / neighbour entropy and weights, wormhole links."""
    t, n, w = stats.get("temporal", {}), stats.get("neighbor", {}), stats.get("wormhole", {})

    def g(d, k):
        return f"{float(d[k]):.3g}" if k in d and d[k] is not None else "-"

    return (
        f"Step {step} | T(Ent)={g(t, 'entropy')} T(MaxW)={g(t, 'max_weight')} | "
        f"N(Ent)={g(n, 'entropy')} N(MaxW)={g(n, 'max_weight')} | "
        f"WH(conns)={g(w, 'num_connections')} pos={g(w, 'positions_with_connections')} "
        f"sp={g(w, 'sparsity')}"
    )


def snapshot_figure(current, target, pred, title: str = "") -> plt.Figure:
    """2 x 2 panels: current, target (t+1), prediction, absolute error."""
    fig, axes = plt.subplots(2, 2, figsize=(7, 7.3), layout="constrained")
    panels = [
        ("Current", current, "magma"),
        ("Target (t+1)", target, "magma"),
        ("Prediction", pred, "magma"),
        ("Abs error", (_np(pred) - _np(target)), "viridis"),
    ]
    for ax, (name, img, cmap) in zip(axes.flat, panels):
        img = np.abs(_np(img)) if name == "Abs error" else _np(img)
        im = ax.imshow(img, cmap=cmap, vmin=0, vmax=1 if name != "Abs error" else None)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=8)
    return fig


def snapshot_saver(folder, every: int):
    """``viz=(every, callback)`` for :func:`~.train.train`: the callback saves a
    :func:`snapshot_figure` as ``folder/step_NNNNN.png`` (``folder`` made if missing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def snap(step, cur, target, pred, stats):
        fig = snapshot_figure(cur, target, pred, stats_title(step, stats))
        fig.savefig(folder / f"step_{step:05d}.png", dpi=120, pil_kwargs=runs.PNG_OPTIONS)
        plt.close(fig)

    return every, snap


def links_figure(frame, wormhole_stats: dict, max_lines: int = 60, ax=None) -> plt.Figure:
    """Wormhole links on the current frame: a line from each (sampled) query pixel to the past
    pixel it matched, coloured by how many frames back the match lies."""
    st = wormhole_stats
    h, w = st["grid"]
    T = st["time_depth"]
    idx, mask = _np(st["link_indices"][0]), _np(st["link_mask"][0]).astype(bool)
    H, W = _np(frame).shape[-2:]
    sy, sx = H / h, W / w
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    else:
        fig = ax.figure
    ax.imshow(_np(frame), cmap="gray", vmin=0, vmax=1)
    q_idx, k_slot = np.nonzero(mask)
    if len(q_idx) > max_lines:
        pick = np.linspace(0, len(q_idx) - 1, max_lines).round().astype(int)
        q_idx, k_slot = q_idx[pick], k_slot[pick]
    cmap = plt.get_cmap("plasma")
    for q, j in zip(q_idx, k_slot):
        key = int(idx[q, j])
        back = T - key // (h * w)  # 1 = frame t-1
        ky, kx = divmod(key % (h * w), w)
        qy, qx = divmod(int(q), w)
        ax.plot(
            [(qx + 0.5) * sx - 0.5, (kx + 0.5) * sx - 0.5],
            [(qy + 0.5) * sy - 0.5, (ky + 0.5) * sy - 0.5],
            color=cmap((back - 1) / max(T - 1, 1)),
            lw=0.8,
            alpha=0.8,
        )
        ax.plot((qx + 0.5) * sx - 0.5, (qy + 0.5) * sy - 0.5, "o", ms=2, color="cyan")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, T))
    fig.colorbar(sm, ax=ax, fraction=0.046, label="frames back")
    ax.set_title(f"wormhole links ({int(mask.sum())} kept, {len(q_idx)} drawn)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one small bitmap font
        return ImageFont.load_default()


def rollout_gif(truth, pred, path, fps: int = 4, panel_px: int = 192, label: str = "") -> str:
    """GIF of an autoregressive rollout: truth | prediction | |error| side by side, each panel
    about ``panel_px`` pixels wide (nearest-neighbour upscaled), with a label strip naming the
    panels and the rollout step (``label`` is prepended, e.g. the model)."""
    import imageio.v2 as imageio
    from PIL import Image, ImageDraw

    truth, pred = _np(truth), _np(pred)
    h, w = truth.shape[-2:]
    scale = max(1, round(panel_px / max(h, w)))
    ph, pw, gap, strip = h * scale, w * scale, 6, 22
    font = _font(14)
    names = ("truth", "prediction", "|error|")
    frames = []
    for step, (a, b) in enumerate(zip(truth, pred), start=1):
        canvas = Image.new("L", (3 * pw + 2 * gap, ph + 2 * strip), 255)
        for i, img in enumerate((a, b, np.abs(a - b))):
            px = (np.clip(img, 0, 1) * 255).astype(np.uint8)
            tile = Image.fromarray(px).resize((pw, ph), Image.NEAREST)
            canvas.paste(tile, (i * (pw + gap), strip))
        draw = ImageDraw.Draw(canvas)
        for i, name in enumerate(names):
            draw.text((i * (pw + gap) + 4, 3), name, fill=0, font=font)
        footer = f"{label + ': ' if label else ''}rollout step {step}/{len(truth)}"
        draw.text((4, strip + ph + 3), footer, fill=0, font=font)
        frames.append(np.asarray(canvas))
    imageio.mimsave(path, frames, duration=1.0 / fps, loop=0)
    return str(path)


def loss_curves(results: dict, log: bool = True) -> plt.Figure:
    """Training loss per step for every trained model."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, e in results["models"].items():
        if "train" in e and e["train"].get("losses"):
            ax.plot(e["train"]["losses"], label=name, lw=1)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("train MSE (per pixel)")
    ax.legend()
    fig.tight_layout()
    return fig


def rollout_curves(results: dict) -> plt.Figure:
    """Per-pixel MSE against rollout horizon, every model."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, e in results["models"].items():
        curve = e["eval"].get("rollout_curve")
        if curve:
            ax.plot(range(1, len(curve) + 1), curve, marker=".", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("rollout step")
    ax.set_ylabel("per-pixel MSE")
    ax.legend()
    fig.tight_layout()
    return fig


def pattern_bars(table: list[dict]) -> plt.Figure:
    """Held-out per-pixel MSE per pattern: spectral vs copy-last vs linear extrapolation."""
    names = [r["pattern"] for r in table]
    keys = [k for k in ("spectral", "copy_last", "linear_extrap", "mlp") if k in table[0]]
    x = np.arange(len(names))
    wdt = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.8), 3.5))
    for i, k in enumerate(keys):
        ax.bar(x + i * wdt, [max(r[k], 1e-12) for r in table], wdt, label=k)
    ax.set_yscale("log")
    ax.set_xticks(x + 0.4 - wdt / 2, names, rotation=45, ha="right")
    ax.set_ylabel("held-out per-pixel MSE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def hook_figure(cache, name: str = "temporal.hook_pattern", max_panels: int = 8) -> plt.Figure:
    """One hook's activations from a TransformerLens ``run_with_cache`` cache, as images over
    the frame (the first batch element): ``[B, H, W]`` one image; ``[B, H, W, n, ...]`` one image
    per index of the fourth dimension (the rest averaged), the first ``max_panels``. For
    ``temporal.hook_pattern`` the panels are the weight each pixel gives each past frame."""
    act = _np(cache[name][0])  # [H, W, ...]
    act = act[..., None] if act.ndim == 2 else act.reshape(*act.shape[:3], -1).mean(-1)
    n = act.shape[-1]
    shown = min(n, max_panels)
    fig, axes = plt.subplots(1, shown, figsize=(2.3 * shown + 0.8, 2.7), squeeze=False)
    temporal = name.endswith("temporal.hook_pattern")
    lo, hi = float(act[..., :shown].min()), float(act[..., :shown].max())
    for i, ax in enumerate(axes[0]):
        im = ax.imshow(act[..., i], cmap="viridis", vmin=lo, vmax=hi)
        ax.set_title(f"t-{n - i}" if temporal else (name if n == 1 else f"[..., {i}]"))
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03)
    what = "attention weight on each past frame" if temporal else "activation per pixel"
    fig.suptitle(f"{name} {tuple(cache[name].shape)}: {what}", fontsize=9)
    return fig


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Plain-text table (numbers to 4 significant digits; missing values as '-')."""
    if not rows:
        return ""
    columns = columns or list(rows[0])

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.rjust(wd) for v, wd in zip(vals, widths))
    return "\n".join([line(columns), line(["-" * wd for wd in widths])] + [line(r) for r in cells])
