"""One training step and one evaluation of the trainer: the optimiser step (scaler, clipping),
the group LRs, the dropout seed of a step, the evaluation loss (under DDP split over the ranks)
and the FLOPs of a step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist

from akira_nb import runtime
from akira_nb.bandformer import optim
from akira_nb.bandformer.config import TrainConfig
from akira_nb.bandformer.lm import next_token_loss


def count_step_flops(model, batch_size: int, seq_len: int) -> int:
    """FLOPs of the forward and backward of the next-token loss of ``model`` (train mode) on a
    ``[batch_size, seq_len]`` batch, by ``torch.utils.flop_counter.FlopCounterMode``: every
    matrix product (2 FLOPs per multiply-add) as the kernels run it, the band model's
    zero-padded band groups included; attention as on the meta device, where it runs as its two
    batched T x T products (no causal saving); elementwise ops are not counted. Build the model
    on the meta device (on the CPU the fused attention kernel has no FLOP formula here)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    model.train()
    x = torch.zeros(batch_size, seq_len, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter:
        next_token_loss(model(x), x).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def optimizer_step(loss: torch.Tensor, optimizer, scaler, params, grad_clip: float) -> torch.Tensor:
    """Backward (through ``scaler``), unscale, clip the global gradient norm of ``params`` to
    ``grad_clip`` (0: no clipping), step and update the scaler. Returns the gradient norm before
    clipping. The gradients stay in place (zero them before the next backward)."""
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else math.inf)
    scaler.step(optimizer)
    scaler.update()
    return norm


def group_lrs(optimizer) -> dict[str, float]:
    """The current LR of each band group (``/no_decay`` siblings share it)."""
    return {g["name"].removesuffix(optim.NO_DECAY): float(g["lr"]) for g in optimizer.param_groups}


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1)


def evaluate(model, blocks: torch.Tensor, cfg: TrainConfig, device, rank=0, world=1) -> float:
    """Mean next-token loss over every position of ``blocks`` (:func:`mean_loss` in batches
    of ``batch_size``)."""
    return mean_loss(model, blocks, cfg.batch_size, device, rank, world)


@torch.no_grad()
def mean_loss(model, blocks: torch.Tensor, batch_size: int, device, rank=0, world=1) -> float:
    """Mean next-token loss over every prediction of ``blocks``, in eval mode, in batches of
    ``batch_size`` under the training's autocast (:func:`akira_nb.runtime.autocast`), each
    batch's loss from the model's ``loss_sum`` (logits a chunk of positions at a time, never
    the whole ``[batch, seq, vocab]``); under DDP rank r takes batches r, r + W, .., and the
    sums are all-reduced. Hooks attached to the model apply (the band ablation's)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for i, start in enumerate(range(0, blocks.shape[0], batch_size)):
            if i % world != rank:
                continue
            x = blocks[start : start + batch_size].to(device)
            with runtime.autocast(device):
                total += model.loss_sum(x).double()
        if world > 1:
            dist.all_reduce(total)
    finally:
        model.train(was_training)
    return float(total) / (blocks.shape[0] * (blocks.shape[1] - 1))
