"""Where and how a run executes: size presets, device, CPU threads, seeding, Colab detection,
AMP dtype, and the validators every config uses.

Every notebook starts with ``SIZE = runtime.get_size()`` (reads ``AKIRA_SIZE``, default ``t4``),
then ``runtime.warn_if_no_gpu(SIZE)``, and picks each knob with
``runtime.pick(SIZE, tiny=..., t4=..., a100=...)``. Every CLI sub-command takes its size from
``runtime.size_from(args.size)``; ``python -m akira_nb`` prints the same no-GPU warning, with
what each sub-command runs and roughly how long that takes on a CPU (:data:`CPU_COST`).
Downloads from the Hugging Face Hub start with :func:`require_hub`, which fails at once, on one
line, when the Hub cannot be reached.

torch and numpy are imported inside the functions that need them, so that the validators and
``python -m akira_nb --help`` load in a fraction of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import numbers
import os
import platform
import random
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def check_distinct(name: str, values) -> list:
    """Raise ``ValueError`` naming the parameter when a value of ``values`` appears twice (a
    repeated arm or budget would train the same run twice under one tag). Returns
    ``list(values)``."""
    values = list(values)
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise ValueError(f"{name}={values!r} repeats {repeated[0]!r}; each value must appear once")
    return values


def parse_floats(text: str) -> list[float]:
    """``"1e-5,3e-5 0.1"`` -> ``[1e-05, 3e-05, 0.1]``: numbers separated by commas and/or
    spaces (an argparse ``type=``; ``""`` is the empty list). A word that is not a number raises
    ``ValueError``, which argparse reports as an invalid value of the flag."""
    return [float(v) for v in text.replace(",", " ").split()]


def training_tokens(steps, batch_size, seq_len) -> int:
    """Tokens one training reads: ``steps`` x ``batch_size`` x ``seq_len`` (each a
    non-negative integer)."""
    out = 1
    for name, value in (("steps", steps), ("batch_size", batch_size), ("seq_len", seq_len)):
        out *= check_int(name, value, low=0)
    return out


# Predictions behind every final validation (and test) loss of the band-model trainings (026
# and 013), at least: the trainer's ``final_eval_predictions`` at every size.
FINAL_EVAL_PREDICTIONS = 50_000


def cache_dir() -> Path:
    """The kit's cache folder (tiny models, stand-ins, the offline corpus): ``AKIRA_CACHE_DIR``,
    else ``~/.cache/akira_nb``. Everything in it can be rebuilt; delete it freely."""
    env = os.environ.get("AKIRA_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "akira_nb"


def add_run_flags(add, name_default: str | None, resume_detail: str = "") -> None:
    """The run-folder flags every sub-command shares: ``--name`` (when the experiment names its
    runs; ``name_default`` says the default), ``--output_dir``, ``--resume`` and ``--quiet``.
    ``add`` is a parser's ``add_argument``."""
    if name_default is not None:
        add("--name", default=None, help=f"run name (default: {name_default})")
    add(
        "--output_dir",
        "--output-dir",
        dest="output_dir",
        default=None,
        help="runs root (default: AKIRA_RUNS_DIR or runs/)",
    )
    detail = f" ({resume_detail})" if resume_detail else ""
    add("--resume", action="store_true", help=f"continue the newest run with this name{detail}")
    add("--quiet", action="store_true", help="no progress bars")


def get_size(default: str = "t4") -> str:
    """The size preset from ``AKIRA_SIZE`` (``tiny``, ``t4`` or ``a100``)."""
    return check_choice("AKIRA_SIZE", os.environ.get("AKIRA_SIZE", default).strip().lower(), SIZES)


def resume_default(size: str) -> bool:
    """A notebook's ``RESUME`` default: ``AKIRA_RESUME`` when it is set (``1``/``true``/``yes``
    or ``0``/``false``/``no``), else on above ``tiny`` (a long run continues after a
    disconnect; a tiny one starts afresh). The browser test sets ``AKIRA_RESUME=1`` to reopen
    the runs the notebook test just made instead of training them again."""
    raw = os.environ.get("AKIRA_RESUME", "").strip().lower()
    if not raw:
        return size != "tiny"
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no"):
        return False
    raise ValueError(f"AKIRA_RESUME={raw!r} must be one of 1, true, yes, 0, false, no (or unset)")


def size_from(size: str | None) -> str | None:
    """The one size rule of every CLI sub-command: an explicit ``--size`` wins, else
    ``AKIRA_SIZE`` when it is set, else None, which means the seed document's own protocol."""
    if size is not None:
        return check_choice("size", size, SIZES)
    if os.environ.get("AKIRA_SIZE", "").strip():
        return get_size()
    return None


# What each sub-command runs at each size (None: the seed's own protocol, what a CLI run without
# --size or AKIRA_SIZE does) and roughly how long that takes on a CPU, for the no-GPU warning:
# "measured" where the README has a timing, else an estimate said to be one (from the measured
# training throughput on one CPU thread). "tiny" is what the warning offers instead.
CPU_COST: dict[str, dict[str | None, str]] = {
    "grokking": {
        None: "the seed's p = 53 protocol, 5 models x 30,000 full-batch epochs: about 1-2 hours "
        "on a CPU (measured: 10-20 min per model on one shared CPU thread)",
        "a100": "p = 53 and 113, 5 models x 3 seeds x 30,000 epochs: a day or more on a CPU "
        "(estimated from the p = 53 timing; p = 113 has 4.5x the pairs)",
        "tiny": "p = 23, 5 models, 1,000 epochs: about 1 min",
    },
    "spatiotemporal": {
        None: "the reference's defaults, 32x32, 300 steps of the spectral model: about a "
        "minute on a CPU (measured: ~40 steps/s for a whole process on one thread)",
        "t4": "32x32, 500 steps of the spectral model and the MLP: a few minutes on a CPU "
        "(estimated)",
        "a100": "32x32, 3,000 steps of the spectral model and the MLP: 10-30 min on a CPU "
        "(estimated)",
        "tiny": "16x16, 60 steps: under 1 min",
    },
    "action_quanta": {
        None: "gpt2 vs gpt2-medium (Hub downloads), layers 3/5/7, 500 x 64 random + 500 x 64 "
        "wikitext-2 tokens, OT matching, then a grokking pair: roughly an hour on a CPU "
        "(estimated, not timed: ~60 TFLOP of forward passes plus the matchings)",
        "a100": "every layer paired by depth, 2.56M tokens per input: days on a CPU (estimated)",
        "tiny": "a tiny GPT-2-style pair trained offline, 64 x 64 tokens per input: about 35 s "
        "(+17 s the first time)",
    },
    "bandformer": {
        None: "the reference notebook's protocol: wikitext-103, the 026 model (29M "
        "parameters), 5 arms x 2 seeds x 5,000 steps x 16 x 256 tokens: 4-7 days on a CPU "
        "(estimated from the 342-550 training tokens/s measured on one thread)",
        "t4": "wikitext-103, the 026 model, 12 trainings x 2,000 steps x 16 x 256 tokens (the "
        "sweeps included): 2-3 days on a CPU (estimated from the 342-550 training tokens/s "
        "measured on one thread)",
        "tiny": "offline corpus, 2-layer models, 16 x 32 tokens a step, budgets 200 and 500 "
        "steps, the main arms at their tuned LRs (24 trainings): about 330 CPU-seconds",
    },
    "differential_lr": {
        None: "the seed's full protocol (size a100): wikitext-103, the 7+1 band model, 3 arms "
        "x (3+ sweep LRs + 4 seeds), 5,000 steps x 16 x 256 tokens each: two weeks or more on a "
        "CPU (estimated from the 342-550 training tokens/s of the 026 model on one thread)",
        "t4": "wikitext-103, the 7+1 band model, 3 arms x (3+ sweep LRs + 2 seeds), 1,000 "
        "steps x 16 x 256 tokens each: 1-2 days on a CPU (estimated, as above)",
        "tiny": "offline corpus, the 7+1 tiny model, 3 arms each tuned (an LR sweep) at 40 and "
        "200 steps x 16 x 32 tokens, 3 seeds at 200 (31 trainings): about 240-290 CPU-seconds",
    },
}
CPU_COST["grokking"]["t4"] = CPU_COST["grokking"][None]  # t4 is the seed's protocol
CPU_COST["action_quanta"]["t4"] = CPU_COST["action_quanta"][None]
CPU_COST["bandformer"]["a100"] = CPU_COST["bandformer"][None]  # the reference's protocol
CPU_COST["differential_lr"]["a100"] = CPU_COST["differential_lr"][None]


def cpu_cost(experiment: str, size: str | None) -> str:
    """What ``experiment`` runs at ``size`` (None: the seed's protocol) and roughly how long
    that takes on a CPU (:data:`CPU_COST`)."""
    check_choice("experiment", experiment, CPU_COST)
    if size is not None:
        check_choice("size", size, SIZES)
    return CPU_COST[experiment][size]


def _wrap(text: str, indent: str = "") -> str:
    import textwrap

    return textwrap.fill(text, 78, initial_indent=indent, subsequent_indent=indent + "  ")


def no_gpu_warning(size: str | None, experiments=()) -> str:
    """The text of :func:`warn_if_no_gpu`: that the run goes to the CPU, and for each of
    ``experiments`` (names of :data:`CPU_COST`; none: the notebooks' general text) what it runs
    at ``size`` (None: the seed's protocol), roughly how long that takes on a CPU, and what
    ``--size tiny`` runs instead."""
    bar = "!" * 78
    if not experiments:
        return (
            f"{bar}\n"
            f"WARNING: size {size!r} is a GPU preset, but no CUDA device is present, so the full\n"
            "protocol will run on the CPU (hours, not minutes). On Colab pick a GPU with\n"
            "Runtime > Change runtime type > T4 GPU (or A100) and re-run from the top; elsewhere\n"
            "set AKIRA_SIZE=tiny (or pass --size tiny) for a quick run.\n"
            f"{bar}"
        )
    head = (
        "no --size or AKIRA_SIZE was given, so this runs the seed's own protocol"
        if size is None
        else f"size {size!r} is a GPU preset; this runs it"
    )
    lines = [
        bar,
        _wrap(f"WARNING: no CUDA device is present and {head} on the CPU:"),
        *(_wrap(f"{name}: {cpu_cost(name, size)}", "  ") for name in experiments),
        "For a quick run pass --size tiny (or set AKIRA_SIZE=tiny):",
        *(_wrap(f"{name}: {cpu_cost(name, 'tiny')}", "  ") for name in experiments),
        _wrap(
            "On Colab pick a GPU with Runtime > Change runtime type > T4 GPU (or A100) and "
            "run again."
        ),
        bar,
    ]
    return "\n".join(lines)


def warn_if_no_gpu(size: str | None, experiments=()) -> bool:
    """Without a CUDA device, at ``t4``/``a100`` or at the seed's protocol (``size`` None, the
    CLI without ``--size`` or ``AKIRA_SIZE``), print a loud warning on stderr (the run would
    take hours on a CPU) that says what to pick instead (:func:`no_gpu_warning`; with
    ``experiments``, what each one runs and roughly how long that takes). Returns True when it
    warned."""
    if size is not None:
        check_choice("size", size, SIZES)
    if isinstance(experiments, str):
        experiments = (experiments,)
    for name in experiments:
        check_choice("experiment", name, CPU_COST)
    if size == "tiny":
        return False
    if size is None and not experiments:
        raise ValueError("size=None (the seed's protocol) needs the experiments it runs")
    import torch

    if torch.cuda.is_available():
        return False
    print(no_gpu_warning(size, tuple(experiments)), file=sys.stderr, flush=True)
    return True


# ----------------------------------------------------------------------------- the Hub

HUB_TIMEOUT_S = 3.0  # one TCP connect; the Hub clients would retry for about half a minute
_hub_reachable: dict = {}  # (host, port) -> bool, once per process


class HubUnreachableError(ValueError):
    """A run needs the Hugging Face Hub and this machine cannot reach it."""


def hub_address() -> tuple[str, int]:
    """``(host, port)`` the Hub is reached through: the HTTPS proxy when one is set
    (``HTTPS_PROXY`` / ``https_proxy``), else ``HF_ENDPOINT`` (default
    ``https://huggingface.co``)."""
    from urllib.parse import urlsplit

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlsplit(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _can_connect(host: str, port: int, timeout: float) -> bool:
    """Whether one TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` is set true: the Hugging Face libraries read the local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _https_proxy() -> str:
    """The HTTPS proxy the environment names (``HTTPS_PROXY`` / ``https_proxy``), or ``""``."""
    return os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or ""


def hub_answers(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether one HTTPS ``HEAD`` request to the Hub (``HF_ENDPOINT``, default
    ``https://huggingface.co``) gets an HTTP answer below 500 within ``timeout`` seconds (per
    socket operation), through the proxy the environment names, as the Hub clients go. Behind
    a proxy a TCP connect reaches only the proxy: one that accepts every connection but cannot
    reach the Hub (or breaks TLS) passes a connect, and the Hub clients then retry every file
    for half a minute or more; this request fails at once instead."""
    import http.client
    import urllib.error
    import urllib.request

    url = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/") + "/"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:  # the Hub answered; 5xx: it is down
        return exc.code < 500
    except (OSError, ValueError, http.client.HTTPException):  # refused, TLS, timeout, tunnel
        return False


def hub_reachable() -> bool:
    """Whether the Hub (:func:`hub_address`) answers a TCP connect within
    :data:`HUB_TIMEOUT_S` and, behind a proxy (whose connect says nothing about the Hub), one
    request through it (:func:`hub_answers`); checked once per process and address, then
    remembered."""
    address = hub_address()
    if address not in _hub_reachable:
        reachable = _can_connect(*address, HUB_TIMEOUT_S)
        if reachable and _https_proxy():
            reachable = hub_answers(HUB_TIMEOUT_S)
        _hub_reachable[address] = reachable
    return _hub_reachable[address]


def require_hub(what: str) -> None:
    """Call before ``what`` is downloaded from the Hugging Face Hub: raise
    :class:`HubUnreachableError` (a ``ValueError``) at once, on one line, saying what needs the
    Hub and what to use instead, when the Hub cannot be reached (checked once per process:
    :func:`hub_reachable`), rather than letting the Hub clients retry every file. Nothing is
    checked when ``HF_HUB_OFFLINE`` is set: the libraries then read the local cache only and
    say themselves what is missing."""
    if hub_offline() or hub_reachable():
        return
    host, port = hub_address()
    where = (
        f"the HTTPS proxy {host}:{port} does not reach it"
        if _https_proxy()
        else f"{host}:{port} cannot be reached from this machine"
    )
    raise HubUnreachableError(
        f"{what} needs the Hugging Face Hub, but {where}; pass --offline to run on local "
        "stand-ins of the same shape, or --size tiny "
        "for the offline corpus and models (or set HF_HUB_OFFLINE=1 to read only the local "
        "Hugging Face cache)"
    )


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


def in_ipython() -> bool:
    """True inside an IPython shell or Jupyter kernel (a CLI then leaves matplotlib's backend
    alone); False in a plain Python process or without IPython installed."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device(name: str, value) -> str:
    """Raise ``ValueError`` naming the parameter unless ``value`` is 'auto', 'cpu', 'cuda',
    'cuda:N' or 'mps' and that device exists on this machine. Returns ``value`` (a
    ``torch.device`` is accepted and returned as its string). Torch is imported only to look
    for a CUDA or MPS device (a config naming 'auto' or 'cpu' stays cheap to check)."""
    torch_module = sys.modules.get("torch")  # a torch.device exists only once torch is imported
    if torch_module is not None and isinstance(value, torch_module.device):
        value = str(value)
    if not isinstance(value, str) or not _DEVICE_RE.match(value):
        raise ValueError(
            f"{name}={value!r} is not a device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        )
    if value in ("auto", "cpu"):
        return value
    import torch

    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name}={value!r} asked for CUDA but no CUDA device is available here; use "
                "'auto' or 'cpu' (on Colab: Runtime > Change runtime type > GPU)"
            )
        index = int(value.split(":")[1]) if ":" in value else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"{name}={value!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    if value == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(f"{name}={value!r} asked for MPS but it is not available here")
    return value


def get_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA when present, else CPU; an explicit ``device`` ('cpu', 'cuda', 'cuda:1') wins."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device("device", device))


def check_seeds(name: str, seeds) -> list[int]:
    """Raise ``ValueError`` naming the parameter unless ``seeds`` is a non-empty list of distinct
    non-negative integers. Returns them as a list of ints."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"{name}={seeds!r} must be a list of non-negative integers")
    seeds = list(seeds)
    if not seeds:
        raise ValueError(f"{name}=[] must name at least one seed")
    out = [check_int(f"{name}[{i}]", s, low=0) for i, s in enumerate(seeds)]
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={seeds!r} repeats a seed; each seed must appear once")
    return out


@contextlib.contextmanager
def cpu_threads(n: int | None, device="cpu"):
    """Use ``n`` intra-op torch threads inside the block when ``device`` is a CPU; restore the
    previous count afterwards. ``n=None`` or ``n=0`` (torch's default: the ``--threads 0`` of
    every CLI), or a GPU device, leaves the setting alone.

    Small models on shared cores run much faster on one thread: each op of a multi-threaded
    torch waits for a descheduled thread when another job holds the other core (measured on a
    busy 2-core machine: 15x slower grokking epochs, 100x slower 033 steps with the default)."""
    import torch

    if n is not None:
        check_int("cpu_threads", n, low=0)
    old = torch.get_num_threads()
    change = bool(n) and torch.device(device).type == "cpu" and n != old
    if change:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(old)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import numpy as np
    import torch

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
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
    import torch

    return torch.set_flush_denormal(True)


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """Autocast dtype for ``device``: bf16 on compute capability >= 8 (A100, H100), fp16 on older
    GPUs (T4, which emulates bf16 slowly although ``is_bf16_supported()`` says True), and None
    (plain fp32) on CPU."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def autocast(device: torch.device | str, enabled: bool = True):
    """Autocast context for ``device`` with the dtype of :func:`amp_dtype` (no-op on CPU)."""
    import torch

    device = torch.device(device)
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device | str, enabled: bool = True) -> torch.amp.GradScaler:
    """A GradScaler that is active only where fp16 autocast is used (T4-class GPUs)."""
    import torch

    device = torch.device(device)
    active = enabled and amp_dtype(device) == torch.float16
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu", enabled=active)


def environment_info(device: torch.device | str | None = None) -> dict:
    """Versions and hardware, recorded in every ``results.json``."""
    import numpy as np
    import torch

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


def cost(start_wall: float, start_cpu: float) -> dict:
    """``{"wall_seconds", "cpu_seconds"}`` since ``time.perf_counter()`` = ``start_wall`` and
    ``time.process_time()`` = ``start_cpu`` (CPU time of every thread of this process)."""
    return {
        "wall_seconds": time.perf_counter() - start_wall,
        "cpu_seconds": time.process_time() - start_cpu,
    }


def cost_line(c: dict) -> str:
    """The run's cost as measured: CPU-seconds (every thread; what a run costs on a shared
    machine) beside the wall seconds."""
    return (
        f"this run: {c['cpu_seconds']:.1f} CPU-seconds (time.process_time, every thread of this "
        f"process), {c['wall_seconds']:.1f} s wall"
    )


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line, ``error: <message>; see <prog>
    --help``, with exit status 2 (no usage block): every command line of the kit uses it.
    Sub-parsers made with ``add_subparsers().add_parser`` are of the same class, so a
    sub-command's hint names it (``see python -m akira_nb grokking --help``)."""

    def error(self, message: str):
        self.exit(2, f"error: {' '.join(str(message).split())}; see {self.prog} --help\n")
