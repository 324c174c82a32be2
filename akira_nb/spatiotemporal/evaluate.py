"""Held-out evaluation: next-frame metrics, an autoregressive rollout, SSIM and band errors.

Evaluation (:func:`evaluate`) runs on held-out frames: ``eval_start`` defaults to 10000.4, so
evaluation frames sit 0.4 step off the integer times of the training frames (the reference's
t = 10,000 replays training frames of every pattern with an integer period, e.g. blob's 50;
an offset of 0.5 would replay wave_collision, whose period is 12.5). "Held-out" means *unseen
phases of the same motion*: for blob the nearest training frame is ~0.16 of copy-last-frame's
error away (tested; ~0.06 at an offset of 0.25). Patterns whose period is not a whole or half
number of steps (double_slit, concentric, ...) are sampled densely over a long run, so their
held-out frames lie close to some training frame: there the test is interpolation in phase.
Every model, baselines included, sees the same frames: ``eval_warmup`` frames fill its history,
then each of ``eval_steps`` frames is scored.

One scoring convention for every metric, one-step and rollout alike: a prediction is scored as
the frame the model would output, **clamped to [0, 1]** (the frames' range; linear
extrapolation clamps the same way, copy-last-frame and the sigmoid heads never leave it). So
``rollout_curve[0]`` is the error of the first one-step prediction. (Until this convention the
one-step metrics scored the raw output, which can overshoot [0, 1].) Training losses
(``final``, ``min``, ... of :func:`~.train.train`) stay on the raw output, which the gradient
needs. Metrics:

- ``mse``: **per-pixel** MSE (mean over pixels and frames); ``mse_frame_sum`` = mse * H * W
  (the OpenSTL / Earthformer per-frame-sum convention);
- ``ssim``: skimage ``structural_similarity``, data_range 1;
- ``mse_low`` / ``mse_high``: per-pixel MSE of the low/high-pass parts of the error
  (``spectral.low_high_split`` at the model's ``freq_cutoff``);
- ``rollout``: per-pixel MSE at each step of an autoregressive rollout over
  ``rollout_horizon`` steps (``rollout_curve``), and its mean (``rollout_mse``). After the
  warm-up frames the model is fed its own predictions clamped to [0, 1] (the data's range, as
  linear extrapolation clamps), and those clamped frames are the ones scored and returned.
  Measured on blob 32x32 (fast preset, online): a model whose one-step error is 20x below
  copy-last-frame's drifts within ~5-10 fed-back steps (the frame brightens), so its 20-step
  rollout MSE exceeds copy-last-frame's, and varies several-fold from one checkpoint to the
  next; :func:`~.experiment.rollout_lead` says for how many steps it stays ahead.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

from .. import runtime, spectral
from . import patterns as P
from .train import TrainConfig, threads


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
    cfg.validate()
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
