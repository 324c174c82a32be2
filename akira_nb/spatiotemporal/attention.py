"""The three attention types, batched over ``[B, H, W, D]`` queries and ``[B, T, H, W, D]``
histories (oldest slot first; the newest slot is frame t-1; the current frame is never in the
history). No Python loop runs over pixels, batch elements or tokens: neighbour attention loops
over the k x k kernel offsets, the wormhole search over key chunks.

Each module returns ``(out, stats)``; stats are tensors (call ``float()`` to log them).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens.hook_points import HookPoint

from ..runtime import check_choice, check_int, check_range


def _entropy(w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return -(w * torch.log(w.clamp_min(1e-10))).sum(dim)


def _proj(i: int, o: int) -> nn.Linear:
    return nn.Linear(i, o, bias=False)


class TemporalAttention(nn.Module):
    """Each pixel attends to its own past states: top-k by score, then an exponential recency
    bias ``(T - slot) * log(decay_rate)`` (newest slot gets ``decay_rate**1``), softmax / tau."""

    def __init__(
        self, query_dim, key_dim, attn_dim, out_dim=None, top_k=4, decay_rate=0.95, tau=1.0
    ):
        super().__init__()
        check_int("top_k", top_k, low=1)
        check_range("decay_rate", decay_rate, 0.0, 1.0, low_open=True, high_open=True)
        check_range("tau", tau, 0.0, None, low_open=True)
        self.top_k, self.decay_rate, self.tau, self.attn_dim = top_k, decay_rate, tau, attn_dim
        self.W_q, self.W_k = _proj(query_dim, attn_dim), _proj(key_dim, attn_dim)
        self.W_v, self.W_o = _proj(key_dim, attn_dim), _proj(attn_dim, out_dim or query_dim)
        self.hook_pattern = HookPoint()  # [B, H, W, T]

    def forward(self, query: torch.Tensor, history: torch.Tensor):
        T = history.shape[1]
        q = self.W_q(query)  # [B,H,W,a]
        k, v = self.W_k(history), self.W_v(history)  # [B,T,H,W,a]
        # elementwise products, not einsum: a [1 x a] @ [a x T] bmm per pixel is slow on CPU
        scores = (q.unsqueeze(1) * k).sum(-1).permute(0, 2, 3, 1) / math.sqrt(self.attn_dim)
        top_idx = None
        if self.top_k < T:
            top_val, top_idx = scores.topk(self.top_k, dim=-1)
            scores = torch.full_like(scores, float("-inf")).scatter(-1, top_idx, top_val)
        slots = torch.arange(T, device=scores.device, dtype=scores.dtype)
        decay = (T - slots) * math.log(self.decay_rate)
        w = self.hook_pattern(torch.softmax((scores + decay) / self.tau, dim=-1))
        out = self.W_o((w.permute(0, 3, 1, 2).unsqueeze(-1) * v).sum(1))
        with torch.no_grad():
            stats = {
                "entropy": _entropy(w).mean(),
                "mean_weight": w[w > 0].mean(),  # = 1/k: kept for the reference's CSV column
                "max_weight": w.amax(-1).mean(),
                "attn_weights": w.detach(),
                "top_k_indices": top_idx,
            }
        return out, stats


class NeighborAttention(nn.Module):
    """k x k neighbourhood (replicate padding) across the given frames, by shift-and-dot over
    the kernel offsets (logits only; measured faster than an im2col gather on CPU, too).

    ``mode="joint"``: one softmax over (frames x neighbours), so recent frames can outweigh old
    ones (default). ``mode="per_frame"``: the reference's softmax over the neighbours of each
    frame, averaged uniformly over frames.
    """

    def __init__(
        self, query_dim, key_dim, attn_dim, out_dim=None, kernel_size=3, mode="joint", tau=1.0
    ):
        super().__init__()
        check_int("kernel_size", kernel_size, low=1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size!r} must be odd")
        check_choice("mode", mode, ("joint", "per_frame"))
        check_range("tau", tau, 0.0, None, low_open=True)
        self.kernel_size, self.mode, self.tau, self.attn_dim = kernel_size, mode, tau, attn_dim
        self.W_q, self.W_k = _proj(query_dim, attn_dim), _proj(key_dim, attn_dim)
        self.W_v, self.W_o = _proj(key_dim, attn_dim), _proj(attn_dim, out_dim or query_dim)
        self.hook_pattern = HookPoint()  # [B, H, W, L, k*k]

    def forward(self, query: torch.Tensor, frames: torch.Tensor):
        """``query [B,H,W,Dq]``, ``frames [B,L,H,W,Dk]`` (the frames to look at, oldest first)."""
        B, L, H, W, _ = frames.shape
        r = self.kernel_size // 2
        q = self.W_q(query).permute(0, 3, 1, 2).unsqueeze(1)  # [B,1,a,H,W]

        def padded(x):  # [B,L,H,W,a] -> [B,L,a,H+2r,W+2r]
            x = x.permute(0, 1, 4, 2, 3).reshape(B * L, self.attn_dim, H, W)
            x = F.pad(x, (r, r, r, r), mode="replicate") if r else x
            return x.view(B, L, self.attn_dim, H + 2 * r, W + 2 * r)

        kp, vp = padded(self.W_k(frames)), padded(self.W_v(frames))
        # shift-and-dot: logits only, one shifted view at a time (never k*k copies of K, V)
        offsets = [(dy, dx) for dy in range(2 * r + 1) for dx in range(2 * r + 1)]
        logits = torch.stack(
            [(q * kp[..., dy : dy + H, dx : dx + W]).sum(2) for dy, dx in offsets], -1
        ).permute(0, 2, 3, 1, 4)  # [B,H,W,L,K2]
        logits = logits / (math.sqrt(self.attn_dim) * self.tau)
        if self.mode == "joint":
            w = torch.softmax(logits.reshape(B, H, W, -1), -1).view_as(logits)
        else:
            w = torch.softmax(logits, -1) / L
        w = self.hook_pattern(w)
        wp = w.permute(0, 3, 4, 1, 2)  # [B,L,K2,H,W]
        z = sum(
            (wp[:, :, i : i + 1] * vp[..., dy : dy + H, dx : dx + W]).sum(1)
            for i, (dy, dx) in enumerate(offsets)
        )  # [B,a,H,W]
        out = self.W_o(z.permute(0, 2, 3, 1))
        with torch.no_grad():
            last = torch.softmax(logits[..., -1, :], -1)  # newest frame's k*k weights
            flat = w.reshape(B, H, W, -1)
            stats = {
                "entropy": _entropy(last).mean()
                if self.mode == "per_frame"
                else _entropy(flat).mean(),
                "mean_weight": flat.mean() * (1 if self.mode == "joint" else L),
                "max_weight": flat.amax(-1).mean(),
                "num_temporal_steps": L,
                "neighbor_weights": last,
            }
        return out, stats


MAX_CHUNK_ELEMENTS = 2**24  # 64 MB of fp32 scores per chunk, whatever the grid


def chunked_topk(
    queries, keys, k, chunk_size, key_valid=None, max_chunk_elements=MAX_CHUNK_ELEMENTS
):
    """Exact top-``k`` of ``queries @ keys.T`` per query, over key chunks.

    ``queries [B,Q,D]``, ``keys [B,N,D]``, ``key_valid [N]`` (bool; invalid keys get -inf
    *before* the selection, so they never take a slot from a valid key). Peak transient memory
    is ``B*Q*(c + 2k)`` scores with ``c = min(chunk_size, max_chunk_elements // (B*Q))`` keys
    per chunk (the reference's cap, so big grids get narrower chunks), never ``B*Q*N``.
    Returns ``(values, indices)`` of shape ``[B,Q,min(k,N)]``, sorted descending. No gradient.
    """
    check_int("k", k, low=1)
    check_int("chunk_size", chunk_size, low=1)
    B, Q, _ = queries.shape
    N = keys.shape[1]
    k = min(k, N)
    chunk_size = max(1, min(chunk_size, max_chunk_elements // max(B * Q, 1)))
    best_v = queries.new_empty(B, Q, 0)
    best_i = torch.empty(B, Q, 0, dtype=torch.long, device=queries.device)
    with torch.no_grad():
        for start in range(0, N, chunk_size):
            stop = min(start + chunk_size, N)
            s = torch.matmul(queries, keys[:, start:stop].transpose(1, 2))  # [B,Q,c]
            if key_valid is not None:
                s = s.masked_fill(~key_valid[start:stop], float("-inf"))
            v, i = s.topk(min(k, stop - start), dim=-1)
            del s
            merged = torch.cat([best_v, v], -1)
            v, j = merged.topk(min(k, merged.shape[-1]), dim=-1)
            best_i = torch.cat([best_i, i + start], -1).gather(-1, j)
            best_v = v
    return best_v, best_i


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x [B,N,D]``, ``idx [B,Q,k]`` -> ``[B,Q,k,D]``."""
    B, Q, k = idx.shape
    D = x.shape[-1]
    return x.gather(1, idx.reshape(B, Q * k, 1).expand(B, Q * k, D)).view(B, Q, k, D)


class WormholeAttention(nn.Module):
    """Sparse non-local links to any past position.

    1. Cosine similarity between the current similarity features and those of all T*H*W past
       positions, exact top-``max_connections`` by :func:`chunked_topk`; positions closer in time
       than ``min_temporal_distance`` (1 = frame t-1 is allowed) are masked before the top-k.
    2. Links with similarity <= ``threshold`` are dropped; rows with no link output zero.
    3. Softmax attention over the kept links on the value features, with the (differentiable)
       cosine similarity added to the logits with a learned scale.
    With ``H*W > max_spatial_tokens`` every input is average-pooled by ``pool_size`` first and
    the output upsampled bilinearly (counts: nearest).
    """

    def __init__(
        self,
        value_dim,
        attn_dim,
        out_dim=None,
        threshold=0.9,
        max_connections=4,
        min_temporal_distance=1,
        chunk_size=4096,
        max_spatial_tokens=1_000_000,
        pool_size=2,
        tau=1.0,
        query_dim=None,
    ):
        super().__init__()
        check_range("threshold", threshold, 0.0, 1.0)
        check_int("max_connections", max_connections, low=1)
        check_int("min_temporal_distance", min_temporal_distance, low=1)
        check_int("chunk_size", chunk_size, low=1)
        check_int("max_spatial_tokens", max_spatial_tokens, low=1)
        check_int("pool_size", pool_size, low=1)
        check_range("tau", tau, 0.0, None, low_open=True)
        self.threshold, self.max_connections = threshold, max_connections
        self.min_temporal_distance, self.chunk_size = min_temporal_distance, chunk_size
        self.max_spatial_tokens, self.pool_size = max_spatial_tokens, pool_size
        self.tau, self.attn_dim = tau, attn_dim
        self.W_q, self.W_k = _proj(query_dim or value_dim, attn_dim), _proj(value_dim, attn_dim)
        self.W_v, self.W_o = _proj(value_dim, attn_dim), _proj(attn_dim, out_dim or value_dim)
        self.sim_scale = nn.Parameter(torch.tensor(1.0))
        self.hook_pattern = HookPoint()  # [B, Q, k]

    def _pool(self, x: torch.Tensor) -> torch.Tensor:  # [..., H, W, D] -> pooled
        lead, (H, W, D) = x.shape[:-3], x.shape[-3:]
        y = x.reshape(-1, H, W, D).permute(0, 3, 1, 2)
        size = (max(1, H // self.pool_size), max(1, W // self.pool_size))
        y = F.adaptive_avg_pool2d(y, size).permute(0, 2, 3, 1)
        return y.reshape(*lead, *size, D)

    def forward(self, query, query_sim, history_values, history_sim):
        """``query [B,H,W,Dq]``, ``query_sim [B,H,W,Ds]``, ``history_values [B,T,H,W,Dv]``,
        ``history_sim [B,T,H,W,Ds]`` -> ``out [B,H,W,out_dim]``, stats."""
        B, H, W, _ = query.shape
        T = history_values.shape[1]
        pooled = H * W > self.max_spatial_tokens and self.pool_size > 1
        if pooled:
            query, query_sim = self._pool(query), self._pool(query_sim)
            history_values, history_sim = self._pool(history_values), self._pool(history_sim)
        h, w = query.shape[1:3]
        P = h * w
        qs = F.normalize(query_sim.reshape(B, P, -1), dim=-1, eps=1e-6)
        ks = F.normalize(history_sim.reshape(B, T * P, -1), dim=-1, eps=1e-6)
        # key index n = slot * P + position; slot T-1 is frame t-1 (temporal distance T - slot).
        # Too-recent slots are the newest ones, so the causal mask is a key prefix: candidates
        # are cut to it *before* the top-k and a masked key can never take a slot.
        n_keys = max(0, T - self.min_temporal_distance + 1) * P
        if n_keys:
            top_sim, idx = chunked_topk(
                qs, ks[:, :n_keys].detach(), self.max_connections, self.chunk_size
            )
        else:  # nothing old enough: no links
            top_sim = qs.new_full((B, P, 1), float("-inf"))
            idx = torch.zeros(B, P, 1, dtype=torch.long, device=qs.device)
        gate = top_sim > self.threshold  # -inf (masked) never passes
        cos = (qs.unsqueeze(2) * _gather_rows(ks, idx)).sum(-1)  # differentiable, [B,P,k]
        vals = _gather_rows(history_values.reshape(B, T * P, -1), idx)  # [B,P,k,Dv]
        q = self.W_q(query.reshape(B, P, -1))
        logits = (q.unsqueeze(2) * self.W_k(vals)).sum(-1) / math.sqrt(self.attn_dim)
        logits = (logits + self.sim_scale * cos) / self.tau
        logits = logits.masked_fill(~gate, torch.finfo(logits.dtype).min)
        weights = self.hook_pattern(torch.softmax(logits, -1) * gate)  # no-link rows: all 0
        out = self.W_o((weights.unsqueeze(-1) * self.W_v(vals)).sum(2)).view(B, h, w, -1)
        counts = gate.sum(-1).view(B, h, w)
        if pooled:
            out = F.interpolate(
                out.permute(0, 3, 1, 2), size=(H, W), mode="bilinear", align_corners=False
            ).permute(0, 2, 3, 1)
            counts = F.interpolate(counts[:, None].float(), size=(H, W), mode="nearest")[:, 0]
        with torch.no_grad():
            n_links = gate.sum()
            has = gate.any(-1)
            row_ent = _entropy(weights.detach())
            stats = {
                "num_connections": n_links,
                "positions_with_connections": has.sum(),
                "mean_similarity": torch.where(gate, top_sim, 0.0).sum() / n_links.clamp_min(1),
                "sparsity": n_links / float(B * P * T * P),
                "entropy": (row_ent * has).sum() / has.sum().clamp_min(1),
                "per_position_counts": counts.detach(),
                "link_indices": idx,  # [B,P,k] into the (pooled) T*h*w history
                "link_similarity": top_sim,
                "link_mask": gate,
                "grid": (h, w),
                "time_depth": T,
                "spatial_pooling_applied": pooled,
                "pooled_resolution": (h, w) if pooled else None,
                "skipped": False,
            }
        return out, stats
