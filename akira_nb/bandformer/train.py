"""Training for the band transformer (026) and the differential-LR study (013): one arm per call,
on one device or many (``torchrun``).

``train(cfg)`` trains one arm (``ARMS``) of :class:`TrainConfig` on packed text from
:mod:`akira_nb.text` and returns a :class:`TrainResult`. What it does, step by step:

- Data (:func:`make_data`): ``offline`` (the kit's standard-library docstring corpus, byte
  tokenizer, vocabulary 257), ``wikitext-2`` / ``wikitext-103`` (Hugging Face, official splits)
  or ``tinystories`` (Hugging Face ``roneneldan/TinyStories``, each story followed by EOS), the
  last three with the GPT-2 tokenizer (vocabulary 50257); they need the Hub (Colab) and raise
  :class:`akira_nb.text.CorpusUnavailableError` (a ``ValueError``) offline. Every split is
  packed into contiguous ``[n, seq_len]`` blocks, so no position is padding and the loss counts
  real tokens only (the reference padded every line to 256 and counted the padding). The
  offline corpus is split by document with ``data_seed``.
- Batches: step ``s`` reads blocks ``s * batch_size .. (s + 1) * batch_size - 1`` of a stream
  that walks one seeded permutation of the train blocks per epoch (``numpy`` generator seeded by
  ``[data_seed, epoch]``), so a batch is a function of the step alone: a resumed run reads the
  same batches, and under DDP rank ``r`` of ``W`` reads rows ``r * batch_size / W ..`` of the
  same global batch (the global batch equals the single-process one).
- Validation: a fixed set, ``eval_batches * batch_size`` blocks drawn once from the validation
  split with ``data_seed`` (all of it when it is smaller), evaluated every ``eval_every`` steps
  and at the end; ``val_loss`` is the mean next-token cross-entropy over all its positions.
  The final validation loss (``final_val_loss``) is over at least ``final_eval_predictions``
  predictions (:func:`final_validation_blocks`: a superset of that set, the whole split when
  it is smaller), beside the unigram cross-entropy of the same blocks.
- Loss: :func:`~akira_nb.bandformer.model.training_loss` in training (the next-token
  cross-entropy whose backward reuses the logits' memory for their gradient: one
  ``[batch, seq, vocab]`` buffer per step instead of four, 823 MB each at t4 in fp32), and the
  model's ``loss_sum`` in evaluation (logits a chunk of positions at a time, no gradient).
- Model (:func:`build_model`): the ``preset`` with ``model_overrides``, the arm's layout and
  wormhole, ``vocab_size`` from the tokenizer and ``n_ctx = seq_len`` unless overridden;
  ``baseline`` is ``BaselineTransformer.matched_to`` the ``band`` arm's config. Initialised
  from ``seed``. ``baseline_differential`` is that baseline trained with the band LRs over its
  hidden units split into the band slices (013's "differential LR without bands";
  :func:`~akira_nb.bandformer.optim.make_sliced_adamw`).
- Optimiser: AdamW from :func:`akira_nb.bandformer.optim.param_groups` (per-band groups, no
  decay on norms, biases and embeddings) in the arm's ``lr_mode``; before every step
  :func:`~akira_nb.bandformer.optim.set_lrs` sets each group's LR from its own base LR (linear
  warm-up over ``warmup_steps``, cosine to ``min_lr_ratio`` at ``total_steps``); gradients
  clipped to ``grad_clip`` (global norm; 0 = off); AMP per device (bf16 on A100-class GPUs, fp16
  with a GradScaler on T4-class, fp32 on CPU; :mod:`akira_nb.runtime`).
- Monitoring: the per-band :class:`~akira_nb.bandformer.optim.WeightChangeMonitor` every
  ``monitor_every`` steps; the history holds, at every evaluation, the step, the tokens seen,
  the mean train loss and pre-clip gradient norm since the previous evaluation, the validation
  loss and every group's LR; a tqdm bar (``progress``) shows the loss; one summary line at the
  end.
- Checkpoints (with ``run``): ``checkpoints/<tag or arm>/`` every ``checkpoint_every`` steps
  (the newest two kept), holding the model, optimiser, GradScaler, history, monitor history,
  step, the partial sums of the current evaluation interval, every step's train loss so far,
  the monitor's state (its snapshot too when the checkpoint falls between two of its
  intervals, so ``checkpoint_every`` need not be a multiple of ``monitor_every``) and the
  config (``TrainConfig.to_dict``). The final checkpoint, at ``total_steps``, holds the same
  without the optimiser and GradScaler states (``None``) and replaces the resume checkpoints
  (a finished arm keeps only its final weights and record: 117 MB instead of two of ~350 MB
  for the 026 model at vocabulary 50257). ``resume=True`` continues from the newest one and
  ends with the same losses as an uninterrupted run (dropout is reseeded from ``(seed, step,
  rank)`` at every step, so no RNG state needs saving); a finished arm is reloaded from its
  final checkpoint without training. A checkpoint made with other settings is refused naming
  the fields (only ``RESUME_MAY_CHANGE`` may differ).
- DDP: started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set), ``train``
  joins the process group (gloo on CPU, nccl on CUDA, each rank on ``cuda:LOCAL_RANK``), wraps
  the model in ``DistributedDataParallel`` (which averages the gradients over ranks, so the
  update equals the single-process one on the global batch), all-reduces the logged losses and
  writes checkpoints on rank 0 only. The entry point::

      python -m torch.distributed.run --nproc_per_node 2 -m akira_nb.bandformer.train --arm band

  (or ``python -m akira_nb.bandformer.train`` for one process) writes one run folder
  ``<output_dir>/026_band_transformer/<time>-<name>/`` from rank 0: ``config.json``,
  ``results.json``, ``figures/<name>_loss.png`` and the checkpoints.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import functools
import gc
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from akira_nb import runtime, standins, text
from akira_nb.bandformer import optim
from akira_nb.bandformer.model import (
    PRESETS,
    BandConfig,
    BandTransformer,
    BaselineTransformer,
    model_summary,
    next_token_loss,
    preset,
    training_loss,
)
from akira_nb.runs import Run, check_name, check_runs_root

EXPERIMENT = "026_band_transformer"
ARMS = (
    "baseline",
    "band",
    "band_uniform",
    "band_geomean",
    "band_no_wormhole",
    "reference",
    "baseline_differential",
    "baseline_wide",
)
# the GPTs, no bands: matched in parameters (the first two) or in width (baseline_wide)
BASELINE_ARMS = ("baseline", "baseline_differential", "baseline_wide")
# What each arm sets in the band config (model_overrides may not contradict it) ...
ARM_MODEL: dict[str, dict[str, Any]] = {
    "baseline": dict(layout="band", wormhole=True),  # the band config it is matched to
    "band": dict(layout="band", wormhole=True),
    "band_uniform": dict(layout="band", wormhole=True),
    "band_geomean": dict(layout="band", wormhole=True),
    "band_no_wormhole": dict(layout="band", wormhole=False),
    "reference": dict(layout="reference", wormhole=False),  # as the reference's reported runs
    "baseline_differential": dict(layout="band", wormhole=True),  # as baseline
    "baseline_wide": dict(layout="band", wormhole=True),  # as baseline
}
# ... and its LR mode (TrainConfig.lr_mode=None picks this one).
ARM_LR_MODE = {
    "baseline": "uniform",
    "band": "differential",
    "band_uniform": "uniform",
    "band_geomean": "geomean",
    "band_no_wormhole": "differential",
    "reference": "differential",
    "baseline_differential": "differential",  # the band LRs over the GPT's hidden slices
    "baseline_wide": "uniform",
}
DATASETS = ("offline", "wikitext-2", "wikitext-103", "tinystories")
TOKENIZER = {"offline": "byte", "wikitext-2": "gpt2", "wikitext-103": "gpt2", "tinystories": "gpt2"}
VOCAB_SIZE = {"byte": 257, "gpt2": 50257, "gpt2-standin": 50257}
TINYSTORIES = "roneneldan/TinyStories"
# Settings a resume may change: none alters the computation (another device or thread count
# may round differently in the last bits). total_steps is not among them (it sets the cosine
# schedule), nor any interval that sets the history's grid.
RESUME_MAY_CHANGE = ("device", "progress", "checkpoint_every", "cpu_threads")
_POSTFIX_EVERY = 20  # steps between progress-bar loss updates (each one syncs the device)


# ----------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """One arm's training run. ``lr_mode=None`` means the arm's (``ARM_LR_MODE``);
    ``data_seed=None`` means ``seed`` (the split and the batch order; ``seed`` sets the
    initialisation and dropout). ``checkpoint_every=0`` keeps only the final checkpoint,
    ``monitor_every=0`` turns the weight-change monitor off, ``grad_clip=0`` clipping off,
    ``max_train_tokens`` caps the train split (None: all of it), ``cpu_threads=0`` leaves
    torch's thread count alone. ``final_eval_predictions=N`` evaluates the final model on at
    least ``N`` predictions of the validation split (all of it when it holds fewer; 0: the
    ``eval_batches`` set, as every evaluation during training). ``offline=True`` replaces each
    download with its stand-in of the same shape (:mod:`akira_nb.standins`): a Hub ``dataset``
    is read from the offline corpus, tokenized by the stand-in of its tokenizer
    (``gpt2-standin``: vocabulary 50257), so the model has the real shapes; a resume never
    changes it."""

    arm: str = "band"
    preset: str = "tiny"
    model_overrides: dict = field(default_factory=dict)
    dataset: str = "offline"
    seq_len: int = 64
    batch_size: int = 16
    total_steps: int = 500
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    lr_mode: str | None = None
    eval_every: int = 100
    eval_batches: int = 8
    final_eval_predictions: int = 0
    seed: int = 0
    data_seed: int | None = None
    max_train_tokens: int | None = None
    device: str = "auto"
    checkpoint_every: int = 500
    monitor_every: int = 100
    cpu_threads: int = 1
    progress: bool = True
    offline: bool = False

    def validate(self) -> TrainConfig:
        """Check every field (``ValueError`` naming it) and that the model config builds."""
        runtime.check_choice("arm", self.arm, ARMS)
        runtime.check_choice("preset", self.preset, PRESETS)
        runtime.check_choice("dataset", self.dataset, DATASETS)
        runtime.check_int("seq_len", self.seq_len, low=2)
        runtime.check_int("batch_size", self.batch_size, low=1)
        runtime.check_int("total_steps", self.total_steps, low=1)
        runtime.check_int("warmup_steps", self.warmup_steps, low=0, high=self.total_steps)
        runtime.check_real("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        runtime.check_real("weight_decay", self.weight_decay, low=0.0)
        runtime.check_real("grad_clip", self.grad_clip, low=0.0)
        if self.lr_mode is not None:
            runtime.check_choice("lr_mode", self.lr_mode, optim.LR_MODES)
        runtime.check_int("eval_every", self.eval_every, low=1)
        runtime.check_int("eval_batches", self.eval_batches, low=1)
        runtime.check_int("final_eval_predictions", self.final_eval_predictions, low=0)
        runtime.check_int("seed", self.seed, low=0)
        if self.data_seed is not None:
            runtime.check_int("data_seed", self.data_seed, low=0)
        if self.max_train_tokens is not None:
            runtime.check_int("max_train_tokens", self.max_train_tokens, low=self.seq_len)
        runtime.check_device("device", self.device)
        for name in ("checkpoint_every", "monitor_every", "cpu_threads"):
            runtime.check_int(name, getattr(self, name), low=0)
        if self.arm == "baseline_differential" and self.resolved_lr_mode() != "differential":
            raise ValueError(
                f"lr_mode={self.lr_mode!r} does not apply to arm='baseline_differential' (the "
                "band LRs over the baseline's hidden slices): leave lr_mode None, or use "
                "arm='baseline' for one LR"
            )
        runtime.check_bool("progress", self.progress)
        runtime.check_bool("offline", self.offline)
        self.band_config()  # the model settings, checked by BandConfig.validate
        return self

    @property
    def tokens_per_step(self) -> int:
        """Tokens of one global batch: ``batch_size * seq_len``."""
        return self.batch_size * self.seq_len

    @property
    def tokenizer(self) -> str:
        """The dataset's tokenizer; offline, its stand-in (``gpt2`` -> ``gpt2-standin``)."""
        name = TOKENIZER[self.dataset]
        return standins.tokenizer_for(name) if self.offline else name

    @property
    def corpus(self) -> str:
        """The corpus read: ``dataset``; offline, its stand-in (the offline corpus)."""
        return standins.corpus(self.dataset) if self.offline else self.dataset

    def standins(self) -> dict:
        """``{what a run would download: its stand-in}`` (empty unless ``offline``)."""
        if not self.offline:
            return {}
        out = {}
        if self.corpus != self.dataset:
            out[f"{self.dataset} (Hugging Face)"] = f"the kit's {self.corpus} corpus"
        if self.tokenizer != TOKENIZER[self.dataset]:
            out[f"{TOKENIZER[self.dataset]} tokenizer"] = self.tokenizer
        return out

    @property
    def split_seed(self) -> int:
        """The data split's and batch order's seed: ``data_seed``, else ``seed``."""
        return self.seed if self.data_seed is None else self.data_seed

    def resolved_lr_mode(self) -> str:
        """``lr_mode``, else the arm's."""
        return ARM_LR_MODE[self.arm] if self.lr_mode is None else self.lr_mode

    def band_config(self) -> BandConfig:
        """The validated band config: the preset, ``model_overrides``, the arm's settings,
        the tokenizer's vocabulary and ``n_ctx = seq_len`` (unless overridden, then >= it).
        For ``baseline`` it is the band config the baseline is matched to."""
        if not isinstance(self.model_overrides, dict):
            raise ValueError(f"model_overrides={self.model_overrides!r} must be a dict")
        known = {f.name for f in fields(BandConfig)}
        unknown = sorted(set(self.model_overrides) - known)
        if unknown:
            raise ValueError(
                f"model_overrides has unknown BandConfig fields {unknown}; allowed: {sorted(known)}"
            )
        vocab = VOCAB_SIZE[self.tokenizer]
        fixed = {**ARM_MODEL[self.arm], "vocab_size": vocab}
        for key, value in fixed.items():
            if key in self.model_overrides and self.model_overrides[key] != value:
                why = f"arm={self.arm!r}" if key != "vocab_size" else f"dataset={self.dataset!r}"
                raise ValueError(
                    f"model_overrides[{key!r}]={self.model_overrides[key]!r} contradicts "
                    f"{why}, which sets {key}={value!r}; drop the override or pick another "
                    f"{'arm' if key != 'vocab_size' else 'dataset'}"
                )
        overrides = {"n_ctx": self.seq_len, **self.model_overrides, **fixed}
        cfg = preset(self.preset, **overrides)
        if cfg.n_ctx < self.seq_len:
            raise ValueError(
                f"model_overrides['n_ctx']={cfg.n_ctx} is shorter than seq_len={self.seq_len}; "
                "the model must read whole blocks"
            )
        return cfg

    def to_dict(self) -> dict:
        """The fields with ``lr_mode`` resolved (what checkpoints and results store)."""
        return {**asdict(self), "lr_mode": self.resolved_lr_mode()}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {sorted(known)}")
        return cls(**data).validate()


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


# ----------------------------------------------------------------------------- data


def make_data(cfg: TrainConfig) -> text.TokenSplits:
    """The packed train / val / test blocks of ``cfg.dataset`` (cached per process: two
    arms with the same data share them); a ``ValueError`` when a batch would not fit in the
    train blocks (every caller loads the data before its run folder exists, so a batch that
    does not fit leaves nothing behind)."""
    cfg.validate()
    splits = _splits(cfg.corpus, cfg.tokenizer, cfg.seq_len, cfg.split_seed, cfg.max_train_tokens)
    check_batch_fits(cfg, splits)
    return splits


def check_batch_fits(cfg: TrainConfig, splits: text.TokenSplits) -> None:
    """Raise ``ValueError`` naming ``batch_size`` when one batch needs more sequences than
    the train split has blocks (each would be drawn several times in one step, and the step's
    activations grow with the batch, not the data)."""
    n = int(splits.train.shape[0])
    if cfg.batch_size > n:
        raise ValueError(
            f"batch_size={cfg.batch_size} is more than the {n:,} training blocks of "
            f"{cfg.seq_len} tokens that dataset={cfg.dataset!r} has; pass batch_size <= {n}"
        )


@functools.lru_cache(maxsize=2)
def _splits(dataset: str, tokenizer: str, seq_len: int, seed: int, max_train_tokens: int | None):
    if dataset == "tinystories":
        return _tinystories(seq_len, max_train_tokens)
    return text.make_splits(
        corpus=dataset,
        tokenizer=tokenizer,
        seq_len=seq_len,
        seed=seed,
        max_train_tokens=max_train_tokens,
    )


def _tinystories(seq_len: int, max_train_tokens: int | None) -> text.TokenSplits:
    """TinyStories (train / validation; it has no test split, so ``test`` has no blocks),
    GPT-2 tokens, each story followed by EOS, packed."""
    runtime.require_hub("dataset='tinystories'")  # one line at once when the Hub is unreachable
    tok = text.gpt2_tokenizer()
    try:
        import datasets
    except ImportError as exc:
        raise text.CorpusUnavailableError(
            "dataset='tinystories' needs the 'datasets' package (pip install datasets); "
            "or use dataset='offline'"
        ) from exc
    ids = {}
    for split, hf_split in (("train", "train"), ("val", "validation")):
        try:
            stories = datasets.load_dataset(TINYSTORIES, split=hf_split)["text"]
        except Exception as exc:  # ConnectionError offline, HTTP errors, ...
            raise text.CorpusUnavailableError(
                f"could not load dataset='tinystories' ({TINYSTORIES}, split {hf_split!r}) from "
                f"the Hugging Face Hub ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                "); this machine may be offline: use dataset='offline' (or run on Colab)"
            ) from exc
        cap = max_train_tokens if split == "train" else None
        parts = text.encode_each([s for s in stories if s.strip()], tok, cap)
        eos = np.array([tok.eos_token_id], dtype=np.int64)
        joined = np.concatenate([x for p in parts for x in (p, eos)])
        ids[split] = joined[:cap] if cap else joined
    return text.TokenSplits(
        train=text.pack(ids["train"], seq_len),
        val=text.pack(ids["val"], seq_len),
        test=torch.zeros(0, seq_len, dtype=torch.long),
        vocab_size=len(tok),
        eos_id=int(tok.eos_token_id),
        config={"corpus": "tinystories", "tokenizer": "gpt2", "seq_len": seq_len},
        info={"corpus": "tinystories", "source": f"Hugging Face datasets {TINYSTORIES}"},
    )


def train_batch(cfg: TrainConfig, n_blocks: int, step: int) -> torch.Tensor:
    """Indices (into the train blocks) of the global batch of optimiser step ``step``: rows
    ``step * batch_size ..`` of a stream that walks a permutation of ``range(n_blocks)`` per
    epoch, seeded by ``[split_seed, epoch]``."""
    pos = step * cfg.batch_size + np.arange(cfg.batch_size)
    epochs, within = np.divmod(pos, n_blocks)
    out = np.empty(cfg.batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):  # one or two epochs per batch (more if n_blocks < batch)
        mask = epochs == epoch
        out[mask] = _epoch_order(cfg.split_seed, int(epoch), n_blocks)[within[mask]]
    return torch.from_numpy(out)


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, n_blocks: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n_blocks)


def validation_blocks(cfg: TrainConfig, val: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """The fixed validation set: ``eval_batches * batch_size`` blocks of ``val`` (or ``n``)
    picked with ``split_seed`` (all of them, in that order, when there are fewer). A larger
    ``n`` gives a superset of a smaller one (the first ``n`` of one seeded permutation)."""
    n = min(cfg.eval_batches * cfg.batch_size if n is None else n, val.shape[0])
    order = np.random.default_rng([cfg.split_seed, 1 << 20]).permutation(val.shape[0])
    return val[torch.from_numpy(np.sort(order[:n]))]


def final_validation_blocks(cfg: TrainConfig, val: torch.Tensor) -> torch.Tensor:
    """The set of the final validation loss: at least ``final_eval_predictions`` predictions
    (``seq_len - 1`` per block) and never fewer blocks than the evaluation set, which it
    contains; the whole split when it holds fewer. ``final_eval_predictions=0``: the evaluation
    set itself."""
    need = math.ceil(cfg.final_eval_predictions / (cfg.seq_len - 1))
    return validation_blocks(cfg, val, max(need, cfg.eval_batches * cfg.batch_size))


# ----------------------------------------------------------------------------- model, steps


def build_model(cfg: TrainConfig) -> tuple[torch.nn.Module, BandConfig]:
    """``(model, band_cfg)`` of ``cfg.arm``, initialised from ``cfg.seed`` (on the CPU):
    ``baseline`` / ``baseline_differential`` the GPT matched to the band model's parameter count,
    ``baseline_wide`` the GPT as wide as the band model
    (:meth:`~akira_nb.bandformer.model.BaselineTransformer.equal_width_config`)."""
    band_cfg = cfg.validate().band_config()
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
    tokens): :func:`count_step_flops` of the arm's model built on the meta device (nothing is
    computed or allocated). The learning rates do not change it (cached without them)."""
    band_cfg = cfg.validate().band_config()
    shape = {k: v for k, v in band_cfg.to_dict().items() if k not in ("band_lrs", "shared_lr")}
    key = (cfg.arm, cfg.batch_size, cfg.seq_len, tuple(sorted(shape.items())))
    if key not in _FLOPS:
        with torch.device("meta"):
            model, _ = build_model(cfg)
        _FLOPS[key] = count_step_flops(model, cfg.batch_size, cfg.seq_len)
    return _FLOPS[key]


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


def _step_seed(seed: int, step: int, rank: int) -> int:
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


# ----------------------------------------------------------------------------- DDP


def dist_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when started by torchrun with more than one process,
    else None."""
    if not all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        return None
    world = int(os.environ["WORLD_SIZE"])
    if world < 2:
        return None
    return int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"])


def dist_device(device: str) -> torch.device:
    """The device of this process: ``cfg.device`` (``auto``: CUDA when present), and under DDP
    on CUDA the local rank's GPU."""
    dev = runtime.get_device(device)
    env = dist_env()
    if env is not None and dev.type == "cuda":
        dev = torch.device("cuda", env[2])
        torch.cuda.set_device(dev)
    return dev


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join the torchrun process group for the block (gloo on CPU, nccl on CUDA) when started
    by torchrun and none exists yet; barrier and leave it afterwards. Yields ``(rank, world)``
    (``(0, 1)`` in one process)."""
    env = dist_env()
    if env is None:
        yield 0, 1
        return
    if dist.is_initialized():
        yield dist.get_rank(), dist.get_world_size()
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield dist.get_rank(), dist.get_world_size()
        dist.barrier()
    finally:
        dist.destroy_process_group()


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
    cfg.validate()
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
    lr_keys = list(group_lrs(opt))
    history: dict[str, list] = {
        k: [] for k in ("step", "tokens", "train_loss", "grad_norm", "val_loss")
    }
    history.update({f"lr/{k}": [] for k in lr_keys})
    step, train_seconds = 0, 0.0
    loss_sum = torch.zeros((), device=device)
    norm_sum = torch.zeros((), device=device)
    n_sum = 0  # steps in loss_sum / norm_sum (since the last evaluation)
    step_losses = torch.zeros(cfg.total_steps, device=device)  # every step's train loss

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
        history = {k: list(v) for k, v in state["history"].items()}
        step, train_seconds = int(state["step"]), float(state["train_seconds"])
        loss_sum, norm_sum = state["loss_sum"].to(device), state["norm_sum"].to(device)
        n_sum = int(state["n_sum"])
        if "step_losses" in state:
            step_losses.copy_(state["step_losses"].to(device))
    monitor = None
    if cfg.monitor_every:
        monitor = optim.WeightChangeMonitor(
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

    def save(at: int) -> None:
        losses = _rank_mean(step_losses, world)  # a collective: every rank calls save
        if run is None or rank != 0:
            return
        final = at == cfg.total_steps  # finished: the weights and the record, no resume state
        run.save_checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": None if final else opt.state_dict(),
                "scaler": None if final else scaler.state_dict(),
                "history": history,
                "weight_change": monitor.history if monitor is not None else {},
                # a finished arm takes no further step: no snapshot (a copy of the weights)
                "monitor": (
                    monitor.state_dict(monitor.last_step if final else at)
                    if monitor is not None
                    else {}
                ),
                "step_losses": losses.cpu(),
                "step": at,
                "train_seconds": train_seconds,
                "loss_sum": loss_sum.cpu(),
                "norm_sum": norm_sum.cpu(),
                "n_sum": n_sum,
                "config": cfg.to_dict(),
            },
            at,
            tag=tag,
            keep=1 if final else 2,  # the final checkpoint replaces the resume checkpoints
        )

    net = model
    if world > 1:
        # the buffers are constant index maps: nothing to broadcast at every forward
        ids = [device] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
    params = [p for p in model.parameters() if p.requires_grad]
    val_blocks = validation_blocks(cfg, splits.val)
    per_rank = cfg.batch_size // world
    rows = slice(rank * per_rank, (rank + 1) * per_rank)

    bar = tqdm(
        total=cfg.total_steps,
        initial=step,
        desc=tag,
        disable=not (cfg.progress and rank == 0),
        mininterval=1.0,
    )
    net.train()
    _sync(device)
    t0 = time.perf_counter()
    while step < cfg.total_steps:
        torch.manual_seed(_step_seed(cfg.seed, step, rank))  # dropout: a function of the step
        idx = train_batch(cfg, splits.train.shape[0], step)[rows]
        x = splits.train[idx].to(device, non_blocking=True)
        with runtime.autocast(device):
            loss = training_loss(net(x), x)  # the logits become their gradient in backward
        optim.set_lrs(opt, step, cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)
        opt.zero_grad(set_to_none=True)
        norm = optimizer_step(loss, opt, scaler, params, cfg.grad_clip)
        loss_sum += loss.detach().float()
        norm_sum += norm.detach().float()
        step_losses[step] = loss.detach().float()
        n_sum += 1
        step += 1
        bar.update(1)
        if monitor is not None:
            monitor.step(step)
        if step % _POSTFIX_EVERY == 0 and bar.n and not bar.disable:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
        is_eval = step % cfg.eval_every == 0 or step == cfg.total_steps
        is_ckpt = cfg.checkpoint_every and step % cfg.checkpoint_every == 0
        if not (is_eval or is_ckpt or step == cfg.total_steps):
            continue
        _sync(device)
        train_seconds += time.perf_counter() - t0
        if is_eval:
            sums = torch.stack([loss_sum, norm_sum])
            if world > 1:
                dist.all_reduce(sums)
            train_loss, grad_norm = (sums / (world * n_sum)).tolist()
            val = evaluate(model, val_blocks, cfg, device, rank, world)
            history["step"].append(step)
            history["tokens"].append(step * cfg.tokens_per_step)
            history["train_loss"].append(train_loss)
            history["grad_norm"].append(grad_norm)
            history["val_loss"].append(val)
            for k, lr in group_lrs(opt).items():
                history[f"lr/{k}"].append(lr)
            loss_sum.zero_(), norm_sum.zero_()
            n_sum = 0
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
        if is_ckpt or step == cfg.total_steps:
            save(step)
        t0 = time.perf_counter()
    bar.close()
    model.zero_grad(set_to_none=True)  # the last step's gradients (the model's size) go

    final_blocks = final_validation_blocks(cfg, splits.val)
    if final_blocks.shape[0] > val_blocks.shape[0]:
        final = evaluate(model, final_blocks, cfg, device, rank, world)
    else:
        final = history["val_loss"][-1]
    tokens = cfg.total_steps * cfg.tokens_per_step
    per_step = _rank_mean(step_losses, world).tolist()
    result = TrainResult(
        config=cfg.to_dict(),
        history=history,
        weight_change=monitor.history if monitor is not None else {},
        final_val_loss=final,
        final_val_ppl=math.exp(final),
        step_losses=per_step,
        tokens_seen=tokens,
        tokens_per_s=tokens / train_seconds if train_seconds > 0 else math.nan,
        params=model_summary(model),
        seconds=time.perf_counter() - wall_start,
        train_seconds=train_seconds,
        data={
            **splits.summary(),
            "val_set_blocks": int(val_blocks.shape[0]),
            "final_val_blocks": int(final_blocks.shape[0]),
            "final_val_predictions": int(final_blocks.shape[0] * (final_blocks.shape[1] - 1)),
            "unigram_val_loss": _unigram(splits, final_blocks),
            "unigram_eval_loss": _unigram(splits, val_blocks),
        },
        device=str(device),
        world_size=world,
        prescribed_lrs=optim.prescribed_lrs(opt),
        model=model,
    )
    if rank == 0:
        print(summary_line(tag, result), flush=True)
    return result


def _unigram(splits: text.TokenSplits, blocks: torch.Tensor) -> float:
    """The unigram cross-entropy of ``blocks`` under the train split's token frequencies."""
    return text.unigram_cross_entropy(splits.train, blocks, splits.vocab_size)


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


def _rank_mean(values: torch.Tensor, world: int) -> torch.Tensor:
    """``values`` averaged over the DDP ranks (a copy; ``values`` itself when alone)."""
    if world == 1:
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out / world


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    ).validate()


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
