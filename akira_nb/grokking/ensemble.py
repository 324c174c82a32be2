"""Train several seeds of one model at once: stacked weights, ``torch.func.vmap``.

The seeds' parameters are stacked along a new leading axis (``torch.func.stack_module_state``),
one forward runs every seed on its own data split through ``vmap(functional_call(...))``, and
one AdamW steps the stacked tensors. AdamW (and the Grokfast EMA filter) act element-wise and the
summed loss gives each seed exactly its own gradient, so this is mathematically the same as
training the seeds one by one (a test checks it). On a GPU, where one tiny model cannot fill the
device, it is much faster; on a 2-core CPU a full-batch step is already compute-bound and the
gain is small (``benchmarks/grokking_speed.py`` prints both).
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from akira_nb import runtime
from akira_nb.grokking.models import GrokkingModel
from akira_nb.grokking.train import GrokfastEMA, TrainConfig, evaluate


def train_seeds(cfg: TrainConfig, seeds, n_epochs: int | None = None) -> dict:
    """Train ``cfg`` for every seed in ``seeds`` at once (no evaluation during training).

    Returns ``{"models": [GrokkingModel per seed], "final": [evaluate() per seed],
    "train_seconds": float, "epochs_per_s": float}`` (epochs/s counts one epoch of all seeds).
    """
    seeds = runtime.check_seeds("seeds", seeds)
    n_epochs = cfg.n_epochs if n_epochs is None else n_epochs
    cfg = replace(cfg, n_epochs=n_epochs).validate()
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
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for epoch in range(n_epochs):
        if cfg.warmup_epochs:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(1.0, (epoch + 1) / cfg.warmup_epochs)
        loss = batched_loss(params, buffers, x, y).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grokfast is not None:
            grokfast.apply_named(params.items())
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
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
