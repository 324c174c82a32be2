"""The trainer's data: the packed splits of each dataset (cached per process), the batch of every
optimiser step (a function of the step alone, so a resumed run reads the same batches, and under
DDP each rank reads its rows of the same global batch), and the fixed validation sets.

Every split is packed into contiguous ``[n, seq_len]`` blocks, so no position is padding and the
loss counts real tokens only. ``offline``: the kit's docstring corpus (byte tokenizer); the Hub
datasets (wikitext-2 / -103, TinyStories) use the GPT-2 tokenizer and raise
:class:`akira_nb.text.CorpusUnavailableError` (a ``ValueError``) when they cannot load.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from akira_nb import runtime, text
from akira_nb.bandformer.config import TINYSTORIES, TrainConfig


def make_data(cfg: TrainConfig) -> text.TokenSplits:
    """The packed train / val / test blocks of ``cfg.dataset`` (cached per process: two
    arms with the same data share them); a ``ValueError`` when a batch would not fit in the
    train blocks (every caller loads the data before its run folder exists, so a batch that
    does not fit leaves nothing behind)."""
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


def unigram_loss(splits: text.TokenSplits, blocks: torch.Tensor) -> float:
    """The unigram cross-entropy of ``blocks`` under the train split's token frequencies."""
    return text.unigram_cross_entropy(splits.train, blocks, splits.vocab_size)
