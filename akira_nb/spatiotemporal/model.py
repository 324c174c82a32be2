"""``SpectralPredictor`` and the baselines, all behind one interface.

Every predictor is called once per frame, in time order: ``pred, stats = model(frame)`` with
``frame [B, H, W]`` (or ``[H, W]``) at time t returns the prediction of frame t+1. Each keeps its
own history of the frames it has seen; ``reset()`` forgets it. ``stream_state()`` /
``load_stream_state()`` hold that history for checkpoints (tensors only).

- ``SpectralPredictor``: FFT bands (intensity / low / high), per-band trainable projections,
  temporal + neighbour + wormhole attention with configurable band routing, a fusion MLP and a
  per-pixel head. Hookable (TransformerLens ``HookedRootModule``): ``run_with_cache`` gives
  ``hook_embed``, ``temporal.hook_pattern``, ``hook_fused``, ``hook_pred``, ...
- ``MLPPredictor``: the reference's baseline (flattened T frames -> MLP -> sigmoid).
- ``CopyLastFrame``: x_{t+1} = x_t.
- ``LinearExtrapolation``: x_{t+1} = clamp(2 x_t - x_{t-1}, 0, 1) (copy on the first frame).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from akira_nb import spectral
from akira_nb.runtime import check_choice, check_int, check_range
from akira_nb.spatiotemporal.attention import (
    NeighborAttention,
    TemporalAttention,
    WormholeAttention,
)
from akira_nb.spatiotemporal.history import RingBuffer
from akira_nb.spatiotemporal.presets import BANDS, SpectralConfig, get_config

MODEL_KINDS = ("spectral", "mlp", "copy_last", "linear_extrap")
BASELINES = ("copy_last", "linear_extrap")


def _param_device(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _as_batch(frame: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if frame.dim() == 2:
        return frame.unsqueeze(0), True
    if frame.dim() != 3:
        raise ValueError(f"frame must be [H, W] or [B, H, W]; got shape {tuple(frame.shape)}")
    return frame, False


def patch_features(images: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Mean-centred ``size x size`` patches (replicate padding): ``[..., H, W] -> [..., H, W,
    size*size]``. Flat regions give zero vectors (cosine 0, so they never link)."""
    lead, (H, W) = images.shape[:-2], images.shape[-2:]
    x = images.reshape(-1, 1, H, W)
    r = size // 2
    p = F.unfold(F.pad(x, (r, r, r, r), mode="replicate"), size)  # [N, s*s, H*W]
    p = p.transpose(1, 2).reshape(*lead, H, W, size * size)
    return p - p.mean(-1, keepdim=True)


class SpectralPredictor(HookedRootModule):
    """Three attention types over FFT bands. See :class:`~.presets.SpectralConfig`."""

    kind = "spectral"

    def __init__(self, cfg: SpectralConfig | str = "fast", **overrides):
        super().__init__()
        self.cfg = cfg = get_config(cfg, **overrides) if isinstance(cfg, str) else cfg
        D, a = cfg.base_dim, cfg.attn_dim
        self.types = tuple(cfg.attention_types)
        self.band_proj = nn.ModuleDict({b: nn.Linear(1, D) for b in BANDS})
        fused_in = 3 * D
        if "temporal" in self.types:
            self.temporal = TemporalAttention(
                D, D, a, D, cfg.top_k_temporal, cfg.decay_rate, cfg.tau
            )
            fused_in += D
        if "neighbor" in self.types:
            self.neighbor = NeighborAttention(
                D, D, a, D, cfg.neighbor_kernel, cfg.neighbor_mode, cfg.tau
            )
            fused_in += D
        if "wormhole" in self.types:
            self.wormhole = WormholeAttention(
                D,
                a,
                D,
                cfg.wormhole_threshold,
                cfg.wormhole_max_connections,
                cfg.wormhole_min_temporal_distance,
                cfg.wormhole_chunk_size,
                cfg.wormhole_max_spatial_tokens,
                cfg.wormhole_pool_size,
                cfg.tau,
            )
            fused_in += D
        self.fusion = nn.Sequential(nn.Linear(fused_in, a), nn.ReLU(), nn.Linear(a, a))
        self.head = nn.Sequential(nn.Linear(a, D), nn.ReLU(), nn.Linear(D, 1))
        if cfg.residual != "none":  # start close to the base prediction
            with torch.no_grad():
                self.head[-1].weight.mul_(0.01)
                self.head[-1].bias.zero_()
        self.hook_embed = HookPoint()  # [B, H, W, bands, D] current band features
        self.hook_temporal_out = HookPoint()
        self.hook_neighbor_out = HookPoint()
        self.hook_wormhole_out = HookPoint()
        self.hook_fused = HookPoint()  # [B, H, W, attn_dim]
        self.hook_pred = HookPoint()  # [B, H, W]
        self.history = RingBuffer(cfg.time_depth, cfg.init_noise)
        self.reset()
        self.setup()

    # -- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the history and the wormhole cache."""
        self.history.reset()
        self.step = 0
        self._wormhole_cache = None
        self._wormhole_stats = None

    def stream_state(self) -> dict:
        cache = self._wormhole_cache
        return {
            "history": self.history.state(),
            "step": self.step,
            "wormhole_cache": cache if cache is not None else torch.empty(0),
        }

    def load_stream_state(self, state: dict) -> None:
        """Restore :meth:`stream_state` onto the parameters' device (whatever the checkpoint's
        ``map_location``)."""
        device = _param_device(self)
        self.history.load_state(state["history"], device)
        self.step = int(state["step"])
        cache = state["wormhole_cache"]
        self._wormhole_cache = cache.to(device) if cache.numel() else None
        self._wormhole_stats = None

    def config(self) -> dict:
        """What this predictor was built with (checkpoints store it)."""
        return {"kind": self.kind, **self.cfg.to_dict()}

    def set_wormhole(self, threshold=None, max_connections=None) -> None:
        """Change the wormhole gate at run time (the explorer's knobs); clears the cache."""
        if threshold is not None:
            self.wormhole.threshold = float(check_range("threshold", threshold, 0.0, 1.0))
        if max_connections is not None:
            self.wormhole.max_connections = check_int("max_connections", max_connections, low=1)
        self._wormhole_cache = None

    def set_freq_cutoff(self, freq_cutoff: float) -> None:
        check_range("freq_cutoff", freq_cutoff, 0.0, None, low_open=True)
        self.cfg.freq_cutoff = float(freq_cutoff)

    # -- pieces --------------------------------------------------------------------------
    def band_images(self, frame: torch.Tensor) -> torch.Tensor:
        """``[B, H, W] -> [B, 3, H, W]``: intensity, low-pass, high-pass images."""
        low, high = spectral.low_high_split(frame, self.cfg.freq_cutoff, self.cfg.sharpness)
        if self.cfg.band_normalize:
            low, high = spectral.normalize01(low), spectral.normalize01(high)
        return torch.stack([frame, low, high], 1)

    def band_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight [3, D], bias [3, D])``: band ``i``'s features are ``x * weight[i] +
        bias[i]`` (the band projections, stacked once per step)."""
        w = torch.stack([self.band_proj[b].weight[:, 0] for b in BANDS])
        bias = torch.stack([self.band_proj[b].bias for b in BANDS])
        return w, bias

    def embed(self, images: torch.Tensor, affine=None) -> torch.Tensor:
        """``[..., 3, H, W] -> [..., H, W, 3, D]``: each band through its own projection."""
        w, bias = self.band_affine() if affine is None else affine
        x = images.movedim(-3, -1).unsqueeze(-1)  # [..., H, W, 3, 1]
        return x * w + bias

    def forward(self, frame: torch.Tensor):
        frame, squeeze = _as_batch(frame)
        cfg = self.cfg
        B = frame.shape[0]
        bands = self.band_images(frame)  # [B,3,H,W]
        if not self.history.initialized or self.history.buffer.shape[0] != B:
            self.history.fill(bands)
            self._wormhole_cache = None
        past = self.history.ordered()  # [B,T,3,H,W], newest = t-1
        affine = self.band_affine()
        cur = self.hook_embed(self.embed(bands, affine))  # [B,H,W,3,D]
        bi = {b: i for i, b in enumerate(BANDS)}

        def band(name):  # one band's (weight, bias): the history stays scalar images
            return affine[0][bi[name]], affine[1][bi[name]]

        parts, stats = [], {}
        if "temporal" in self.types:
            kb = cfg.temporal_key_band
            out, stats["temporal"] = self.temporal(
                cur[..., bi[cfg.temporal_query_band], :], past[:, :, bi[kb]], band(kb)
            )
            parts.append(self.hook_temporal_out(out))
        if "neighbor" in self.types:
            L = 1 if cfg.neighbor_first_layer_only else min(cfg.layer_range, cfg.time_depth)
            kb = cfg.neighbor_key_band
            frames, kaff = past[:, -L:, bi[kb]], band(kb)  # [B,L,H,W] scalar images
            if cfg.neighbor_include_current and self.hook_embed._forward_hooks:
                # an edit through hook_embed must reach frame t's keys: the built features
                frames = frames.unsqueeze(-1) * kaff[0] + kaff[1]
                frames, kaff = torch.cat([frames, cur[:, None, ..., bi[kb], :]], 1), None
            elif cfg.neighbor_include_current:  # cur is embed(bands): the same features
                frames = torch.cat([frames, bands[:, None, bi[kb]]], 1)
            out, stats["neighbor"] = self.neighbor(
                cur[..., bi[cfg.neighbor_query_band], :], frames, kaff
            )
            parts.append(self.hook_neighbor_out(out))
        if "wormhole" in self.types:
            parts.append(self.hook_wormhole_out(self._wormhole(bands, past, cur, affine, stats)))
        parts.append(cur.flatten(-2))
        fused = self.hook_fused(self.fusion(torch.cat(parts, -1)))
        delta = self.head(fused)[..., 0]
        if cfg.residual == "last":
            pred = frame + delta
        elif cfg.residual == "linear":
            pred = (2 * frame - past[:, -1, 0]).clamp(0, 1) + delta
        else:
            pred = torch.sigmoid(delta)
        pred = self.hook_pred(pred)
        self.history.push(bands)
        self.step += 1
        return (pred[0] if squeeze else pred), stats

    def _wormhole(self, bands, past, cur, affine, stats):
        cfg, B = self.cfg, bands.shape[0]
        run = (
            self.step % cfg.wormhole_skip_steps == 0
            or self._wormhole_cache is None
            or self._wormhole_cache.shape[0] != B
        )
        if not run:
            # after a resume the cached output is restored but its statistics are not
            stats["wormhole"] = {**(self._wormhole_stats or {}), "skipped": True}
            return self._wormhole_cache  # detached: a skipped step passes no gradient
        si = BANDS.index(cfg.wormhole_similarity_band)
        vi = BANDS.index(cfg.wormhole_value_band)
        if cfg.wormhole_similarity_features == "patch":
            q_sim, k_sim = patch_features(bands[:, si]), patch_features(past[:, :, si])
        else:  # the similarity band's features of the history, built for that band only
            q_sim = cur[..., si, :]
            k_sim = past[:, :, si].unsqueeze(-1) * affine[0][si] + affine[1][si]
        out, st = self.wormhole(
            cur[..., BANDS.index(cfg.wormhole_query_band), :],
            q_sim,
            past[:, :, vi],
            k_sim,
            value_affine=(affine[0][vi], affine[1][vi]),
        )
        self._wormhole_cache, self._wormhole_stats = out.detach(), st
        stats["wormhole"] = st
        return out


class _Baseline(nn.Module):
    """Shared plumbing for predictors with no attention statistics."""

    def config(self) -> dict:
        return {"kind": self.kind}

    def reset(self) -> None:
        self.prev = None

    def stream_state(self) -> dict:
        return {"prev": self.prev if self.prev is not None else torch.empty(0)}

    def load_stream_state(self, state: dict) -> None:
        prev = state["prev"]
        self.prev = prev.to(_param_device(self)) if prev.numel() else None


class CopyLastFrame(_Baseline):
    kind = "copy_last"

    def __init__(self):
        super().__init__()
        self.reset()

    def forward(self, frame):
        return frame.clone(), {}


class LinearExtrapolation(_Baseline):
    kind = "linear_extrap"

    def __init__(self, clamp: bool = True):
        super().__init__()
        self.clamp = clamp
        self.reset()

    def forward(self, frame):
        prev = frame if self.prev is None or self.prev.shape != frame.shape else self.prev
        pred = 2 * frame - prev
        self.prev = frame.detach().clone()
        return (pred.clamp(0, 1) if self.clamp else pred), {}


class MLPPredictor(_Baseline):
    """The reference's MLP: the last T frames *including the current one*, flattened, ->
    Linear(THW, h) -> ReLU -> Linear(h, h) -> ReLU -> Linear(h, HW) -> sigmoid,
    h = min(512, THW // 4)."""

    kind = "mlp"

    def __init__(self, grid_size: int, time_depth: int = 8, hidden: int | None = None):
        super().__init__()
        check_int("grid_size", grid_size, 4)
        check_int("time_depth", time_depth, 1)
        n = time_depth * grid_size * grid_size
        h = hidden or min(512, n // 4)
        self.grid_size = grid_size
        self.net = nn.Sequential(
            nn.Linear(n, h),
            nn.ReLU(),
            nn.Linear(h, h),
            nn.ReLU(),
            nn.Linear(h, grid_size * grid_size),
            nn.Sigmoid(),
        )
        self.history = RingBuffer(time_depth)
        self.time_depth, self.hidden = time_depth, h

    def config(self) -> dict:
        return {
            "kind": self.kind,
            "grid_size": self.grid_size,
            "time_depth": self.time_depth,
            "hidden": self.hidden,
        }

    def reset(self) -> None:
        self.history.reset()

    def stream_state(self) -> dict:
        return {"history": self.history.state()}

    def load_stream_state(self, state: dict) -> None:
        self.history.load_state(state["history"], _param_device(self))

    def forward(self, frame):
        frame, squeeze = _as_batch(frame)
        if frame.shape[-1] != self.grid_size:
            raise ValueError(
                f"grid_size={frame.shape[-1]} but this MLP was built for {self.grid_size}"
            )
        self.history.push(frame)  # the current frame goes in first, as in the reference
        x = self.history.ordered().flatten(1)
        pred = self.net(x).view_as(frame)
        return (pred[0] if squeeze else pred), {}


def build_model(
    kind: str, preset: str | SpectralConfig = "fast", grid_size: int | None = None, **overrides
) -> nn.Module:
    """A predictor by name: ``spectral`` (``preset`` + ``overrides``), ``mlp``, ``copy_last``,
    ``linear_extrap``."""
    check_choice("model", kind, MODEL_KINDS)
    if kind == "copy_last":
        return CopyLastFrame()
    if kind == "linear_extrap":
        return LinearExtrapolation()
    cfg = get_config(preset, **overrides) if isinstance(preset, str) else preset
    if grid_size is not None:
        cfg.grid_size = check_int("grid_size", grid_size, 4)
    if kind == "mlp":
        return MLPPredictor(cfg.grid_size, cfg.time_depth)
    return SpectralPredictor(cfg)
