"""Train several seeds of one model at once: stacked weights, ``torch.func.vmap``.

The seeds' parameters are stacked along a new leading axis (``torch.func.stack_module_state``),
one forward runs every seed on its own data split through ``vmap(functional_call(...))``, and
one AdamW steps the stacked tensors. AdamW (and the Grokfast EMA filter) act element-wise and the
summed loss gives each seed exactly its own gradient, so this is mathematically the same as
training the seeds one by one; in float32 on a CPU the tests check which mixers are bitwise
equal to sequential training (``full`` agrees only to float tolerance; on a GPU none is promised).

``train_arms`` is the ensemble path of ``experiment.compare`` (opt-in, ``--ensemble``): the
seeds of one (p, mixer) trained together with the same history, checkpoints, progress snapshots,
frames and results per seed as ``train.train`` writes. ``train_seeds`` is the bare loop (no
evaluation, no files) that ``benchmarks/grokking_speed.py --seeds N`` times.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, replace

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from akira_nb import runtime
from akira_nb.modular_arithmetic.evaluate import evaluate
from akira_nb.modular_arithmetic.models import GrokkingModel
from akira_nb.modular_arithmetic.train import (
    HISTORY_KEYS,
    RESUME_MAY_CHANGE,
    GrokfastEMA,
    Snapshots,
    TrainConfig,
    TrainResult,
    checkpoint_state,
    finish,
    sync_device,
    train,
)


def _step(cfg: TrainConfig, epoch: int, opt, grokfast, params: dict, losses: torch.Tensor):
    """One ensemble update: the warm-up LR for ``epoch``, the summed per-seed losses backward
    (each seed's gradient is its own loss's), Grokfast, the optimiser step."""
    if cfg.warmup_epochs:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (epoch + 1) / cfg.warmup_epochs)
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()
    if grokfast is not None:
        grokfast.apply_named(params.items())
    opt.step()


def train_seeds(cfg: TrainConfig, seeds, n_epochs: int | None = None) -> dict:
    """Train ``cfg`` for every seed in ``seeds`` at once (no evaluation during training).

    Returns ``{"models": [GrokkingModel per seed], "final": [evaluate() per seed],
    "train_seconds": float, "epochs_per_s": float}`` (epochs/s counts one epoch of all seeds).
    """
    seeds = runtime.check_seeds("seeds", seeds)
    n_epochs = cfg.n_epochs if n_epochs is None else n_epochs
    cfg = replace(cfg, n_epochs=n_epochs)
    device = runtime.get_device(cfg.device)
    with runtime.cpu_threads(cfg.cpu_threads, device):
        return _train_seeds(cfg, seeds, device)


def _train_seeds(cfg: TrainConfig, seeds: list[int], device) -> dict:
    n_epochs = cfg.n_epochs
    runtime.flush_denormals()
    datasets, models = [], []
    for seed in seeds:
        datasets.append(replace(cfg, seed=seed).dataset().to(device))
        runtime.seed_everything(seed)
        models.append(GrokkingModel(replace(cfg, seed=seed).model_config()).to(device))
    x = torch.stack([d.inputs[d.train_idx] for d in datasets])
    y = torch.stack([d.labels[d.train_idx] for d in datasets])
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss_one(p, b, xs, ys):
        logits = functional_call(base, (p, b), (xs,))
        return F.cross_entropy(logits.double() if cfg.float64_loss else logits.float(), ys)

    batched_loss = vmap(loss_one)
    opt = torch.optim.AdamW(
        params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(cfg.beta1, cfg.beta2)
    )
    grokfast = GrokfastEMA(cfg.grokfast_alpha, cfg.grokfast_lamb) if cfg.grokfast_lamb else None
    sync_device(device)
    start = time.perf_counter()
    for epoch in range(n_epochs):
        _step(cfg, epoch, opt, grokfast, params, batched_loss(params, buffers, x, y))
    sync_device(device)
    seconds = time.perf_counter() - start
    finals = []
    for i, (model, data) in enumerate(zip(models, datasets)):
        model.load_state_dict({k: v[i].detach() for k, v in params.items()})
        finals.append(evaluate(model, data))
    return {
        "models": models,
        "final": finals,
        "train_seconds": seconds,
        "epochs_per_s": n_epochs / seconds if seconds > 0 else float("nan"),
    }


def train_arms(
    cfgs: list[TrainConfig], run=None, resume: bool = False, progress: bool = True, snapshot_fns=()
) -> list[TrainResult]:
    """Train arms that differ only in their seed as one vmapped ensemble; one TrainResult per
    arm, as ``train.train`` returns it, and the same files per arm (``checkpoints/<tag>/``,
    ``progress/<tag>/``, frames through ``snapshot_fns``). Each arm's ``train_seconds`` is its
    share (1 / n seeds) of the ensemble's training time. A resume whose arms stopped at
    different epochs trains them one after another instead (``train.train``)."""
    for cfg in cfgs:
        if replace(cfg, seed=cfgs[0].seed) != cfgs[0]:
            raise ValueError(
                f"train_arms: arm {cfg.tag} differs from {cfgs[0].tag} in more than its seed"
            )
    snapshot_fns = list(snapshot_fns) or [None] * len(cfgs)
    device = runtime.get_device(cfgs[0].device)
    states = [None] * len(cfgs)
    if run is not None and resume:
        states = [
            run.latest_checkpoint(
                c.tag, map_location=device, config=asdict(c), may_change=RESUME_MAY_CHANGE
            )
            for c in cfgs
        ]
        epochs = {None if st is None else int(st["epoch"]) for st in states}
        if len(epochs) > 1:
            return [
                train(c, run=run, resume=True, progress=progress, snapshot_fn=f)
                for c, f in zip(cfgs, snapshot_fns)
            ]
    with runtime.cpu_threads(cfgs[0].cpu_threads, device):
        return _train_arms(cfgs, device, run, states, progress, snapshot_fns)


def _train_arms(cfgs, device, run, states, progress, snapshot_fns) -> list[TrainResult]:
    wall_start = time.perf_counter()
    runtime.flush_denormals()
    ens = _Ensemble(cfgs, device, run, states)
    train_cpu = ens.train(progress, snapshot_fns, wall_start)
    n_seeds = len(cfgs)
    return [
        finish(
            c,
            model,
            data,
            history,
            snap,
            ens.train_seconds / n_seeds,
            train_cpu / n_seeds,
            wall_start,
        )
        for c, model, data, history, snap in zip(
            cfgs, ens.models, ens.datasets, ens.histories, ens.snapshots
        )
    ]


class _Ensemble:
    """Arms that differ only in their seed, their weights stacked along a leading seed axis:
    built (or restored from per-seed checkpoints ``states``), trained, unstacked, saved."""

    def __init__(self, cfgs: list[TrainConfig], device, run, states: list):
        self.cfgs, self.device, self.run = cfgs, device, run
        cfg = self.cfg = cfgs[0]
        self.datasets, self.models = [], []
        for c in cfgs:
            self.datasets.append(c.dataset().to(device))
            runtime.seed_everything(c.seed)
            self.models.append(GrokkingModel(c.model_config()).to(device))
        self.histories = [{k: [] for k in HISTORY_KEYS} for _ in cfgs]
        self.start_epoch, self.train_seconds = 0, 0.0
        mus = [{} for _ in cfgs]
        if states[0] is not None:
            mus = self._restore_models(states)
        self.params, self.buffers = stack_module_state(self.models)
        self.opt = torch.optim.AdamW(
            self.params.values(),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            betas=(cfg.beta1, cfg.beta2),
        )
        if states[0] is not None:  # per-seed optimizer states, stacked along the seed axis
            per_seed = [st["optimizer"]["state"] for st in states]
            for j, tensor in enumerate(self.params.values()):
                if j in per_seed[0]:
                    self.opt.state[tensor] = {
                        k: v.clone() if v.ndim == 0 else torch.stack([s[j][k] for s in per_seed])
                        for k, v in per_seed[0][j].items()
                    }
        grokfast = GrokfastEMA(cfg.grokfast_alpha, cfg.grokfast_lamb) if cfg.grokfast_lamb else None
        if grokfast is not None and mus[0]:
            grokfast.mu = {k: torch.stack([mu[k] for mu in mus]) for k in mus[0]}
        self.grokfast = grokfast
        self.snapshots = [Snapshots(run, c.tag, fresh=self.start_epoch == 0) for c in cfgs]
        base = copy.deepcopy(self.models[0]).to("meta")

        def loss_one(p, b, xs, ys):
            logits = functional_call(base, (p, b), (xs,))
            return F.cross_entropy(logits.double() if cfg.float64_loss else logits.float(), ys)

        self.batched_loss = vmap(loss_one)
        self.x = torch.stack([d.inputs[d.train_idx] for d in self.datasets])
        self.y = torch.stack([d.labels[d.train_idx] for d in self.datasets])

    def _restore_models(self, states: list) -> list[dict]:
        """Each seed's weights and history from its checkpoint; returns the Grokfast EMAs."""
        cfg = self.cfg
        self.start_epoch = int(states[0]["epoch"])
        if self.start_epoch > cfg.n_epochs:
            raise ValueError(
                f"resume refused: n_epochs={cfg.n_epochs} but the checkpoints of "
                f"{', '.join(c.tag for c in self.cfgs)} are already at epoch {self.start_epoch}; "
                f"pass n_epochs >= {self.start_epoch} or start a new run (resume=False)"
            )
        self.train_seconds = sum(float(st["train_seconds"]) for st in states)
        for i, st in enumerate(states):
            self.models[i].load_state_dict(st["model"])
            self.histories[i] = {k: list(st["history"][k]) for k in HISTORY_KEYS}
        return [dict(st["grokfast_mu"]) for st in states]

    @torch.no_grad()
    def unstack(self) -> None:
        """The stacked weights into each seed's own model."""
        for i, model in enumerate(self.models):
            for name, prm in model.named_parameters():
                prm.copy_(self.params[name][i])

    def save(self, epoch: int) -> None:
        """One checkpoint per seed, as ``train.train`` writes it."""
        stacked, grokfast = self.opt.state_dict(), self.grokfast
        for i, c in enumerate(self.cfgs):
            opt_state = {
                "state": {
                    j: {k: v.clone() if v.ndim == 0 else v[i].clone() for k, v in st.items()}
                    for j, st in stacked["state"].items()
                },
                "param_groups": copy.deepcopy(stacked["param_groups"]),
            }
            mu = {k: v[i].clone() for k, v in grokfast.mu.items()} if grokfast is not None else {}
            state = checkpoint_state(
                c, self.models[i].state_dict(), opt_state, mu, self.histories[i]
            )
            share = self.train_seconds / len(self.cfgs)
            self.run.save_checkpoint(
                {**state, "epoch": epoch, "train_seconds": share}, epoch, c.tag
            )

    def visit(self, done, is_eval, is_snap, is_prog, snapshot_fns, wall_start) -> None:
        """Evaluate, draw frames and keep progress snapshots of every seed at epoch ``done``."""
        self.unstack()
        n_seeds = len(self.cfgs)
        for i, (model, data, history) in enumerate(zip(self.models, self.datasets, self.histories)):
            if is_eval:
                metrics = evaluate(model, data)
                metrics["train_seconds"] = self.train_seconds / n_seeds
                metrics["wall_seconds"] = time.perf_counter() - wall_start
                history["epoch"].append(done)
                for key in HISTORY_KEYS[1:]:
                    history[key].append(metrics[key])
            if is_snap and snapshot_fns[i] is not None:
                snapshot_fns[i](model, history, done)
            if is_prog:
                self.snapshots[i].save(done, model)

    def train(self, progress: bool, snapshot_fns, wall_start: float) -> float:
        """Train every seed to ``n_epochs``; returns the training CPU seconds of all seeds."""
        cfg, cfgs, run, device, start_epoch = (
            self.cfg,
            self.cfgs,
            self.run,
            self.device,
            self.start_epoch,
        )
        if cfg.progress_every and start_epoch == 0:
            for snap, model in zip(self.snapshots, self.models):
                snap.save(0, model)
        bar = tqdm(
            range(start_epoch, cfg.n_epochs),
            desc=f"{cfgs[0].tag}..s{cfgs[-1].seed} ({len(cfgs)} seeds, vmap)",
            initial=start_epoch,
            total=cfg.n_epochs,
            disable=not progress,
            mininterval=1.0,
        )
        sync_device(device)
        t0, c0, train_cpu = time.perf_counter(), time.process_time(), 0.0
        for epoch in bar:
            losses = self.batched_loss(self.params, self.buffers, self.x, self.y)
            _step(cfg, epoch, self.opt, self.grokfast, self.params, losses)
            done = epoch + 1
            is_eval = done % cfg.eval_every == 0 or done == cfg.n_epochs
            is_ckpt = run is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0
            is_snap = any(snapshot_fns) and cfg.snapshot_every and done % cfg.snapshot_every == 0
            is_prog = cfg.progress_every and (
                done % cfg.progress_every == 0 or done == cfg.n_epochs
            )
            if is_eval or is_ckpt or is_snap or is_prog:
                sync_device(device)
                self.train_seconds += time.perf_counter() - t0
                train_cpu += time.process_time() - c0
                self.visit(done, is_eval, is_snap, is_prog, snapshot_fns, wall_start)
                if is_ckpt:
                    self.save(done)
                t0, c0 = time.perf_counter(), time.process_time()
        sync_device(device)
        if start_epoch < cfg.n_epochs:
            self.train_seconds += time.perf_counter() - t0
            train_cpu += time.process_time() - c0
        bar.close()
        self.unstack()
        if run is not None and not (
            cfg.checkpoint_every and cfg.n_epochs % cfg.checkpoint_every == 0
        ):
            self.save(cfg.n_epochs)  # the final state, so finished arms resume without training
        return train_cpu
