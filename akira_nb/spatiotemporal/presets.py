"""``SpectralConfig`` (every knob of the model, validated) and the five presets.

The presets keep the reference's sizes (``base_dim``, ``attn_dim``, ``time_depth``, top-k,
layer range, wormhole connections, skip steps, chunk size) and give each its own grid size
(turbo/fast/default 32, large 64, xlarge 128), which the reference documented but ignored.

Deliberate differences from the reference (each one a knob, so the reference's choice can be
restored):

- ``layer_range`` counts past frames used by neighbour attention (the seed's |t - t'| <= L);
  the reference used L + 1. ``neighbor_include_current`` also lets it see frame t itself.
- ``wormhole_threshold``: the reference needed 0.9995 because it compared random affine maps of
  one scalar per pixel (all similarities ~1). Here similarity is the cosine between mean-centred
  3x3 patches of the similarity band (``wormhole_similarity_features="patch"``), so 0.9 is
  already selective. ``REFERENCE_THRESHOLDS`` keeps the reference values.
- ``band_normalize=False``: the reference min-max normalised the low and high bands of every
  frame to [0, 1], which blows faint ripples on a near-flat band up to full range. Measured
  once on 2026-11-23 (blob, 32x32, 300 steps): held-out MSE 3.1e-4 -> 1.1e-4 and rollout MSE
  0.31 -> 0.07 without it; ``benchmarks/spatiotemporal_speed.py --cases fast32
  fast32_bandnorm --threads 1`` reruns the comparison.
- ``residual``: the prediction is ``base + correction`` with base the last frame ("last"), the
  clamped linear extrapolation ("linear") or nothing ("none": the reference's sigmoid head).
- ``large`` / ``xlarge`` search wormhole links on a pooled grid (2x2 / 4x4 average pooling down to
  32x32, ``wormhole_max_spatial_tokens=1024``): the seed's "adaptive spatial pooling for large
  grids", which the reference implemented but never reached. Since the blocked exact search
  (2026-12-01) the exact 64x64 training loop measured 67.9 ms a step on one CPU thread, x6.27 the
  reference's steps/s (x4.17 with ``wormhole_similarity_features="projected"``, the reference's
  32-dim features: ``--cases large64_projected``); ``--cases large64 large64_pooled`` of the speed
  benchmark compares exact (large64) and pooled; set ``wormhole_max_spatial_tokens`` high to search
  exactly.
- ``neighbor_mode``: "joint" (softmax over frames x neighbours, so recent frames can win) is the
  default; "per_frame" is the reference's softmax per frame averaged over frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..runtime import check_bool, check_choice, check_int, check_real

BANDS = ("intensity", "low_freq", "high_freq")
ATTENTION_TYPES = ("temporal", "neighbor", "wormhole")


@dataclass
class SpectralConfig:
    base_dim: int = 32
    attn_dim: int = 32
    time_depth: int = 8
    grid_size: int = 32
    # temporal attention
    top_k_temporal: int = 4
    decay_rate: float = 0.95
    tau: float = 1.0
    # neighbour attention
    layer_range: int = 3
    neighbor_kernel: int = 3
    neighbor_mode: str = "joint"
    neighbor_first_layer_only: bool = False
    neighbor_include_current: bool = True
    # wormhole attention
    wormhole_threshold: float = 0.9
    wormhole_max_connections: int = 4
    wormhole_min_temporal_distance: int = 1
    wormhole_skip_steps: int = 2
    wormhole_chunk_size: int = 4096
    wormhole_max_spatial_tokens: int = 1_000_000
    wormhole_pool_size: int = 2
    wormhole_similarity_features: str = "patch"
    # FFT bands
    freq_cutoff: float = 0.25
    sharpness: float = 10.0
    band_normalize: bool = False
    # band routing: which band feeds each input of each attention type
    temporal_query_band: str = "intensity"
    temporal_key_band: str = "intensity"
    neighbor_query_band: str = "intensity"
    neighbor_key_band: str = "intensity"
    wormhole_query_band: str = "intensity"
    wormhole_similarity_band: str = "low_freq"
    wormhole_value_band: str = "intensity"
    # model
    attention_types: tuple = ATTENTION_TYPES
    residual: str = "last"
    init_noise: float = 0.0

    def validate(self) -> SpectralConfig:
        for name in ("base_dim", "attn_dim", "time_depth", "top_k_temporal", "layer_range"):
            check_int(name, getattr(self, name), 1)
        check_int("grid_size", self.grid_size, 4)
        check_real("decay_rate", self.decay_rate, 0.0, 1.0, low_open=True, high_open=True)
        check_real("tau", self.tau, 0.0, None, low_open=True)
        check_int("neighbor_kernel", self.neighbor_kernel, 1)
        if self.neighbor_kernel % 2 == 0:
            raise ValueError(f"neighbor_kernel={self.neighbor_kernel!r} must be odd (1, 3, 5, ...)")
        check_choice("neighbor_mode", self.neighbor_mode, ("joint", "per_frame"))
        for name in ("neighbor_first_layer_only", "neighbor_include_current", "band_normalize"):
            check_bool(name, getattr(self, name))
        check_real("wormhole_threshold", self.wormhole_threshold, 0.0, 1.0)
        for name in (
            "wormhole_max_connections",
            "wormhole_min_temporal_distance",
            "wormhole_skip_steps",
            "wormhole_chunk_size",
            "wormhole_max_spatial_tokens",
            "wormhole_pool_size",
        ):
            check_int(name, getattr(self, name), 1)
        check_choice(
            "wormhole_similarity_features",
            self.wormhole_similarity_features,
            ("patch", "projected"),
        )
        check_real("freq_cutoff", self.freq_cutoff, 0.0, None, low_open=True)
        check_real("sharpness", self.sharpness, 0.0, None, low_open=True)
        for f in fields(self):
            if f.name.endswith("_band"):
                check_choice(f.name, getattr(self, f.name), BANDS)
        if isinstance(self.attention_types, str):
            raise ValueError(
                f"attention_types={self.attention_types!r} must be a tuple or list of names, "
                f"e.g. ({self.attention_types!r},); allowed: {ATTENTION_TYPES}"
            )
        types = tuple(self.attention_types)
        for a in types:
            check_choice("attention_types", a, ATTENTION_TYPES)
        if not types:
            raise ValueError(f"attention_types=() must name at least one of {ATTENTION_TYPES}")
        check_choice("residual", self.residual, ("last", "linear", "none"))
        check_real("init_noise", self.init_noise, 0.0)
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attention_types"] = list(self.attention_types)
        return d


_BASE = SpectralConfig()
PRESETS: dict[str, SpectralConfig] = {
    "turbo": replace(
        _BASE,
        base_dim=16,
        attn_dim=16,
        time_depth=4,
        top_k_temporal=2,
        layer_range=1,
        wormhole_max_connections=2,
        wormhole_skip_steps=4,
        wormhole_threshold=0.95,
    ),
    "fast": replace(_BASE),
    "default": replace(
        _BASE,
        base_dim=64,
        attn_dim=64,
        time_depth=16,
        wormhole_skip_steps=1,
    ),
    "large": replace(
        _BASE,
        grid_size=64,
        wormhole_max_spatial_tokens=1024,
        top_k_temporal=3,
        wormhole_max_connections=8,
        wormhole_chunk_size=8192,
    ),
    "xlarge": replace(
        _BASE,
        grid_size=128,
        top_k_temporal=3,
        layer_range=2,
        wormhole_max_connections=8,
        wormhole_chunk_size=16384,
        wormhole_max_spatial_tokens=1024,
        wormhole_pool_size=4,
    ),
}
REFERENCE_THRESHOLDS = {
    "turbo": 0.9998,
    "fast": 0.9995,
    "default": 0.9995,
    "large": 0.9995,
    "xlarge": 0.9995,
}


def get_config(preset: str = "fast", **overrides) -> SpectralConfig:
    """The named preset with ``overrides`` applied, validated."""
    check_choice("preset", preset, tuple(PRESETS))
    names = {f.name for f in fields(SpectralConfig)}
    for key in overrides:
        if key not in names:
            raise ValueError(f"{key}={overrides[key]!r} is not a SpectralConfig field")
    return replace(PRESETS[preset], **overrides).validate()
