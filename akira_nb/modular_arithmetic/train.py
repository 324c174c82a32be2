"""Full-batch training on a + b mod p with progress measures, checkpoints and resume.

``train(cfg)`` trains one model (one mixer, one seed); ``experiment.compare(arms)`` trains
several arms (``presets.Study.arms()``: primes x mixers x seeds) in one call, each in its own
checkpoint folder of one run, and ``summarize`` aggregates mean +- std over seeds. Every
``eval_every`` epochs the history records train/test loss and accuracy and the weight-based
Fourier progress measures; every ``progress_every`` epochs a weights-only snapshot is kept, and
after training restricted and excluded loss are computed at every snapshot with the key
frequencies of the final model (``TrainResult.progress``, see ``evaluate``).
Evaluation time is kept out of the epochs/s figure.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from akira_nb import runtime
from akira_nb.modular_arithmetic import fourier
from akira_nb.modular_arithmetic.config import TrainConfig
from akira_nb.modular_arithmetic.data import ModularAddition
from akira_nb.modular_arithmetic.evaluate import (
    KEY_RULE,
    evaluate,
    fixed_key_progress,
    key_frequencies_of,
    snapshot_logits,
)
from akira_nb.modular_arithmetic.models import GrokkingModel, parameter_count
from akira_nb.runs import Run, atomic_torch_save

HISTORY_KEYS = (
    "epoch",
    "train_loss",
    "test_loss",
    "train_acc",
    "test_acc",
    "gini_embed",
    "gini_logit_map",
    "weight_norm",
    "freq_weight_mean",  # wave mixers: per sequence bin, mean of the learned gates / phases
    "freq_weight_std",  # ... and their spread over channels ([] for other mixers)
    "embed_energy",  # fraction of W_E's energy per Z_p frequency (index 0: constant)
    "train_seconds",  # cumulative training time, evaluation excluded
    "wall_seconds",  # wall time since this call started (a resumed run restarts it)
)

# Settings a resume may change: none of them alters the results, so a resumed run ends where an
# uninterrupted one ends (n_epochs only says where it stops; the rest are where checkpoints and
# frames are saved, hardware and a post-hoc threshold). eval_every and progress_every are not
# among them: they set the history's grid (and the grok epoch's resolution) and the snapshots
# the progress measures use. Every other field must match the checkpoint's config or the resume
# is refused (runs.check_resume).
RESUME_MAY_CHANGE = (
    "n_epochs",
    "checkpoint_every",
    "snapshot_every",
    "grok_threshold",
    "device",
    "cpu_threads",
)


@dataclass
class TrainResult:
    config: dict
    history: dict
    params: int
    mixing_params: int
    grok_epoch: int | None
    final: dict
    train_seconds: float
    epochs_per_s: float
    wall_seconds: float
    # CPU seconds of this process while training, evaluation excluded (this call only: a
    # resumed run counts from the resume); with one CPU thread it is the figure a shared
    # machine's load does not inflate
    train_cpu_seconds: float = math.nan
    key_freqs: list = field(default_factory=list)  # of the final model (evaluate.KEY_RULE)
    progress: dict = field(default_factory=dict)  # restricted/excluded loss per snapshot
    embed_energy: list = field(default_factory=list)
    frequency_weights: dict = field(default_factory=dict)
    model: GrokkingModel | None = None

    def summary(self) -> dict:
        out = asdict(replace(self, model=None))
        out.pop("model")
        return out


def grok_epoch(epochs, test_acc, threshold: float = 0.95) -> int | None:
    """First logged epoch from which test accuracy stays >= ``threshold`` to the end of the
    history (None when it never does). Resolution: the evaluation interval."""
    acc = np.asarray(test_acc, dtype=float)
    if acc.size == 0 or acc[-1] < threshold:
        return None
    below = np.nonzero(acc < threshold)[0]
    first = 0 if below.size == 0 else below[-1] + 1
    return int(epochs[first])


class GrokfastEMA:
    """Grokfast-EMA gradient filter (Lee et al. 2024): mu <- a mu + (1 - a) g; g <- g + lamb mu.
    ``mu`` starts at the first gradient, as in the reference code."""

    def __init__(self, alpha: float, lamb: float):
        self.alpha, self.lamb = alpha, lamb
        self.mu: dict[str, torch.Tensor] = {}

    def apply(self, model: torch.nn.Module) -> None:
        self.apply_named(model.named_parameters())

    @torch.no_grad()
    def apply_named(self, named_params) -> None:
        """Filter the ``.grad`` of each (name, parameter) pair in place."""
        for name, param in named_params:
            if param.grad is None:
                continue
            mu = self.mu.get(name)
            if mu is None:
                self.mu[name] = mu = param.grad.detach().clone()
            else:
                mu.mul_(self.alpha).add_(param.grad, alpha=1 - self.alpha)
            param.grad.add_(mu, alpha=self.lamb)


def _loss(logits: torch.Tensor, labels: torch.Tensor, float64: bool) -> torch.Tensor:
    return F.cross_entropy(logits.double() if float64 else logits.float(), labels)


class Snapshots:
    """Weights-only snapshots for the fixed-key progress measures: in memory without a run,
    else ``progress/<tag>/epoch_<epoch>.pt`` in the run folder (so a resumed run keeps those
    from before the interruption). A fresh start clears the tag's old files."""

    def __init__(self, run: Run | None, tag: str, fresh: bool):
        self.folder = run.path / "progress" / tag if run is not None else None
        self.memory: dict[int, dict] = {}
        if self.folder is not None and fresh and self.folder.is_dir():
            for old in self.folder.glob("epoch_*.pt"):
                old.unlink()

    def save(self, epoch: int, model: torch.nn.Module) -> None:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.folder is None:
            self.memory[epoch] = state
        else:
            atomic_torch_save(state, self.folder / f"epoch_{epoch:09d}.pt")

    def load(self, last: int, every: int, device) -> tuple[list[int], list[dict]]:
        """The snapshots at epoch 0, every ``every`` epochs and at ``last``, oldest first (the
        final epoch of a shorter earlier call, kept on disk, is left out)."""
        keep = lambda e: e <= last and (e % every == 0 or e == last)  # noqa: E731
        if self.folder is None:
            found = {e: s for e, s in self.memory.items() if keep(e)}
        else:
            found = {}
            for path in self.folder.glob("epoch_*.pt") if self.folder.is_dir() else []:
                epoch = int(path.stem.split("_")[1])
                if keep(epoch):
                    found[epoch] = path
        epochs = sorted(found)
        if self.folder is None:
            return epochs, [found[e] for e in epochs]
        states = [torch.load(found[e], map_location=device, weights_only=True) for e in epochs]
        return epochs, states


def checkpoint_state(cfg: TrainConfig, model_state, opt_state, grokfast_mu, history) -> dict:
    """What a checkpoint holds besides its epoch and training seconds (both paths write it)."""
    return {
        "model": model_state,
        "optimizer": opt_state,
        "grokfast_mu": grokfast_mu,
        "history": history,
        "config": asdict(cfg),
    }


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only), so timings count it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(
    cfg: TrainConfig,
    run: Run | None = None,
    resume: bool = False,
    progress: bool = True,
    snapshot_fn=None,
) -> TrainResult:
    """Train one model. With ``run`` it checkpoints every ``cfg.checkpoint_every`` epochs under
    ``checkpoints/<cfg.tag>/``; ``resume=True`` continues from the newest checkpoint and ends with
    the same metrics as an uninterrupted run. ``snapshot_fn(model, history, epoch)`` is called
    every ``cfg.snapshot_every`` epochs (used for the six-panel frames). On a CPU it runs on
    ``cfg.cpu_threads`` torch threads (restored afterwards)."""
    device = runtime.get_device(cfg.device)
    with runtime.cpu_threads(cfg.cpu_threads, device):
        return _train(cfg, device, run, resume, progress, snapshot_fn)


def _train(cfg: TrainConfig, device, run, resume, progress, snapshot_fn) -> TrainResult:
    wall_start = time.perf_counter()
    runtime.flush_denormals()
    data = cfg.dataset().to(device)
    runtime.seed_everything(cfg.seed)
    model = GrokkingModel(cfg.model_config()).to(device)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2)
    )
    grokfast = GrokfastEMA(cfg.grokfast_alpha, cfg.grokfast_lamb) if cfg.grokfast_lamb > 0 else None
    history = {k: [] for k in HISTORY_KEYS}
    start_epoch, train_seconds = 0, 0.0
    state = None
    if run is not None and resume:
        state = run.latest_checkpoint(
            cfg.tag, map_location=device, config=asdict(cfg), may_change=RESUME_MAY_CHANGE
        )
    if state is not None:
        start_epoch, train_seconds = _restore(cfg, state, model, opt, grokfast, history)
    snapshots = Snapshots(run, cfg.tag, fresh=start_epoch == 0)
    loop = _Loop(cfg, run, model, opt, grokfast, data, history, snapshots, train_seconds)
    train_cpu = loop.train(device, start_epoch, progress, snapshot_fn, wall_start)
    return finish(cfg, model, data, history, snapshots, loop.train_seconds, train_cpu, wall_start)


def _restore(cfg: TrainConfig, state: dict, model, opt, grokfast, history: dict) -> tuple:
    """Load a checkpoint into the model, optimiser, Grokfast filter and ``history`` (in place);
    returns its ``(epoch, train_seconds)``."""
    if int(state["epoch"]) > cfg.n_epochs:
        raise ValueError(
            f"resume refused: n_epochs={cfg.n_epochs} but the checkpoint of {cfg.tag} is "
            f"already at epoch {int(state['epoch'])}; pass n_epochs >= {int(state['epoch'])} "
            "or start a new run (resume=False)"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if grokfast is not None:
        grokfast.mu = dict(state["grokfast_mu"])
    history.update({k: list(state["history"][k]) for k in HISTORY_KEYS})
    return int(state["epoch"]), float(state["train_seconds"])


@dataclass
class _Loop:
    """The epoch loop of one model: a full-batch step per epoch; evaluation, frames, progress
    snapshots and checkpoints on their epochs, their time kept out of ``train_seconds``."""

    cfg: TrainConfig
    run: Run | None
    model: GrokkingModel
    opt: torch.optim.Optimizer
    grokfast: GrokfastEMA | None
    data: ModularAddition
    history: dict
    snapshots: Snapshots
    train_seconds: float

    def save(self, epoch: int) -> None:
        if self.run is None:
            return
        mu = self.grokfast.mu if self.grokfast is not None else {}
        model, opt, cfg = self.model, self.opt, self.cfg
        state = checkpoint_state(cfg, model.state_dict(), opt.state_dict(), mu, self.history)
        self.run.save_checkpoint(
            {**state, "epoch": epoch, "train_seconds": self.train_seconds}, epoch, cfg.tag
        )

    def step(self, epoch: int, x_train, y_train) -> None:
        cfg, opt, model = self.cfg, self.opt, self.model
        if cfg.warmup_epochs:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(1.0, (epoch + 1) / cfg.warmup_epochs)
        loss = _loss(model(x_train), y_train, cfg.float64_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grokfast is not None:
            self.grokfast.apply(model)
        opt.step()

    def log(self, done: int, bar, wall_start: float) -> None:
        metrics = evaluate(self.model, self.data)
        metrics["train_seconds"] = self.train_seconds
        metrics["wall_seconds"] = time.perf_counter() - wall_start
        self.history["epoch"].append(done)
        for key in HISTORY_KEYS[1:]:
            self.history[key].append(metrics[key])
        bar.set_postfix(train=f"{metrics['train_acc']:.3f}", test=f"{metrics['test_acc']:.3f}")

    def train(self, device, start_epoch: int, progress: bool, snapshot_fn, wall_start) -> float:
        """Train from ``start_epoch`` to ``n_epochs``; returns the training CPU seconds (and
        keeps ``train_seconds`` up to date)."""
        cfg, run, data = self.cfg, self.run, self.data
        x_train, y_train = data.inputs[data.train_idx], data.labels[data.train_idx]
        bar = tqdm(
            range(start_epoch, cfg.n_epochs),
            desc=cfg.tag,
            initial=start_epoch,
            total=cfg.n_epochs,
            disable=not progress,
            mininterval=1.0,
        )
        if cfg.progress_every and start_epoch == 0:
            self.snapshots.save(0, self.model)
        sync_device(device)
        t0, c0, train_cpu = time.perf_counter(), time.process_time(), 0.0
        for epoch in bar:
            self.step(epoch, x_train, y_train)
            done = epoch + 1
            is_eval = done % cfg.eval_every == 0 or done == cfg.n_epochs
            is_ckpt = run is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0
            is_snap = (
                snapshot_fn is not None and cfg.snapshot_every and done % cfg.snapshot_every == 0
            )
            is_prog = cfg.progress_every and (
                done % cfg.progress_every == 0 or done == cfg.n_epochs
            )
            if is_eval or is_ckpt or is_snap or is_prog:
                sync_device(device)
                self.train_seconds += time.perf_counter() - t0
                train_cpu += time.process_time() - c0
                if is_eval:
                    self.log(done, bar, wall_start)
                if is_snap:
                    snapshot_fn(self.model, self.history, done)
                if is_prog:
                    self.snapshots.save(done, self.model)
                if is_ckpt:
                    self.save(done)
                t0, c0 = time.perf_counter(), time.process_time()
        sync_device(device)
        if start_epoch < cfg.n_epochs:
            self.train_seconds += time.perf_counter() - t0
            train_cpu += time.process_time() - c0
        bar.close()
        if run is not None and not (
            cfg.checkpoint_every and cfg.n_epochs % cfg.checkpoint_every == 0
        ):
            self.save(cfg.n_epochs)  # the final state, so a finished arm resumes without training
        return train_cpu


def finish(cfg, model, data, history, snapshots, train_seconds, train_cpu, wall_start):
    """The TrainResult of a trained model: the final metrics with the key frequencies of the
    final model, the progress measures at every snapshot, the embedding spectrum (shared by the
    one-seed and the ensemble paths)."""
    device = data.inputs.device
    p = cfg.p
    key_freqs, key_neurons = key_frequencies_of(model, data)  # fixed from the final model
    final = evaluate(model, data, key_freqs)
    progress = {}
    if cfg.progress_every:
        epochs, states = snapshots.load(cfg.n_epochs, cfg.progress_every, device)
        logits = snapshot_logits(cfg.model_config(), states, data.inputs)
        progress = fixed_key_progress(epochs, logits, key_freqs, data)
        progress.update(key_rule=KEY_RULE, key_neurons=key_neurons)
    with torch.no_grad():
        embed_energy = fourier.frequency_energy(model.W_E[:p].double(), p)
    return TrainResult(
        config=asdict(cfg),
        history=history,
        params=parameter_count(model),
        mixing_params=model.mixing_parameter_count(),
        grok_epoch=grok_epoch(history["epoch"], history["test_acc"], cfg.grok_threshold),
        final=final,
        train_seconds=train_seconds,
        epochs_per_s=cfg.n_epochs / train_seconds if train_seconds > 0 else math.nan,
        wall_seconds=time.perf_counter() - wall_start,
        train_cpu_seconds=train_cpu,
        key_freqs=key_freqs,
        progress=progress,
        embed_energy=embed_energy.tolist(),
        frequency_weights={k: v.tolist() for k, v in model.frequency_weights().items()},
        model=model,
    )


def _mean_std(values) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def summarize(results: list[TrainResult]) -> list[dict]:
    """One row per (p, mixer): mean +- std over seeds of final test accuracy, grok epoch (over
    the seeds that grokked, with the count), epochs/s and the parameter count."""
    rows = []
    groups: dict[tuple, list[TrainResult]] = {}
    for res in results:
        groups.setdefault((res.config["p"], res.config["mixer"]), []).append(res)
    for (p, mixer), group in groups.items():
        acc = _mean_std([r.final["test_acc"] for r in group])
        grok = [r.grok_epoch for r in group]
        grok_ms = _mean_std([g for g in grok if g is not None])
        speed = _mean_std([r.epochs_per_s for r in group])
        rows.append(
            {
                "p": p,
                "mixer": mixer,
                "seeds": len(group),
                "test_acc_mean": acc[0],
                "test_acc_std": acc[1],
                "train_acc_mean": _mean_std([r.final["train_acc"] for r in group])[0],
                "grokked": sum(g is not None for g in grok),
                "grok_epoch_mean": grok_ms[0],
                "grok_epoch_std": grok_ms[1],
                "epochs_per_s_mean": speed[0],
                "epochs_per_s_std": speed[1],
                "params": group[0].params,
                "mixing_params": group[0].mixing_params,
                "chance_acc": 1.0 / p,
            }
        )
    return rows
