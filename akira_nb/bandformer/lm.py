"""What the band transformer and the baseline GPT share: embeddings, final LayerNorm, (tied)
unembedding, the token checks, the next-token losses (the training one reuses the logits'
memory for their gradient; the evaluation one computes the logits a chunk at a time) and the
parameter ownership (:func:`model_summary`).

Initialisation (both models, nanoGPT's): weights and embeddings N(0, 0.02), the projections that
write into the residual stream N(0, 0.02 / sqrt(2 n_layers)), biases 0, LayerNorms 1 / 0.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from akira_nb.bandformer.layers import Dropout
from akira_nb.bandformer.layout import BandParameters

LOSS_CHUNK = 1024  # positions per logits chunk of LanguageModel.loss_sum (206 MB at 50257)


class LanguageModel(HookedRootModule):
    """Shared parts: embeddings, final LayerNorm, (tied) unembedding, checks, loss, ownership."""

    def _embeddings(self, vocab: int, n_ctx: int, d: int, tie: bool, dropout: float) -> None:
        self.W_E = nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.W_pos = nn.Parameter(torch.randn(n_ctx, d) * 0.02)
        self.W_U = None if tie else nn.Parameter(torch.randn(d, vocab) * 0.02)
        self.drop = Dropout(dropout)
        self.ln_final = nn.LayerNorm(d)
        self.hook_embed = HookPoint()  # [B, T, d_model]
        self.hook_pos_embed = HookPoint()  # [T, d_model]

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        self._check_tokens(tokens)
        x = self.hook_embed(F.embedding(tokens, self.W_E))
        return self.drop(x + self.hook_pos_embed(self.W_pos[: tokens.shape[1]]))

    def _unembed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln_final(x)
        return x @ (self.W_E.T if self.W_U is None else self.W_U)

    def residual(self, tokens: torch.Tensor) -> torch.Tensor:
        """The residual stream after the last block, ``[B, T, d_model]`` (before the final
        LayerNorm): everything of :meth:`forward` but the unembedding."""
        x = self._embed(tokens)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, vocab_size]`` for token ids ``[B, T]`` (T <= n_ctx)."""
        return self._unembed(self.residual(tokens))

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """:func:`next_token_loss` of this model on ``tokens``."""
        return next_token_loss(self(tokens), tokens)

    def loss_sum(self, tokens: torch.Tensor, chunk: int = LOSS_CHUNK) -> torch.Tensor:
        """The summed (fp32) next-token loss over the ``B * (T - 1)`` predictions of ``tokens``,
        the same as ``next_token_loss(self(tokens), tokens) * B * (T - 1)`` up to rounding,
        with the logits computed ``chunk`` positions at a time: for evaluation without
        gradients, where the ``[B, T, vocab_size]`` logits (823 MB in fp32 at 16 x 256 x 50257)
        are never held at once."""
        x = self.ln_final(self.residual(tokens)).flatten(0, 1)
        w = self.W_E.T if self.W_U is None else self.W_U
        targets = F.pad(tokens[:, 1:], (0, 1), value=-100).flatten()
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        for start in range(0, x.shape[0], chunk):
            logits = (x[start : start + chunk] @ w).float()
            total += F.cross_entropy(
                logits, targets[start : start + chunk], ignore_index=-100, reduction="sum"
            )
        return total

    def _check_tokens(self, tokens) -> None:
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.is_floating_point():
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else tokens
            raise ValueError(f"tokens must be an integer tensor [batch, seq]; got {shape}")
        if not 1 <= tokens.shape[1] <= self.cfg.n_ctx:
            raise ValueError(
                f"tokens have {tokens.shape[1]} positions; this model reads 1 to "
                f"n_ctx={self.cfg.n_ctx}"
            )

    def embedding_parameter_names(self) -> set[str]:
        """Token and position embeddings, and the unembedding when it is not tied."""
        return {"W_E", "W_pos"} | ({"W_U"} if self.W_U is not None else set())

    def parameter_bands(self) -> dict[str, int | None]:
        """Every parameter name (as in ``named_parameters()``) -> its band, or None if shared."""
        owner: dict[str, int | None] = {name: None for name, _ in self.named_parameters()}
        for prefix, module in self.named_modules():
            if isinstance(module, BandParameters):
                owner.update({f"{prefix}.{i}": i for i in range(len(module))})
        return owner

    def band_fraction(self) -> float:
        """Fraction of the non-embedding parameters that belong to a band."""
        return model_summary(self)["band_fraction"]


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of predicting ``tokens[:, t + 1]`` from ``logits[:, t]``, over
    every position of packed blocks (``B * (T - 1)`` predictions; nothing is padding). The last
    position's target is ``ignore_index`` rather than sliced off, which spares a copy of the
    logits (and of their gradient)."""
    targets = F.pad(tokens[:, 1:], (0, 1), value=-100)  # the last position predicts nothing
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


class _TrainingCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``logits [N, V]`` (fp32) against ``targets [N]`` (-100: ignored)
    whose backward writes the gradient into the saved logits: it keeps the logits and their
    log-sum-exp, never the ``[N, V]`` log-softmax that ``F.cross_entropy`` saves, and needs no
    ``[N, V]`` temporary in either pass. The same values and gradient as ``F.cross_entropy``
    up to rounding."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        lse = torch.cat([c.logsumexp(1) for c in logits.split(LOSS_CHUNK)])
        valid = targets != -100
        rows = valid.nonzero().squeeze(1)
        picked = logits[rows, targets[rows]]
        n = max(int(rows.numel()), 1)
        ctx.save_for_backward(logits, lse, rows, targets)
        ctx.n = n
        return (lse[rows] - picked).sum() / n

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logits, lse, rows, targets = ctx.saved_tensors
        g = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits (not read again)
        g[targets == -100] = 0.0
        g[rows, targets[rows]] -= 1.0
        return g.mul_(grad / ctx.n), None


def training_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """:func:`next_token_loss` for a training step: the same value and gradient, with the
    ``[B, T, vocab]`` logits overwritten by their gradient during ``backward()`` (so the step
    holds one logits-sized buffer instead of four: at t4, 16 x 256 x 50257 fp32 is 823 MB
    each). Pass logits that nothing else reads after the backward (``model(x)`` directly)."""
    targets = F.pad(tokens[:, 1:], (0, 1), value=-100).flatten()
    return _TrainingCrossEntropy.apply(logits.flatten(0, 1).float(), targets)


def model_summary(model: LanguageModel) -> dict[str, Any]:
    """Parameter counts of a band or baseline model: total, embedding (``W_E``, ``W_pos``, an
    untied ``W_U``), non-embedding, per band, shared non-embedding, and the band fraction of the
    non-embedding parameters (``band_fraction``) and of all of them (``band_fraction_total``)."""
    owner = model.parameter_bands()
    embed = model.embedding_parameter_names()
    n_bands = getattr(model.cfg, "n_bands", 0)
    bands = [0] * n_bands
    total = embedding = shared = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if name in embed:
            embedding += p.numel()
        elif owner[name] is None:
            shared += p.numel()
        else:
            bands[owner[name]] += p.numel()
    non_embedding = total - embedding
    return {
        "model": model.name,
        "d_model": model.cfg.d_model,
        "total": total,
        "embedding": embedding,
        "non_embedding": non_embedding,
        "bands": bands,
        "shared": shared,
        "band_fraction": sum(bands) / non_embedding if non_embedding else 0.0,
        "band_fraction_total": sum(bands) / total,
    }
