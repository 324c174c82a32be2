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
weights and parameter counts are exact), and a :class:`BandLinear` stacks them, zero-padded to
the largest band, into one ``[n_bands, d_in_max, d_out_max]`` tensor (one ``torch.cat`` of the
bands' weights and biases written into zeros by one ``index_copy``: the same few ops whatever
the number of bands, since a GPU pays for every kernel launch) applied with one batched matmul.
Inside a block the band states therefore live in the *padded band layout* ``[B, T, n_bands,
max(band_dims)]`` (band i in ``[..., i, :band_dims[i]]``, zeros beyond; :class:`BandLayout`
converts to and from the concatenated ``[B, T, d_model]``), stored band-major (``[n_bands, B,
T, max_dim]`` memory seen through a ``movedim`` view), which is what the batched matmul reads
and writes, so the sublayers pass it on without copies. The padding costs ``n_bands *
max_dim**2 / sum(dim**2)`` (2.6x for the default dims) in the block matmuls, against 6x for a
dense block-diagonal matrix.

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
(``run_with_cache`` does that); otherwise the fused ``scaled_dot_product_attention`` runs. Both
compute the same causal softmax attention.

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


class BandLayout(nn.Module):
    """Maps between the concatenated layout ``[..., sum(dims)]`` and the padded band layout
    ``[..., n, max(dims)]`` (band i in ``[..., i, :dims[i]]``, zeros beyond).

    Padded tensors are stored band-major: :meth:`to_padded` returns a ``[..., n, width]`` view
    of ``[n, ..., width]`` storage, the layout in which :class:`BandLinear` runs its one batched
    matmul over bands, so the blocks move between sublayers without copies (any ``[..., n,
    width]`` tensor is accepted; other strides cost a copy in the next :class:`BandLinear`)."""

    def __init__(self, dims: Sequence[int]):
        super().__init__()
        self.dims, self.n, self.width, self.total = tuple(dims), len(dims), max(dims), sum(dims)
        mask = [[a < d for a in range(self.width)] for d in dims]
        self.register_buffer("mask", torch.tensor(mask), persistent=False)  # [n, width]
        self.register_buffer("sizes", torch.tensor(dims, dtype=torch.float32), persistent=False)

    def to_padded(self, x: torch.Tensor) -> torch.Tensor:
        bands = [
            F.pad(part, (0, self.width - d)) for part, d in zip(x.split(self.dims, -1), self.dims)
        ]
        return torch.stack(bands).movedim(0, -2)

    def from_padded(self, xp: torch.Tensor) -> torch.Tensor:
        bands = xp.movedim(-2, 0).unbind(0)  # backward: one stack, band-major again
        return torch.cat([band[..., :d] for band, d in zip(bands, self.dims)], -1)


def _band_major(xp: torch.Tensor) -> torch.Tensor:
    """``[..., n, W] -> [n, prod(...), W]``: a free view of band-major storage."""
    return xp.movedim(-2, 0).reshape(xp.shape[-2], -1, xp.shape[-1])


def _padded(y: torch.Tensor, lead: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`_band_major`: ``[n, prod(lead), W] -> [*lead, n, W]`` (a view)."""
    return y.unflatten(1, lead).movedim(0, -2)


def _scatter_index(shape: Sequence[int], regions: Sequence[tuple]) -> torch.Tensor:
    """The flat positions in a ``shape`` tensor of each region (an index tuple), in turn."""
    grid = torch.arange(math.prod(shape)).view(*shape)
    return torch.cat([grid[region].flatten() for region in regions])


def _scatter(tensors: Sequence[torch.Tensor], index: torch.Tensor, shape: Sequence[int]):
    """A zero ``shape`` tensor with the flattened ``tensors``, one after the other, written at
    the flat positions ``index`` (of :func:`_scatter_index`): one cat and one index_copy (and
    one index_select backward) for all bands, however many."""
    flat = torch.cat([t.flatten() for t in tensors])
    return flat.new_zeros(math.prod(shape)).index_copy(0, index, flat).view(*shape)


class BandParameters(nn.ParameterList):
    """A ParameterList whose entry i belongs to band i (what ``parameter_bands`` reads)."""


def _band_params(shapes: Sequence[tuple[int, ...]], fill: float | None, std: float = 0.0):
    """One parameter per band: constant ``fill``, or N(0, std) when ``fill`` is None."""
    make = (lambda s: torch.full(s, fill)) if fill is not None else (lambda s: torch.randn(s) * std)
    return BandParameters([nn.Parameter(make(s)) for s in shapes])


class BandLinear(nn.Module):
    """Block-diagonal linear map, band i: ``in_dims[i] -> out_dims[i]``, on the padded band
    layout ``[..., n, max(in_dims)] -> [..., n, max(out_dims)]`` (pads stay zero).

    ``weight.{i}`` ``[in_i, out_i]`` and ``bias.{i}`` ``[out_i]`` are band i's own parameters;
    ``forward`` stacks them zero-padded (:meth:`stacked`) and applies one batched matmul over
    bands (``baddbmm`` on band-major storage)."""

    def __init__(self, in_dims: Sequence[int], out_dims: Sequence[int], std: float = 0.02):
        super().__init__()
        self.weight = _band_params(list(zip(in_dims, out_dims)), None, std)
        self.bias = _band_params([(o,) for o in out_dims], 0.0)
        d_in, d_out = max(in_dims), max(out_dims)
        # weights and biases stacked as [n, d_in + 1, d_out], band i's bias in its last row
        self.shape = (len(in_dims), d_in + 1, d_out)
        regions = [
            r
            for i, (a, b) in enumerate(zip(in_dims, out_dims))
            for r in ((i, slice(a), slice(b)), (i, d_in, slice(b)))
        ]
        self.register_buffer("index", _scatter_index(self.shape, regions), persistent=False)

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights ``[n, max_in, max_out]`` and biases ``[n, max_out]``, zero-padded."""
        pairs = [t for pair in zip(self.weight, self.bias) for t in pair]
        full = _scatter(pairs, self.index, self.shape)
        return full[:, :-1], full[:, -1]

    def forward(self, xp: torch.Tensor) -> torch.Tensor:
        w, b = self.stacked()
        return _padded(torch.baddbmm(b[:, None], _band_major(xp), w), xp.shape[:-2])


class BandLayerNorm(nn.Module):
    """LayerNorm of each band over its own slice, on the padded band layout."""

    def __init__(self, dims: Sequence[int], eps: float = 1e-5):
        super().__init__()
        self.layout = BandLayout(dims)
        self.weight = _band_params([(d,) for d in dims], 1.0)
        self.bias = _band_params([(d,) for d in dims], 0.0)
        self.eps = eps
        # weight and bias stacked as [n, 2, max_dim] (zero-padded)
        self.shape = (len(dims), 2, max(dims))
        regions = [(i, j, slice(d)) for i, d in enumerate(dims) for j in (0, 1)]
        self.register_buffer("index", _scatter_index(self.shape, regions), persistent=False)

    def forward(self, xp: torch.Tensor) -> torch.Tensor:
        x = _band_major(xp)  # [n, N, W], pads zero
        mask, n = self.layout.mask[:, None], self.layout.sizes[:, None, None]
        xc = torch.addcmul(x, x.sum(-1, keepdim=True) / n, mask, value=-1)  # pads stay zero
        var = torch.linalg.vector_norm(xc, dim=-1, keepdim=True).square() / n
        pairs = [t for pair in zip(self.weight, self.bias) for t in pair]
        weight, bias = _scatter(pairs, self.index, self.shape)[:, None].unbind(2)
        return _padded(torch.addcmul(bias, xc * torch.rsqrt(var + self.eps), weight), xp.shape[:-2])


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hook_pattern: HookPoint, dropout: float
) -> torch.Tensor:
    """Causal softmax attention, ``q, k, v`` ``[B, H, T, d] -> [B, H, T, d]``. The pattern is
    materialised (and passed through ``hook_pattern``) only when that hook has hooks attached;
    otherwise the fused kernel computes the same thing."""
    if not hook_pattern.has_hooks():
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    t = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    pattern = hook_pattern(scores.masked_fill(~causal, float("-inf")).softmax(-1))
    return F.dropout(pattern, dropout, training=dropout > 0) @ v


# ----------------------------------------------------------------------------- band sublayers


class BandAttention(nn.Module):
    """Per-band causal self-attention: band i's ``band_dims[i] // d_head`` heads read and write
    its own slice only. All bands' heads run in one attention call."""

    def __init__(self, cfg: BandConfig):
        super().__init__()
        dims, dh = cfg.band_dims, cfg.d_head
        self.d_head, self.dropout = dh, cfg.dropout
        self.layout = BandLayout(dims)
        self.qkv = BandLinear(dims, [3 * d for d in dims])
        self.proj = BandLinear(dims, dims, std=0.02 / math.sqrt(2 * cfg.n_layers))
        # band i's padded qkv output holds [q_i | k_i | v_i]: 3 h_i heads among the
        # 3 max_dim / dh head slots of its row; the (band, slot) of every q, k and v head, in
        # band order: [3, total heads] each
        heads = [(i, h) for i, n_h in enumerate(cfg.heads_per_band) for h in range(n_h)]
        band = [[i for i, _ in heads]] * 3
        slot = [[part * (dims[i] // dh) + h for i, h in heads] for part in range(3)]
        self.register_buffer("head_band", torch.tensor(band), persistent=False)
        self.register_buffer("head_slot", torch.tensor(slot), persistent=False)
        self.hook_pattern = HookPoint()

    def forward(self, hp: torch.Tensor) -> torch.Tensor:  # padded [B, T, n, D] -> same
        qkv = self.qkv(hp).movedim(-2, 0).unflatten(-1, (-1, self.d_head))  # [n, B, T, slots, dh]
        q, k, v = qkv[self.head_band, :, :, self.head_slot].transpose(1, 2)  # each [B, H, T, dh]
        drop = self.dropout if self.training else 0.0
        z = causal_attention(q, k, v, self.hook_pattern, drop)  # [B, H, T, dh]
        return self.proj(self.layout.to_padded(z.transpose(1, 2).flatten(-2)))  # band order


class Wormhole(nn.Module):
    """Gated causal cross-band attention, one head per ordered band pair (receiver i, sender j):
    band i gets ``W_O,i mean_{j != i} tanh(a_ij) Attn(q_i, k_j, v_j)`` with q, k, v projected
    per band to ``d_wormhole``. All pairs run as the heads of one attention call."""

    def __init__(self, cfg: BandConfig):
        super().__init__()
        n, dw = cfg.n_bands, cfg.d_wormhole
        self.n, self.d, self.dropout = n, dw, cfg.dropout
        self.qkv = BandLinear(cfg.band_dims, [3 * dw] * n)
        self.proj = BandLinear([dw] * n, cfg.band_dims, std=0.02 / math.sqrt(2 * cfg.n_layers))
        # gates.{i}[k]: band i's gate on its k-th sender (the bands != i in ascending order),
        # so cat(gates) follows cfg.band_pairs
        self.gates = _band_params([(n - 1,)] * n, cfg.wormhole_gate_init)
        receiver, sender = zip(*cfg.band_pairs)
        self.register_buffer("receiver", torch.tensor(receiver), persistent=False)
        self.register_buffer("sender", torch.tensor(sender), persistent=False)
        self.hook_pattern = HookPoint()

    def forward(self, hp: torch.Tensor) -> torch.Tensor:  # padded [B, T, n, D] -> same
        qkv = self.qkv(hp).movedim(-2, 0)  # [n, B, T, 3 dw]
        q = qkv[..., : self.d].index_select(0, self.receiver)  # [n_pairs, B, T, dw]
        k, v = qkv[..., self.d :].index_select(0, self.sender).chunk(2, -1)
        drop = self.dropout if self.training else 0.0
        out = causal_attention(*(x.transpose(0, 1) for x in (q, k, v)), self.hook_pattern, drop)
        gate = torch.tanh(torch.cat(list(self.gates)))[:, None, None, None]
        out = (out.transpose(0, 1) * gate).unflatten(0, (self.n, self.n - 1)).mean(1)
        return self.proj(out.movedim(0, -2))  # [n, B, T, dw] as padded [B, T, n, dw]


class BandMLP(nn.Module):
    """Per-band MLP ``d_i -> mlp_ratio d_i -> d_i`` (GELU); the hidden units of all bands are
    hooked concatenated in band order (``hook_pre``, ``hook_post``: ``[B, T, d_mlp]``). The
    hidden units are gathered into that layout only when one of the two hooks has a hook
    attached; otherwise they stay padded (GELU(0) = 0 keeps the pads zero): same result."""

    def __init__(self, cfg: BandConfig):
        super().__init__()
        dims = cfg.band_dims
        hidden = [cfg.mlp_ratio * d for d in dims]
        self.fc_in = BandLinear(dims, hidden)
        self.fc_out = BandLinear(hidden, dims, std=0.02 / math.sqrt(2 * cfg.n_layers))
        self.hidden = BandLayout(hidden)
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, hp: torch.Tensor) -> torch.Tensor:
        pre = self.fc_in(hp)  # padded [B, T, n, mlp_ratio * max_dim]
        if not (self.hook_pre.has_hooks() or self.hook_post.has_hooks()):
            return self.fc_out(F.gelu(pre))
        post = self.hook_post(F.gelu(self.hook_pre(self.hidden.from_padded(pre))))
        return self.fc_out(self.hidden.to_padded(post))


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
    (optional), per-band MLPs; each sublayer adds to the residual stream."""

    def __init__(self, cfg: BandConfig):
        super().__init__()
        dims = cfg.band_dims
        self.reference = cfg.layout == "reference"
        self.layout = BandLayout(dims)
        if self.reference:
            self.ln1 = nn.LayerNorm(cfg.d_model)
            self.attn = Attention(cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.dropout)
        else:
            self.ln1 = BandLayerNorm(dims)
            self.attn = BandAttention(cfg)
        if cfg.wormhole:
            self.ln_wormhole = BandLayerNorm(dims)
            self.wormhole = Wormhole(cfg)
        self.ln2 = BandLayerNorm(dims)
        self.mlp = BandMLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        for name in ("resid_pre", "attn_out", "wormhole_out", "mlp_out", "band_out", "resid_post"):
            setattr(self, f"hook_{name}", HookPoint())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d_model] -> same
        x = self.hook_resid_pre(x)
        if self.reference:  # shared full-width attention on the concatenated stream
            attn = self.layout.to_padded(self.drop(self.attn(self.ln1(x))))
            xp = self.layout.to_padded(x) + self.hook_attn_out(attn)
        else:
            xp = self.layout.to_padded(x)
            xp = xp + self.hook_attn_out(self.drop(self.attn(self.ln1(xp))))
        if hasattr(self, "wormhole"):
            xp = xp + self.hook_wormhole_out(self.drop(self.wormhole(self.ln_wormhole(xp))))
        xp = xp + self.hook_mlp_out(self.drop(self.mlp(self.ln2(xp))))
        return self.hook_resid_post(self.layout.from_padded(self.hook_band_out(xp)))


class _LanguageModel(HookedRootModule):
    """Shared parts: embeddings, final LayerNorm, (tied) unembedding, checks, loss, ownership."""

    def _embeddings(self, vocab: int, n_ctx: int, d: int, tie: bool, dropout: float) -> None:
        self.W_E = nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.W_pos = nn.Parameter(torch.randn(n_ctx, d) * 0.02)
        self.W_U = None if tie else nn.Parameter(torch.randn(d, vocab) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.ln_final = nn.LayerNorm(d)
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, vocab_size]`` for token ids ``[B, T]`` (T <= n_ctx)."""
        self._check_tokens(tokens)
        x = self.hook_embed(F.embedding(tokens, self.W_E))
        x = self.drop(x + self.hook_pos_embed(self.W_pos[: tokens.shape[1]]))
        for block in self.blocks:
            x = block(x)
        x = self.ln_final(x)
        return x @ (self.W_E.T if self.W_U is None else self.W_U)

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """:func:`next_token_loss` of this model on ``tokens``."""
        return next_token_loss(self(tokens), tokens)

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

    def __init__(self, cfg: BandConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self._embeddings(cfg.vocab_size, cfg.n_ctx, cfg.d_model, cfg.tie_embeddings, cfg.dropout)
        self.blocks = nn.ModuleList([BandBlock(cfg) for _ in range(cfg.n_layers)])
        self.setup()

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
            self(tokens)
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
        self.drop = nn.Dropout(cfg.dropout)
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
        base = dict(
            vocab_size=band_cfg.vocab_size,
            n_ctx=band_cfg.n_ctx,
            n_layers=band_cfg.n_layers,
            n_heads=heads,
            lr=band_cfg.shared_lr,
            tie_embeddings=band_cfg.tie_embeddings,
            dropout=band_cfg.dropout,
        )

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


# ----------------------------------------------------------------------------- helpers


def next_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of predicting ``tokens[:, t + 1]`` from ``logits[:, t]``, over
    every position of packed blocks (``B * (T - 1)`` predictions; nothing is padding). The last
    position's target is ``ignore_index`` rather than sliced off, which spares a copy of the
    logits (and of their gradient)."""
    targets = F.pad(tokens[:, 1:], (0, 1), value=-100)  # the last position predicts nothing
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


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
]
