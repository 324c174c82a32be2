"""The trainer of the band model and its baselines (026 and 013): one arm per call, on one device
or many (``torchrun``).

``train(cfg)`` trains one arm of a :class:`~akira_nb.bandformer.config.TrainConfig` on packed
text (:mod:`akira_nb.bandformer.data`) and returns a :class:`TrainResult`: AdamW over the
per-band groups of :mod:`akira_nb.bandformer.optim` with its schedule, gradient clipping, AMP
per device (:mod:`akira_nb.runtime`), the weight-change monitor, evaluation every
``eval_every`` steps on a fixed validation set and a final loss on a larger one. With ``run``
it checkpoints every ``checkpoint_every`` steps (the newest two kept; the final checkpoint
holds the weights and the record only) and ``resume=True`` continues from the newest one with
the same losses as an uninterrupted run (dropout is reseeded from ``(seed, step, rank)``).
Under ``torchrun`` it wraps the model in ``DistributedDataParallel``::

    python -m torch.distributed.run --nproc_per_node 2 -m akira_nb.bandformer.train --arm band
"""

from __future__ import annotations

import argparse
import ast
import ctypes
import gc
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from akira_nb import runtime, standins
from akira_nb.bandformer import optim
from akira_nb.bandformer.config import (
    ARM_LR_MODE,
    ARM_MODEL,
    ARMS,
    BASELINE_ARMS,
    DATASETS,
    PRESETS,
    RESUME_MAY_CHANGE,
    BandConfig,
    TrainConfig,
)
from akira_nb.bandformer.data import (
    check_batch_fits,
    final_validation_blocks,
    make_data,
    train_batch,
    unigram_loss,
    validation_blocks,
)
from akira_nb.bandformer.ddp import dist_device, dist_env, process_group, rank_mean, sync
from akira_nb.bandformer.model import (
    BandTransformer,
    BaselineTransformer,
    model_summary,
    training_loss,
)
from akira_nb.bandformer.monitor import WeightChangeMonitor
from akira_nb.bandformer.steps import (
    count_step_flops,
    evaluate,
    group_lrs,
    mean_loss,
    optimizer_step,
    step_seed,
)
from akira_nb.runs import Run, check_name, check_runs_root

EXPERIMENT = "026_band_transformer"
_POSTFIX_EVERY = 20  # steps between progress-bar loss updates (each one syncs the device)


@dataclass
class TrainResult:
    """What :func:`train` returns (``summary()``: the same without the model, for JSON).

    ``history``: lists per evaluation (see the module docstring); ``weight_change``: the
    monitor's history (``step``, ``band_<i>``, ``shared``); ``step_losses``: the train loss of
    every optimiser step (mean over ranks; for stability measures); ``tokens_per_s``: training
    tokens (all ranks) per second of training, evaluation and checkpoints excluded;
    ``seconds``: this call's wall time; ``params``:
    :func:`~akira_nb.bandformer.model.model_summary`; ``data``: the splits' sizes, the
    validation set's blocks and the unigram cross-entropy of the validation set (the
    context-free baseline); ``prescribed_lrs``: :func:`~akira_nb.bandformer.optim.prescribed_lrs`
    of the optimiser (each band's or hidden slice's base LR, ``shared``'s)."""

    config: dict
    history: dict
    weight_change: dict
    final_val_loss: float
    final_val_ppl: float
    tokens_seen: int
    tokens_per_s: float
    params: dict
    seconds: float
    train_seconds: float = 0.0
    data: dict = field(default_factory=dict)
    step_losses: list = field(default_factory=list)
    device: str = "cpu"
    world_size: int = 1
    prescribed_lrs: dict = field(default_factory=dict)
    model: torch.nn.Module | None = None

    def summary(self) -> dict:
        out = asdict(replace(self, model=None))
        out.pop("model")
        return out


# ----------------------------------------------------------------------------- model, steps


def build_model(cfg: TrainConfig) -> tuple[torch.nn.Module, BandConfig]:
    """``(model, band_cfg)`` of ``cfg.arm``, initialised from ``cfg.seed`` (on the CPU):
    ``baseline`` / ``baseline_differential`` the GPT matched to the band model's parameter count,
    ``baseline_wide`` the GPT as wide as the band model
    (:meth:`~akira_nb.bandformer.model.BaselineTransformer.equal_width_config`)."""
    band_cfg = cfg.band_config()
    runtime.seed_everything(cfg.seed)
    if cfg.arm == "baseline_wide":
        return BaselineTransformer(BaselineTransformer.equal_width_config(band_cfg)), band_cfg
    if cfg.arm in BASELINE_ARMS:
        return BaselineTransformer.matched_to(band_cfg), band_cfg
    return BandTransformer(band_cfg), band_cfg


def make_optimizer(model, cfg: TrainConfig, band_cfg: BandConfig) -> torch.optim.AdamW:
    """AdamW over ``optim.param_groups`` of the bare model in the arm's LR mode (the baseline in
    ``geomean`` mode takes the geometric mean of the band config's LRs);
    ``baseline_differential``: :func:`~akira_nb.bandformer.optim.make_sliced_adamw`, the band
    config's LRs over the baseline's hidden units split in proportion to its band dims (the
    shared LR for embeddings and the final norm)."""
    if cfg.arm == "baseline_differential":
        return optim.make_sliced_adamw(
            model, band_cfg.band_dims, band_cfg.band_lrs, band_cfg.shared_lr, cfg.weight_decay
        )
    band_lrs = band_cfg.band_lrs if cfg.arm in BASELINE_ARMS else None
    return optim.make_adamw(model, cfg.resolved_lr_mode(), cfg.weight_decay, band_lrs=band_lrs)


_FLOPS: dict[tuple, int] = {}  # step FLOPs per arm and model shape (step_flops)


def step_flops(cfg: TrainConfig) -> int:
    """FLOPs of one training step of ``cfg.arm`` on one global batch (``batch_size x seq_len``
    tokens): :func:`count_step_flops` of the arm's model on the meta device (nothing computed).
    The model is built on the CPU and then moved there (built on the meta device, PyTorch checks
    every index op of the band layouts in Python: ten times the CPU's cost at tiny); like a
    build, it leaves the random generators seeded with ``cfg.seed``. The learning rates do not
    change the count (cached without them)."""
    band_cfg = cfg.band_config()
    shape = {k: v for k, v in band_cfg.to_dict().items() if k not in ("band_lrs", "shared_lr")}
    key = (cfg.arm, cfg.batch_size, cfg.seq_len, tuple(sorted(shape.items())))
    if key not in _FLOPS:
        with torch.device("cpu"):
            model, _ = build_model(cfg)
        runtime.seed_everything(cfg.seed)  # as the build left them, before its init's draws
        _FLOPS[key] = count_step_flops(model.to("meta"), cfg.batch_size, cfg.seq_len)
    return _FLOPS[key]


# ----------------------------------------------------------------------------- training


def train(
    cfg: TrainConfig,
    run: Run | None = None,
    resume: bool = False,
    tag: str | None = None,
    log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``cfg.arm`` (see the module docstring). With ``run`` it checkpoints under
    ``checkpoints/<tag or arm>/`` (rank 0); ``resume=True`` continues from the newest
    checkpoint there (refused when it was made with other settings, outside
    ``RESUME_MAY_CHANGE``). ``log(metrics)`` is called on rank 0 after every evaluation with
    the reference's metric names (``train/step``, ``train/loss``, ``eval/loss``,
    ``eval/perplexity``, ``lr/<group>``) plus ``train/tokens`` and ``train/grad_norm``: pass
    ``wandb.log`` to send them to Weights & Biases."""
    tag = check_name(cfg.arm if tag is None else tag, "tag")
    device = dist_device(cfg.device)
    splits = make_data(cfg)
    with runtime.cpu_threads(cfg.cpu_threads, device), process_group(device) as (rank, world):
        _check_world(cfg, world)
        result = _train(cfg, splits, device, run, resume, tag, rank, world, log)
    trim_heap()  # the step's freed activations and optimiser state
    return result


def trim_heap() -> None:
    """Collect garbage and hand the C heap's free pages back to the system (glibc's
    ``malloc_trim``; a no-op elsewhere). Freed tensors below glibc's mmap threshold stay in the
    process's resident memory otherwise: after one t4 training step of the 026 model on the
    CPU, 1.6 GB of it (measured: 2,068 MB resident, 473 MB after the trim)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        pass


def _check_world(cfg: TrainConfig, world: int) -> None:
    if cfg.batch_size % world:
        raise ValueError(
            f"batch_size={cfg.batch_size} must be divisible by the {world} DDP processes "
            "(each reads an equal share of every global batch)"
        )


@dataclass
class _Progress:
    """What a training carries from step to step and through a checkpoint: the history, the
    step, the training seconds, the partial sums of the current evaluation interval (``n_sum``
    steps) and every step's train loss so far."""

    history: dict
    step_losses: torch.Tensor
    loss_sum: torch.Tensor
    norm_sum: torch.Tensor
    step: int = 0
    train_seconds: float = 0.0
    n_sum: int = 0

    @classmethod
    def start(cls, cfg: TrainConfig, lr_keys: list[str], device) -> _Progress:
        history: dict[str, list] = {
            k: [] for k in ("step", "tokens", "train_loss", "grad_norm", "val_loss")
        }
        history.update({f"lr/{k}": [] for k in lr_keys})
        zero = torch.zeros((), device=device)
        return cls(history, torch.zeros(cfg.total_steps, device=device), zero, zero.clone())

    def restore(self, state: dict, device) -> None:
        """Take a checkpoint's progress (``state``: :func:`_checkpoint_state`)."""
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.step, self.train_seconds = int(state["step"]), float(state["train_seconds"])
        self.loss_sum, self.norm_sum = state["loss_sum"].to(device), state["norm_sum"].to(device)
        self.n_sum = int(state["n_sum"])
        if "step_losses" in state:
            self.step_losses.copy_(state["step_losses"].to(device))


def _train(cfg, splits, device, run, resume, tag, rank, world, log) -> TrainResult:
    wall_start = time.perf_counter()
    if device.type == "cpu":
        runtime.flush_denormals()
    model, band_cfg = build_model(cfg)
    if splits.vocab_size != band_cfg.vocab_size:  # the tokenizer and VOCAB_SIZE disagree
        raise ValueError(f"the data has vocab {splits.vocab_size}, the model {band_cfg.vocab_size}")
    model.to(device)
    opt = make_optimizer(model, cfg, band_cfg)
    scaler = runtime.grad_scaler(device)
    prog = _Progress.start(cfg, list(group_lrs(opt)), device)
    state = None
    if run is not None and resume:
        state = run.latest_checkpoint(
            tag, map_location=device, config=cfg.to_dict(), may_change=RESUME_MAY_CHANGE
        )
    if state is not None:
        model.load_state_dict(state["model"])
        if state["optimizer"] is not None:  # None in a finished arm's final checkpoint
            opt.load_state_dict(state["optimizer"])
        if state["scaler"] and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        prog.restore(state, device)
    monitor = _monitor(cfg, model, opt, prog.step, state)
    parts = (model, opt, scaler, monitor)
    val_blocks = validation_blocks(cfg, splits.val)
    _loop(cfg, splits, device, parts, prog, val_blocks, run, tag, rank, world, log)
    model.zero_grad(set_to_none=True)  # the last step's gradients (the model's size) go
    result = _result(cfg, splits, device, parts, prog, val_blocks, rank, world)
    result.seconds = time.perf_counter() - wall_start
    if rank == 0:
        print(summary_line(tag, result), flush=True)
    return result


def _monitor(cfg: TrainConfig, model, opt, step: int, state: dict | None):
    """The weight-change monitor from ``step`` (None when ``monitor_every`` is 0), restored
    from a checkpoint's ``state``."""
    if not cfg.monitor_every:
        return None
    monitor = WeightChangeMonitor(
        model,
        cfg.monitor_every,
        optim.prescribed_lrs(opt),
        step,
        row_slices=getattr(opt, "row_slices", None),
    )
    if state is not None and state.get("monitor"):
        monitor.load_state_dict(state["monitor"])
    elif state is not None:  # a checkpoint on the monitor's grid from before its state
        monitor.history = {k: list(v) for k, v in state["weight_change"].items()}
    return monitor


def _save(cfg: TrainConfig, parts, prog: _Progress, run, tag, at: int, rank, world) -> None:
    """The checkpoint at step ``at`` (rank 0; every rank calls it: it holds a collective). The
    final one, at ``total_steps``, holds the weights and the record, no resume state, and
    replaces the resume checkpoints."""
    model, opt, scaler, monitor = parts
    losses = rank_mean(prog.step_losses, world)  # a collective: every rank calls save
    if run is None or rank != 0:
        return
    final = at == cfg.total_steps  # finished: the weights and the record, no resume state
    run.save_checkpoint(
        {
            "model": model.state_dict(),
            "optimizer": None if final else opt.state_dict(),
            "scaler": None if final else scaler.state_dict(),
            "history": prog.history,
            "weight_change": monitor.history if monitor is not None else {},
            # a finished arm takes no further step: no snapshot (a copy of the weights)
            "monitor": (
                monitor.state_dict(monitor.last_step if final else at)
                if monitor is not None
                else {}
            ),
            "step_losses": losses.cpu(),
            "step": at,
            "train_seconds": prog.train_seconds,
            "loss_sum": prog.loss_sum.cpu(),
            "norm_sum": prog.norm_sum.cpu(),
            "n_sum": prog.n_sum,
            "config": cfg.to_dict(),
        },
        at,
        tag=tag,
        keep=1 if final else 2,  # the final checkpoint replaces the resume checkpoints
    )


def _loop(cfg, splits, device, parts, prog: _Progress, val_blocks, run, tag, rank, world, log):
    """The optimiser steps from ``prog.step`` to ``total_steps``, with the evaluations and
    checkpoints on their intervals."""
    model, opt, scaler, monitor = parts
    net = model
    if world > 1:
        # the buffers are constant index maps: nothing to broadcast at every forward
        ids = [device] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
    params = [p for p in model.parameters() if p.requires_grad]
    per_rank = cfg.batch_size // world
    rows = slice(rank * per_rank, (rank + 1) * per_rank)
    show = cfg.progress and rank == 0
    bar = tqdm(
        total=cfg.total_steps, initial=prog.step, desc=tag, disable=not show, mininterval=1.0
    )
    net.train()
    sync(device)
    t0 = time.perf_counter()
    while prog.step < cfg.total_steps:
        step = prog.step
        torch.manual_seed(step_seed(cfg.seed, step, rank))  # dropout: a function of the step
        idx = train_batch(cfg, splits.train.shape[0], step)[rows]
        x = splits.train[idx].to(device, non_blocking=True)
        with runtime.autocast(device):
            loss = training_loss(net(x), x)  # the logits become their gradient in backward
        optim.set_lrs(opt, step, cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)
        opt.zero_grad(set_to_none=True)
        norm = optimizer_step(loss, opt, scaler, params, cfg.grad_clip)
        prog.loss_sum += loss.detach().float()
        prog.norm_sum += norm.detach().float()
        prog.step_losses[step] = loss.detach().float()
        prog.n_sum += 1
        prog.step = step = step + 1
        bar.update(1)
        if monitor is not None:
            monitor.step(step)
        if step % _POSTFIX_EVERY == 0 and bar.n and not bar.disable:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        is_eval = step % cfg.eval_every == 0 or step == cfg.total_steps
        is_ckpt = cfg.checkpoint_every and step % cfg.checkpoint_every == 0
        if not (is_eval or is_ckpt or step == cfg.total_steps):
            continue
        sync(device)
        prog.train_seconds += time.perf_counter() - t0
        if is_eval:
            _evaluate_interval(cfg, model, opt, prog, val_blocks, device, rank, world, bar, log)
        if is_ckpt or step == cfg.total_steps:
            _save(cfg, parts, prog, run, tag, step, rank, world)
        t0 = time.perf_counter()
    bar.close()


def _evaluate_interval(cfg, model, opt, prog: _Progress, val_blocks, device, rank, world, bar, log):
    """One evaluation: the interval's mean train loss and gradient norm (over the ranks), the
    validation loss and the LRs into the history, the bar, and ``log`` (rank 0)."""
    step, history = prog.step, prog.history
    sums = torch.stack([prog.loss_sum, prog.norm_sum])
    if world > 1:
        dist.all_reduce(sums)
    train_loss, grad_norm = (sums / (world * prog.n_sum)).tolist()
    val = evaluate(model, val_blocks, cfg, device, rank, world)
    history["step"].append(step)
    history["tokens"].append(step * cfg.tokens_per_step)
    history["train_loss"].append(train_loss)
    history["grad_norm"].append(grad_norm)
    history["val_loss"].append(val)
    for k, lr in group_lrs(opt).items():
        history[f"lr/{k}"].append(lr)
    prog.loss_sum.zero_(), prog.norm_sum.zero_()
    prog.n_sum = 0
    bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{val:.3f}", refresh=False)
    if log is not None and rank == 0:
        log(
            {
                "train/step": step,
                "train/tokens": step * cfg.tokens_per_step,
                "train/loss": train_loss,
                "train/grad_norm": grad_norm,
                "eval/loss": val,
                "eval/perplexity": math.exp(val),
                **{k: history[k][-1] for k in history if k.startswith("lr/")},
            }
        )


def _result(cfg, splits, device, parts, prog: _Progress, val_blocks, rank, world) -> TrainResult:
    """The :class:`TrainResult` (``seconds`` left 0 for the caller): the final validation loss
    on its larger set (the last evaluation's when that set is no larger), the data's sizes
    and unigram baselines."""
    model, opt, _, monitor = parts
    final_blocks = final_validation_blocks(cfg, splits.val)
    if final_blocks.shape[0] > val_blocks.shape[0]:
        final = evaluate(model, final_blocks, cfg, device, rank, world)
    else:
        final = prog.history["val_loss"][-1]
    tokens = cfg.total_steps * cfg.tokens_per_step
    per_step = rank_mean(prog.step_losses, world).tolist()
    train_seconds = prog.train_seconds
    return TrainResult(
        config=cfg.to_dict(),
        history=prog.history,
        weight_change=monitor.history if monitor is not None else {},
        final_val_loss=final,
        final_val_ppl=math.exp(final),
        step_losses=per_step,
        tokens_seen=tokens,
        tokens_per_s=tokens / train_seconds if train_seconds > 0 else math.nan,
        params=model_summary(model),
        seconds=0.0,
        train_seconds=train_seconds,
        data={
            **splits.summary(),
            "val_set_blocks": int(val_blocks.shape[0]),
            "final_val_blocks": int(final_blocks.shape[0]),
            "final_val_predictions": int(final_blocks.shape[0] * (final_blocks.shape[1] - 1)),
            "unigram_val_loss": unigram_loss(splits, final_blocks),
            "unigram_eval_loss": unigram_loss(splits, val_blocks),
        },
        device=str(device),
        world_size=world,
        prescribed_lrs=optim.prescribed_lrs(opt),
        model=model,
    )


def summary_line(tag: str, res: TrainResult) -> str:
    """One line: arm, steps, tokens, final validation loss and perplexity, speed, size."""
    c = res.config
    return (
        f"{tag}: {c['total_steps']} steps x {c['batch_size']} x {c['seq_len']} = "
        f"{res.tokens_seen:,} tokens, val loss {res.final_val_loss:.4f} (ppl "
        f"{res.final_val_ppl:.2f}; unigram {res.data['unigram_val_loss']:.4f}), "
        f"{res.tokens_per_s:,.0f} tokens/s on {res.device} x {res.world_size}, "
        f"{res.params['total']:,} parameters ({c['lr_mode']} LR)"
    )


# ----------------------------------------------------------------------------- CLI


def _parse_override(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(key, value)``: VALUE a Python literal (``ast.literal_eval``: a
    number, a tuple or list, True, ...) or a bare word (``layout=band``); nothing is
    evaluated, so an expression such as ``(1e-4,)*7`` is refused (write the tuple out)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--override {item!r} must be KEY=VALUE (a BandConfig field)")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        if value.isidentifier():
            return key, value  # a bare word, e.g. layout=band
        raise ValueError(
            f"--override {item!r}: VALUE {value!r} is not a Python literal (a number, a tuple "
            "such as (1e-4, 3e-4), True, a word); expressions are not evaluated"
        ) from None


def parser() -> argparse.ArgumentParser:
    """The entry point's flags (each also spelt with underscores, as the reference's)."""
    p = runtime.ArgumentParser(
        prog="python -m akira_nb.bandformer.train",
        description="Train one arm of the band transformer experiment (026); under torchrun "
        "with DistributedDataParallel.",
    )
    d = TrainConfig()

    def add(name: str, **kw):
        flags = [f"--{name}"] + ([f"--{name.replace('-', '_')}"] if "-" in name else [])
        p.add_argument(*flags, **kw)

    add("arm", choices=ARMS, default=d.arm)
    add("preset", choices=list(PRESETS), default=d.preset, help="model preset")
    add("dataset", choices=DATASETS, default=d.dataset)
    for name in ("seq_len", "batch_size", "total_steps", "warmup_steps", "eval_every"):
        add(name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("eval_batches", "final_eval_predictions", "seed", "checkpoint_every"):
        add(name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("monitor_every", "cpu_threads"):
        add(name.replace("_", "-"), type=int, default=getattr(d, name))
    add("data-seed", type=int, default=None)
    add("max-train-tokens", type=int, default=None)
    for name in ("min_lr_ratio", "weight_decay", "grad_clip"):
        add(name.replace("_", "-"), type=float, default=getattr(d, name))
    add("lr-mode", choices=optim.LR_MODES, default=None, help="default: the arm's")
    add("device", default=d.device)
    add(
        "offline",
        action="store_true",
        help="local stand-ins of the same shape for every download (akira_nb.standins): the "
        "offline corpus tokenized by gpt2-standin (vocabulary 50257) for a Hub dataset",
    )
    add(
        "override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model setting (BandConfig field) as a Python literal, e.g. --override "
        "n_layers=4 --override 'band_lrs=(1e-4,1e-4,1e-4,1e-4,1e-4,1e-4,1e-4)'; repeatable",
    )
    add("output-dir", default=None, help="runs root (default: AKIRA_RUNS_DIR or ./runs)")
    add("name", default=None, help="run folder name and checkpoint tag (default: the arm)")
    add("resume", action="store_true", help="continue the newest run of this name")
    add("no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)} - {"model_overrides", "progress"}
    overrides = dict(_parse_override(item) for item in args.override)
    return TrainConfig(
        **{k: getattr(args, k) for k in names},
        model_overrides=overrides,
        progress=not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    """Train one arm and write its run folder (rank 0); ``error: ...`` and exit status 2 on a
    bad setting."""
    args = parser().parse_args(argv)
    try:
        check_runs_root(args.output_dir)  # before the data loads
        cfg = config_from_args(args)
        name = check_name(args.name or cfg.arm, "name")
        record = standins.announce(cfg.standins()) if cfg.offline else None
        make_data(cfg)  # a corpus that cannot load fails before any folder is made
        device = dist_device(cfg.device)
        with process_group(device) as (rank, world):
            _check_world(cfg, world)
            run = _open_run(cfg, name, args, rank, world)
            res = train(cfg, run=run, resume=args.resume, tag=name)
            if rank == 0:
                extra = {"standins": record} if record else {}
                run.write_results(
                    {**res.summary(), **extra, "environment": runtime.environment_info(device)}
                )
                _plot(run, name, res)
                print(f"run folder: {run.path}", flush=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _open_run(cfg: TrainConfig, name: str, args, rank: int, world: int) -> Run:
    """Rank 0 opens (or, with ``--resume``, reopens) the run folder; the others get its path."""
    found: list = [None]
    if rank == 0:
        try:
            run = Run.open_or_create(
                EXPERIMENT,
                name,
                config=cfg.to_dict(),
                resume=args.resume,
                root=args.output_dir,
                may_change=RESUME_MAY_CHANGE,
                must_exist=args.resume,  # --resume: a run of that name to resume
            )
            found = [str(run.path)]
        except ValueError as exc:
            found = [exc]
    if world > 1:
        dist.broadcast_object_list(found, src=0)
    if isinstance(found[0], Exception):
        raise ValueError(str(found[0]))
    return Run(found[0])


def _plot(run: Run, name: str, res: TrainResult) -> None:
    # a Figure outside pyplot: no backend switch (this runs inside notebook kernels too, where
    # matplotlib.use("Agg") would take the kernel's inline backend away) and nothing to close
    from matplotlib.figure import Figure

    h = res.history
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot(h["tokens"], h["train_loss"], label="train (mean since last eval)")
    ax.plot(h["tokens"], h["val_loss"], label="validation")
    ax.axhline(res.data["unigram_val_loss"], color="gray", ls=":", label="unigram")
    ax.set(xlabel="tokens", ylabel="loss (nats/token)", title=f"{name}: {res.config['arm']}")
    ax.legend()
    run.save_figure(fig, f"{name}_loss")


__all__ = [
    "ARMS",
    "ARM_LR_MODE",
    "ARM_MODEL",
    "DATASETS",
    "EXPERIMENT",
    "RESUME_MAY_CHANGE",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "check_batch_fits",
    "config_from_args",
    "count_step_flops",
    "dist_device",
    "dist_env",
    "evaluate",
    "group_lrs",
    "main",
    "make_data",
    "make_optimizer",
    "mean_loss",
    "optimizer_step",
    "parser",
    "process_group",
    "step_flops",
    "summary_line",
    "train",
    "train_batch",
    "trim_heap",
    "final_validation_blocks",
    "validation_blocks",
]


if __name__ == "__main__":
    sys.exit(main())
