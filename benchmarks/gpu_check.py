"""The GPU check: one command on a CUDA machine, under 10 minutes, that runs what only a GPU
can check and prints the rows of the README's cost table.

    python benchmarks/gpu_check.py                       # everything (exit 0: every check passed)
    python benchmarks/gpu_check.py --skip-plans          # the kernel checks and step timings only

In order (each prints ``ok`` or ``FAIL`` with what it saw; the exit status is 1 on any failure,
2 on a machine without CUDA, where nothing runs):

1. ``amp``: ``runtime.amp_dtype`` / ``autocast`` / ``grad_scaler`` take the device's path: bf16
   and no scaler at compute capability >= 8 (A100, H100), fp16 with a GradScaler below (T4).
2. ``fused_adamw``: the band model's AdamW (``bandformer.optim.make_adamw``) is fused on CUDA
   and, under autocast and the device's GradScaler (``bandformer.train.optimizer_step``),
   steps to the same weights as the unfused (foreach) AdamW from the same start.
3. ``ddp``: ``torchrun --nproc_per_node 1`` (nccl): a band model under DistributedDataParallel
   gives the gradients of the bare model, and an all-reduce adds up.
4. ``ensemble``: the vmapped grokking ensemble (``modular_arithmetic.ensemble.train_seeds``) against
   training each seed alone on the GPU (float tolerance), and their wall times at p = 53.
5. ``step``: one training step of each experiment's largest t4 arm at its real shapes (the
   steps of ``full_shapes.py``): bandformer / 013 under autocast with the GradScaler and the
   fused AdamW as their trainer; grokking and 033 in fp32 with AdamW as theirs (033's Adam);
   000 one fp32 batch forward through both models. ``torch.cuda.synchronize`` around the
   timed steps; the median of a few after a warm-up.
6. ``plan``: ``python -m akira_nb <exp> --size t4 --offline`` with the counts shrunk
   (``full_shapes.SHRINK``): every experiment's t4 plan end to end on stand-ins of the same
   shape for a few steps.

Then the cost-table rows: per notebook the measured step, the plan's steps, the plan's minutes
estimated from them (training steps only: evaluation and analyses, such as 000's Procrustes
SVDs on the host CPU, not included) and the measured wall time of the shortened offline run.
The minutes are this GPU's: T4 minutes only when run on a T4.
"""

from __future__ import annotations

import argparse
import copy
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import full_shapes  # noqa: E402  (puts the repository on sys.path)

REPO = full_shapes.REPO
EXPERIMENTS = full_shapes.EXPERIMENTS
NO_CUDA = (
    "gpu_check needs a CUDA device and torch.cuda.is_available() is False here; run it on a "
    "GPU machine (a Colab T4 or A100): python benchmarks/gpu_check.py"
)
AMP_EXPERIMENTS = ("bandformer", "differential_lr")  # their trainer runs under autocast


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def expected_amp(major: int) -> tuple[str, bool]:
    """``(autocast dtype, GradScaler on)`` for compute capability ``major``: bf16 without a
    scaler from 8 (A100) on, fp16 with one below (T4 is 7.5)."""
    return ("bfloat16", False) if major >= 8 else ("float16", True)


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _guard(name: str, fn) -> Check:
    """``fn()`` -> Check; an exception is a failed check that names it."""
    try:
        return fn()
    except Exception as exc:  # a failed check, not a crash of the whole script
        return Check(name, False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}")


# ----------------------------------------------------------------------------- checks


def check_amp(device) -> Check:
    import torch

    from akira_nb import runtime

    major, minor = torch.cuda.get_device_capability(device)
    want, scaled = expected_amp(major)
    got, scaler = runtime.amp_dtype(device), runtime.grad_scaler(device)
    layer = torch.nn.Linear(64, 64, device=device)
    with runtime.autocast(device):
        out = layer(torch.randn(8, 64, device=device))
    ok = got == getattr(torch, want) and scaler.is_enabled() == scaled and out.dtype == got
    return Check(
        "amp",
        ok,
        f"sm_{major}{minor}: amp_dtype {got}, autocast output {out.dtype}, GradScaler "
        f"{'on' if scaler.is_enabled() else 'off'} (expected {want}, scaler "
        f"{'on' if scaled else 'off'})",
    )


def check_fused_adamw(device, steps: int = 6) -> Check:
    import torch

    from akira_nb import runtime
    from akira_nb.bandformer import model as bm
    from akira_nb.bandformer import optim
    from akira_nb.bandformer.train import optimizer_step

    cfg = bm.preset("tiny")
    torch.manual_seed(0)
    fused_model = bm.BandTransformer(cfg).to(device).train()
    plain_model = copy.deepcopy(fused_model)
    start = [p.detach().clone() for p in fused_model.parameters()]
    fused = optim.make_adamw(fused_model)
    plain = torch.optim.AdamW(
        optim.param_groups(plain_model, "differential", 0.1),
        betas=(0.9, 0.999),
        eps=1e-8,
        foreach=True,
    )
    scalers = [runtime.grad_scaler(device), runtime.grad_scaler(device)]
    x = torch.randint(0, cfg.vocab_size, (16, 64), device=device)
    losses = []
    for step in range(steps):
        for model, opt, scaler in zip((fused_model, plain_model), (fused, plain), scalers):
            torch.manual_seed(step)  # the same dropout in both
            with runtime.autocast(device):
                loss = bm.next_token_loss(model(x), x)
            opt.zero_grad(set_to_none=True)
            optimizer_step(loss, opt, scaler, list(model.parameters()), 1.0)
        losses.append(float(loss.detach()))
    worst = max(
        float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
        for a, b in zip(fused_model.parameters(), plain_model.parameters())
    )
    moved = any(not torch.equal(a, b) for a, b in zip(fused_model.parameters(), start))
    is_fused = bool(fused.defaults.get("fused"))
    ok = is_fused and moved and worst <= 1e-3 and all(map(lambda v: v == v, losses))
    return Check(
        "fused_adamw",
        ok,
        f"fused={is_fused}, GradScaler {'on' if scalers[0].is_enabled() else 'off'} (scale "
        f"{scalers[0].get_scale() if scalers[0].is_enabled() else 1:g}), {steps} steps, weights "
        f"moved {moved}, largest difference to foreach AdamW {worst:.2e} of a tensor's largest "
        f"weight (<= 1e-3), losses {losses[0]:.3f} -> {losses[-1]:.3f}",
    )


def ddp_worker() -> int:
    """Inside ``torchrun``: nccl (gloo without CUDA), a band model under DDP against the bare
    model's gradients."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from akira_nb import runtime
    from akira_nb.bandformer import model as bm

    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        world = dist.get_world_size()
        cfg = bm.preset("tiny")
        torch.manual_seed(0)
        model = bm.BandTransformer(cfg).to(device).train()
        bare = copy.deepcopy(model)
        ids = [device] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
        x = torch.randint(0, cfg.vocab_size, (8, 64), device=device)
        for m in (net, bare):
            torch.manual_seed(1)
            with runtime.autocast(device):
                loss = bm.next_token_loss(m(x), x)
            loss.backward()
        worst = max(
            float((a.grad - b.grad).abs().max() / b.grad.abs().max().clamp_min(1e-12))
            for a, b in zip(model.parameters(), bare.parameters())
            if b.grad is not None
        )
        total = torch.ones(1, device=device)
        dist.all_reduce(total)
        ok = worst <= 1e-3 and int(total.item()) == world
        print(
            f"ddp {'ok' if ok else 'FAIL'}: backend {dist.get_backend()}, world {world}, "
            f"gradient difference {worst:.2e} (<= 1e-3), all_reduce {int(total.item())}",
            flush=True,
        )
        return 0 if ok else 1
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_ddp(timeout: float = 180) -> Check:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1"]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    cmd += [str(Path(__file__).resolve()), "--ddp-worker"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    said = [line for line in proc.stdout.splitlines() if line.startswith("ddp ")]
    detail = said[-1] if said else " ".join((proc.stdout + proc.stderr).split())[-400:]
    ok = proc.returncode == 0 and bool(said) and "backend nccl" in said[-1]
    return Check("ddp", ok, f"torchrun, 1 process: {detail}")


def check_ensemble(device) -> Check:
    from dataclasses import replace

    from akira_nb.modular_arithmetic.ensemble import train_seeds
    from akira_nb.modular_arithmetic.train import TrainConfig, train

    cfg = TrainConfig(
        p=11, mixer="standard", n_epochs=20, d_model=32, n_heads=4, d_mlp=64, eval_every=20,
        checkpoint_every=0, progress_every=0, grokfast_lamb=2.0, lr=3e-3, device=str(device),
    )  # fmt: skip
    seeds = [0, 1]
    together = train_seeds(cfg, seeds=seeds)
    worst = 0.0
    for seed, model in zip(seeds, together["models"]):
        alone = train(replace(cfg, seed=seed), progress=False).model
        for a, b in zip(model.parameters(), alone.parameters()):
            worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)))
    # the wall times at the t4 shapes (p = 53, three seeds, 300 epochs)
    big = replace(cfg, p=53, d_model=128, d_mlp=512, n_epochs=300, eval_every=300)
    _sync()
    t0 = time.perf_counter()
    train_seeds(big, seeds=[0, 1, 2])
    _sync()
    t_ens = time.perf_counter() - t0
    t0 = time.perf_counter()
    for seed in (0, 1, 2):
        train(replace(big, seed=seed), progress=False)
    _sync()
    t_seq = time.perf_counter() - t0
    return Check(
        "ensemble",
        worst <= 1e-3,
        f"vmapped vs one seed at a time on {device}: largest weight difference {worst:.2e} of "
        f"a tensor's largest (<= 1e-3); p = 53 x 3 seeds x 300 epochs: ensemble "
        f"{t_ens:.1f} s, one after another {t_seq:.1f} s (x{t_seq / t_ens:.2f}, measured)",
    )


def time_step(experiment: str, device, n: int = 5) -> tuple[float, int]:
    """``(median seconds of one training step of experiment's largest t4 arm, the plan's
    steps)`` (000: one batch forward through both models), the step as its trainer runs it."""
    import torch

    from akira_nb import runtime

    steps, plan_steps = full_shapes.steps_of(experiment, device)
    if experiment == "action_quanta":

        def one():
            with torch.no_grad():
                for s in steps:
                    s.loss()

    else:
        # the largest arm by parameters (counting FLOPs on the GPU would time the counter)
        step = max(steps, key=lambda s: sum(p.numel() for p in s.model.parameters()))
        amp = experiment in AMP_EXPERIMENTS
        params = [p for p in step.model.parameters() if p.requires_grad]
        if experiment == "spatiotemporal":
            opt = torch.optim.Adam(params, lr=1e-3)
        else:
            opt = torch.optim.AdamW(params, lr=1e-3, fused=True if amp else None)
        scaler = runtime.grad_scaler(device, enabled=amp)

        def one():
            with runtime.autocast(device, enabled=amp):
                loss = step.loss()
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    for _ in range(3):  # warm-up: kernels chosen, memory pooled
        one()
    times = []
    for _ in range(n):
        _sync()
        t0 = time.perf_counter()
        one()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), plan_steps


def run_plan(experiment: str, timeout: float) -> dict:
    """The shortened offline t4 run of ``experiment``: ``{"rc", "seconds", "tail",
    "standins"}`` (``standins``: whether its results.json records them)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as out:
        cmd = full_shapes.stage_command(experiment, out)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
            )
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-1500:]
        except subprocess.TimeoutExpired:
            rc, tail = None, f"not finished within {timeout:.0f} s"
        seconds = time.perf_counter() - t0
        found = list(Path(out).rglob("results.json"))
        standins = any('"standins"' in f.read_text() for f in found)
    return {
        "rc": rc,
        "seconds": seconds,
        "tail": tail,
        "results": bool(found),
        "standins": standins,
    }


# ----------------------------------------------------------------------------- the table


COST_COLUMNS = (
    "notebook",
    "step (measured)",
    "t4 plan steps",
    "t4 plan, training only (estimated)",
    "shortened offline t4 run (measured)",
)


def cost_rows(gpu: str, steps: dict, plan_steps: dict, runs: dict) -> tuple[str, list[list]]:
    """The README cost-table rows: ``steps`` {experiment: seconds of one step, measured},
    ``plan_steps`` {experiment: steps of the t4 plan}, ``runs`` {experiment: run_plan result};
    a missing entry reads "not run". Returns (the heading that says which GPU, rows)."""
    rows = []
    for name in EXPERIMENTS:
        if name not in steps and name not in runs:
            continue
        step = steps.get(name)
        n = plan_steps.get(name)
        run = runs.get(name)
        estimate = (
            f"{step * n / 60:.1f} min ({n:,} x {step * 1e3:.1f} ms)"
            if step is not None and n
            else "not run"
        )
        if run is None:
            measured = "not run"
        elif run["rc"] == 0:
            measured = f"{run['seconds']:.0f} s"
        else:
            measured = f"failed (rc {run['rc']}) after {run['seconds']:.0f} s"
        rows.append(
            [
                full_shapes.NOTEBOOKS[name],
                f"{step * 1e3:.1f} ms" if step is not None else "not run",
                f"{n:,}" if n else "not run",
                estimate,
                measured,
            ]
        )
    t4 = "T4" in gpu.upper()
    heading = (
        f"Cost on {gpu}"
        + ("" if t4 else " (not a T4: these are this GPU's minutes, not T4 minutes)")
        + ": step = one training step of the largest t4 arm (000: one batch through both "
        "models); the estimate = plan steps x step (evaluation and analyses not included); the "
        "shortened run: --size t4 --offline with counts shrunk (full_shapes.SHRINK)"
    )
    return heading, rows


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    from akira_nb.runtime import ArgumentParser  # one-line errors

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=EXPERIMENTS)
    p.add_argument("--skip-plans", action="store_true", help="no shortened offline t4 runs")
    p.add_argument(
        "--plan-timeout", type=float, default=240, help="seconds per shortened run (240)"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=570,
        help="seconds for the whole check (570); a shortened run that would start with less "
        "than 30 s left fails as not run",
    )
    p.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.ddp_worker:
        return ddp_worker()
    if not cuda_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    import torch

    start = time.perf_counter()
    device = torch.device("cuda")
    gpu = torch.cuda.get_device_name(device)
    print(f"gpu_check on {gpu} (torch {torch.__version__})", flush=True)
    checks = []

    def report(check: Check) -> None:
        checks.append(check)
        print(f"{check.line()}  [{time.perf_counter() - start:.0f} s]", flush=True)

    report(_guard("amp", lambda: check_amp(device)))
    report(_guard("fused_adamw", lambda: check_fused_adamw(device)))
    report(_guard("ddp", check_ddp))
    report(_guard("ensemble", lambda: check_ensemble(device)))
    step_s, plan_steps, runs = {}, {}, {}
    for name in args.experiments:

        def timed(name=name):
            step_s[name], plan_steps[name] = time_step(name, device)
            torch.cuda.empty_cache()
            return Check(f"step {name}", True, f"{step_s[name] * 1e3:.2f} ms (median of 5)")

        report(_guard(f"step {name}", timed))
    if not args.skip_plans:
        for name in args.experiments:
            left = start + args.budget - time.perf_counter()
            if left < 30:
                report(Check(f"plan {name}", False, f"not run: the {args.budget:.0f} s were spent"))
                continue
            res = runs[name] = run_plan(name, min(args.plan_timeout, left))
            ok = res["rc"] == 0 and res["results"]
            detail = f"{res['seconds']:.0f} s, results.json written, standins recorded " + (
                "yes" if res["standins"] else "no"
            )
            tail = " ".join(res["tail"].split())[-600:]
            report(Check(f"plan {name}", ok, detail if ok else tail))
    heading, rows = cost_rows(gpu, step_s, plan_steps, runs)
    print()
    print(heading)
    print(full_shapes.format_table(rows, COST_COLUMNS))
    failed = [c.name for c in checks if not c.ok]
    print(
        f"\n{len(checks) - len(failed)} of {len(checks)} checks passed in "
        f"{time.perf_counter() - start:.0f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
