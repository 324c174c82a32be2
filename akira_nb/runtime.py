"""Where and how a run executes: size presets, device, seeding, Colab detection, AMP dtype.

Every notebook starts with ``SIZE = runtime.get_size()`` (reads ``AKIRA_SIZE``, default ``t4``)
and picks each knob with ``runtime.pick(SIZE, tiny=..., t4=..., a100=...)``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import platform
import random
import sys
from typing import Any

import numpy as np
import torch

SIZES = ("tiny", "t4", "a100")


def check_choice(name: str, value: Any, allowed) -> Any:
    """Raise ``ValueError`` naming the parameter when ``value`` is not one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")
    return value


def check_range(name: str, value, low=None, high=None, low_open=False, high_open=False):
    """Raise ``ValueError`` naming the parameter when ``value`` falls outside [low, high].

    ``low_open``/``high_open`` make that end exclusive. Returns ``value``. A value that is not
    a real number (a string, None, a bool) is refused the same way.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r} must be a real number")
    bad = False
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad or value != value:  # NaN fails every comparison
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        lo_s = "-inf" if low is None else repr(low)
        hi_s = "inf" if high is None else repr(high)
        raise ValueError(f"{name}={value!r} is outside the allowed range {lo}{lo_s}, {hi_s}{hi}")
    return value


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """Raise ``ValueError`` naming the parameter unless ``value`` is an integer (not a bool or a
    float) inside [low, high]. Returns ``int(value)``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} must be an integer")
    return int(check_range(name, int(value), low, high))


def check_real(name: str, value, low=None, high=None, low_open=False, high_open=False) -> float:
    """Like :func:`check_range`, and the value must also be finite. Returns ``float(value)``."""
    check_range(name, value, low, high, low_open, high_open)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be finite")
    return float(value)


def check_bool(name: str, value) -> bool:
    """Raise ``ValueError`` naming the parameter unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be True or False")
    return value


def get_size(default: str = "t4") -> str:
    """The size preset from ``AKIRA_SIZE`` (``tiny``, ``t4`` or ``a100``)."""
    return check_choice("AKIRA_SIZE", os.environ.get("AKIRA_SIZE", default).strip().lower(), SIZES)


def pick(size: str, **per_size):
    """Pick the value for ``size`` from keyword presets: ``pick(SIZE, tiny=1, t4=10, a100=100)``."""
    check_choice("size", size, SIZES)
    missing = [s for s in SIZES if s not in per_size]
    if missing:
        raise ValueError(f"pick() needs a value for every size; missing {missing}")
    return per_size[size]


def in_colab() -> bool:
    """True inside a Google Colab kernel."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def get_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when present, else CPU; an explicit ``device`` ('cpu', 'cuda', 'cuda:1') wins."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for CUDA but no CUDA device is available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r} is not supported; use 'cpu', 'cuda' or 'auto'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def flush_denormals() -> bool:
    """Flush subnormal floats to zero on the CPU (a process-wide setting).

    Weight decay drives many weights and activations of small models into the subnormal range,
    where x86 arithmetic is up to ~30x slower: a p = 23 attention model went from 6 ms to 170 ms
    per step within 150 epochs without this. Results change only below ~1e-38. Returns whether
    the CPU supports it."""
    return torch.set_flush_denormal(True)


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """Autocast dtype for ``device``: bf16 on compute capability >= 8 (A100, H100), fp16 on older
    GPUs (T4, which emulates bf16 slowly although ``is_bf16_supported()`` says True), and None
    (plain fp32) on CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def autocast(device: torch.device | str, enabled: bool = True):
    """Autocast context for ``device`` with the dtype of :func:`amp_dtype` (no-op on CPU)."""
    device = torch.device(device)
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device | str, enabled: bool = True) -> torch.amp.GradScaler:
    """A GradScaler that is active only where fp16 autocast is used (T4-class GPUs)."""
    device = torch.device(device)
    active = enabled and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu", enabled=active)


def environment_info(device: torch.device | str | None = None) -> dict:
    """Versions and hardware, recorded in every ``results.json``."""
    device = get_device(device)
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "colab": in_colab(),
        "autocast_dtype_available": str(amp_dtype(device)),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
