"""Band transformer (experiment 026) and its parameter-matched GPT baseline.

The band model splits the ``d_model``-wide hidden state into ``n_bands`` contiguous slices
(``band_dims``, default (128, 96, 80, 64, 64, 48, 32) = 512). Every block is pre-LN and, in the
default ``layout="band"``, every band owns its whole computation:

1. per-band LayerNorm + per-band causal self-attention (band i has ``band_dims[i] // d_head``
   heads of size ``d_head``; its queries, keys and values are read from its own slice only and
   its output written back to it);
2. the wormhole (``wormhole=True``): gated causal cross-band attention. Band i's queries, and
   band j's keys and values, are projected to a common ``d_wormhole``; every ordered pair
   (i, j), i != j, is one attention head over the sequence (42 heads for 7 bands, one batched
   attention call, causal: position t sees band j at positions <= t), and band i receives
   ``W_O,i mean_j tanh(a_ij) attn(q_i, k_j, v_j)``. The gate a_ij starts at
   ``wormhole_gate_init`` (0.1: the wormhole starts weak but every one of its weights gets a
   gradient from the first step); ``wormhole=False`` removes the sublayer, and then nothing
   crosses between bands anywhere in the blocks;
3. per-band LayerNorm + per-band MLP (``band_dims[i] -> mlp_ratio * band_dims[i] -> band_dims[i]``,
   GELU).

So every block weight belongs to one band (the wormhole's belong to the band they read from or
write to; the gates to the receiving band), and only the embeddings and the final LayerNorm are
shared: ``parameter_bands()`` maps each parameter to its band, and ``band_fraction()`` is about
1.0. ``layout="reference"`` is the public reference's v1 layout (a shared full-width pre-LN
attention with ``n_heads`` heads, then contiguous-slice band MLPs), where about a quarter of the
non-embedding parameters (3.5% of all of them with its untied head) sit in bands; with
``tie_embeddings=False``, ``n_ctx=256`` and ``wormhole=False`` its parameter count is the
reference's 60,015,616 exactly. With ``wormhole=True`` the reference layout gets this module's
wormhole (band-owned, between attention and MLPs), not the reference's per-pair Python loop with
a hard 0.5 gate threshold after the MLPs; the reference's reported runs had no wormhole.

How the bands are batched (no Python loop over bands or band pairs in the computation): each
band's weights are separate parameters of their true sizes (so a band owns exactly its own
weights and parameter counts are exact). The bands are cut into at most ``MAX_GROUPS`` (3)
contiguous groups of similar width (:func:`band_groups`: the cut minimising the padded cost
``sum_g |g| * max_g**2``; for the default dims (128), (96, 80), (64, 64, 48, 32), 1.18x the
unpadded weight work instead of 2.6x with every band padded to 128; 8 equal bands are one group
with no padding). Inside the model the band state lives in the *grouped layout*: one band-major
``[k, B*T, W_g]`` tensor per group (its k bands, each zero-padded to the group's widest band
W_g). A :class:`BandLinear` writes its bands' weights and biases into one zero buffer (one
``torch.cat`` + one ``index_copy``: the same few ops whatever the number of bands, since a GPU
pays for every kernel launch), viewed per group as ``[k, in_g + 1, out_g]``, and runs one
``baddbmm`` per group (a loop over at most 3 groups). The residual stream stays grouped from
block to block (converted once after the embedding and once before the final LayerNorm); the
hooks see the documented layouts below, converted to only when a hook is attached (and
converted back, so a hook may edit its tensor). :class:`BandLayout` converts between the
concatenated ``[B, T, d_model]``, the padded ``[B, T, n_bands, max(band_dims)]`` (band i in
``[..., i, :band_dims[i]]``, zeros beyond) and the grouped layouts; the sublayers' ``forward``
takes and returns the padded layout, their ``grouped`` the grouped one.

Initialisation (both models, nanoGPT's): weights and embeddings N(0, 0.02), the projections
that write into the residual stream N(0, 0.02 / sqrt(2 n_layers)), biases 0, LayerNorms 1 / 0.

Hook points (TransformerLens names):

- ``hook_embed``, ``hook_pos_embed``; ``blocks.{l}.hook_resid_pre`` / ``hook_resid_post``
  ``[B, T, d_model]`` (band i is ``cfg.band_slices[i]`` of the last axis);
- ``blocks.{l}.attn.hook_pattern`` ``[B, heads, T, T]`` (band layout: the heads of band 0, then
  band 1, ...; ``cfg.head_bands`` gives each head's band), ``blocks.{l}.wormhole.hook_pattern``
  ``[B, n_pairs, T, T]`` (pairs in ``cfg.band_pairs`` order);
- ``blocks.{l}.mlp.hook_pre`` / ``hook_post`` ``[B, T, d_mlp]``: every band's MLP hidden units
  concatenated in band order (band i is ``cfg.mlp_band_slices[i]``), which is what
  :mod:`akira_nb.alignment.activations` reads;
- the per-band hook ``blocks.{l}.hook_band_out`` ``[B, T, n_bands, max(band_dims)]``: the block
  output in the padded band layout (band i in ``[..., i, :band_dims[i]]``);
  :meth:`BandTransformer.band_activations` returns it as one ``[B, T, band_dims[i]]`` tensor per
  band. The sublayer outputs ``hook_attn_out``, ``hook_wormhole_out``, ``hook_mlp_out`` are in
  the same padded layout.

Attention patterns are materialised only when a hook is attached to ``hook_pattern``
(``run_with_cache`` does that); otherwise the fused ``scaled_dot_product_attention`` runs, or,
for dropout on the CPU (which that kernel lacks), an attention that keeps only a boolean mask
for the backward and recomputes the pattern there. All compute the same causal softmax
attention.

Memory at the t4 shapes (16 x 256 tokens, vocabulary 50257): training takes
:func:`training_loss`, whose backward reuses the logits' buffer for their gradient, and
evaluation ``loss_sum``, which never holds the whole ``[B, T, vocab]`` logits.

The baseline (:class:`BaselineTransformer`, :class:`GPTConfig`) is a standard pre-LN GPT with the
same embeddings, init and hook names; :meth:`BaselineTransformer.matched_to` sizes one within 2%
of a band model's parameter count. Every model provides ``parameter_bands()`` and
``embedding_parameter_names()`` (the contract with :mod:`akira_nb.bandformer.optim`) and
:func:`model_summary`. Loss: :func:`next_token_loss`, the mean cross-entropy of predicting token
t+1 at every position t of packed blocks (no padding to exclude).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from akira_nb.runtime import check_bool, check_choice, check_int, check_real

LAYOUTS = ("band", "reference")
DEFAULT_BAND_DIMS = (128, 96, 80, 64, 64, 48, 32)
DEFAULT_BAND_LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
TEST_COMPLETE = "AKIRA Band Transformer test complete!"  # the seed's closing line
LOSS_CHUNK = 1024  # positions per logits chunk of _LanguageModel.loss_sum (206 MB at 50257)


# ----------------------------------------------------------------------------- configs


@dataclass
class BandConfig:
    """Band transformer settings. ``d_model`` is ``sum(band_dims)``; ``hidden_dim``, when set,
    is only a check that they sum to it. ``d_head`` sets the band heads (band i has
    ``band_dims[i] // d_head``; it must divide every band dim); ``n_heads`` is the head count of
    the shared full-width attention of ``layout="reference"`` (it must divide ``d_model``)."""

    vocab_size: int = 50257
    n_ctx: int = 256
    n_layers: int = 6
    band_dims: tuple[int, ...] = DEFAULT_BAND_DIMS
    band_lrs: tuple[float, ...] = DEFAULT_BAND_LRS
    shared_lr: float = 3e-4
    d_head: int = 16
    n_heads: int = 8
    mlp_ratio: int = 4
    wormhole: bool = True
    d_wormhole: int = 16
    wormhole_gate_init: float = 0.1
    layout: str = "band"
    tie_embeddings: bool = True
    dropout: float = 0.1
    hidden_dim: int | None = None

    def validate(self) -> BandConfig:
        check_int("vocab_size", self.vocab_size, low=2)
        check_int("n_ctx", self.n_ctx, low=1)
        check_int("n_layers", self.n_layers, low=1)
        check_choice("layout", self.layout, LAYOUTS)
        self.band_dims = _check_tuple("band_dims", self.band_dims)
        if len(self.band_dims) < 2:
            raise ValueError(f"band_dims={self.band_dims} must list at least 2 bands")
        for i, d in enumerate(self.band_dims):
            check_int(f"band_dims[{i}]", d, low=1)
        self.band_lrs = _check_tuple("band_lrs", self.band_lrs)
        if len(self.band_lrs) != len(self.band_dims):
            raise ValueError(
                f"band_lrs has {len(self.band_lrs)} values for {len(self.band_dims)} bands; "
                "give one learning rate per band"
            )
        for i, lr in enumerate(self.band_lrs):
            check_real(f"band_lrs[{i}]", lr, low=0.0, low_open=True)
        check_real("shared_lr", self.shared_lr, low=0.0, low_open=True)
        if self.hidden_dim is not None:
            check_int("hidden_dim", self.hidden_dim, low=1)
            if self.d_model != self.hidden_dim:
                raise ValueError(
                    f"band_dims={self.band_dims} sum to {self.d_model}, but hidden_dim="
                    f"{self.hidden_dim}; the band dims must sum to the hidden size"
                )
        check_int("d_head", self.d_head, low=1)
        if self.layout == "band":
            bad = [d for d in self.band_dims if d % self.d_head]
            if bad:
                raise ValueError(
                    f"d_head={self.d_head} must divide every band dim; band_dims="
                    f"{self.band_dims} has {bad} (choose a common divisor)"
                )
        check_int("n_heads", self.n_heads, low=1)
        if self.layout == "reference" and self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must divide d_model={self.d_model} (layout='reference')"
            )
        check_int("mlp_ratio", self.mlp_ratio, low=1)
        check_bool("wormhole", self.wormhole)
        check_int("d_wormhole", self.d_wormhole, low=1)
        check_real("wormhole_gate_init", self.wormhole_gate_init, low=0.0)
        check_bool("tie_embeddings", self.tie_embeddings)
        check_real("dropout", self.dropout, 0.0, 1.0, high_open=True)
        return self

    @property
    def d_model(self) -> int:
        return sum(self.band_dims)

    @property
    def d_vocab(self) -> int:
        return self.vocab_size

    @property
    def n_bands(self) -> int:
        return len(self.band_dims)

    @property
    def d_mlp(self) -> int:
        """MLP hidden units per layer, all bands together (the width of ``mlp.hook_post``)."""
        return self.mlp_ratio * self.d_model

    @property
    def band_slices(self) -> list[slice]:
        """Band i's slice of the ``d_model`` axis."""
        return _slices(self.band_dims)

    @property
    def mlp_band_slices(self) -> list[slice]:
        """Band i's slice of the ``d_mlp`` axis of ``mlp.hook_post``."""
        return _slices([self.mlp_ratio * d for d in self.band_dims])

    @property
    def heads_per_band(self) -> tuple[int, ...]:
        return tuple(d // self.d_head for d in self.band_dims)

    @property
    def head_bands(self) -> list[int]:
        """The band of each head of ``attn.hook_pattern`` (band layout)."""
        return [i for i, h in enumerate(self.heads_per_band) for _ in range(h)]

    @property
    def band_pairs(self) -> list[tuple[int, int]]:
        """The wormhole's ordered (receiver, sender) pairs, receiver-major: the heads of
        ``wormhole.hook_pattern``."""
        n = self.n_bands
        return [(i, j) for i in range(n) for j in range(n) if j != i]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BandConfig:
        """The config of :meth:`to_dict` (or a JSON round trip of it: lists become tuples)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown BandConfig fields {unknown}; allowed: {sorted(known)}")
        return cls(**data).validate()


@dataclass
class GPTConfig:
    """Standard pre-LN GPT settings (the baseline). ``lr`` is its single learning rate."""

    vocab_size: int = 50257
    n_ctx: int = 256
    n_layers: int = 6
    d_model: int = 512
    n_heads: int = 8
    d_mlp: int = 2048
    lr: float = 3e-4
    tie_embeddings: bool = True
    dropout: float = 0.1

    def validate(self) -> GPTConfig:
        for name in ("vocab_size", "n_ctx", "n_layers", "d_model", "n_heads", "d_mlp"):
            check_int(name, getattr(self, name), low=2 if name == "vocab_size" else 1)
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        check_real("lr", self.lr, low=0.0, low_open=True)
        check_bool("tie_embeddings", self.tie_embeddings)
        check_real("dropout", self.dropout, 0.0, 1.0, high_open=True)
        return self

    @property
    def d_vocab(self) -> int:
        return self.vocab_size

    def n_params(self) -> int:
        """Parameter count, computed from the shapes (equals the built model's)."""
        d, m = self.d_model, self.d_mlp
        per_layer = 4 * d  # two LayerNorms
        per_layer += 3 * d * d + 3 * d + d * d + d  # attention qkv + out projection
        per_layer += d * m + m + m * d + d  # MLP
        total = self.vocab_size * d + self.n_ctx * d + self.n_layers * per_layer + 2 * d
        return total + (0 if self.tie_embeddings else d * self.vocab_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {unknown}; allowed: {sorted(known)}")
        return cls(**data).validate()


def _check_tuple(name: str, value) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise ValueError(f"{name}={value!r} must be a tuple (or list) with one value per band")
    return tuple(value)


def _slices(dims: Sequence[int]) -> list[slice]:
    ends = [sum(dims[: i + 1]) for i in range(len(dims))]
    return [slice(e - d, e) for d, e in zip(dims, ends)]


# The repository's canonical 7+1 set (CANONICAL_PARAMETERS.md, Spec A): 8 equal bands of
# 512 / 8 = 64 (THE_SEVEN_PLUS_ONE_ARCHITECTURE.md), LRs 1e-5 .. 3e-2 over the 7 spectral
# bands and 1e-3 for band 7, the temporal band. Here band 7 computes like the others: its causal
# self-attention is its temporal processing, and it reads the spectral bands through the
# wormhole (the reference v2 fed it a projection of all 7 bands). ``sbm_7p1`` is the reference
# v2 "Spectral Belief Machine" set (026 v2: 3e-5 .. 3e-3, band 7 at 3e-4).
_TINY = dict(vocab_size=257, n_ctx=64, n_layers=2, d_head=4, n_heads=4, d_wormhole=8, dropout=0.0)
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "canonical_7p1": dict(
        band_dims=(64,) * 8, band_lrs=(1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-3)
    ),
    "sbm_7p1": dict(band_dims=(64,) * 8, band_lrs=(3e-5, 5e-5, 1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 3e-4)),
    "reference": dict(layout="reference", wormhole=False, tie_embeddings=False),
    "tiny": dict(_TINY, band_dims=(32, 24, 20, 16, 16, 12, 8)),
    "tiny_7p1": dict(
        _TINY,
        band_dims=(16,) * 8,
        band_lrs=(1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-3),
    ),
}


def preset(name: str, **overrides: Any) -> BandConfig:
    """A validated :class:`BandConfig` from ``PRESETS[name]`` with ``overrides`` applied.

    ``default``: the 026 v1 bands (128, ..., 32) and LRs; ``canonical_7p1`` / ``sbm_7p1``: the
    7+1 sets (8 x 64); ``reference``: the reference v1 model as trained (shared attention,
    untied head, no wormhole); ``tiny`` / ``tiny_7p1``: CPU sizes (byte vocabulary 257, 64
    positions, 2 layers, the default and the 7+1 band shapes at 1/4 width)."""
    check_choice("preset", name, PRESETS)
    return BandConfig(**{**PRESETS[name], **overrides}).validate()


# ----------------------------------------------------------------------------- band machinery

MAX_GROUPS = 3  # band groups per block (see band_groups)


def band_groups(dims: Sequence[int], max_groups: int = MAX_GROUPS) -> tuple[tuple[int, int], ...]:
    """The bands cut into at most ``max_groups`` contiguous runs ``(start, stop)`` that minimise
    the padded cost ``sum_g |g| * max(dims[g])**2`` (each group is padded to its widest band;
    a dynamic programme over the cut points; of equal costs, the fewest groups). For the 026 dims
    (128, 96, 80, 64, 64, 48, 32): (128), (96, 80), (64, 64, 48, 32), 51,200 weight units per
    position against 43,520 unpadded and 114,688 with every band padded to 128."""
    check_int("max_groups", max_groups, low=1)
    n, inf = len(dims), float("inf")
    best = [(0, ())] + [(inf, ())] * n  # best[b]: cost and runs of the first b bands
    results = []
    for _ in range(min(max_groups, n)):
        best = [(inf, ())] + [
            min(
                (
                    (best[a][0] + (b - a) * max(dims[a:b]) ** 2, best[a][1] + ((a, b),))
                    for a in range(b)
                    if best[a][0] < inf
                ),
                default=(inf, ()),
            )
            for b in range(1, n + 1)
        ]
        results.append(best[n])
    return min(results, key=lambda r: r[0])[1]


class BandLayout(nn.Module):
    """Maps between the concatenated layout ``[..., sum(dims)]``, the padded band layout
    ``[..., n, max(dims)]`` (band i in ``[..., i, :dims[i]]``, zeros beyond) and the *grouped
    layout* in which the blocks compute: one band-major tensor ``[k, N, W]`` per group of
    :func:`band_groups` (its k bands, each zero-padded to the group's widest band W; N the
    flattened leading axes).

    Padded tensors are stored band-major: :meth:`to_padded` returns a ``[..., n, width]`` view
    of ``[n, ..., width]`` storage (any ``[..., n, width]`` tensor is accepted)."""

    def __init__(self, dims: Sequence[int], groups: Sequence[tuple[int, int]] | None = None):
        super().__init__()
        self.dims, self.n, self.width, self.total = tuple(dims), len(dims), max(dims), sum(dims)
        self.groups = tuple(groups) if groups else band_groups(self.dims)
        mask = [[a < d for a in range(self.width)] for d in dims]
        self.register_buffer("mask", torch.tensor(mask), persistent=False)  # [n, width]
        self.register_buffer("sizes", torch.tensor(dims, dtype=torch.float32), persistent=False)
        starts = [sum(self.dims[:i]) for i in range(self.n + 1)]
        self.group_widths = [max(self.dims[a:b]) for a, b in self.groups]
        self.group_cols = [(starts[a], starts[b]) for a, b in self.groups]
        self.uniform = [
            min(self.dims[a:b]) == w for (a, b), w in zip(self.groups, self.group_widths)
        ]
        for g, ((a, b), w) in enumerate(zip(self.groups, self.group_widths)):
            if self.uniform[g]:
                continue
            size = starts[b] - starts[a]  # the zero column appended to the group's slice
            gather = [
                starts[i] - starts[a] + c if c < self.dims[i] else size
                for i in range(a, b)
                for c in range(w)
            ]
            real = [j * w + c for j, i in enumerate(range(a, b)) for c in range(self.dims[i])]
            band_mask = [[[c < self.dims[i] for c in range(w)]] for i in range(a, b)]
            self.register_buffer(f"gather_{g}", torch.tensor(gather), persistent=False)
            self.register_buffer(f"real_{g}", torch.tensor(real), persistent=False)
            self.register_buffer(f"mask_{g}", torch.tensor(band_mask), persistent=False)
            sizes = torch.tensor(self.dims[a:b], dtype=torch.float32).view(-1, 1, 1)
            self.register_buffer(f"sizes_{g}", sizes, persistent=False)

    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        bands = [
            F.pad(part, (0, self.width - d)) for part, d in zip(x.split(self.dims, -1), self.dims)
        ]
        return torch.stack(bands).movedim(0, -2)

    def from_padded(self, xp: torch.Tensor) -> torch.Tensor:
        bands = xp.movedim(-2, 0).unbind(0)  # backward: one stack, band-major again
        return torch.cat([band[..., :d] for band, d in zip(bands, self.dims)], -1)

    def to_groups(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[..., total]`` -> one ``[k, N, W]`` per group (a gather per uneven group)."""
        x = x.reshape(-1, self.total)
        out = []
        for g, ((a, b), (s, e), w) in enumerate(
            zip(self.groups, self.group_cols, self.group_widths)
        ):
            part = x[:, s:e]
            if not self.uniform[g]:
                part = F.pad(part, (0, 1)).index_select(1, getattr(self, f"gather_{g}"))
            out.append(part.reshape(-1, b - a, w).transpose(0, 1).contiguous())
        return out

    def from_groups(self, xs: Sequence[torch.Tensor], lead: Sequence[int]) -> torch.Tensor:
        """Inverse of :meth:`to_groups`: ``[*lead, total]``."""
        parts = []
        for g, y in enumerate(xs):
            flat = y.transpose(0, 1).reshape(y.shape[1], -1)  # [N, k W]
            parts.append(
                flat if self.uniform[g] else flat.index_select(1, getattr(self, f"real_{g}"))
            )
        return torch.cat(parts, -1).view(*lead, self.total)

    def padded_to_groups(self, xp: torch.Tensor) -> list[torch.Tensor]:
        """``[..., n, width]`` (padded layout) -> the grouped layout."""
        return [
            xp[..., a:b, :w].movedim(-2, 0).reshape(b - a, -1, w)
            for (a, b), w in zip(self.groups, self.group_widths)
        ]

    def groups_to_padded(self, xs: Sequence[torch.Tensor], lead: Sequence[int]) -> torch.Tensor:
        """Inverse of :meth:`padded_to_groups`: ``[*lead, n, width]``, stored band-major."""
        full = torch.cat([F.pad(y, (0, self.width - y.shape[-1])) for y in xs])
        return full.view(self.n, *lead, self.width).movedim(0, -2)


class BandParameters(nn.ParameterList):
    """A ParameterList whose entry i belongs to band i (what ``parameter_bands`` reads)."""


def _band_params(shapes: Sequence[tuple[int, ...]], fill: float | None, std: float = 0.0):
    """One parameter per band: constant ``fill``, or N(0, std) when ``fill`` is None."""
    make = (lambda s: torch.full(s, fill)) if fill is not None else (lambda s: torch.randn(s) * std)
    return BandParameters([nn.Parameter(make(s)) for s in shapes])


class _GroupStack(nn.Module):
    """Writes per-band parameters into zero-padded per-group tensors ``shapes[g]``: one cat and
    one index_copy into one flat buffer (one index_select backward) for all bands, however
    many, then a view per group. ``index`` lists the flat position of every element of the
    tensors passed to :meth:`stack`, in order."""

    def __init__(self, index: torch.Tensor, shapes: Sequence[tuple[int, ...]]):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.register_buffer("index", index, persistent=False)

    def stack(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        flat = torch.cat([t.flatten() for t in tensors])
        full = flat.new_zeros(sum(map(math.prod, self.shapes))).index_copy(0, self.index, flat)
        sizes = [math.prod(s) for s in self.shapes]
        return [part.view(s) for part, s in zip(full.split(sizes), self.shapes)]


class BandLinear(nn.Module):
    """Block-diagonal linear map, band i: ``in_dims[i] -> out_dims[i]``.

    ``weight.{i}`` ``[in_i, out_i]`` and ``bias.{i}`` ``[out_i]`` are band i's own parameters.
    :meth:`grouped` maps the grouped layout (:class:`BandLayout`, ``groups``, by default
    :func:`band_groups` of ``in_dims``) with one ``baddbmm`` per group, the bands' weights
    stacked zero-padded to the group's widest; ``forward`` does the same on the padded band
    layout ``[..., n, max(in_dims)] -> [..., n, max(out_dims)]`` (pads stay zero).

    ``parts`` > 1 (the grouped path only): each band's output is ``parts`` equal chunks (q, k,
    v), each padded to the group's widest chunk, so that chunk p of every band of a group starts
    at column ``p * width``."""

    def __init__(
        self,
        in_dims: Sequence[int],
        out_dims: Sequence[int],
        std: float = 0.02,
        groups: Sequence[tuple[int, int]] | None = None,
        parts: int = 1,
    ):
        super().__init__()
        self.weight = _band_params(list(zip(in_dims, out_dims)), None, std)
        self.bias = _band_params([(o,) for o in out_dims], 0.0)
        self.groups = tuple(groups) if groups else band_groups(in_dims)
        self.parts = parts
        pieces, shapes, offset = [], [], 0
        for a, b in self.groups:
            d_in, chunk = max(in_dims[a:b]), max(o // parts for o in out_dims[a:b])
            shape = (b - a, d_in + 1, parts * chunk)  # band j's bias in row d_in
            for j, i in enumerate(range(a, b)):
                per = out_dims[i] // parts
                c = torch.arange(out_dims[i])
                col = (c // per) * chunk + c % per
                rows = torch.arange(in_dims[i])[:, None]
                pieces.append((offset + (j * (d_in + 1) + rows) * shape[2] + col).flatten())
                pieces.append(offset + (j * (d_in + 1) + d_in) * shape[2] + col)
            shapes.append(shape)
            offset += math.prod(shape)
        self.stack = _GroupStack(torch.cat(pieces), shapes)
        self.in_layout = BandLayout(in_dims, self.groups)
        self.out_layout = BandLayout(out_dims, self.groups)

    def group_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per group: weights ``[k, max_in, max_out]`` and biases ``[k, 1, max_out]``."""
        full = self.stack.stack([t for pair in zip(self.weight, self.bias) for t in pair])
        return [(m[:, :-1], m[:, -1:]) for m in full]

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights ``[n, max_in, max_out]`` and biases ``[n, max_out]``, zero-padded."""
        d_in, d_out = self.in_layout.width, max(s[2] for s in self.stack.shapes)
        w, b = zip(*self.group_weights())
        pad = [F.pad(t, (0, d_out - t.shape[2], 0, d_in - t.shape[1])) for t in w]
        return torch.cat(pad), torch.cat([F.pad(t, (0, d_out - t.shape[2])) for t in b])[:, 0]

    def grouped(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.baddbmm(b, x, w) for x, (w, b) in zip(xs, self.group_weights())]

    def forward(self, xp: torch.Tensor) -> torch.Tensor:
        if self.parts != 1:
            raise ValueError(f"parts={self.parts}: the padded layout needs parts=1")
        ys = self.grouped(self.in_layout.padded_to_groups(xp))
        return self.out_layout.groups_to_padded(ys, xp.shape[:-2])


class BandLayerNorm(nn.Module):
    """LayerNorm of each band over its own slice, on the grouped layout (:meth:`grouped`: one
    ``layer_norm`` per group of equal bands, a masked one otherwise) or the padded band layout
    (``forward``)."""

    def __init__(self, dims: Sequence[int], eps: float = 1e-5, groups=None):
        super().__init__()
        self.layout = BandLayout(dims, groups)
        self.weight = _band_params([(d,) for d in dims], 1.0)
        self.bias = _band_params([(d,) for d in dims], 0.0)
        self.eps = eps
        pieces, shapes, offset = [], [], 0
        for (a, b), w in zip(self.layout.groups, self.layout.group_widths):
            shape = (b - a, 2, w)  # band j's weight in row 0, bias in row 1
            for j, i in enumerate(range(a, b)):
                c = torch.arange(dims[i])
                pieces += [offset + (2 * j) * w + c, offset + (2 * j + 1) * w + c]
            shapes.append(shape)
            offset += math.prod(shape)
        self.stack = _GroupStack(torch.cat(pieces), shapes)

    def grouped(self, xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        params = self.stack.stack([t for pair in zip(self.weight, self.bias) for t in pair])
        out = []
        for g, (x, p) in enumerate(zip(xs, params)):
            if self.layout.uniform[g]:
                xn = F.layer_norm(x, x.shape[-1:], eps=self.eps)
            else:  # pads are zero and stay zero
                mask, n = getattr(self.layout, f"mask_{g}"), getattr(self.layout, f"sizes_{g}")
                xc = torch.addcmul(x, x.sum(-1, keepdim=True) / n, mask, value=-1)
                var = torch.linalg.vector_norm(xc, dim=-1, keepdim=True).square() / n
                xn = xc * torch.rsqrt(var + self.eps)
            out.append(torch.addcmul(p[:, 1:], xn, p[:, :1]))
        return out

    def forward(self, xp: torch.Tensor) -> torch.Tensor:
        ys = self.grouped(self.layout.padded_to_groups(xp))
        return self.layout.groups_to_padded(ys, xp.shape[:-2])


def _dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout``; on CPU the keep mask is drawn as ``rand >= p`` (the same Bernoulli(1 - p)
    mask and 1 / (1 - p) scale), which is about 2x faster there than ``bernoulli_``."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu" or p == 1:
        return F.dropout(x, p, True)
    return x * torch.rand_like(x).ge_(p).div_(1 - p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`_dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _dropout(x, self.p, self.training)


def _causal_pattern(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The causal softmax pattern ``[B H, T, T]`` of ``q, k`` ``[B H, T, d]``: one op for the
    scores, their scale and the causal mask, then the softmax."""
    t, d = q.shape[-2:]
    future = torch.full((t, t), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
    return torch.baddbmm(future, q, k.mT, alpha=d**-0.5).softmax(-1)


class _CPUDropoutAttention(torch.autograd.Function):
    """Causal attention with dropout on the pattern, ``q, k, v`` ``[B H, T, d]``, for the CPU
    in training: the dropout mask is drawn as in :func:`_dropout` (``rand >= p``, scaled by
    ``1 / (1 - p)``), and only ``q, k, v`` and the boolean mask are kept for the backward,
    which recomputes the pattern (one ``[T, T]`` product per head, little beside the model).
    Autograd through the explicit ops would keep three float ``[B H, T, T]`` tensors per
    attention (the pattern, the mask and the dropped pattern): 5.6 GB for the 026 model's 6
    layers at 16 x 256."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, q, k, v, p: float):
        pattern = _causal_pattern(q, k)
        keep = torch.rand_like(pattern) >= p  # boolean: a quarter of a float mask
        ctx.save_for_backward(q, k, v, keep)
        ctx.p = p
        return (pattern.mul_(keep) @ v).div_(1 - p)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        q, k, v, keep = ctx.saved_tensors
        scale = 1.0 / (1 - ctx.p)  # the scalars are applied to the [B H, T, d] results
        pattern = _causal_pattern(q, k)
        grad_v = ((pattern * keep).mT @ grad).mul_(scale)
        g = (grad @ v.mT).mul_(keep)  # the gradient of the pattern, / scale
        # the softmax's backward, in place: P * (G - sum(G * P))
        g.sub_((g * pattern).sum(-1, keepdim=True)).mul_(pattern)
        scale *= q.shape[-1] ** -0.5
        return (g @ k).mul_(scale), (g.mT @ q).mul_(scale), grad_v, None


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hook_pattern: HookPoint, dropout: float
) -> torch.Tensor:
    """Causal softmax attention, ``q, k, v`` ``[B, H, T, d] -> [B, H, T, d]``. The pattern is
    materialised (and passed through ``hook_pattern``) only when that hook has hooks attached;
    otherwise the fused kernel computes the same thing, except for dropout on the CPU (where
    the fused kernel has no dropout and would materialise the pattern too, with a slower
    mask): there :class:`_CPUDropoutAttention` keeps only a boolean mask for the backward."""
    hooked = hook_pattern.has_hooks()
    if not hooked and (dropout == 0 or q.device.type != "cpu"):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    b, h, t, d = q.shape
    q3, k3, v3 = (x.reshape(b * h, t, x.shape[-1]) for x in (q, k, v))
    if not hooked and torch.is_grad_enabled():
        return _CPUDropoutAttention.apply(q3, k3, v3, dropout).view(b, h, t, v.shape[-1])
    pattern = _causal_pattern(q3, k3).view(b, h, t, t)
    return _dropout(hook_pattern(pattern) if hooked else pattern, dropout) @ v


# ----------------------------------------------------------------------------- band sublayers


class BandAttention(nn.Module):
    """Per-band causal self-attention: band i's ``band_dims[i] // d_head`` heads read and write
    its own slice only. All bands' heads run in one attention call.

    Head layout: in a group of widest band W, every band has ``W // d_head`` head slots; band
    i's ``h_i`` heads fill the first, the others are zero (zero q, k, v weights and biases: a
    zero output, and the projection's rows there are zero too). Their (band, head) order is
    band order, so ``hook_pattern`` (which sees the real heads only) lists band 0's heads, then
    band 1's, ..."""

    def __init__(self, cfg: BandConfig, groups=None):
        super().__init__()
        dims, dh = cfg.band_dims, cfg.d_head
        self.d_head, self.dropout = dh, cfg.dropout
        self.layout = BandLayout(dims, groups)
        groups = self.layout.groups
        self.qkv = BandLinear(dims, [3 * d for d in dims], groups=groups, parts=3)
        self.proj = BandLinear(dims, dims, std=0.02 / math.sqrt(2 * cfg.n_layers), groups=groups)
        self.group_heads = [(b - a, w // dh) for (a, b), w in zip(groups, self.layout.group_widths)]
        real, start = [], 0
        for (a, b), (k, slots) in zip(groups, self.group_heads):
            real += [
                start + j * slots + h
                for j, i in enumerate(range(a, b))
                for h in range(dims[i] // dh)
            ]
            start += k * slots
        self.register_buffer("real_heads", torch.tensor(real), persistent=False)
        self.hook_pattern = HookPoint()

    def grouped(self, xs: Sequence[torch.Tensor], batch: int, seq: int) -> list[torch.Tensor]:
        dh = self.d_head
        qkv = [
            y.view(k, batch, seq, 3, h, dh)
            .permute(3, 1, 0, 4, 2, 5)
            .reshape(3, batch, k * h, seq, dh)
            for y, (k, h) in zip(self.qkv.grouped(xs), self.group_heads)
        ]
        q, k, v = (torch.cat(qkv, 2) if len(qkv) > 1 else qkv[0]).unbind(0)  # [B, slots, T, dh]
        drop = self.dropout if self.training else 0.0
        if self.hook_pattern.has_hooks():  # the pattern of the real heads only
            real = self.real_heads
            z = causal_attention(
                *(t.index_select(1, real) for t in (q, k, v)), self.hook_pattern, drop
            )
            z = z.new_zeros(q.shape).index_copy(1, real, z)
        else:
            z = causal_attention(q, k, v, self.hook_pattern, drop)
        zs = z.split([k * h for k, h in self.group_heads], 1)
        out = [
            zg.unflatten(1, (k, h)).permute(1, 0, 3, 2, 4).reshape(k, batch * seq, h * dh)
            for zg, (k, h) in zip(zs, self.group_heads)
        ]
        return self.proj.grouped(out)

    def forward(self, hp: torch.Tensor) -> torch.Tensor:  # padded [B, T, n, D] -> same
        ys = self.grouped(self.layout.padded_to_groups(hp), *hp.shape[:2])
        return self.layout.groups_to_padded(ys, hp.shape[:2])


class Wormhole(nn.Module):
    """Gated causal cross-band attention, one head per ordered band pair (receiver i, sender j):
    band i gets ``W_O,i mean_{j != i} tanh(a_ij) Attn(q_i, k_j, v_j)`` with q, k, v projected
    per band to ``d_wormhole``. All pairs run as the heads of one attention call."""

    def __init__(self, cfg: BandConfig, groups=None):
        super().__init__()
        n, dw = cfg.n_bands, cfg.d_wormhole
        self.n, self.d, self.dropout = n, dw, cfg.dropout
        self.layout = BandLayout(cfg.band_dims, groups)
        groups = self.layout.groups
        self.qkv = BandLinear(cfg.band_dims, [3 * dw] * n, groups=groups)
        std = 0.02 / math.sqrt(2 * cfg.n_layers)
        self.proj = BandLinear([dw] * n, cfg.band_dims, std=std, groups=groups)
        # gates.{i}[k]: band i's gate on its k-th sender (the bands != i in ascending order),
        # so cat(gates) follows cfg.band_pairs
        self.gates = _band_params([(n - 1,)] * n, cfg.wormhole_gate_init)
        receiver, sender = zip(*cfg.band_pairs)
        self.register_buffer("receiver", torch.tensor(receiver), persistent=False)
        self.register_buffer("sender", torch.tensor(sender), persistent=False)
        self.hook_pattern = HookPoint()

    def grouped(self, xs: Sequence[torch.Tensor], batch: int, seq: int) -> list[torch.Tensor]:
        qkv = torch.cat(self.qkv.grouped(xs)).view(self.n, batch, seq, 3 * self.d)
        q = qkv[..., : self.d].index_select(0, self.receiver)  # [n_pairs, B, T, dw]
        k, v = qkv[..., self.d :].index_select(0, self.sender).chunk(2, -1)
        drop = self.dropout if self.training else 0.0
        out = causal_attention(*(x.transpose(0, 1) for x in (q, k, v)), self.hook_pattern, drop)
        gate = torch.tanh(torch.cat(list(self.gates)))[:, None, None, None]
        out = (out.transpose(0, 1) * gate).unflatten(0, (self.n, self.n - 1)).mean(1)
        out = out.reshape(self.n, batch * seq, self.d)  # [n, N, dw]
        return self.proj.grouped(out.split([b - a for a, b in self.layout.groups]))

    def forward(self, hp: torch.Tensor) -> torch.Tensor:  # padded [B, T, n, D] -> same
        ys = self.grouped(self.layout.padded_to_groups(hp), *hp.shape[:2])
        return self.layout.groups_to_padded(ys, hp.shape[:2])


class BandMLP(nn.Module):
    """Per-band MLP ``d_i -> mlp_ratio d_i -> d_i`` (GELU); the hidden units of all bands are
    hooked concatenated in band order (``hook_pre``, ``hook_post``: ``[B, T, d_mlp]``). The
    hidden units are gathered into that layout only when one of the two hooks has a hook
    attached; otherwise they stay grouped (GELU(0) = 0 keeps the pads zero): same result."""

    def __init__(self, cfg: BandConfig, groups=None):
        super().__init__()
        dims = cfg.band_dims
        hidden = [cfg.mlp_ratio * d for d in dims]
        self.layout = BandLayout(dims, groups)
        groups = self.layout.groups
        self.fc_in = BandLinear(dims, hidden, groups=groups)
        std = 0.02 / math.sqrt(2 * cfg.n_layers)
        self.fc_out = BandLinear(hidden, dims, std=std, groups=groups)
        self.hidden = BandLayout(hidden, groups)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def grouped(self, xs: Sequence[torch.Tensor], batch: int, seq: int) -> list[torch.Tensor]:
        pre = self.fc_in.grouped(xs)
        if not (self.hook_pre.has_hooks() or self.hook_post.has_hooks()):
            return self.fc_out.grouped([F.gelu(p) for p in pre])
        post = self.hook_post(F.gelu(self.hook_pre(self.hidden.from_groups(pre, (batch, seq)))))
        return self.fc_out.grouped(self.hidden.to_groups(post))

    def forward(self, hp: torch.Tensor) -> torch.Tensor:  # padded [B, T, n, D] -> same
        ys = self.grouped(self.layout.padded_to_groups(hp), *hp.shape[:2])
        return self.layout.groups_to_padded(ys, hp.shape[:2])


class Attention(nn.Module):
    """Standard full-width causal multi-head attention (the baseline's, and the shared attention
    of the reference layout)."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        _init_linear(self.qkv)
        _init_linear(self.proj, 0.02 / math.sqrt(2 * n_layers))
        self.hook_pattern = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B, T, d]
        q, k, v = self.qkv(x).unflatten(-1, (3, self.n_heads, -1)).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        z = causal_attention(q, k, v, self.hook_pattern, drop)
        return self.proj(z.transpose(1, 2).flatten(-2))


class MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int, n_layers: int):
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_mlp)
        self.fc_out = nn.Linear(d_mlp, d_model)
        _init_linear(self.fc_in)
        _init_linear(self.fc_out, 0.02 / math.sqrt(2 * n_layers))
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.hook_post(F.gelu(self.hook_pre(self.fc_in(x)))))


def _init_linear(layer: nn.Linear, std: float = 0.02) -> None:
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)


# ----------------------------------------------------------------------------- band model


class BandBlock(nn.Module):
    """Pre-LN block: attention (per band, or shared in the reference layout), the wormhole
    (optional), per-band MLPs; each sublayer adds to the residual stream.

    :meth:`grouped` runs it on the grouped layout (what :class:`BandTransformer` passes from
    block to block: no conversion between blocks); the hooks see their documented layouts,
    converted to only when a hook is attached. ``forward`` takes and returns ``[B, T,
    d_model]``."""

    def __init__(self, cfg: BandConfig, max_groups: int = MAX_GROUPS):
        super().__init__()
        dims = cfg.band_dims
        groups = band_groups(dims, max_groups)
        self.reference = cfg.layout == "reference"
        self.layout = BandLayout(dims, groups)
        if self.reference:
            self.ln1 = nn.LayerNorm(cfg.d_model)
            self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.dropout)
        else:
            self.ln1 = BandLayerNorm(dims, groups=groups)
            self.attn = BandAttention(cfg, groups)
        if cfg.wormhole:
            self.ln_wormhole = BandLayerNorm(dims, groups=groups)
            self.wormhole = Wormhole(cfg, groups)
        self.ln2 = BandLayerNorm(dims, groups=groups)
        self.mlp = BandMLP(cfg, groups)
        self.drop = Dropout(cfg.dropout)
        for name in ("resid_pre", "attn_out", "wormhole_out", "mlp_out", "band_out", "resid_post"):
            setattr(self, f"hook_{name}", HookPoint())

    def _hooked(self, hook: HookPoint, xs: list, lead: tuple, padded: bool) -> list:
        """``xs`` through ``hook`` in its layout (padded, or concatenated), if it has hooks. What
        a padded hook writes into the pad entries is dropped (they belong to no band)."""
        if not hook.has_hooks():
            return xs
        if padded:
            out = hook(self.layout.groups_to_padded(xs, lead)) * self.layout.mask
            return self.layout.padded_to_groups(out)
        return self.layout.to_groups(hook(self.layout.from_groups(xs, lead)))

    def _add(self, xs: list, ys: list, hook: HookPoint, lead: tuple) -> list:
        ys = self._hooked(hook, [self.drop(y) for y in ys], lead, padded=True)
        return [x + y for x, y in zip(xs, ys)]

    def grouped(self, xs: list[torch.Tensor], batch: int, seq: int) -> list[torch.Tensor]:
        lead = (batch, seq)
        xs = self._hooked(self.hook_resid_pre, xs, lead, padded=False)
        if self.reference:  # shared full-width attention on the concatenated stream
            attn = self.attn(self.ln1(self.layout.from_groups(xs, lead)))
            xs = self._add(xs, self.layout.to_groups(attn), self.hook_attn_out, lead)
        else:
            xs = self._add(
                xs, self.attn.grouped(self.ln1.grouped(xs), *lead), self.hook_attn_out, lead
            )
        if hasattr(self, "wormhole"):
            worm = self.wormhole.grouped(self.ln_wormhole.grouped(xs), *lead)
            xs = self._add(xs, worm, self.hook_wormhole_out, lead)
        xs = self._add(xs, self.mlp.grouped(self.ln2.grouped(xs), *lead), self.hook_mlp_out, lead)
        xs = self._hooked(self.hook_band_out, xs, lead, padded=True)
        return self._hooked(self.hook_resid_post, xs, lead, padded=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d_model] -> same
        lead = tuple(x.shape[:2])
        return self.layout.from_groups(self.grouped(self.layout.to_groups(x), *lead), lead)


class _LanguageModel(HookedRootModule):
    """Shared parts: embeddings, final LayerNorm, (tied) unembedding, checks, loss, ownership."""

    def _embeddings(self, vocab: int, n_ctx: int, d: int, tie: bool, dropout: float) -> None:
        self.W_E = nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.W_pos = nn.Parameter(torch.randn(n_ctx, d) * 0.02)
        self.W_U = None if tie else nn.Parameter(torch.randn(d, vocab) * 0.02)
        self.drop = Dropout(dropout)
        self.ln_final = nn.LayerNorm(d)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()

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


class BandTransformer(_LanguageModel):
    """Token + learned position embeddings -> ``n_layers`` :class:`BandBlock` -> final LayerNorm
    -> unembedding (tied with the token embedding unless ``tie_embeddings=False``)."""

    def __init__(self, cfg: BandConfig, max_groups: int = MAX_GROUPS):
        super().__init__()
        self.cfg = cfg.validate()
        self._embeddings(cfg.vocab_size, cfg.n_ctx, cfg.d_model, cfg.tie_embeddings, cfg.dropout)
        self.blocks = nn.ModuleList([BandBlock(cfg, max_groups) for _ in range(cfg.n_layers)])
        self.setup()

    def residual(self, tokens: torch.Tensor) -> torch.Tensor:
        """The residual stream after the last block, ``[B, T, d_model]``. It goes from block to
        block in the grouped layout, converted once after the embedding and once here."""
        x = self._embed(tokens)
        lead, layout = tuple(tokens.shape), self.blocks[0].layout
        xs = layout.to_groups(x)
        for block in self.blocks:
            xs = block.grouped(xs, *lead)
        return layout.from_groups(xs, lead)

    @property
    def name(self) -> str:
        c = self.cfg
        return f"BandTransformer(layout={c.layout!r}, wormhole={c.wormhole}, bands={c.band_dims})"

    def band_activations(self, tokens: torch.Tensor, layer: int = -1) -> list[torch.Tensor]:
        """Band i's state after block ``layer`` (``hook_band_out``): ``[B, T, band_dims[i]]``
        per band, detached, computed without gradients."""
        check_int("layer", layer, low=-self.cfg.n_layers, high=self.cfg.n_layers - 1)
        name = f"blocks.{layer % self.cfg.n_layers}.hook_band_out"
        store = {}

        def keep(tensor, hook):
            store["x"] = tensor.detach()

        with torch.no_grad(), self.hooks(fwd_hooks=[(name, keep)]):
            self.residual(tokens)  # the logits are not needed
        return [store["x"][..., i, :d] for i, d in enumerate(self.cfg.band_dims)]


# ----------------------------------------------------------------------------- baseline


class Block(nn.Module):
    """Standard pre-LN GPT block."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg.d_model, cfg.d_mlp, cfg.n_layers)
        self.drop = Dropout(cfg.dropout)
        for name in ("resid_pre", "attn_out", "mlp_out", "resid_post"):
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        x = x + self.hook_attn_out(self.drop(self.attn(self.ln1(x))))
        x = x + self.hook_mlp_out(self.drop(self.mlp(self.ln2(x))))
        return self.hook_resid_post(x)


class BaselineTransformer(_LanguageModel):
    """A standard pre-LN GPT with the band model's embeddings, init, loss and hook names. Every
    parameter is shared (``parameter_bands()`` maps all to None); it trains at ``cfg.lr``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self._embeddings(cfg.vocab_size, cfg.n_ctx, cfg.d_model, cfg.tie_embeddings, cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.setup()

    @property
    def name(self) -> str:
        c = self.cfg
        return f"BaselineTransformer(d_model={c.d_model}, d_mlp={c.d_mlp}, n_layers={c.n_layers})"

    @staticmethod
    def matched_config(
        band_cfg: BandConfig, n_heads: int | None = None, d_model: int | None = None, tol=0.02
    ) -> GPTConfig:
        """The GPT config within ``tol`` of the band model's parameter count, with its
        vocabulary, n_ctx, n_layers, tying, dropout and ``lr = shared_lr``.

        For each ``d_model`` (given, or every multiple of ``8 * n_heads`` up to the band
        model's: head size a multiple of 8; ``n_heads`` defaults to ``band_cfg.n_heads``)
        ``d_mlp`` is solved for the count (one unit of d_mlp is ``n_layers * (2 d_model + 1)``
        parameters); of those within ``tol``, the one whose ``d_mlp / d_model`` is closest to
        ``band_cfg.mlp_ratio`` (in log ratio) is returned."""
        band_cfg.validate()
        check_real("tol", tol, low=0.0, low_open=True)
        target = band_parameter_count(band_cfg)
        heads = band_cfg.n_heads if n_heads is None else check_int("n_heads", n_heads, low=1)
        base = _gpt_fields(band_cfg, heads)

        def gpt(d: int, m: int) -> GPTConfig:
            return GPTConfig(**base, d_model=d, d_mlp=m)

        def solve(d: int) -> GPTConfig:
            per_unit = band_cfg.n_layers * (2 * d + 1)
            d_mlp = max(1, round((target - gpt(d, 0).n_params()) / per_unit))
            return gpt(d, d_mlp)

        if d_model is None:
            step = 8 * heads
            widths = range(step, max(step, band_cfg.d_model) + 1, step)
        else:
            widths = [check_int("d_model", d_model, low=1)]
        fits = [c for c in map(solve, widths) if abs(c.n_params() / target - 1) <= tol]
        if not fits:
            raise ValueError(
                f"no GPT with d_model in {widths[0]}..{widths[-1]} comes within tol={tol} of the "
                f"band model's {target:,} parameters; try another d_model, n_heads or tol"
            )
        ideal = math.log(band_cfg.mlp_ratio)
        return min(fits, key=lambda c: abs(math.log(c.d_mlp / c.d_model) - ideal)).validate()

    @classmethod
    def matched_to(cls, band_cfg: BandConfig, **kwargs: Any) -> BaselineTransformer:
        """The baseline of :meth:`matched_config` (same keyword arguments), built."""
        return cls(cls.matched_config(band_cfg, **kwargs))

    @staticmethod
    def equal_width_config(band_cfg: BandConfig) -> GPTConfig:
        """The GPT as wide as the band model: ``d_model = sum(band_dims)``, ``d_mlp =
        mlp_ratio * d_model``, and the matched baseline's rule for the rest (the band config's
        n_layers, ``n_heads``, vocabulary, n_ctx, tying, dropout, ``lr = shared_lr``). It has
        more parameters than the band model (no block-diagonal saving)."""
        band_cfg.validate()
        d = band_cfg.d_model
        fields = _gpt_fields(band_cfg, band_cfg.n_heads)
        return GPTConfig(**fields, d_model=d, d_mlp=band_cfg.mlp_ratio * d).validate()


# ----------------------------------------------------------------------------- helpers


def _gpt_fields(band_cfg: BandConfig, n_heads: int) -> dict:
    """What a baseline GPT takes from the band model it is compared with: vocabulary, n_ctx,
    n_layers, tying, dropout and ``lr = shared_lr`` (both baselines' rule)."""
    return dict(
        vocab_size=band_cfg.vocab_size,
        n_ctx=band_cfg.n_ctx,
        n_layers=band_cfg.n_layers,
        n_heads=n_heads,
        lr=band_cfg.shared_lr,
        tie_embeddings=band_cfg.tie_embeddings,
        dropout=band_cfg.dropout,
    )


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


def band_parameter_count(cfg: BandConfig) -> int:
    """Parameters of ``BandTransformer(cfg)``, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = BandTransformer(cfg)
    return sum(p.numel() for p in model.parameters())


def model_summary(model: _LanguageModel) -> dict[str, Any]:
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


__all__ = [
    "DEFAULT_BAND_DIMS",
    "DEFAULT_BAND_LRS",
    "LAYOUTS",
    "PRESETS",
    "TEST_COMPLETE",
    "BandConfig",
    "BandLayout",
    "BandLinear",
    "BandTransformer",
    "BaselineTransformer",
    "GPTConfig",
    "band_parameter_count",
    "model_summary",
    "next_token_loss",
    "preset",
    "training_loss",
]
