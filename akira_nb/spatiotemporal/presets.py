"""What a 033 run is built from: the model's config and presets, and the per-size study settings.

- :class:`SpectralConfig`: every knob of the spectral model, checked when built;
  :data:`MODEL_PRESETS` (turbo, fast, default, large, xlarge) keep the reference's sizes and
  give each its own grid (turbo/fast/default 32, large 64, xlarge 128). Each deliberate
  difference from the reference is a knob (comments on the fields say which).
- :data:`PRESETS`: the per-size settings (tiny, t4, a100; None: the reference's defaults);
  :func:`study` builds a :class:`Study` from a size and the caller's settings, the one way the
  CLI and the notebook build theirs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from akira_nb import runtime
from akira_nb.runtime import check_bool, check_choice, check_int, check_real
from akira_nb.spatiotemporal.train import TrainConfig

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
    # neighbour attention; layer_range counts past frames (the seed's |t - t'| <= L; the
    # reference used L + 1); neighbor_include_current also lets it see frame t; neighbor_mode
    # "joint" is a softmax over frames x neighbours, "per_frame" the reference's
    layer_range: int = 3
    neighbor_kernel: int = 3
    neighbor_mode: str = "joint"
    neighbor_first_layer_only: bool = False
    neighbor_include_current: bool = True
    # wormhole attention. The threshold is a cosine between mean-centred 3x3 patches of the
    # similarity band ("patch"), so 0.9 is selective (the reference compared affine maps of one
    # scalar per pixel and needed 0.9995: REFERENCE_THRESHOLDS). large / xlarge search links on a
    # pooled grid (wormhole_max_spatial_tokens): the seed's "adaptive spatial pooling"
    wormhole_threshold: float = 0.9
    wormhole_max_connections: int = 4
    wormhole_min_temporal_distance: int = 1
    wormhole_skip_steps: int = 2
    wormhole_chunk_size: int = 4096
    wormhole_max_spatial_tokens: int = 1_000_000
    wormhole_pool_size: int = 2
    wormhole_similarity_features: str = "patch"
    # FFT bands; band_normalize=True is the reference's per-frame min-max of the low and high
    # bands (it blows faint ripples on a near-flat band up to full range)
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
    # model; residual: the prediction is base + correction, base the last frame ("last"), the
    # clamped linear extrapolation ("linear") or nothing ("none": the reference's sigmoid head)
    attention_types: tuple = ATTENTION_TYPES
    residual: str = "last"
    init_noise: float = 0.0

    def __post_init__(self):
        self.validate()

    def validate(self) -> SpectralConfig:
        """Raise ``ValueError`` naming the field unless every knob is valid (run when built)."""
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
MODEL_PRESETS: dict[str, SpectralConfig] = {
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
    """The named model preset with ``overrides`` applied (checked when built)."""
    check_choice("preset", preset, tuple(MODEL_PRESETS))
    names = {f.name for f in fields(SpectralConfig)}
    for key in overrides:
        if key not in names:
            raise ValueError(f"{key}={overrides[key]!r} is not a SpectralConfig field")
    return replace(MODEL_PRESETS[preset], **overrides)


# Per-size study settings. None (no size given): the reference's synthetic_2d.py defaults (32x32,
# 300 steps, no checkpoints). sweep_steps: steps per pattern of the notebook's pattern sweep (the
# reference ran no sweep). tiny checkpoints mid-arm (every 30 steps), so the notebook's resume
# check at tiny continues an arm from a checkpoint, not only reloads finished ones.
PRESETS = {
    None: dict(
        grid_size=32,
        steps=300,
        eval_steps=101,
        rollout_horizon=20,
        checkpoint_every=0,
        sweep_steps=300,
    ),
    "tiny": dict(
        grid_size=16,
        steps=60,
        eval_steps=30,
        rollout_horizon=8,
        checkpoint_every=30,
        sweep_steps=40,
    ),
    "t4": dict(
        grid_size=32,
        steps=500,
        eval_steps=101,
        rollout_horizon=20,
        checkpoint_every=100,
        sweep_steps=500,
    ),
    "a100": dict(
        grid_size=32,
        steps=3000,
        eval_steps=101,
        rollout_horizon=30,
        checkpoint_every=500,
        sweep_steps=2000,
    ),
}


@dataclass
class Study:
    """The settings of one 033 study: the comparison's :class:`TrainConfig` (``train``), the
    pattern sweep's (``sweep``: ``sweep_steps`` per pattern, no rollout), the model preset and
    its overrides. Build it with :func:`study`."""

    train: TrainConfig
    sweep: TrainConfig
    preset: str
    overrides: dict
    size: str | None = None
    from_preset: dict = field(default_factory=dict)  # settings the size's preset filled in

    def describe(self) -> str:
        """One line: where the settings came from."""
        source = f"size {self.size!r}" if self.size else "the reference's defaults (no size)"
        filled = ", ".join(f"{k}={v}" for k, v in self.from_preset.items()) or "nothing"
        return f"settings: {source} filled {filled}; model preset {self.preset}"


def study(
    size: str | None = None,
    preset: str | None = None,
    overrides: dict | None = None,
    **settings,
) -> Study:
    """The one way to build 033 settings (the CLI and the notebook both use it): the size's row
    of :data:`PRESETS` (None: the reference's defaults) with ``settings`` on top.

    ``settings``: any :class:`TrainConfig` field, and ``sweep_steps``; None means "not given".
    ``preset``: the model preset (None: ``fast`` at the size's grid; a named preset brings its
    own grid, e.g. large 64x64, unless ``grid_size`` is given). ``overrides``: SpectralConfig
    fields on top of the preset. ``eval_warmup`` defaults to the preset's ``time_depth``.
    Everything is checked (the model config too); nothing is written."""
    if size is not None:
        runtime.check_choice("size", size, runtime.SIZES)
    allowed = {f.name for f in fields(TrainConfig)} | {"sweep_steps"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"study() got unknown settings {unknown}; allowed: {sorted(allowed)}")
    name = "fast" if preset is None else preset
    runtime.check_choice("preset", name, tuple(MODEL_PRESETS))
    given = {k: v for k, v in settings.items() if v is not None}
    row = dict(PRESETS[size])
    from_preset = {k: v for k, v in row.items() if k not in given}
    if preset is not None:  # a named preset brings its own grid
        row["grid_size"] = MODEL_PRESETS[name].grid_size
        from_preset.pop("grid_size", None)
    values = {**row, **given}
    sweep_steps = runtime.check_int("sweep_steps", values.pop("sweep_steps"), 1)
    values.setdefault("eval_warmup", MODEL_PRESETS[name].time_depth)
    train_cfg = TrainConfig(**values)
    sweep = replace(train_cfg, steps=sweep_steps, rollout_horizon=0, pattern_eval=None)
    overrides = dict(overrides or {})
    get_config(name, grid_size=train_cfg.grid_size, **overrides)  # raises on a bad override
    return Study(train_cfg, sweep, name, overrides, size=size, from_preset=from_preset)
