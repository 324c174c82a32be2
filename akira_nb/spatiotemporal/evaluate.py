"""Held-out evaluation: next-frame metrics, an autoregressive rollout, SSIM and band errors.

Held-out frames start at ``eval_start`` (default 10000.4: 0.4 step off every integer training
time, so *unseen phases of the same motion*); every model, baselines included, sees the same
frames: ``eval_warmup`` frames fill its history, then each of ``eval_steps`` frames is scored.
One scoring convention, one-step and rollout alike: a prediction is scored as the frame the
model would output, **clamped to [0, 1]** (the frames' range); training losses stay on the raw
output. Metrics: ``mse`` (per-pixel MSE, mean over pixels and frames; ``mse_frame_sum`` = mse *
H * W, the per-frame-sum convention), ``ssim`` (skimage, data_range 1), ``mse_low`` /
``mse_high`` (the error's low/high-pass parts at the model's ``freq_cutoff``), and the rollout
over ``rollout_horizon`` steps fed the model's own clamped predictions (``rollout_curve``, its
mean ``rollout_mse``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from skimage.metrics import structural_similarity

from akira_nb import runtime, spectral
from akira_nb.spatiotemporal import patterns as P
from akira_nb.spatiotemporal.train import TrainConfig, threads


def evaluation_times(cfg: TrainConfig) -> torch.Tensor:
    """Every time at which an evaluation frame is drawn (warm-up, scored, rollout targets)."""
    n = cfg.eval_warmup + cfg.eval_steps + max(cfg.rollout_horizon, 1)
    return cfg.eval_start - cfg.eval_warmup + torch.arange(n, dtype=torch.float64)


def _ssim(pred: np.ndarray, target: np.ndarray) -> float:
    side = min(pred.shape[-2:])
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(pred, target, data_range=1.0, win_size=win))


def evaluate(model, cfg: TrainConfig, pattern: str | None = None, keep_frames: bool = False):
    """Held-out metrics of ``model`` (see the module docstring). Batch 1, one stream."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with runtime.cpu_threads(threads(cfg), device):
        return _evaluate(model, cfg, pattern, keep_frames)


@torch.no_grad()
def _evaluate(model, cfg, pattern, keep_frames) -> dict:
    pattern = pattern or cfg.pattern_eval or cfg.pattern
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    times = evaluation_times(cfg)
    seq = P.frames(pattern, times, cfg.grid_size, **cfg.params_for(pattern)).to(device)
    W, n = cfg.eval_warmup, cfg.eval_steps
    cutoff = getattr(getattr(model, "cfg", None), "freq_cutoff", 0.25)
    sharp = getattr(getattr(model, "cfg", None), "sharpness", 10.0)
    model.eval()
    model.reset()
    for i in range(W - 1):
        model(seq[i][None])
    # scored as output frames: clamped to [0, 1], as the rollout below (module docstring)
    preds = torch.stack([model(seq[W - 1 + i][None])[0][0] for i in range(n)]).clamp(0, 1)
    targets = seq[W : W + n]
    err = (preds - targets) ** 2
    per_frame = err.flatten(1).mean(1)
    bands = spectral.band_mse(preds, targets, cutoff, sharp)
    pn, tn = preds.cpu().numpy(), targets.cpu().numpy()
    out = {
        "pattern": pattern,
        "mse": float(err.mean()),
        "mse_frame_sum": float(err.mean()) * cfg.grid_size**2,
        "mse_final": float(per_frame[-1]),
        "mse_min": float(per_frame.min()),
        "ssim": float(np.mean([_ssim(pn[i], tn[i]) for i in range(n)])),
        "mse_low": bands["low"],
        "mse_high": bands["high"],
        "eval_start": cfg.eval_start,
        "eval_steps": n,
    }
    if cfg.rollout_horizon:  # context: the warm-up frames, then the model's own predictions
        model.reset()
        x = None
        for i in range(W):
            x, _ = model(seq[i][None])
        curve, rollout = [], []
        for h in range(cfg.rollout_horizon):
            x = x.clamp(0, 1)  # the rollout's frame: scored, shown and fed back, all the same
            curve.append(float(((x[0] - seq[W + h]) ** 2).mean()))
            rollout.append(x[0].cpu())
            x, _ = model(x)
        out["rollout_curve"] = curve
        out["rollout_mse"] = float(np.mean(curve))
        if keep_frames:
            out["rollout_frames"] = torch.stack(rollout)
            out["rollout_truth"] = seq[W : W + cfg.rollout_horizon].cpu()
    if keep_frames:
        out["preds"], out["targets"] = preds.cpu(), targets.cpu()
    model.reset()
    model.train()
    return out


@torch.no_grad()
def look_inside(model, pattern: str, t: float, grid_size: int, names_filter=None):
    """TransformerLens's ``run_with_cache`` on a copy of ``model`` (a hookable predictor; the
    model itself is left as it is): the copy is fed the ``time_depth`` frames before ``t``, then
    run with the cache on frame ``t``. Returns ``(prediction [1, H, W], cache)``; the cache
    holds every HookPoint's activation (``hook_embed``, ``temporal.hook_pattern``, ...)."""
    m = copy.deepcopy(model).cpu().eval()
    m.reset()
    T = m.cfg.time_depth
    seq = P.frames(pattern, float(t) + torch.arange(-T, 1, dtype=torch.float64), grid_size)
    for i in range(T):
        m(seq[i][None])
    (pred, _), cache = m.run_with_cache(seq[T][None], names_filter=names_filter)
    return pred, cache
