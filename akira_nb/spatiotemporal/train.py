"""The training protocols, their configuration and checkpoints.

- ``online``: the reference's protocol. One stream from t = 0; each step predicts frame t+1
  from frame t, MSE, Adam (lr 1e-3), batch 1.
- ``batched``: B streams at different phases (stream b starts at ``b * batch_spacing``), one
  optimizer step per time step on the mean loss.

:class:`TrainConfig` also holds the held-out evaluation settings (``eval_*``,
``rollout_horizon``) that :mod:`.evaluate` reads, so one config describes a whole arm.
:func:`train` checkpoints under ``checkpoints/<tag>/`` of a run folder and resumes from there.
Evaluation lives in :mod:`.evaluate`; comparisons and tables in :mod:`.experiment`, claims in
:mod:`.claims`.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from akira_nb import runtime
from akira_nb.runs import to_jsonable
from akira_nb.runtime import check_bool, check_choice, check_int, check_real
from akira_nb.spatiotemporal import patterns as P

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
    # torch CPU threads: None = OMP_NUM_THREADS when set, else 1 thread for grids <= 32 and
    # torch's setting above (threads());
    # 0 = torch's default thread count (runtime.cpu_threads leaves it alone)
    cpu_threads: int | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the field unless every setting is valid (run when built)."""
        check_choice("pattern", self.pattern, P.PATTERNS)
        if self.pattern_eval is not None:
            check_choice("pattern_eval", self.pattern_eval, P.PATTERNS)
        check_int("grid_size", self.grid_size, 4)
        check_int("steps", self.steps, 1)  # 0 steps: nothing trained, a "final loss" of nan
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
        self._check_held_out()
        check_int("switch_period", self.switch_period, 1)
        if not isinstance(self.pattern_params, dict):
            raise ValueError(f"pattern_params={self.pattern_params!r} must be a dict")
        check_int("seed", self.seed, 0)
        runtime.check_device("device", self.device)
        check_int("checkpoint_every", self.checkpoint_every, 0)
        check_bool("progress", self.progress)
        if self.cpu_threads is not None:
            check_int("cpu_threads", self.cpu_threads, 0)
        return self

    def _check_held_out(self) -> None:
        """The evaluation frames (``eval_warmup`` before ``eval_start`` up to the last scored or
        rollout frame) must come after every training frame (times 0 .. the last stream's
        start + ``steps``), so that "held-out" frames are ones the model never trained on."""
        last_train = (self.batch - 1) * round(self.batch_spacing) + self.steps
        first_eval = self.eval_start - self.eval_warmup
        if first_eval <= last_train:  # a negative eval_start too (periodic patterns repeat)
            raise ValueError(
                f"eval_start={self.eval_start!r} puts the held-out frames (from t = "
                f"{first_eval:g}, eval_warmup={self.eval_warmup} before it) before or among the "
                f"training frames (t = 0 .. {last_train}): pass eval_start > "
                f"{last_train + self.eval_warmup} off the integers (e.g. the default 10000.4), or "
                "fewer steps"
            )

    def params_for(self, pattern: str) -> dict:
        params = dict(self.pattern_params.get(pattern, {}))
        if pattern == "switching":
            params.setdefault("period", self.switch_period)
        return params


def threads(cfg: TrainConfig) -> int | None:
    """The intra-op CPU thread count for training/evaluating under ``cfg`` (for
    :func:`runtime.cpu_threads`): ``cfg.cpu_threads`` when set (0: torch's default count,
    as ``--threads 0`` in every CLI); else ``OMP_NUM_THREADS`` when it is set to a positive
    integer (the user asked for that many); else 1 for grids <= 32 and None (torch's setting)
    above.

    Per-step tensors at grids <= 32 are small (~1e4-1e5 elements), so extra threads gain little,
    and when the cores are shared (pytest-xdist, nbmake -n, a second job) each op waits for a
    descheduled thread (measured once on 2026-11-23: 1.3 s instead of 10 ms per step with
    torch's default threads on 2 busy cores; compare ``benchmarks/spatiotemporal_speed.py
    --threads 1 2``).
    """
    if cfg.cpu_threads is not None:
        return cfg.cpu_threads
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return 1 if cfg.grid_size <= 32 else None


def stream_starts(cfg: TrainConfig) -> torch.Tensor:
    """Start time of each training stream (``[B]``, integers)."""
    return torch.arange(cfg.batch, dtype=torch.float64) * round(cfg.batch_spacing)


def training_times(cfg: TrainConfig) -> torch.Tensor:
    """Every time at which a training frame (input or target) is drawn."""
    return (stream_starts(cfg)[:, None] + torch.arange(cfg.steps + 1)).flatten()


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


STATS_EVERY = 50  # steps between reads of the on-device losses and statistics


def _stats_values(step, loss, stats) -> torch.Tensor:
    """One CSV row (:data:`CSV_COLUMNS`) as a float32 tensor on ``loss``'s device: built from
    the step's tensors without reading any of them back (no host sync per step)."""
    t, n, w = stats.get("temporal", {}), stats.get("neighbor", {}), stats.get("wormhole", {})
    counts = w.get("per_position_counts")
    dev = loss.device

    def const(x):
        return torch.full((), float(x), device=dev)

    def f(d, k):
        v = d.get(k)
        if isinstance(v, torch.Tensor):
            return v.detach().float().reshape(())
        return const("nan" if v is None else v)

    c = counts.float() if counts is not None else None
    nan = const("nan")
    return torch.stack(
        [
            const(step),
            loss.detach().float().reshape(()),
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
            const(bool(w.get("skipped", False))),
            c.mean() if c is not None else nan,
            c.std() if c is not None else nan,
            c.max() if c is not None else nan,
            f(w, "entropy"),
        ]
    )


# columns written as the reference writes them: counts as ints, the skip flag as a bool
INT_COLUMNS = (
    "step",
    "wormhole_num_connections",
    "wormhole_positions_with_connections",
    "wormhole_count_max",
)
BOOL_COLUMNS = ("wormhole_skipped",)


def csv_row(row) -> list:
    """One statistics row (floats, as held and checkpointed) as written: the columns of
    :data:`INT_COLUMNS` as ints ("3", not "3.0") and of :data:`BOOL_COLUMNS` as bools where
    they are numbers (NaN, a missing statistic, stays NaN)."""
    out = list(row)
    for i, name in enumerate(CSV_COLUMNS):
        v = out[i]
        if isinstance(v, float) and v == v:
            if name in INT_COLUMNS:
                out[i] = int(v)
            elif name in BOOL_COLUMNS:
                out[i] = bool(v)
    return out


def write_stats_csv(path, rows) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(r) for r in rows)


def train(
    model,
    cfg: TrainConfig,
    run=None,
    stats_rows: list | None = None,
    viz=None,
    tag: str | None = None,
) -> dict:
    """Train ``model`` on ``cfg.pattern`` for ``cfg.steps`` steps; returns losses and speed.

    With ``run`` and ``cfg.checkpoint_every > 0`` it checkpoints (weights, optimizer, history,
    losses, statistics rows, and under ``"config"`` the whole config: ``{"train": ...,
    "model": ...}``, see :func:`checkpoint_config`) under ``checkpoints/<tag>/`` (default tag:
    ``model.kind``) and resumes from the newest one, ending exactly where an uninterrupted run
    ends; a checkpoint whose config differs outside :data:`RESUME_MAY_CHANGE` is a
    ``ValueError`` naming the fields (``runs.check_resume``).

    Speed: ``steps_per_s`` / ``frames_per_s`` are wall-clock (the whole loop: frame
    generation, the step, statistics, checkpoints; the reference's steps / training time);
    ``train_steps_per_s`` times only forward + backward + optimizer step (on CUDA the clock
    is read after ``torch.cuda.synchronize``, so it times the device's work). Losses and
    statistics stay on the device and are read every :data:`STATS_EVERY` steps and at each
    checkpoint; frames are built on the CPU and copied through pinned memory.

    ``stats_rows`` (a list) collects one CSV row per step; ``viz=(interval, callback)`` calls
    ``callback(step, frame, target, pred, stats)`` every ``interval`` steps.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    runtime.flush_denormals()
    with runtime.cpu_threads(threads(cfg), device):
        return _train(model, cfg, run, stats_rows, viz, tag or getattr(model, "kind", "model"))


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


def checkpoint_config(model, cfg: TrainConfig) -> dict:
    """What every checkpoint stores under ``"config"`` (plain JSON values): the training
    config and the model's (:meth:`config` of every predictor)."""
    return to_jsonable({"train": cfg, "model": model.config()})


def to_device(x: torch.Tensor, device) -> torch.Tensor:
    """``x`` (built on the CPU) on ``device``: on CUDA through pinned memory with
    ``non_blocking`` (a copy from pageable memory waits for the device: a host sync a step);
    the same values on every device."""
    if torch.device(device).type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def sync(device) -> None:
    """Wait for ``device`` (CUDA) so a clock read around its work times the work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _resume(model, opt, cfg, run, tag, config, rows) -> tuple[list, int]:
    """Load the newest checkpoint of ``tag`` (if any) into ``model`` / ``opt`` / ``rows``;
    returns ``(losses, start_step)``."""
    if run is None or not cfg.checkpoint_every or opt is None:
        return [], 0
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    state = run.latest_checkpoint(
        tag, map_location=device, config=config, may_change=RESUME_MAY_CHANGE
    )
    if state is None:
        return [], 0
    if int(state["step"]) > cfg.steps:
        raise ValueError(
            f"steps={cfg.steps!r} is below the {int(state['step'])} steps already in "
            f"{run.checkpoint_dir(tag)}; pass steps >= {int(state['step'])} or start a "
            "new run"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optim"])
    model.load_stream_state(state["stream"])
    rows[:] = state["rows"].tolist()
    return state["losses"].tolist(), int(state["step"])


def _save(run, model, opt, done, losses, rows, config, tag) -> None:
    run.save_checkpoint(
        {
            "model": model.state_dict(),
            "optim": opt.state_dict(),
            "stream": model.stream_state(),
            "step": done,
            "losses": torch.tensor(losses, dtype=torch.float64),
            "rows": torch.tensor(rows, dtype=torch.float64),
            "config": config,
        },
        done,
        tag=tag,
    )


def _train(model, cfg, run, stats_rows, viz, tag) -> dict:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr) if params else None
    model.train()
    model.reset()
    rows = stats_rows if stats_rows is not None else []
    config = checkpoint_config(model, cfg)
    losses, start_step = _resume(model, opt, cfg, run, tag, config, rows)
    starts = stream_starts(cfg)
    pparams = cfg.params_for(cfg.pattern)
    wall = 0.0
    loop_start = time.perf_counter()
    bar = tqdm(
        range(start_step, cfg.steps), desc=f"train {tag}", disable=not cfg.progress, leave=False
    )
    pending = []  # this window's rows, still on the device

    def flush():  # one read for up to STATS_EVERY steps
        if pending:
            new_rows = torch.stack(pending).cpu().double().tolist()
            losses.extend(r[1] for r in new_rows)
            rows.extend(new_rows)
            pending.clear()
            bar.set_postfix(loss=f"{losses[-1]:.2e}")

    for step in bar:
        t = starts[:, None] + step + torch.tensor([0.0, 1.0], dtype=torch.float64)
        pair = to_device(P.frames(cfg.pattern, t, cfg.grid_size, **pparams), device)  # [B,2,H,W]
        sync(device)
        tic = time.perf_counter()
        pred, stats = model(pair[:, 0])
        loss = torch.mean((pred - pair[:, 1]) ** 2)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        wall += time.perf_counter() - tic
        pending.append(_stats_values(step, loss, stats))
        if viz is not None and viz[0] > 0 and step % viz[0] == 0:
            viz[1](step, pair[0, 0], pair[0, 1], pred[0].detach(), stats)
        done = step + 1
        save = (
            run is not None
            and cfg.checkpoint_every
            and opt is not None
            and (done % cfg.checkpoint_every == 0 or done == cfg.steps)
        )
        if save or done % STATS_EVERY == 0 or done == cfg.steps:
            flush()
        if save:
            _save(run, model, opt, done, losses, rows, config, tag)
    flush()
    return _speed(cfg, start_step, time.perf_counter() - loop_start, wall, losses)


def _speed(cfg, start_step, total, wall, losses) -> dict:
    """What :func:`train` returns: losses, steps run, timings and the loss trend."""
    n_new = cfg.steps - start_step
    return {
        "losses": losses,
        "steps_run": n_new,
        "wall_seconds": total,
        "train_seconds": wall,
        # a call that trained no step (a finished arm re-evaluated) measured no speed
        "steps_per_s": n_new / total if n_new and total > 0 else float("nan"),
        "frames_per_s": n_new * cfg.batch / total if n_new and total > 0 else float("nan"),
        "train_steps_per_s": n_new / wall if n_new and wall > 0 else float("nan"),
        "resumed_from": start_step,
        **trend(losses),
    }
