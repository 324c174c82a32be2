"""How the band model batches its bands: the band groups, the layouts it converts between, and
the block-diagonal band layers.

Each band's weights are separate parameters of their true sizes. The bands are cut into at most
``MAX_GROUPS`` contiguous groups of similar width (:func:`band_groups`); inside the model the
band state lives in the *grouped layout*: one band-major ``[k, B*T, W_g]`` tensor per group (its
k bands, each zero-padded to the group's widest band W_g). :class:`BandLayout` converts between
the concatenated ``[B, T, d_model]``, the padded ``[B, T, n_bands, max(band_dims)]`` (band i in
``[..., i, :band_dims[i]]``, zeros beyond) and the grouped layouts; :class:`BandLinear` and
:class:`BandLayerNorm` compute on the grouped layout with one batched op per group.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from akira_nb.runtime import check_int

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


def band_params(shapes: Sequence[tuple[int, ...]], fill: float | None, std: float = 0.0):
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
        self.weight = band_params(list(zip(in_dims, out_dims)), None, std)
        self.bias = band_params([(o,) for o in out_dims], 0.0)
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
        self.weight = band_params([(d,) for d in dims], 1.0)
        self.bias = band_params([(d,) for d in dims], 0.0)
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
