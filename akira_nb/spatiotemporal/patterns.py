"""Synthetic 2D fields: the reference's eleven patterns plus ``moving_digits``.

Each pattern is a pure function of (time, grid size, parameters): ``frames(name, t, grid,
**params)`` takes a tensor of times ``t`` of any shape (float, so fractional times work) and
returns ``[*t.shape, grid, grid]`` in [0, 1]. A batch of sequences at different phases is just a
``[B, L]`` time tensor (see :func:`sequence_batch`); the stochastic patterns also take a ``seed``
(an int, or one per leading element).

Constants that the reference hard-coded are parameters here; ``PATTERN_DEFAULTS`` lists them
with the reference's values. Times are computed in float64 (``t`` reaches 10,000+ and the
reference's sine hash needs the precision) and frames are returned as float32.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from akira_nb.runtime import check_choice, check_range

PATTERN_DEFAULTS: dict[str, dict] = {
    "blob": {"speed": 0.02, "radius": 0.3, "sigma": 0.1},
    "interference": {"freq": 0.1, "k": 10.0, "y_phase_ratio": 0.7},
    "switching": {
        "period": 101,
        "speed": 0.02,
        "radius": 0.3,
        "sigma": 0.1,
        "freq": 0.1,
        "k": 10.0,
        "y_phase_ratio": 0.7,
    },
    "double_slit": {"separation": 0.18, "source_y": 0.2, "k": 35.0, "omega": 0.12},
    "counter_rotate": {"speed": 0.02, "radius": 0.25, "sigma": 0.08},
    "chirp": {"f0": 3.0, "rate": 0.015, "phase_speed": 0.1, "y_ratio": 0.6},
    "phase_jump": {"jump_period": 40, "phase_speed": 0.08, "k": 8 * math.pi},
    "noisy_motion": {
        "base_speed": 0.02,
        "speed_jitter": 0.04,
        "pos_jitter": 0.15,
        "radius": 0.28,
        "sigma": 0.1,
        "trail_weight": 0.4,
        "trail_sigma": 0.12,
        "seed": 0,
    },
    "bifurcation": {
        "split_period": 60,
        "speed": 0.02,
        "radius": 0.3,
        "sigma": 0.1,
        "offset_scale": 0.2,
        "partner_weight": 0.9,
        "partner_sigma": 0.08,
        "seed": 0,
    },
    "wave_collision": {"k": 12.0, "omega": 0.08, "normalize": "fixed"},
    "concentric": {
        "freq": 0.03,
        "r_in": 0.15,
        "r_in_amp": 0.1,
        "sigma_in": 0.04,
        "r_out": 0.35,
        "r_out_amp": 0.15,
        "sigma_out": 0.05,
        "outer_weight": 0.7,
    },
    "moving_digits": {"n_digits": 2, "digit_size": 0.45, "speed": 0.03, "seed": 0},
}
PATTERNS = tuple(PATTERN_DEFAULTS)
# Patterns whose frames vary smoothly in time (linear extrapolation is a fair bar there).
SMOOTH_PATTERNS = ("blob", "interference", "double_slit", "counter_rotate", "chirp", "concentric")


def _grid(n: int, device=None):
    lin = torch.linspace(0.0, 1.0, n, dtype=torch.float64, device=device)
    return torch.meshgrid(lin, lin, indexing="ij")  # X varies along rows, Y along columns


def _norm(f: torch.Tensor) -> torch.Tensor:
    flat = f.flatten(-2)
    lo = flat.min(-1, keepdim=True).values
    hi = flat.max(-1, keepdim=True).values
    return ((flat - lo) / (hi - lo + 1e-8)).view_as(f)


def _hash(t, off, seed):
    return torch.frac(torch.sin((t + off + 101.3 * seed) * 12.9898) * 43758.5453).abs()


def _gauss(X, Y, cx, cy, sigma):
    return torch.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * sigma**2))


def _blob(t, X, Y, speed, radius, sigma):
    angle = 2 * math.pi * speed * t
    return _gauss(X, Y, 0.5 + radius * torch.cos(angle), 0.5 + radius * torch.sin(angle), sigma)


def _interference(t, X, Y, freq, k, y_phase_ratio):
    phase = freq * t
    return ((torch.sin(k * X + phase) + torch.sin(k * Y + y_phase_ratio * phase)) / 2 + 1) / 2


@lru_cache(maxsize=1)
def _digit_images() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images / 16.0).astype(np.float32)  # [1797, 8, 8]


def _moving_digits(t: torch.Tensor, grid, n_digits, digit_size, speed, seeds) -> torch.Tensor:
    """``t``: ``[S, M]`` times for S sequences (one seed each) -> ``[S, M, grid, grid]``."""
    check_range("n_digits", n_digits, 1)
    check_range("digit_size", digit_size, 0.0, 1.0, low_open=True, high_open=True)
    images = torch.from_numpy(_digit_images()).to(t.device)
    idx, start, vel = [], [], []
    for s in seeds:  # per sequence, not per pixel: which digits, where they start, which way
        rng = np.random.default_rng(int(s))
        idx.append(rng.choice(len(images), n_digits, replace=False))
        start.append(rng.uniform(0, 1, (n_digits, 2)))
        theta = rng.uniform(0, 2 * math.pi, n_digits)
        vel.append(np.stack([np.cos(theta), np.sin(theta)], 1))
    idx = torch.tensor(np.stack(idx), device=t.device)  # [S, n]
    start = torch.tensor(np.stack(start), dtype=torch.float64, device=t.device)  # [S, n, 2]
    vel = torch.tensor(np.stack(vel), dtype=torch.float64, device=t.device)
    free = 1.0 - digit_size
    u = start[:, None] * free + vel[:, None] * speed * free * t[..., None, None]  # [S, M, n, 2]
    u = torch.remainder(u, 2 * free)
    pos = free - (u - free).abs()  # bouncing = triangle wave in [0, free]
    lin = (torch.arange(grid, dtype=torch.float64, device=t.device) + 0.5) / grid
    gy = (lin - pos[..., 0:1]) / digit_size * 2 - 1  # [S, M, n, grid]: rows
    gx = (lin - pos[..., 1:2]) / digit_size * 2 - 1  # columns
    S, M, n = gy.shape[:3]
    coords = torch.stack(
        [
            gx[..., None, :].expand(S, M, n, grid, grid),
            gy[..., :, None].expand(S, M, n, grid, grid),
        ],
        -1,
    ).reshape(S * M * n, grid, grid, 2)
    src = images[idx].to(torch.float64)[:, None].expand(S, M, n, 8, 8).reshape(S * M * n, 1, 8, 8)
    out = F.grid_sample(src, coords, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(S, M, n, grid, grid).amax(2)  # overlapping digits combine with max (OpenSTL)


def _noisy_motion(tt, X, Y, p, seed):
    def centre(time, jitter):
        vj = (_hash(time, 0.37, seed) - 0.5) * p["speed_jitter"]
        angle = 2 * math.pi * time * (p["base_speed"] + vj)  # vj times t: as the reference
        cx = 0.5 + p["radius"] * torch.cos(angle)
        cy = 0.5 + p["radius"] * torch.sin(angle)
        if jitter:
            cx = cx + (_hash(time, 0.11, seed) - 0.5) * p["pos_jitter"]
            cy = cy + (_hash(time, 0.53, seed) - 0.5) * p["pos_jitter"]
        return cx, cy

    f = _gauss(X, Y, *centre(tt, True), p["sigma"])
    f = f + p["trail_weight"] * _gauss(X, Y, *centre(tt - 1, False), p["trail_sigma"])
    return _norm(f)


def _bifurcation(tt, X, Y, p, seed):
    check_range("split_period", p["split_period"], 0, None, low_open=True)
    per = p["split_period"]
    base = _blob(tt, X, Y, p["speed"], p["radius"], p["sigma"])
    o = p["offset_scale"] * (_hash(torch.floor(tt / per), 0.77, seed) - 0.5)
    split = base + p["partner_weight"] * _gauss(X, Y, 0.5 + o, 0.5 - o, p["partner_sigma"])
    return torch.where(torch.remainder(tt, per) < per / 2, base, _norm(split))


def _concentric(tt, X, Y, p):
    d = torch.sqrt((X - 0.5) ** 2 + (Y - 0.5) ** 2)
    w = 2 * math.pi * p["freq"] * tt
    r_in = p["r_in"] + p["r_in_amp"] * torch.sin(w)
    r_out = p["r_out"] + p["r_out_amp"] * torch.sin(w + math.pi)
    inner = torch.exp(-((d - r_in) ** 2) / (2 * p["sigma_in"] ** 2))
    outer = torch.exp(-((d - r_out) ** 2) / (2 * p["sigma_out"] ** 2))
    return _norm(inner + p["outer_weight"] * outer)


def frames(name: str, t, grid: int, device=None, **params) -> torch.Tensor:
    """Frames of pattern ``name`` at times ``t`` (any shape): ``[*t.shape, grid, grid]`` float32."""
    check_choice("pattern", name, PATTERNS)
    check_range("grid", grid, 4)
    if int(grid) != grid:
        raise ValueError(f"grid={grid!r} must be an integer >= 4")
    grid = int(grid)
    defaults = PATTERN_DEFAULTS[name]
    for key in params:  # every pattern constant is a parameter; unknown names are errors
        if key not in defaults:
            raise ValueError(
                f"{key}={params[key]!r} is not a parameter of pattern {name!r}; "
                f"allowed: {sorted(defaults)}"
            )
    p = {**defaults, **params}
    t = torch.as_tensor(t, dtype=torch.float64, device=device)
    shape = t.shape
    tt = t.reshape(*shape, 1, 1)
    X, Y = _grid(grid, device)
    seed = torch.as_tensor(p.get("seed", 0), dtype=torch.float64, device=device)
    if seed.dim():  # one seed per leading element of t
        seed = seed.reshape(seed.shape + (1,) * (tt.dim() - seed.dim()))
    if name == "blob":
        f = _blob(tt, X, Y, p["speed"], p["radius"], p["sigma"])
    elif name == "interference":
        f = _interference(tt, X, Y, p["freq"], p["k"], p["y_phase_ratio"])
    elif name == "switching":
        check_range("period", p["period"], 0, None, low_open=True)
        block = torch.remainder(torch.floor(tt / p["period"]), 2)
        f = torch.where(
            block == 0,
            _blob(tt, X, Y, p["speed"], p["radius"], p["sigma"]),
            _interference(tt, X, Y, p["freq"], p["k"], p["y_phase_ratio"]),
        )
    elif name == "double_slit":
        f = 0
        for sx in (0.5 - p["separation"] / 2, 0.5 + p["separation"] / 2):
            d = torch.sqrt((X - sx) ** 2 + (Y - p["source_y"]) ** 2) + 1e-3
            f = f + torch.sin(p["k"] * d - p["omega"] * tt) / d
        f = _norm(f)
    elif name == "counter_rotate":
        f = _blob(tt, X, Y, p["speed"], p["radius"], p["sigma"]) + _blob(
            -tt, X, Y, p["speed"], p["radius"], p["sigma"]
        )
        f = _norm(f)
    elif name == "chirp":
        fr = p["f0"] + p["rate"] * tt
        phase = p["phase_speed"] * tt
        f = _norm(
            torch.sin(2 * math.pi * fr * X + phase)
            + torch.sin(2 * math.pi * p["y_ratio"] * fr * Y - phase)
        )
    elif name == "phase_jump":
        check_range("jump_period", p["jump_period"], 0, None, low_open=True)
        phase = p["phase_speed"] * tt
        jump = math.pi * torch.remainder(torch.floor(tt / p["jump_period"]), 2)
        f = _norm(torch.sin(p["k"] * X + phase + jump) + torch.sin(p["k"] * Y - phase - jump))
    elif name == "noisy_motion":
        f = _noisy_motion(tt, X, Y, p, seed)
    elif name == "bifurcation":
        f = _bifurcation(tt, X, Y, p, seed)
    elif name == "wave_collision":
        phase = 2 * math.pi * p["omega"] * tt
        f = torch.sin(p["k"] * X - phase) + torch.sin(p["k"] * (1 - X) - phase)
        # The reference min-max normalises each frame, which turns this standing wave into two
        # alternating images; "fixed" maps [-2, 2] to [0, 1] so the amplitude oscillation shows.
        check_choice("normalize", p["normalize"], ("fixed", "frame"))
        f = _norm(f) if p["normalize"] == "frame" else (f + 2) / 4
        f = f.expand(*shape, grid, grid)
    elif name == "concentric":
        f = _concentric(tt, X, Y, p)
    else:  # moving_digits
        seeds = torch.as_tensor(p["seed"]).flatten().tolist()
        if len(seeds) > 1 and (not shape or shape[0] != len(seeds)):
            raise ValueError(f"seed has {len(seeds)} values but t has shape {tuple(shape)}")
        f = _moving_digits(
            t.reshape(len(seeds), -1), grid, p["n_digits"], p["digit_size"], p["speed"], seeds
        ).reshape(*shape, grid, grid)
    return f.expand(*shape, grid, grid).to(torch.float32).clamp_(0.0, 1.0)


def sequence_batch(
    name: str, starts, length: int, grid: int, step: float = 1.0, device=None, **params
) -> torch.Tensor:
    """``[B, length, grid, grid]``: B sequences starting at times ``starts`` (``[B]``)."""
    check_range("length", length, 1)
    starts = torch.as_tensor(starts, dtype=torch.float64).reshape(-1, 1)
    t = starts + step * torch.arange(length, dtype=torch.float64)[None]
    return frames(name, t, grid, device=device, **params)


def generate_sequence(name: str, length: int, grid: int, start: float = 0.0, **params):
    """``[length, grid, grid]`` frames at ``start, start+1, ...`` (the reference's helper)."""
    return sequence_batch(name, [start], length, grid, **params)[0]
