"""Every experiment's t4 plan at its real shapes: what one training step costs and what the plan
implies on a T4 and an A100, counted on any machine (no GPU needed).

    python benchmarks/full_shapes.py                         # every experiment, + host memory runs
    python benchmarks/full_shapes.py --experiments grokking bandformer --no-runs

Per experiment (the plan is the sub-command's own: ``python -m akira_nb <exp> --size t4``, read
through its ``cli`` and ``experiment`` modules):

- ``params``: parameters of the largest arm (000: of model A and model B, both resident);
- ``step FLOPs``: matmul and attention FLOPs of one training step of the largest arm, forward +
  backward, counted by ``torch.utils.flop_counter.FlopCounterMode`` at the t4 batch (000: one
  batch forward through both models; the optimiser and element-wise work are not counted);
  the big models are counted on the ``meta`` device (shapes only, no memory), the small ones on
  the CPU;
- ``steps``: optimiser steps of every training of the plan (000: batches); evaluation and the
  analyses are not counted, except 000's Procrustes SVDs (below);
- ``GPU memory (max arm)``: of the arm that needs the most, its parameters, gradients and two
  AdamW states (16 bytes a parameter in fp32; 000: 4, no training) plus its activations, the
  tensors autograd saves for the backward (``saved_tensors_hooks``, each storage once,
  parameters excluded), in fp32 (AMP keeps many in 16 bits, up to half). With ``T x T``
  attention tensors left out: the fused attention kernels of a GPU (flash / memory-efficient
  SDPA) do not store them; the math path's figure is in the notes, with every arm's. 000's is
  every intermediate of a forward, an upper bound of what a no-grad forward holds at once;
- ``T4 min`` / ``A100 min``: ``steps x step FLOPs`` at the stated throughput (:data:`GPUS`, at
  ``--utilisation``), + 000's SVDs at :data:`CPU_FLOPS` on the host. A lower bound for the small
  models (grokking, 033), whose steps are bound by kernel launches, not FLOPs:
  ``benchmarks/gpu_check.py`` times real steps on a GPU;
- ``host peak``: the peak RSS of ``python -m akira_nb <exp> --size t4 --offline`` with the
  counts shrunk (:data:`SHRINK`), run in a subprocess and read with ``os.wait4``; the offline
  corpus is smaller than wikitext-103, so the corpus part of it is not the real run's.

Nothing here is a measurement of a GPU: every minute is an estimate from FLOPs.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NOTEBOOKS = {
    "grokking": "grokking_attention_vs_waves",
    "spatiotemporal": "033_spectral_band_attention",
    "action_quanta": "000_action_quanta",
    "bandformer": "026_band_transformer",
    "differential_lr": "013_differential_lr",
}
EXPERIMENTS = tuple(NOTEBOOKS)
# Sustained dense-matmul rates assumed (not measured here): T4 fp16 tensor cores ~20 TFLOP/s
# (paper peak 65; a T4 holds ~20-25 under its 70 W cap), A100 bf16 ~150 TFLOP/s (paper 312).
GPUS = {"T4": 20e12, "A100": 150e12}
UTILISATION = 0.3  # share of that rate a training step reaches (assumed; --utilisation)
CPU_FLOPS = 50e9  # host CPU rate for 000's numpy SVDs (assumed: Colab's 2 vCPUs)
# The t4 plan with its counts shrunk (never a width, a sequence length or a vocabulary): what
# the host-memory runs here and the plan runs of gpu_check.py pass after --size t4 --offline.
SHRINK = {
    "grokking": ["--n_epochs", "20", "--eval_every", "10", "--checkpoint_every", "0"]
    + ["--progress_every", "0"],
    "spatiotemporal": ["--steps", "10", "--eval-steps", "5", "--checkpoint-every", "0"],
    "action_quanta": ["--num-samples", "32", "--layers", "3"],
    "bandformer": [
        "--total_steps",
        "4",
        "--eval_every",
        "2",
        "--eval_batches",
        "2",
        "--final_eval_predictions",
        "0",
    ],
    "differential_lr": ["--total_steps", "4"],
}


@dataclass
class Step:
    """One step of one arm at its real shapes: ``loss()`` runs one step's forward and returns
    the loss (000: the logits; ``train`` False), ``run()`` ``per_call`` steps, forward and
    backward (033 counts a few: its wormhole search runs every other step);
    ``attention_len``: the sequence length of its causal self-attention (None: none), whose
    ``T x T`` scores a GPU's fused attention kernels do not store."""

    arm: str
    model: Any
    loss: Callable[[], Any]
    train: bool = True
    per_call: int = 1
    attention_len: int | None = None

    def run(self):
        for _ in range(self.per_call):
            out = self.loss()
            if self.train:
                out.backward()
        return out


@dataclass
class Plan:
    """An experiment's t4 plan at its real shapes (see the module docstring)."""

    experiment: str
    arm: str
    params: int
    step_flops: float
    steps: int
    activation_bytes: int
    train: bool = True
    extra_cpu_flops: float = 0.0
    notes: list = field(default_factory=list)
    max_gpu_bytes: int | None = None  # of the arm that needs the most (None: this one)

    @property
    def gpu_bytes(self) -> int:
        """GPU memory of the arm that needs the most (:func:`gpu_memory_bytes`)."""
        own = gpu_memory_bytes(self.params, self.activation_bytes, self.train)
        return max(own, self.max_gpu_bytes or 0)

    def minutes(self, gpu: str, utilisation: float = UTILISATION) -> float:
        return minutes(self.steps * self.step_flops, GPUS[gpu], utilisation) + minutes(
            self.extra_cpu_flops, CPU_FLOPS, 1.0
        )


# ----------------------------------------------------------------------------- arithmetic


def gpu_memory_bytes(params: int, activation_bytes: int, train: bool) -> int:
    """fp32 parameters (+ gradients and AdamW's two states when training: 16 bytes a parameter)
    plus the activations."""
    return int(params) * (16 if train else 4) + int(activation_bytes)


def minutes(flops: float, rate: float, utilisation: float) -> float:
    """Minutes that ``flops`` take at ``rate`` FLOP/s x ``utilisation``."""
    if not rate > 0 or not 0 < utilisation <= 1:
        raise ValueError(
            f"rate={rate!r} must be > 0 and utilisation={utilisation!r} in (0, 1] (FLOP/s)"
        )
    return flops / (rate * utilisation) / 60.0


def svd_flops(n: int) -> float:
    """FLOPs of a full SVD of an ``n x n`` matrix with U and V (Golub-Reinsch, ~21 n^3; Golub &
    Van Loan, Matrix Computations, 5.4.5)."""
    return 21.0 * n**3


def human(value: float, unit: str = "") -> str:
    """``1.23e12`` -> ``1.23 T``; bytes with unit ``B`` in powers of 1024 (``GiB``)."""
    if unit == "B":
        for prefix in ("", "Ki", "Mi", "Gi", "Ti"):
            if abs(value) < 1024 or prefix == "Ti":
                return f"{value:.3g} {prefix}B" if prefix else f"{int(value)} B"
            value /= 1024
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


COLUMNS = (
    "notebook",
    "largest arm",
    "params",
    "step FLOPs",
    "steps",
    "GPU memory (max arm)",
    "T4 min",
    "A100 min",
    "host peak",
)


def table_row(plan: Plan, host_peak: int | None, utilisation: float = UTILISATION) -> list:
    """One row of :data:`COLUMNS` (``host_peak``: bytes, or None when not run)."""
    return [
        NOTEBOOKS[plan.experiment],
        plan.arm,
        human(plan.params),
        human(plan.step_flops, "FLOP"),
        f"{plan.steps:,}",
        human(plan.gpu_bytes, "B"),
        f"{plan.minutes('T4', utilisation):.3g}",
        f"{plan.minutes('A100', utilisation):.3g}",
        human(host_peak, "B") if host_peak is not None else "not run",
    ]


def format_table(rows: list[list], columns=COLUMNS) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def assumptions(utilisation: float = UTILISATION) -> str:
    """The throughput assumptions behind the minutes, printed with the table."""
    gpus = ", ".join(f"{g} {r / 1e12:g} TFLOP/s" for g, r in GPUS.items())
    return (
        f"minutes = steps x step FLOPs / (rate x utilisation), rates assumed (not measured): "
        f"{gpus} (T4 fp16 tensor cores, A100 bf16; sustained, not the paper peaks 65 / 312) at "
        f"utilisation {utilisation:g}; 000's SVDs at {CPU_FLOPS / 1e9:g} GFLOP/s on the host "
        "CPU. A lower bound for small models (grokking, 033: launch-bound steps); "
        "benchmarks/gpu_check.py times real steps on a GPU."
    )


# ----------------------------------------------------------------------------- counting


def _storage_key(t) -> int:
    return t.untyped_storage()._cdata


def count(step: Step) -> dict:
    """``{"flops", "activation_bytes", "activation_bytes_math"}`` of one ``step`` (per step):
    FlopCounterMode FLOPs; the storages autograd saves (parameters excluded, each once), without
    and with the attention scores (saved tensors whose last two dims are both
    ``step.attention_len``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = {_storage_key(p) for p in step.model.parameters()}
    saved: dict[int, tuple] = {}

    def pack(t):
        key = _storage_key(t)
        if key not in params and key not in saved:  # kept alive: no storage is reused
            square = t.dim() >= 2 and t.shape[-2:] == (step.attention_len,) * 2
            saved[key] = (t.untyped_storage().nbytes(), square, t)
        return t

    with FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            step.run()
    total = sum(n for n, _, _ in saved.values())
    square = sum(n for n, sq, _ in saved.values() if sq)
    n = step.per_call
    return {
        "flops": counter.get_total_flops() / n,
        "activation_bytes": (total - square) // n,
        "activation_bytes_math": total // n,
    }


def arm_note(arm: str, params: int, counted: dict) -> str:
    """One arm's line of the notes: FLOPs, parameters, GPU memory (and with stored attention
    scores, where that differs)."""
    mem = gpu_memory_bytes(params, counted["activation_bytes"], True)
    line = f"{arm}: {human(counted['flops'], 'FLOP')}, {human(params)} params, {human(mem, 'B')}"
    extra = counted["activation_bytes_math"] - counted["activation_bytes"]
    if extra:
        line += f" ({human(mem + extra, 'B')} with the T x T attention scores stored, math SDPA)"
    return line


def _parse(experiment: str, *flags: str):
    from akira_nb.__main__ import build_parser

    return build_parser().parse_args([experiment, "--size", "t4", *flags])


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- the plans


def grokking_steps(device="cpu") -> tuple[list[Step], int]:
    """One full-batch epoch of each model of the t4 study at its prime; the plan's epochs."""
    import torch

    from akira_nb.grokking import cli
    from akira_nb.modular_arithmetic.models import GrokkingModel
    from akira_nb.modular_arithmetic.train import _loss

    arms = cli.config_from_args(_parse("grokking")).arms()
    steps = []
    for cfg in {(a.p, a.mixer): a for a in arms}.values():
        data = cfg.dataset().to(device)
        torch.manual_seed(cfg.seed)
        model = GrokkingModel(cfg.model_config()).to(device)
        x, y = data.inputs[data.train_idx], data.labels[data.train_idx]

        def loss(model=model, x=x, y=y, f64=cfg.float64_loss):
            return _loss(model(x), y, f64)

        steps.append(Step(f"p{cfg.p} {cfg.mixer}", model, loss))
    return steps, sum(a.n_epochs for a in arms)


def spatiotemporal_steps(device="cpu", per_call: int = 4) -> tuple[list[Step], int]:
    """``per_call`` online steps of each trained model of the t4 comparison (blob frames at its
    grid); the plan's steps (the CLI's comparison; the notebook adds a pattern sweep)."""
    import torch

    from akira_nb.spatiotemporal import cli
    from akira_nb.spatiotemporal import patterns as P
    from akira_nb.spatiotemporal.model import build_model

    cfg, preset, overrides, models = cli.config_from_args(_parse("spatiotemporal"))
    trained = [m for m in models if m in ("spectral", "mlp")]
    t = torch.arange(per_call + 1, dtype=torch.float64)
    frames = P.frames(cfg.pattern, t, cfg.grid_size, **cfg.params_for(cfg.pattern)).to(device)
    steps = []
    for name in trained:
        torch.manual_seed(cfg.seed)
        model = build_model(name, preset, grid_size=cfg.grid_size, **overrides).to(device)

        position = [0]

        def loss(model=model, at=position):  # steps 0 .. per_call - 1 of a stream, cycling
            i = at[0]
            if i == 0:
                model.reset()
            at[0] = (i + 1) % per_call
            pred, _ = model(frames[i : i + 1])
            return torch.mean((pred - frames[i + 1 : i + 2]) ** 2)

        steps.append(Step(f"{name} {cfg.grid_size}x{cfg.grid_size}", model, loss, True, per_call))
    return steps, cfg.steps * len(trained)


def hf_model(name: str, device="meta"):
    """A randomly initialised Hugging Face model of ``name``'s architecture
    (``akira_nb.standins.ARCHITECTURES``; the offline stand-in's shapes), on ``device``."""
    import torch
    import transformers

    from akira_nb import standins

    arch = dict(standins.check_model(name))
    arch.pop("family")
    config = transformers.AutoConfig.for_model(arch.pop("model_type"), **arch)
    with torch.device(device):
        return transformers.AutoModelForCausalLM.from_config(config).eval()


def action_quanta_steps(device="meta") -> tuple[list[Step], int, dict]:
    """One batch forward through model A and through model B of the t4 plan; the plan's batches
    (per input type); the AQ config."""
    import torch

    from akira_nb.action_quanta import cli
    from akira_nb.alignment.models import resolve_name

    aq = cli.study_from_args(_parse("action_quanta")).aq
    x = torch.randint(0, 50257, (aq.batch_size, aq.seq_length), device=device)
    steps = []
    for which in ("model_a", "model_b"):
        name = resolve_name(getattr(aq, which))
        model = hf_model(name, device)
        steps.append(Step(name, model, lambda model=model: model(x).logits, train=False))
    inputs = 2 if aq.input_type == "both" else 1
    return steps, inputs * math.ceil(aq.num_samples / aq.batch_size), aq


def _band_steps(configs, device="meta") -> list[Step]:
    """One step of each distinct arm of ``configs`` (bandformer ``TrainConfig`` s)."""
    import torch

    from akira_nb.bandformer.model import next_token_loss
    from akira_nb.bandformer.train import build_model

    steps = []
    for cfg in {c.arm: c for c in configs}.values():
        with torch.device(device):
            model, band_cfg = build_model(cfg)
        model.to(device).train()
        x = torch.randint(0, band_cfg.vocab_size, (cfg.batch_size, cfg.seq_len), device=device)

        def loss(model=model, x=x):
            return next_token_loss(model(x), x)

        steps.append(Step(cfg.arm, model, loss, attention_len=cfg.seq_len))
    return steps


def bandformer_steps(device="meta") -> tuple[list[Step], int]:
    from akira_nb.band_transformer import cli

    configs = cli.config_from_args(_parse("bandformer")).arm_configs()
    return _band_steps(configs, device), sum(c.total_steps for c in configs)


def differential_lr_steps(device="meta") -> tuple[list[Step], int]:
    from akira_nb.differential_lr import cli

    configs = [cfg for _, cfg in cli.config_from_args(_parse("differential_lr")).configs()]
    return _band_steps(configs, device), sum(c.total_steps for c in configs)


def steps_of(experiment: str, device) -> tuple[list[Step], int]:
    """Every arm's :class:`Step` of ``experiment``'s t4 plan on ``device`` and the plan's steps
    (000: batches per model)."""
    builders = {
        "grokking": grokking_steps,
        "spatiotemporal": spatiotemporal_steps,
        "action_quanta": lambda device: action_quanta_steps(device)[:2],
        "bandformer": bandformer_steps,
        "differential_lr": differential_lr_steps,
    }
    return builders[experiment](device)


def plan(experiment: str) -> Plan:
    """``experiment``'s :class:`Plan`, counted (the big models on ``meta``, the small on CPU)."""
    if experiment == "action_quanta":
        return _action_quanta_plan()
    device = "meta" if experiment in ("bandformer", "differential_lr") else "cpu"
    steps, n_steps = steps_of(experiment, device)
    counted = [(s, count(s)) for s in steps]
    step, c = max(counted, key=lambda sc: sc[1]["flops"])
    notes = [arm_note(s.arm, _n_params(s.model), cs) for s, cs in counted]
    most = max(
        gpu_memory_bytes(_n_params(s.model), cs["activation_bytes"], True) for s, cs in counted
    )
    return Plan(
        experiment,
        step.arm,
        _n_params(step.model),
        c["flops"],
        n_steps,
        c["activation_bytes"],
        notes=notes,
        max_gpu_bytes=most,
    )


def _action_quanta_plan() -> Plan:
    from akira_nb.alignment.aq import known_d_mlp

    steps, batches, aq = action_quanta_steps("meta")
    counted = [count(s) for s in steps]
    d = max(known_d_mlp(aq.model_a) or 0, known_d_mlp(aq.model_b) or 0)
    inputs = 2 if aq.input_type == "both" else 1
    fits = (1 + aq.n_shuffles) * len(aq.layers) * inputs
    return Plan(
        "action_quanta",
        f"{steps[0].arm} + {steps[1].arm}",
        sum(_n_params(s.model) for s in steps),
        sum(c["flops"] for c in counted),
        batches,
        max(c["activation_bytes_math"] for c in counted),
        train=False,
        extra_cpu_flops=fits * svd_flops(d),
        notes=[
            f"a step is one batch of {aq.batch_size} x {aq.seq_length} tokens through both "
            f"models (forward only); {batches} batches",
            f"+ {fits} Procrustes fits (1 + {aq.n_shuffles} shuffles x {len(aq.layers)} layers"
            f" x {inputs} input types), each a {d} x {d} SVD in numpy on the host: "
            f"{human(fits * svd_flops(d), 'FLOP')} (21 n^3 each)",
            "not counted: the correlation sums, CKA, the OT matchings (POT, CPU) and the nulls",
        ],
    )


# ----------------------------------------------------------------------------- host memory


def stage_command(experiment: str, output_dir: str) -> list[str]:
    """``python -m akira_nb <experiment> --size t4 --offline`` with the counts shrunk."""
    return [
        sys.executable,
        "-m",
        "akira_nb",
        experiment,
        "--size",
        "t4",
        "--offline",
        *SHRINK[experiment],
        "--output_dir",
        output_dir,
        "--quiet",
    ]


def max_rss(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run ``cmd``; ``{"rc", "max_rss" (bytes, the process's peak RSS from os.wait4), "seconds",
    "stderr" (its tail)}``; killed after ``timeout`` seconds (rc None)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        rc, usage = None, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                _, _, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = rc if rc is not None else -9  # reaped here; Popen must not wait again
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return {
        "rc": rc,
        "max_rss": usage.ru_maxrss * 1024,  # KiB on Linux
        "seconds": time.perf_counter() - start,
        "stderr": tail,
    }


def host_peak(experiment: str, timeout: float) -> dict:
    """:func:`max_rss` of the shrunk offline t4 run of ``experiment`` in a fresh run root."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as out:
        return max_rss(stage_command(experiment, out), timeout, env)


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    from akira_nb.runtime import ArgumentParser  # one-line errors

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    p.add_argument("--no-runs", action="store_true", help="skip the host-memory subprocess runs")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per host-memory run (1800)")
    p.add_argument(
        "--utilisation",
        type=float,
        default=UTILISATION,
        help=f"share of the assumed GPU rates a step reaches ({UTILISATION})",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    minutes(1.0, 1.0, args.utilisation)  # checks it
    rows, notes, failed = [], [], []
    for name in args.experiments:
        t0 = time.perf_counter()
        p = plan(name)
        peak = None
        if not args.no_runs:
            res = host_peak(name, args.timeout)
            if res["rc"] == 0:
                peak = res["max_rss"]
            else:
                failed.append(name)
                notes.append(
                    f"{name}: the host-memory run failed (rc {res['rc']}, "
                    f"{res['seconds']:.0f} s): {' '.join(res['stderr'].split())[-300:]}"
                )
        rows.append(table_row(p, peak, args.utilisation))
        notes += [f"{name}: {n}" for n in p.notes]
        print(f"counted {name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(format_table(rows))
    print()
    print(assumptions(args.utilisation))
    print(
        "GPU memory: fp32 params + grads + AdamW (16 B/param; 000: 4) + saved activations "
        "(fp32, fused-attention SDPA: no T x T tensors)"
    )
    if not args.no_runs:
        import torch

        where = (
            "on a GPU"
            if torch.cuda.is_available()
            else "on this CPU, so it holds the training's memory too (an upper bound of a GPU "
            "run's host memory)"
        )
        shrunk = "; ".join(f"{k} {' '.join(v)}" for k, v in SHRINK.items() if k in args.experiments)
        print(
            "host peak: max RSS of `python -m akira_nb <exp> --size t4 --offline` with counts "
            f"shrunk, run {where}: {shrunk}"
        )
    print("\n".join(f"- {n}" for n in notes))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
