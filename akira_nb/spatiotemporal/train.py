"""Training protocols, held-out evaluation and the model comparison.

- ``online``: the reference's protocol. One stream from t = 0; each step predicts frame t+1
  from frame t, MSE, Adam (lr 1e-3), batch 1.
- ``batched``: B streams at different phases (stream b starts at ``b * batch_spacing``), one
  optimizer step per time step on the mean loss.

Evaluation (``evaluate``) runs on held-out frames: ``eval_start`` defaults to 10000.4, so
evaluation frames sit 0.4 step off the integer times of the training frames (the reference's
t = 10,000 replays training frames of every pattern with an integer period, e.g. blob's 50;
an offset of 0.5 would replay wave_collision, whose period is 12.5). "Held-out" means *unseen
phases of the same motion*: for blob the nearest training frame is ~0.16 of copy-last-frame's
error away (tested; ~0.06 at an offset of 0.25). Patterns whose period is not a whole or half
number of steps (double_slit, concentric, ...) are sampled densely over a long run, so their
held-out frames lie close to some training frame: there the test is interpolation in phase.
Every model, baselines included, sees the same frames: ``eval_warmup`` frames fill its history,
then each of ``eval_steps`` frames is scored. Metrics:

- ``mse``: **per-pixel** MSE (mean over pixels and frames); ``mse_frame_sum`` = mse * H * W
  (the OpenSTL / Earthformer per-frame-sum convention);
- ``ssim``: skimage ``structural_similarity`` on predictions clipped to [0, 1], data_range 1;
- ``mse_low`` / ``mse_high``: per-pixel MSE of the low/high-pass parts of the error
  (``spectral.low_high_split`` at the model's ``freq_cutoff``);
- ``rollout``: per-pixel MSE at each step of an autoregressive rollout (the model fed its own
  predictions) over ``rollout_horizon`` steps, and its mean.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from skimage.metrics import structural_similarity
from tqdm.auto import tqdm

from .. import runtime, spectral
from ..runtime import check_bool, check_choice, check_int, check_real
from . import patterns as P
from .model import BASELINES, build_model

CSV_COLUMNS = [
    "step",
    "train_loss",
    "temporal_entropy",
    "temporal_mean_weight",
    "temporal_max_weight",
    "neighbor_mean_weight",
    "neighbor_entropy",
    "neighbor_max_weight",
    "wormhole_num_connections",
    "wormhole_positions_with_connections",
    "wormhole_mean_similarity",
    "wormhole_sparsity",
    "wormhole_skipped",
    "wormhole_count_mean",
    "wormhole_count_std",
    "wormhole_count_max",
    "wormhole_entropy",
]
# the reference's RESULTS.md, blob 32x32, 500 steps, --config fast --model compare
CLAIMED = {
    "spectral": {
        "final": 0.0031,
        "min": 0.0020,
        "last_window_mean": 0.0059,
        "improvement_pct": 94.3,
        "eval_mean": 0.011,
        "steps_per_s": 21.4,
    },
    "mlp": {
        "final": 0.031,
        "min": 0.018,
        "last_window_mean": 0.033,
        "improvement_pct": 28.8,
        "eval_mean": 0.296,
        "steps_per_s": 27.7,
    },
}


@dataclass
class TrainConfig:
    pattern: str = "blob"
    pattern_eval: str | None = None  # None: same as pattern
    grid_size: int = 32
    steps: int = 300
    lr: float = 1e-3
    protocol: str = "online"
    batch: int = 1
    batch_spacing: float = 37.0
    eval_steps: int = 101
    eval_start: float = 10000.4
    eval_warmup: int = 8
    rollout_horizon: int = 20
    switch_period: int = 101
    pattern_params: dict = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 0
    progress: bool = True
    cpu_threads: int | None = None  # None: 1 thread on CPU for grids <= 32 (see cpu_threads())

    def validate(self) -> TrainConfig:
        check_choice("pattern", self.pattern, P.PATTERNS)
        if self.pattern_eval is not None:
            check_choice("pattern_eval", self.pattern_eval, P.PATTERNS)
        check_int("grid_size", self.grid_size, 4)
        check_int("steps", self.steps, 0)
        check_real("lr", self.lr, 0.0, None, low_open=True)
        check_choice("protocol", self.protocol, ("online", "batched"))
        check_int("batch", self.batch, 1)
        if self.protocol == "online" and self.batch != 1:
            raise ValueError(f"batch={self.batch!r} needs protocol='batched' (online is batch 1)")
        check_real("batch_spacing", self.batch_spacing, 0.0, None, low_open=True)
        if self.batch > 1 and round(self.batch_spacing) < 1:
            raise ValueError(f"batch_spacing={self.batch_spacing!r} must round to >= 1")
        check_int("eval_steps", self.eval_steps, 1)
        check_real("eval_start", self.eval_start)
        check_int("eval_warmup", self.eval_warmup, 1)
        check_int("rollout_horizon", self.rollout_horizon, 0)
        check_int("switch_period", self.switch_period, 1)
        if not isinstance(self.pattern_params, dict):
            raise ValueError(f"pattern_params={self.pattern_params!r} must be a dict")
        check_int("seed", self.seed)
        check_int("checkpoint_every", self.checkpoint_every, 0)
        check_bool("progress", self.progress)
        if self.cpu_threads is not None:
            check_int("cpu_threads", self.cpu_threads, 1)
        return self

    def params_for(self, pattern: str) -> dict:
        params = dict(self.pattern_params.get(pattern, {}))
        if pattern == "switching":
            params.setdefault("period", self.switch_period)
        return params


@contextlib.contextmanager
def cpu_threads(cfg: TrainConfig, device):
    """Intra-op CPU threads while training/evaluating; restored afterwards.

    Per-step tensors at grids <= 32 are small (~1e4-1e5 elements), so extra threads gain little,
    and when the cores are shared (pytest-xdist, nbmake -n, a second job) each op waits for a
    descheduled thread (measured once on 2026-11-23: 1.3 s instead of 10 ms per step with
    torch's default threads on 2 busy cores; compare ``benchmarks/spatiotemporal_speed.py
    --cases fast32`` with and without ``--threads 1``). So the
    default (``cfg.cpu_threads=None``) is 1 thread there; larger grids keep torch's setting.
    """
    n = cfg.cpu_threads
    if n is None:
        n = 1 if cfg.grid_size <= 32 else torch.get_num_threads()
    old = torch.get_num_threads()
    if torch.device(device).type == "cpu" and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def stream_starts(cfg: TrainConfig) -> torch.Tensor:
    """Start time of each training stream (``[B]``, integers)."""
    return torch.arange(cfg.batch, dtype=torch.float64) * round(cfg.batch_spacing)


def training_times(cfg: TrainConfig) -> torch.Tensor:
    """Every time at which a training frame (input or target) is drawn."""
    return (stream_starts(cfg)[:, None] + torch.arange(cfg.steps + 1)).flatten()


def evaluation_times(cfg: TrainConfig) -> torch.Tensor:
    """Every time at which an evaluation frame is drawn (warm-up, scored, rollout targets)."""
    n = cfg.eval_warmup + cfg.eval_steps + max(cfg.rollout_horizon, 1)
    return cfg.eval_start - cfg.eval_warmup + torch.arange(n, dtype=torch.float64)


def trend(losses) -> dict:
    """The reference's summary: final, min, first/last-window means and improvement %."""
    losses = [float(x) for x in losses]
    if not losses:
        return {}
    n = len(losses)
    win = min(50, max(10, n // 3))
    first, last = float(np.mean(losses[:win])), float(np.mean(losses[-win:]))
    change = (first - last) / first * 100 if first > 0 else 0.0
    label = "STABLE" if abs(change) < 0.5 else ("IMPROVING" if change > 0 else "REGRESSING")
    return {
        "final": losses[-1],
        "min": min(losses),
        "window": win,
        "first_window_mean": first,
        "last_window_mean": last,
        "improvement_pct": change,
        "trend": label,
    }


def _stats_row(step, loss, stats) -> list:
    t, n, w = stats.get("temporal", {}), stats.get("neighbor", {}), stats.get("wormhole", {})
    counts = w.get("per_position_counts")

    def f(d, k):
        return float(d[k]) if k in d and d[k] is not None else float("nan")

    return [
        step,
        loss,
        f(t, "entropy"),
        f(t, "mean_weight"),
        f(t, "max_weight"),
        f(n, "mean_weight"),
        f(n, "entropy"),
        f(n, "max_weight"),
        f(w, "num_connections"),
        f(w, "positions_with_connections"),
        f(w, "mean_similarity"),
        f(w, "sparsity"),
        float(bool(w.get("skipped", False))),
        float(counts.float().mean()) if counts is not None else float("nan"),
        float(counts.float().std()) if counts is not None else float("nan"),
        float(counts.max()) if counts is not None else float("nan"),
        f(w, "entropy"),
    ]


def write_stats_csv(path, rows) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)


def train(model, cfg: TrainConfig, run=None, stats_rows: list | None = None, viz=None) -> dict:
    """Train ``model`` on ``cfg.pattern`` for ``cfg.steps`` steps; returns losses and speed.

    With ``run`` and ``cfg.checkpoint_every > 0`` it checkpoints (weights, optimizer, history,
    losses, statistics rows, the training and model configs) under ``checkpoints/<model.kind>/``
    and resumes from the newest one, ending exactly where an uninterrupted run ends; a
    checkpoint whose config differs (outside :data:`RESUME_MAY_CHANGE`) is a ``ValueError``.

    Speed: ``steps_per_s`` / ``frames_per_s`` are wall-clock (the whole loop: frame
    generation, the step, statistics, checkpoints; the reference's steps / training time);
    ``train_steps_per_s`` times only forward + backward + optimizer step.

    ``stats_rows`` (a list) collects one CSV row per step; ``viz=(interval, callback)`` calls
    ``callback(step, frame, target, pred, stats)`` every ``interval`` steps.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    runtime.flush_denormals()
    with cpu_threads(cfg, device):
        return _train(model, cfg, run, stats_rows, viz)


# TrainConfig fields a resumed run may change: the length of training and what never touches
# the training trajectory (evaluation, progress bars, device, threads)
RESUME_MAY_CHANGE = (
    "steps",
    "progress",
    "checkpoint_every",
    "device",
    "cpu_threads",
    "pattern_eval",
    "eval_steps",
    "eval_start",
    "eval_warmup",
    "rollout_horizon",
)


def _resume_configs(model, cfg) -> dict:
    train_cfg = {k: v for k, v in asdict(cfg).items() if k not in RESUME_MAY_CHANGE}
    model_cfg = model.cfg.to_dict() if hasattr(getattr(model, "cfg", None), "to_dict") else {}
    return {"train_config": train_cfg, "model_config": model_cfg}


def _check_resume(state: dict, expected: dict, path_hint: str) -> None:
    diff = []
    for key, want in expected.items():
        have = state.get(key)
        if have is None:
            raise ValueError(
                f"the checkpoint in {path_hint} stores no {key}; cannot check it matches this "
                "run: start a new run"
            )
        diff += [f"{key}.{k}" for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
    if diff:
        raise ValueError(
            f"the checkpoint in {path_hint} was made with a different config: {', '.join(diff)} "
            "differ; pass the same settings or start a new run"
        )


def _train(model, cfg, run, stats_rows, viz) -> dict:
    cfg.validate()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr) if params else None
    model.train()
    model.reset()
    losses, start_step, rows = [], 0, stats_rows if stats_rows is not None else []
    tag = getattr(model, "kind", "model")
    configs = _resume_configs(model, cfg)
    if run is not None and cfg.checkpoint_every and opt is not None:
        state = run.latest_checkpoint(tag, map_location=device)
        if state is not None:
            _check_resume(state, configs, str(run.checkpoint_dir(tag)))
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optim"])
            model.load_stream_state(state["stream"])
            losses = state["losses"].tolist()
            rows[:] = state["rows"].tolist()
            start_step = int(state["step"])
    starts = stream_starts(cfg)
    pparams = cfg.params_for(cfg.pattern)
    wall = 0.0
    loop_start = time.perf_counter()
    bar = tqdm(
        range(start_step, cfg.steps), desc=f"train {tag}", disable=not cfg.progress, leave=False
    )
    for step in bar:
        t = starts[:, None] + step + torch.tensor([0.0, 1.0], dtype=torch.float64)
        pair = P.frames(cfg.pattern, t, cfg.grid_size, **pparams).to(device)  # [B,2,H,W]
        tic = time.perf_counter()
        pred, stats = model(pair[:, 0])
        loss = torch.mean((pred - pair[:, 1]) ** 2)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss_v = float(loss.detach())
        wall += time.perf_counter() - tic
        losses.append(loss_v)
        rows.append(_stats_row(step, loss_v, stats))
        if viz is not None and viz[0] > 0 and step % viz[0] == 0:
            viz[1](step, pair[0, 0], pair[0, 1], pred[0].detach(), stats)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss_v:.2e}")
        done = step + 1
        if (
            run is not None
            and cfg.checkpoint_every
            and opt is not None
            and (done % cfg.checkpoint_every == 0 or done == cfg.steps)
        ):
            run.save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optim": opt.state_dict(),
                    "stream": model.stream_state(),
                    "step": done,
                    "losses": torch.tensor(losses, dtype=torch.float64),
                    "rows": torch.tensor(rows, dtype=torch.float64),
                    **configs,
                },
                done,
                tag=tag,
            )
    total = time.perf_counter() - loop_start
    n_new = cfg.steps - start_step
    return {
        "losses": losses,
        "steps_run": n_new,
        "wall_seconds": total,
        "train_seconds": wall,
        "steps_per_s": n_new / total if total > 0 else float("nan"),
        "frames_per_s": n_new * cfg.batch / total if total > 0 else float("nan"),
        "train_steps_per_s": n_new / wall if wall > 0 else float("nan"),
        "resumed_from": start_step,
        **trend(losses),
    }


def _ssim(pred: np.ndarray, target: np.ndarray) -> float:
    side = min(pred.shape[-2:])
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(np.clip(pred, 0, 1), target, data_range=1.0, win_size=win))


def evaluate(model, cfg: TrainConfig, pattern: str | None = None, keep_frames: bool = False):
    """Held-out metrics of ``model`` (see the module docstring). Batch 1, one stream."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with cpu_threads(cfg, device):
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
    preds = torch.stack([model(seq[W - 1 + i][None])[0][0] for i in range(n)])
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
            curve.append(float(((x[0] - seq[W + h]) ** 2).mean()))
            rollout.append(x[0].clamp(0, 1).cpu())
            x, _ = model(x.clamp(0, 1))
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


def compare(
    cfg: TrainConfig,
    models=("spectral", "mlp", "copy_last", "linear_extrap"),
    preset: str = "fast",
    overrides: dict | None = None,
    run=None,
    stats_csv: str | None = None,
    viz=None,
) -> dict:
    """Train every trainable model in ``models`` under the same protocol (each from the same
    seed), evaluate all of them on the same held-out frames, and return
    ``{"models": {name: {"train": ..., "eval": ...}}, "best_baseline": ..., ...}``.
    Writes ``results.json`` (and ``stats.csv`` for the spectral model) when ``run`` is given."""
    cfg.validate()
    device = runtime.get_device(cfg.device)
    overrides = dict(overrides or {})
    results = {
        "train_config": asdict(cfg),
        "preset": preset,
        "overrides": overrides,
        "metric": "per-pixel MSE (mean over pixels and frames)",
        "models": {},
    }
    with cpu_threads(cfg, device):  # record the thread count training actually uses
        results["environment"] = runtime.environment_info(device)
    for name in models:
        runtime.seed_everything(cfg.seed)
        model = build_model(name, preset, grid_size=cfg.grid_size, **overrides).to(device)
        entry = {"params": sum(p.numel() for p in model.parameters())}
        if name not in BASELINES:
            rows = []
            entry["train"] = train(
                model, cfg, run=run, stats_rows=rows, viz=viz if name == "spectral" else None
            )
            if name == "spectral":
                paths = [run.file("stats.csv")] if run is not None else []
                paths += [stats_csv] if stats_csv else []
                for path in paths:
                    write_stats_csv(path, rows)
                if paths:
                    entry["stats_csv"] = [str(p) for p in paths]
        entry["eval"] = evaluate(model, cfg)
        entry["model"] = model
        results["models"][name] = entry
    evals = {k: v["eval"]["mse"] for k, v in results["models"].items()}
    base = {k: v for k, v in evals.items() if k in BASELINES}
    if base:
        results["best_baseline"] = min(base, key=base.get)
    if run is not None:
        run.write_results(strip_models(results))
    return results


VARIANTS = {
    "spectral_linear_base": {"residual": "linear"},
    "spectral_no_wormhole": {"attention_types": ("temporal", "neighbor")},
}


def add_variants(results: dict, cfg: TrainConfig, variants=VARIANTS, preset: str = "fast") -> dict:
    """Train and evaluate variants of the spectral model (``name -> config overrides``) under
    the same protocol and frames, and add them to ``results["models"]``."""
    for name, overrides in variants.items():
        res = compare(cfg, ("spectral",), preset, {**results.get("overrides", {}), **overrides})
        entry = res["models"]["spectral"]
        entry["overrides"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()
        }
        results["models"][name] = entry
    return results


def strip_models(results: dict) -> dict:
    """``results`` without the live model objects and tensors (what goes in results.json)."""
    out = {k: v for k, v in results.items() if k != "models"}
    out["models"] = {}
    for name, entry in results.get("models", {}).items():
        e = {k: v for k, v in entry.items() if k != "model"}
        if "eval" in e:
            e["eval"] = {k: v for k, v in e["eval"].items() if not torch.is_tensor(v)}
        if "train" in e:
            e["train"] = dict(e["train"])
        out["models"][name] = e
    return out


# The columns of the seed's comparison table (plus the baselines' and the kit's metrics).
COMPARISON_COLUMNS = (
    "model",
    "params",
    "final",
    "min",
    "last_window_mean",
    "improvement_pct",
    "eval_mean",
    "eval_ssim",
    "eval_mse_low",
    "eval_mse_high",
    "rollout_mse",
    "steps_per_s",
    "train_steps_per_s",
)


def comparison_rows(results: dict, claimed: dict | None = None) -> list[dict]:
    """One row per model: the reference's comparison metrics (+ SSIM, band errors), with the
    reference's claimed value beside each measured one where ``claimed`` has it."""
    rows = []
    for name, e in results["models"].items():
        tr, ev = e.get("train", {}), e["eval"]
        row = {
            "model": name,
            "params": e["params"],
            "final": tr.get("final"),
            "min": tr.get("min"),
            "last_window_mean": tr.get("last_window_mean"),
            "improvement_pct": tr.get("improvement_pct"),
            "eval_mean": ev["mse"],
            "eval_ssim": ev["ssim"],
            "eval_mse_low": ev["mse_low"],
            "eval_mse_high": ev["mse_high"],
            "rollout_mse": ev.get("rollout_mse"),
            "steps_per_s": tr.get("steps_per_s"),
            "train_steps_per_s": tr.get("train_steps_per_s"),
        }
        if claimed and name in claimed:
            row.update({f"claimed_{k}": v for k, v in claimed[name].items()})
        rows.append(row)
    return rows


def verdict(results: dict, model: str = "spectral") -> str:
    """Plain words: does ``model`` beat each baseline on the held-out per-pixel MSE?"""
    ev = {k: v["eval"]["mse"] for k, v in results["models"].items()}
    if model not in ev:
        return f"{model} was not run"
    parts = []
    for b in BASELINES + ("mlp",):
        if b in ev and b != model:
            ratio = ev[b] / ev[model] if ev[model] > 0 else math.inf
            word = "beats" if ev[model] < ev[b] else "does NOT beat"
            parts.append(f"{model} {word} {b} ({ev[model]:.2e} vs {ev[b]:.2e}, {ratio:.2f}x)")
    return "; ".join(parts)


def pattern_sweep(
    cfg: TrainConfig,
    patterns=P.PATTERNS,
    preset: str = "fast",
    overrides: dict | None = None,
    models=("spectral", "copy_last", "linear_extrap"),
) -> list[dict]:
    """Train and evaluate on each pattern (train pattern = eval pattern); one row per pattern
    with every model's held-out per-pixel MSE, the best baseline, ``best_over_spectral``
    (best baseline MSE / spectral MSE: > 1 means the spectral model is better) and the verdict."""
    rows = []
    for name in tqdm(patterns, desc="patterns", disable=not cfg.progress):
        c = replace(cfg, pattern=name, pattern_eval=None)
        res = compare(c, models, preset, overrides)
        row = {"pattern": name}
        row.update({m: e["eval"]["mse"] for m, e in res["models"].items()})
        row.update({f"{m}_ssim": e["eval"]["ssim"] for m, e in res["models"].items()})
        best = res.get("best_baseline")
        if best and "spectral" in row:
            row["best_baseline"] = best
            row["best_over_spectral"] = row[best] / row["spectral"] if row["spectral"] else None
            row["beats_best_baseline"] = row["spectral"] < row[best]
        row["smooth"] = name in P.SMOOTH_PATTERNS
        rows.append(row)
    return rows


def claims_rows(rows: list[dict]) -> list[dict]:
    """From :func:`comparison_rows` with claims: one row per (model, metric) with the
    reference's claimed value beside the measured one."""
    out = []
    for r in rows:
        for key in CLAIMED.get(r["model"], {}):
            if f"claimed_{key}" in r:
                out.append(
                    {
                        "model": r["model"],
                        "metric": key,
                        "claimed": r[f"claimed_{key}"],
                        "measured": r.get(key),
                    }
                )
    return out
