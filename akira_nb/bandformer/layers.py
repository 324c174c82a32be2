"""The sublayers of the band and baseline blocks: causal attention (fused unless a hook wants
the pattern), the per-band attention, the wormhole (gated cross-band attention), the per-band
MLP, and the baseline's full-width attention and MLP.

A band sublayer computes on the grouped layout (:meth:`grouped`, what the blocks pass between
them); its ``forward`` takes and returns the padded band layout ``[B, T, n_bands, max(band_dims)]``
(:class:`BandSublayer`). Attention patterns are materialised only when a hook is attached to
``hook_pattern``; otherwise the fused ``scaled_dot_product_attention`` runs, or, for dropout on
the CPU, an attention that keeps only a boolean mask for the backward.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens.hook_points import HookPoint

from akira_nb.bandformer.config import BandConfig
from akira_nb.bandformer.layout import BandLayout, BandLinear, band_params


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


class BandSublayer(nn.Module):
    """A band sublayer: ``grouped(xs, batch, seq)`` on the grouped layout of ``self.layout``,
    and ``forward`` on the padded band layout through it."""

    layout: BandLayout

    def grouped(self, xs: Sequence[torch.Tensor], batch: int, seq: int) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, hp: torch.Tensor) -> torch.Tensor:  # padded [B, T, n, D] -> same
        ys = self.grouped(self.layout.padded_to_groups(hp), *hp.shape[:2])
        return self.layout.groups_to_padded(ys, hp.shape[:2])


class BandAttention(BandSublayer):
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
        self.hook_pattern = HookPoint()  # [B, heads, T, T], band by band (cfg.head_bands)

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


class Wormhole(BandSublayer):
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
        self.gates = band_params([(n - 1,)] * n, cfg.wormhole_gate_init)
        receiver, sender = zip(*cfg.band_pairs)
        self.register_buffer("receiver", torch.tensor(receiver), persistent=False)
        self.register_buffer("sender", torch.tensor(sender), persistent=False)
        self.hook_pattern = HookPoint()  # [B, n_pairs, T, T] (cfg.band_pairs)

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


class BandMLP(BandSublayer):
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
        self.hook_pre = HookPoint()  # [B, T, d_mlp], band by band (cfg.mlp_band_slices)
        self.hook_post = HookPoint()  # [B, T, d_mlp]: after the GELU, same layout

    def grouped(self, xs: Sequence[torch.Tensor], batch: int, seq: int) -> list[torch.Tensor]:
        pre = self.fc_in.grouped(xs)
        if not (self.hook_pre.has_hooks() or self.hook_post.has_hooks()):
            return self.fc_out.grouped([F.gelu(p) for p in pre])
        post = self.hook_post(F.gelu(self.hook_pre(self.hidden.from_groups(pre, (batch, seq)))))
        return self.fc_out.grouped(self.hidden.to_groups(post))


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
        self.hook_pattern = HookPoint()  # [B, n_heads, T, T]

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
        self.hook_pre = HookPoint()  # [B, T, d_mlp]
        self.hook_post = HookPoint()  # [B, T, d_mlp]: after the GELU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.hook_post(F.gelu(self.hook_pre(self.fc_in(x)))))


def _init_linear(layer: nn.Linear, std: float = 0.02) -> None:
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
