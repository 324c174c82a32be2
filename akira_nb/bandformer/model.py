"""The band transformer (experiment 026's model, also 013's) and its baseline GPT.

The band model splits the hidden state into ``n_bands`` contiguous slices (``band_dims``).
Every :class:`BandBlock` is pre-LN: per-band causal attention (each band reads and writes its
own slice; ``layout="reference"``: one shared full-width attention, the public reference's v1),
the wormhole (gated causal attention between every ordered pair of bands; ``wormhole=False``
removes it), and per-band MLPs. So every block weight belongs to one band and only the
embeddings and the final LayerNorm are shared (``parameter_bands()``). The blocks compute on
the grouped layout of :mod:`akira_nb.bandformer.layout`; every hook sees the layout its
comment gives. :class:`BaselineTransformer` is a standard pre-LN GPT with the same embeddings,
init, loss and hook names; :meth:`BaselineTransformer.matched_to` sizes one within 2% of a
band model's parameter count. Settings: :mod:`akira_nb.bandformer.config`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
from transformer_lens.hook_points import HookPoint

from akira_nb.bandformer.config import (
    DEFAULT_BAND_DIMS,
    DEFAULT_BAND_LRS,
    LAYOUTS,
    PRESETS,
    BandConfig,
    GPTConfig,
    gpt_param_count,
    preset,
)
from akira_nb.bandformer.layers import (
    MLP,
    Attention,
    BandAttention,
    BandMLP,
    Dropout,
    Wormhole,
    causal_attention,
)
from akira_nb.bandformer.layout import (
    MAX_GROUPS,
    BandLayerNorm,
    BandLayout,
    BandLinear,
    band_groups,
)
from akira_nb.bandformer.lm import LanguageModel, model_summary, next_token_loss, training_loss
from akira_nb.runtime import check_int, check_real

TEST_COMPLETE = "AKIRA Band Transformer test complete!"  # the seed's closing line


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
        self.hook_resid_pre = HookPoint()  # [B, T, d_model]
        self.hook_attn_out = HookPoint()  # [B, T, n_bands, max(band_dims)] (padded)
        self.hook_wormhole_out = HookPoint()  # [B, T, n_bands, max(band_dims)] (padded)
        self.hook_mlp_out = HookPoint()  # [B, T, n_bands, max(band_dims)] (padded)
        self.hook_band_out = HookPoint()  # [B, T, n_bands, max(band_dims)]: the block's output
        self.hook_resid_post = HookPoint()  # [B, T, d_model]

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


class BandTransformer(LanguageModel):
    """Token + learned position embeddings -> ``n_layers`` :class:`BandBlock` -> final LayerNorm
    -> unembedding (tied with the token embedding unless ``tie_embeddings=False``)."""

    def __init__(self, cfg: BandConfig, max_groups: int = MAX_GROUPS):
        super().__init__()
        self.cfg = cfg
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
        self.hook_resid_pre = HookPoint()  # [B, T, d_model]
        self.hook_attn_out = HookPoint()  # [B, T, d_model]
        self.hook_mlp_out = HookPoint()  # [B, T, d_model]
        self.hook_resid_post = HookPoint()  # [B, T, d_model]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_resid_pre(x)
        x = x + self.hook_attn_out(self.drop(self.attn(self.ln1(x))))
        x = x + self.hook_mlp_out(self.drop(self.mlp(self.ln2(x))))
        return self.hook_resid_post(x)


class BaselineTransformer(LanguageModel):
    """A standard pre-LN GPT with the band model's embeddings, init, loss and hook names. Every
    parameter is shared (``parameter_bands()`` maps all to None); it trains at ``cfg.lr``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
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
        check_real("tol", tol, low=0.0, low_open=True)
        target = band_parameter_count(band_cfg)
        heads = band_cfg.n_heads if n_heads is None else check_int("n_heads", n_heads, low=1)
        base = _gpt_fields(band_cfg, heads)

        def solve(d: int) -> GPTConfig:
            per_unit = band_cfg.n_layers * (2 * d + 1)
            shapes = [base[k] for k in ("vocab_size", "n_ctx", "n_layers")]
            without_mlp = gpt_param_count(*shapes, d, 0, base["tie_embeddings"])
            d_mlp = max(1, round((target - without_mlp) / per_unit))
            return GPTConfig(**base, d_model=d, d_mlp=d_mlp)

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
        return min(fits, key=lambda c: abs(math.log(c.d_mlp / c.d_model) - ideal))

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
        d = band_cfg.d_model
        fields = _gpt_fields(band_cfg, band_cfg.n_heads)
        return GPTConfig(**fields, d_model=d, d_mlp=band_cfg.mlp_ratio * d)


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


_COUNTS: dict[str, int] = {}  # repr(BandConfig) -> its parameter count, per process


def band_parameter_count(cfg: BandConfig) -> int:
    """Parameters of ``BandTransformer(cfg)``: built once per config and process, on the CPU
    (on the meta device PyTorch runs Python shape checks for every index op of the layouts:
    about ten times the CPU's cost at the tiny preset, more than it at the default one), with
    the global random state restored (it is called after a seed is set, before an init)."""
    key = repr(cfg)
    if key not in _COUNTS:
        with torch.random.fork_rng(devices=[]), torch.device("cpu"), torch.no_grad():
            model = BandTransformer(cfg)
        _COUNTS[key] = sum(p.numel() for p in model.parameters())
    return _COUNTS[key]


__all__ = [
    "DEFAULT_BAND_DIMS",
    "DEFAULT_BAND_LRS",
    "LAYOUTS",
    "PRESETS",
    "TEST_COMPLETE",
    "BandBlock",
    "BandConfig",
    "BandLayerNorm",
    "BandLayout",
    "BandLinear",
    "BandTransformer",
    "BaselineTransformer",
    "Block",
    "GPTConfig",
    "LanguageModel",
    "band_groups",
    "band_parameter_count",
    "causal_attention",
    "model_summary",
    "next_token_loss",
    "preset",
    "training_loss",
]
