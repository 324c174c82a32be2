"""The three attention types, batched over ``[B, H, W, D]`` queries and ``[B, T, H, W, D]``
histories (oldest slot first; the newest slot is frame t-1; the current frame is never in the
history). No Python loop runs over pixels, batch elements, kernel offsets or tokens: the
wormhole search loops over key chunks.

Each module returns ``(out, stats)``; stats are tensors (call ``float()`` to log them).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens.hook_points import HookPoint

from akira_nb.runtime import check_choice, check_int, check_range


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

    def forward(self, query: torch.Tensor, history: torch.Tensor, affine=None):
        """``query [B,H,W,Dq]``, ``history [B,T,H,W,Dk]``; or, with ``affine=(weight, bias)``
        (``[Dk]`` each), ``history [B,T,H,W]`` scalar images whose features are
        ``history[..., None] * weight + bias`` (the model's band embedding), never built."""
        T = history.shape[1]
        # q.(W_k h) = (q W_k).h and sum_t w_t W_v h_t = W_v(sum_t w_t h_t): the history is never
        # projected (two [B,T,H,W,D] x [D,a] matmuls fewer per step; the same values)
        qk = self.W_q(query) @ self.W_k.weight  # [B,H,W,Dk]
        if affine is None:
            # elementwise products, not einsum: a [1 x D] @ [D x T] bmm per pixel is slow on CPU
            scores = (qk.unsqueeze(1) * history).sum(-1)  # [B,T,H,W]
        else:  # q.(x w + b) = x (q.w) + q.b: scalars per pixel and slot
            scores = history * (qk @ affine[0]).unsqueeze(1) + (qk @ affine[1]).unsqueeze(1)
        scores = scores.permute(0, 2, 3, 1) / math.sqrt(self.attn_dim)
        top_idx = None
        if self.top_k < T:
            top_val, top_idx = scores.topk(self.top_k, dim=-1)
            scores = torch.full_like(scores, float("-inf")).scatter(-1, top_idx, top_val)
        slots = torch.arange(T, device=scores.device, dtype=scores.dtype)
        decay = (T - slots) * math.log(self.decay_rate)
        w = self.hook_pattern(torch.softmax((scores + decay) / self.tau, dim=-1))
        wt = w.permute(0, 3, 1, 2)  # [B,T,H,W]
        if affine is None:
            mixed = (wt.unsqueeze(-1) * history).sum(1)  # [B,H,W,Dk]
        else:
            mixed = (wt * history).sum(1, keepdim=True).movedim(1, -1) * affine[0]
            mixed = mixed + wt.sum(1).unsqueeze(-1) * affine[1]
        out = self.W_o(self.W_v(mixed))
        with torch.no_grad():
            stats = {
                "entropy": _entropy(w).mean(),
                # = 1/k, the reference's CSV column: the mean of the non-zero weights, kept a
                # tensor (a boolean-mask index has a data-dependent shape: a host sync on CUDA)
                "mean_weight": w.sum() / (w > 0).sum(),
                "max_weight": w.amax(-1).mean(),
                "attn_weights": w.detach(),
                "top_k_indices": top_idx,
            }
        return out, stats


class NeighborAttention(nn.Module):
    """k x k neighbourhood (replicate padding) across the given frames: the k*k neighbours of
    every pixel of every frame by one ``unfold`` (one gather for all offsets; its backward is
    one ``fold``), scored against the query folded through ``W_k`` (``q.(W_k f) = (q W_k).f``),
    and the values mixed before ``W_v`` (``sum w W_v f = W_v(sum w f)``), so no frame is ever
    projected.

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

    def forward(self, query: torch.Tensor, frames: torch.Tensor, affine=None):
        """``query [B,H,W,Dq]``, ``frames [B,L,H,W,Dk]`` (the frames to look at, oldest first);
        or, with ``affine=(weight, bias)`` (``[Dk]`` each), ``frames [B,L,H,W]`` scalar images
        whose features are ``frames[..., None] * weight + bias``, never built."""
        B, L, H, W = frames.shape[:4]
        k, r = self.kernel_size, self.kernel_size // 2
        K2 = k * k
        if affine is None:
            x = frames.permute(0, 1, 4, 2, 3).reshape(B * L, frames.shape[-1], H, W)
        else:
            x = frames.reshape(B * L, 1, H, W)
        x = F.pad(x, (r, r, r, r), mode="replicate") if r else x
        # [B,L,C,K2,HW]; offsets row-major (dy outer), as the k x k kernel reads
        nb = F.unfold(x, k).view(B, L, x.shape[1], K2, H * W)
        qk = (self.W_q(query) @ self.W_k.weight).reshape(B, H * W, -1)  # [B,HW,Dk]
        if affine is None:
            logits = (qk.transpose(1, 2)[:, None, :, None] * nb).sum(2)  # [B,L,K2,HW]
        else:  # q.(x w + b) = x (q.w) + q.b
            alpha, beta = qk @ affine[0], qk @ affine[1]  # [B,HW]
            logits = nb[:, :, 0] * alpha[:, None, None] + beta[:, None, None]
        logits = logits.permute(0, 3, 1, 2).reshape(B, H, W, L, K2)
        logits = logits / (math.sqrt(self.attn_dim) * self.tau)
        if self.mode == "joint":
            w = torch.softmax(logits.reshape(B, H, W, -1), -1).view_as(logits)
        else:
            w = torch.softmax(logits, -1) / L
        w = self.hook_pattern(w)
        wl = w.reshape(B, H * W, L, K2).permute(0, 2, 3, 1)  # [B,L,K2,HW]
        if affine is None:
            mixed = (wl[:, :, None] * nb).sum((1, 3)).transpose(1, 2)  # [B,HW,Dk]
        else:
            mixed = (wl * nb[:, :, 0]).sum((1, 2)).unsqueeze(-1) * affine[0]
            mixed = mixed + wl.sum((1, 2)).unsqueeze(-1) * affine[1]
        out = self.W_o(self.W_v(mixed)).view(B, H, W, -1)
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
SEARCH_BLOCK_ELEMENTS = 2**18  # scores scored at once by the search (1 MB: stays in cache)
SEARCH_GROUP = 16  # keys per group of the search's group maxima


def _group_table(n: int, chunk: int, group: int) -> torch.Tensor:
    """``[G, group]`` key indices of the search's groups: each chunk of ``chunk`` keys (the
    last one padded up to a multiple of ``group`` with index ``n``, a never-chosen pad) is laid
    out as ``[group, chunk / group]``, so group ``j`` of a chunk holds its keys ``j, j + G_c,
    j + 2 G_c, ...``: the group maxima are then a max over the outer dimension of a contiguous
    score block (fast), not over runs of adjacent keys."""
    rows = []
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        gc = -(-c // group)
        idx = start + torch.arange(gc)[:, None] + gc * torch.arange(group)[None, :]
        rows.append(idx.masked_fill(idx >= start + c, n))
    return torch.cat(rows)


@functools.lru_cache(maxsize=16)
def _group_table_on(n: int, chunk: int, group: int, device: torch.device):
    """:func:`_group_table` and its pad mask on ``device``, built and copied once per
    ``(n, chunk, group, device)`` (not at every search: on CUDA each copy is a host sync)."""
    table = _group_table(n, chunk, group).to(device)
    return table, table == n


def search_plan(B, Q, N, k, chunk_size, device, D=9, group=SEARCH_GROUP, **kw):
    """How :func:`chunked_topk` searches ``B x Q`` queries of dimension ``D`` over ``N`` keys
    on ``device``: ``(path, c, qb, ops)``, ``path`` ``"grouped"`` (query blocks of ``qb``) or
    ``"merged"`` (:func:`_merged_topk`), ``c`` keys per chunk, ``ops`` about how many tensor
    ops the search runs (on CUDA, kernel launches). On CPU a block holds at most
    :data:`SEARCH_BLOCK_ELEMENTS` scores (it stays in cache); elsewhere the whole chunk budget
    ``B * Q * c``, and the merged search where it runs fewer ops. Small searches (fewer than
    ``4 * k`` groups) merge everywhere. ``kw``: ``max_chunk_elements``, ``block_elements``
    (override the device's block size)."""
    max_chunk_elements = kw.get("max_chunk_elements", MAX_CHUNK_ELEMENTS)
    block = kw.get("block_elements")
    cpu = torch.device(device).type == "cpu"
    k = min(k, N)
    c = max(1, min(chunk_size, max_chunk_elements // max(B * Q, 1), N))
    budget = B * Q * c  # elements of any transient tensor
    n_chunks = -(-N // c)
    merged = ("merged", c, Q, 7 * n_chunks)
    if -(-N // group) < 4 * k:
        return merged
    if block is None:
        block = SEARCH_BLOCK_ELEMENTS if cpu else budget
    G = N // c * -(-c // group) + (-(-(N % c) // group) if N % c else 0)
    kg = min(k, G)
    qb = min(block, budget) // (B * c)
    qb = max(1, min(qb, budget // (B * G), budget // (B * kg * group * D)))
    blocks = -(-Q // qb)
    pads = N // c * (c % group > 0) + (N % c % group > 0)  # chunks padded to whole groups
    grouped = ("grouped", c, qb, 6 + blocks * (2 * n_chunks + pads + 10))
    return (
        merged
        if not cpu and kw.get("block_elements") is None and merged[3] < grouped[3]
        else grouped
    )


def chunked_topk(
    queries,
    keys,
    k,
    chunk_size,
    key_valid=None,
    max_chunk_elements=MAX_CHUNK_ELEMENTS,
    group=SEARCH_GROUP,
    block_elements=None,
):
    """Exact top-``k`` of ``queries @ keys.T`` per query, never holding all the scores.

    ``queries [B,Q,D]``, ``keys [B,N,D]``, ``key_valid [N]`` (bool; invalid keys are left
    out *before* the selection, so they never take a slot from a valid key). Returns
    ``(values, indices)`` of shape ``[B,Q,min(k,N)]``, sorted descending (ties may pick other
    indices). No gradient.

    Three stages per block of queries (:func:`search_plan`: on CPU cache-sized blocks of at most
    :data:`SEARCH_BLOCK_ELEMENTS` scores, elsewhere the whole budget or the merged search where that
    runs fewer ops; ``block_elements`` overrides the block size): (1) the scores of blocks of at
    most ``chunk_size`` keys (the key chunk is also capped at ``max_chunk_elements // (B*Q)`` keys,
    the reference's cap) reduced at once to the max of each group of ``group`` keys
    (:func:`_group_table`); (2) the top-``k`` groups by that max; (3) those ``k * group`` keys
    rescored and their top ``k`` kept. Exact: a key among the top ``k`` lies in a group whose max is
    among the top ``k`` group maxima. Every transient tensor has at most ``B * Q * c`` elements
    (``c``: the key chunk).
    Small searches (fewer than ``4 * k`` groups) score one chunk of keys at a time and merge
    the top-``k``.
    """
    check_int("k", k, low=1)
    check_int("chunk_size", chunk_size, low=1)
    check_int("group", group, low=1)
    if key_valid is not None:  # the valid keys alone, indices mapped back
        keep = key_valid.nonzero()[:, 0].to(keys.device)
        v, i = chunked_topk(
            queries, keys[:, keep], k, chunk_size, None, max_chunk_elements, group, block_elements
        )
        return v, keep[i]
    B, Q, D = queries.shape
    N = keys.shape[1]
    k = min(k, N)
    path, c, qb, _ = search_plan(
        B,
        Q,
        N,
        k,
        chunk_size,
        keys.device,
        D,
        group,
        max_chunk_elements=max_chunk_elements,
        block_elements=block_elements,
    )
    with torch.no_grad():
        if path == "merged":
            return _merged_topk(queries, keys, k, c)
        return _grouped_topk(queries, keys, k, c, qb, group)


def _grouped_topk(queries, keys, k, c, qb, group):
    """:func:`chunked_topk`'s grouped search (stages 1-3 of its docstring), ``qb`` queries a
    block."""
    B, Q, D = queries.shape
    N = keys.shape[1]
    table, pad = _group_table_on(N, c, group, keys.device)  # [G, group]
    G = table.shape[0]
    kt = keys.transpose(1, 2).contiguous()  # [B,D,N]: its chunks feed bmm with no copy
    padded = torch.cat([keys, keys.new_zeros(B, 1, D)], 1)[:, table]  # [B,G,group,D]
    kg = min(k, G)
    bi = torch.arange(B, device=keys.device)[:, None, None]
    # buffers reused by every block (fresh memory costs page faults at each first touch)
    scores = queries.new_empty(B, qb, c)
    gm = queries.new_empty(B, qb, G)
    vals, idxs = [], []
    for a in range(0, Q, qb):
        b = min(Q, a + qb)
        n, g0 = b - a, 0
        for start in range(0, N, c):  # (1) the group maxima of each chunk of keys
            w = min(c, N - start)
            gc = -(-w // group)
            s = torch.bmm(queries[:, a:b], kt[:, :, start : start + w], out=scores[:, :n, :w])
            if gc * group != w:
                s = F.pad(s, (0, gc * group - w), value=float("-inf"))
            torch.amax(s.view(B, n, group, gc), -2, out=gm[:, :n, g0 : g0 + gc])
            g0 += gc
        _, gi = gm[:, :n].topk(kg, dim=-1)  # (2) the best groups [B,n,kg]
        cand = padded[bi, gi].view(B * n, kg * group, D)  # (3) their keys, rescored
        s = torch.bmm(cand, queries[:, a:b].reshape(-1, D, 1)).view(B, n, kg * group)
        v, j = s.masked_fill(pad[gi].flatten(-2), float("-inf")).topk(k, dim=-1)
        vals.append(v)
        idxs.append(table[gi].flatten(-2).gather(-1, j))
    return torch.cat(vals, 1), torch.cat(idxs, 1)


def _merged_topk(queries, keys, k, c):
    """Top-``k`` over chunks of ``c`` keys, merged chunk by chunk (small searches)."""
    B, Q, _ = queries.shape
    best_v = queries.new_empty(B, Q, 0)
    best_i = torch.empty(B, Q, 0, dtype=torch.long, device=queries.device)
    for start in range(0, keys.shape[1], c):
        stop = min(start + c, keys.shape[1])
        s = torch.matmul(queries, keys[:, start:stop].transpose(1, 2))  # [B,Q,c]
        v, i = s.topk(min(k, stop - start), dim=-1)
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

    def forward(self, query, query_sim, history_values, history_sim, value_affine=None):
        """``query [B,H,W,Dq]``, ``query_sim [B,H,W,Ds]``, ``history_values [B,T,H,W,Dv]``,
        ``history_sim [B,T,H,W,Ds]`` -> ``out [B,H,W,out_dim]``, stats. With
        ``value_affine=(weight, bias)`` (``[Dv]`` each), ``history_values [B,T,H,W]`` are scalar
        images whose features ``x * weight + bias`` are built only for the gathered links."""
        B, H, W, _ = query.shape
        if value_affine is not None:
            history_values = history_values.unsqueeze(-1)
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
        if value_affine is not None:  # average pooling commutes with the affine map
            vals = vals * value_affine[0] + value_affine[1]
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
