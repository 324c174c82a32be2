"""The AQ pipeline's inputs: random or text token rows for a model pair's tokenizer
(:func:`make_inputs`), the text corpus (:func:`load_texts`), and the in-memory sample of both
models' activations with their position axis (:class:`Sample`, for CKA, Procrustes and spectra).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from akira_nb.alignment import activations as act
from akira_nb.alignment.aq_config import text_corpus_of
from akira_nb.runtime import check_choice

if TYPE_CHECKING:
    from akira_nb.alignment.aq_config import AQConfig


def tokens_fingerprint(inputs: act.TokenInputs) -> str:
    """SHA-256 (16 hex digits) of the token ids and mask: what a resumed stream must match."""
    h = hashlib.sha256(inputs.tokens.to(torch.int64).contiguous().numpy().tobytes())
    h.update(inputs.mask.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def make_inputs(cfg: AQConfig, kind: str, model, texts=None) -> act.TokenInputs:
    """The ``kind`` ('random' or 'text') inputs of ``cfg`` for ``model``'s tokenizer.

    random: ``num_samples`` rows of BOS then ``seq_length - 1`` ids drawn uniformly (seeded)
    from ``[1000, vocab - 1000)`` as the seed did when the vocabulary is larger than 4000 (gpt2,
    pythia), else from the whole vocabulary; special ids never drawn. BOS (position 0) is masked,
    as in the text rows: in GPT-2 and Pythia the first position is an attention sink with
    outlier activations whatever its token, so it is never counted (the seed drew position 0
    as a random token and counted it). A model without a BOS id gets no BOS, and its position 0
    is masked all the same. text: the documents of ``cfg.text_corpus`` (``texts`` when given;
    :func:`load_texts`), packed into rows led by BOS (BOS and document separators excluded),
    tokenized with the model's tokenizer."""
    check_choice("kind", kind, ("random", "text"))
    tok = act.tokenizer_of(model)
    if kind == "random":
        vocab = act.vocab_size(model)
        low, high = (1000, vocab - 1000) if vocab > 4000 else (0, vocab)
        bos = getattr(tok, "bos_token_id", None)
        inputs = act.random_tokens(
            vocab,
            cfg.num_samples,
            cfg.seq_length,
            seed=cfg.seed,
            low=low,
            high=high,
            exclude_ids=act.special_ids(tok),
            bos_id=bos,
        )
        if bos is None:  # no BOS to prepend: the first position is still the sink
            inputs.mask[:, 0] = False
        inputs.info["first_position"] = "BOS, masked" if bos is not None else "masked"
        return inputs
    if tok is None:
        raise ValueError(f"{act.model_name(model)} has no tokenizer: text inputs need one")
    if texts is None:
        texts = load_texts(text_corpus_of(cfg), cfg.seed)
    needed = cfg.num_samples * cfg.seq_length * 8  # characters: ample for any tokenizer
    cut, total = len(texts), 0
    for i, t in enumerate(texts):
        total += len(t)
        if total >= needed:
            cut = i + 1
            break
    try:
        return act.text_tokens(texts[:cut], tok, cfg.num_samples, cfg.seq_length, pack=True)
    except ValueError:
        if cut == len(texts):
            raise
        return act.text_tokens(texts, tok, cfg.num_samples, cfg.seq_length, pack=True)


def load_texts(corpus: str, seed: int = 0) -> list[str]:
    """Documents for the semantic test: the offline corpus in a seeded order, or the articles
    of wikitext's train split (its own order; :func:`akira_nb.text.wikitext_articles`)."""
    from akira_nb import text

    docs = text.load_documents(corpus, "train")
    if corpus == "offline":
        order = np.random.default_rng(seed).permutation(len(docs))
        docs = [docs[i] for i in order]
    return docs


@dataclass
class Sample:
    """Activations of the first ``n`` sequences with their position axis: ``seq_a[layer]``
    ``[n, T, d_a]`` and ``seq_b[layer]`` ``[n, T, d_b]`` (CPU float32), ``mask [n, T]``."""

    seq_a: dict
    seq_b: dict
    mask: torch.Tensor
    kind: str = "random"

    def rows_a(self, layer) -> torch.Tensor:
        return self.seq_a[layer][self.mask]

    def rows_b(self, layer) -> torch.Tensor:
        return self.seq_b[layer][self.mask]

    @property
    def groups(self) -> torch.Tensor:
        """The sequence of each kept row (Procrustes splits by sequence)."""
        n, t = self.mask.shape
        return torch.arange(n)[:, None].expand(n, t)[self.mask]

    def spectral_rows(self) -> tuple[torch.Tensor, int]:
        """``(rows, start)``: the sequences whose every position from ``start`` on is counted,
        ``start`` being 1 when position 0 is masked in every row (BOS), else 0."""
        start = 0 if bool(self.mask[:, 0].any()) else 1
        rows = torch.nonzero(self.mask[:, start:].all(1)).flatten()
        return rows, start

    def spectral(self, model: str, layer, n: int | None = None) -> torch.Tensor:
        """``[n', T', d]`` for the spectra: the first ``n`` sequences with no masked position
        after the first, from position 1 on when position 0 is BOS (random and text alike).
        Sequences holding a document separator (or padding) are skipped, so that no separator,
        and no jump to another document's context, enters the FFT along the sequence."""
        rows, start = self.spectral_rows()
        if rows.numel() == 0:
            raise ValueError(
                f"no {self.kind} sequence is free of separators and padding after position "
                f"{start}: the spectra need whole rows (use longer documents or shorter rows)"
            )
        seq = (self.seq_a if model == "A" else self.seq_b)[layer]
        return seq[rows[:n], start:]


def sample_models(model_a, model_b, inputs: act.TokenInputs, pairs, n: int, batch_size: int):
    """:class:`Sample` of the first ``n`` sequences of ``inputs`` for both models."""
    n = min(n, inputs.n_sequences)
    la = sorted({p[0] for p in pairs})
    lb = sorted({p[1] for p in pairs})
    tokens = inputs.tokens[:n]
    seq_a = act.sequence_activations(model_a, tokens, la, batch_size, device="cpu")
    seq_b = act.sequence_activations(model_b, tokens, lb, batch_size, device="cpu")
    return Sample(seq_a, seq_b, inputs.mask[:n].clone(), inputs.kind)


__all__ = [
    "Sample",
    "load_texts",
    "make_inputs",
    "sample_models",
    "tokens_fingerprint",
]
