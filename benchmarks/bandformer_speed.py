"""Training speed of the band transformer (026) beside its parameter-matched GPT baseline:
training tokens/s, the ratio to the baseline and peak memory, per config and device; with
``--ddp``, the trainer's tokens/s on CPU in one process and in two (``torchrun``, gloo).
Prints figures; asserts nothing.

    python benchmarks/bandformer_speed.py                       # tiny + default, CPU (+ t4 on CUDA)
    python benchmarks/bandformer_speed.py --configs tiny --models band reference baseline
    python benchmarks/bandformer_speed.py --configs t4 --device cuda
    python benchmarks/bandformer_speed.py --configs tiny --ddp

Configs (``CONFIGS``: model preset, batch x sequence):

- ``tiny``: the ``tiny`` preset (2 layers, bands (32, ..., 8), byte vocabulary), 16 x 64 (the
  notebook's tiny size trains 16 x 32: ``--seq 32``);
- ``default``: the 026 model (6 layers, bands (128, ..., 32), GPT-2 vocabulary) at a CPU-sized
  4 x 128;
- ``t4``: the same model at the ``t4`` size's 16 x 256 (slow on a CPU).

Models (the trainer's arms): ``band`` (differential LRs), ``band_no_wormhole``, ``reference``
(the reference layout, no wormhole) and ``baseline`` (``BaselineTransformer.matched_to`` the
band config, uniform LR). ``ratio`` is each model's tokens/s over the baseline's.

What is timed is the trainer's step (as ``akira_nb.bandformer.train.optimizer_step``):
autocast (bf16 or fp16 + grad scaler on CUDA, fp32 on CPU), ``next_token_loss``, backward,
clipping at 1.0 and AdamW over ``optim.param_groups``, in train mode with the preset's dropout
(``--dropout`` overrides it), on random tokens. Warm-up steps are not counted.

Shared machines: the CPU figures come from a couple of cores that other jobs share, so the
models are alternated within one run (A B A B ...: window w of every model runs before window
w + 1 of any), each window times ``--steps`` steps, and the table gives the median window;
the ratio is the median of the window-by-window ratios. Compare the ratios of one run rather
than absolute tokens/s across runs.

Peak memory: each model runs a few steps in a fresh process of its own: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the process's peak RSS (``VmHWM``, or
``resource.getrusage`` where there is no /proc) beside its RSS before the model was built
(the imports, transformer_lens among them, take about 0.35 GB).

DDP (``--ddp``, CPU): ``python -m akira_nb.bandformer.train`` in one process and under
``python -m torch.distributed.run --nproc_per_node 2`` (gloo) on the same global batch; the
tokens/s are the trainer's own (``results.json``), evaluation excluded. On a 2-core machine
the two processes take both cores.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from akira_nb import runtime
from akira_nb.bandformer import optim
from akira_nb.bandformer.model import (
    BandTransformer,
    BaselineTransformer,
    model_summary,
    next_token_loss,
    preset,
)

CONFIGS = {  # name: (model preset, batch, seq)
    "tiny": ("tiny", 16, 64),
    "default": ("default", 4, 128),
    "t4": ("default", 16, 256),
}
MODELS = {  # name: (band config overrides, LR mode); the baseline is matched to the band config
    "band": (dict(), "differential"),
    "band_no_wormhole": (dict(wormhole=False), "differential"),
    "reference": (dict(layout="reference", wormhole=False), "differential"),
    "baseline": (dict(), "uniform"),
}


def build(config: str, model: str, seq: int, dropout: float | None, device):
    name = CONFIGS[config][0]
    overrides, lr_mode = MODELS[model]
    extra = {} if dropout is None else dict(dropout=dropout)
    cfg = preset(name, **{"n_ctx": seq, **extra, **overrides})  # n_ctx as the trainer sets it
    torch.manual_seed(0)
    net = BaselineTransformer.matched_to(cfg) if model == "baseline" else BandTransformer(cfg)
    return net.to(device).train(), optim.make_adamw(net, lr_mode), cfg.vocab_size


def make_step(config: str, model: str, args, device):
    """A closure running one training step as the trainer does, and the model."""
    net, opt, vocab = build(config, model, args.seq, args.dropout, device)
    scaler = runtime.grad_scaler(device)
    params = [p for p in net.parameters() if p.requires_grad]
    x = torch.randint(vocab, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    x = x.to(device)

    def step() -> None:
        with runtime.autocast(device):
            loss = next_token_loss(net(x), x)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(opt)
        scaler.update()

    return step, net


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, n: int, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return time.perf_counter() - t0


def speed(config: str, args, device) -> dict:
    """Per model: tokens/s (median window), its range, the ratio to the baseline (median of the
    window-by-window ratios), steps per window, parameters. The models alternate window by
    window, so each window of a model runs next to the same window of the others."""
    runs = {m: make_step(config, m, args, device) for m in args.models}
    n_steps = {}
    for m, (step, _) in runs.items():
        for _ in range(max(args.warmup - 1, 0)):
            step()
        one = timed(step, 1, device)  # the last warm-up step sizes the windows (~1 s each)
        n_steps[m] = args.steps or max(1, min(50, round(1.0 / one)))
    rates = {m: [] for m in runs}
    for _ in range(args.windows):
        for m, (step, _) in runs.items():
            rates[m].append(args.batch * args.seq * n_steps[m] / timed(step, n_steps[m], device))
    base = rates.get("baseline")
    return {
        m: dict(
            tokens_per_s=statistics.median(r),
            spread=(min(r), max(r)),
            ratio=statistics.median(a / b for a, b in zip(r, base)) if base else None,
            steps=n_steps[m],
            params=model_summary(runs[m][1])["total"],
        )
        for m, r in rates.items()
    }


def peak_memory(config: str, model: str, args, device) -> str:
    """Peak memory of a few training steps of ``model``, in a fresh process (``--_peak``)."""
    cmd = [sys.executable, __file__, "--_peak", config, model, "--device", str(device)]
    cmd += ["--batch", str(args.batch), "--seq", str(args.seq), "--threads", str(args.threads)]
    cmd += [] if args.dropout is None else ["--dropout", str(args.dropout)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        return "failed: " + " | ".join(out.stderr.strip().splitlines()[-1:])
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    if "cuda_mb" in mem:
        return f"{mem['cuda_mb']:,.0f} MB CUDA max allocated"
    return f"{mem['rss_mb']:,.0f} MB peak RSS ({mem['start_mb']:,.0f} MB before the model)"


def _rss_kb(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak) of this process in KiB, from /proc (Linux; the
    peak is that of this program, not inherited from the parent as ``ru_maxrss`` is);
    elsewhere ``ru_maxrss`` (which counts the parent's RSS at the fork)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        scale = 1024 if sys.platform == "darwin" else 1  # bytes on macOS
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale


def _peak_child(config: str, model: str, args, device) -> None:
    start_kb = _rss_kb("VmRSS")
    step, _ = make_step(config, model, args, device)
    step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):
        step()
    sync(device)
    if device.type == "cuda":
        print(json.dumps({"cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20}))
    else:
        print(json.dumps({"rss_mb": _rss_kb("VmHWM") / 1024, "start_mb": start_kb / 1024}))


def trainer_speed(model: str, procs: int, args) -> str:
    """The trainer's own tokens/s (``results.json``) for ``procs`` CPU processes."""
    flags = {
        "arm": model,
        "preset": CONFIGS["tiny"][0],
        "batch-size": args.batch,
        "seq-len": args.seq,
        "total-steps": args.ddp_steps,
        "warmup-steps": 1,
        "eval-every": args.ddp_steps,
        "eval-batches": 1,
        "checkpoint-every": 0,
        "monitor-every": 0,
        "cpu-threads": args.threads or 1,
        "device": "cpu",
    }
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, *(launch if procs > 1 else []), "-m", "akira_nb.bandformer.train"]
        cmd += [x for k, v in flags.items() for x in (f"--{k}", str(v))]
        cmd += ["--no-progress", "--output-dir", tmp, "--name", f"speed{procs}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        found = glob.glob(os.path.join(tmp, "*", "*", "results.json"))
        if out.returncode or not found:
            return "failed: " + " | ".join((out.stderr or out.stdout).strip().splitlines()[-2:])
        with open(found[0]) as f:
            return f"{json.load(f)['tokens_per_s']:,.0f} tokens/s"


def ddp_table(args) -> None:
    shape = f"{args.ddp_steps} steps x {args.batch} x {args.seq}"
    print(f"\nDDP on CPU (gloo): the trainer at tiny, {shape}, the same global batch")
    if importlib.util.find_spec("akira_nb.bandformer.train") is None:
        print("  akira_nb/bandformer/train.py is not there yet: no trainer to start under torchrun")
        return
    for model in ("band", "baseline"):
        one, two = (trainer_speed(model, procs, args) for procs in (1, 2))
        print(f"  {model:<9} 1 process: {one};  2 processes: {two}", flush=True)


def parse_args() -> argparse.Namespace:
    p = runtime.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--configs", nargs="+", choices=list(CONFIGS), help="default: tiny default (+ t4 on CUDA)")
    add("--models", nargs="+", choices=list(MODELS), default=["band", "baseline"])
    add("--steps", type=int, default=0, help="steps per timed window (default: about 1 s)")
    add("--windows", type=int, default=5, help="timed windows per model (the median is shown)")
    add("--warmup", type=int, default=2, help="untimed steps before the windows")
    add("--batch", type=int, help="batch (default: the config's)")
    add("--seq", type=int, help="sequence length (default: the config's)")
    add("--dropout", type=float, help="dropout (default: the preset's)")
    add("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    add("--device", nargs="+", help="devices (default: cpu, and cuda when present)")
    add("--no-memory", action="store_true", help="skip the peak-memory processes")
    add("--ddp", action="store_true", help="also time the trainer under torchrun on CPU (tiny)")
    add("--ddp-steps", type=int, default=30, help="training steps of each DDP run")
    add("--_peak", nargs=2, help=argparse.SUPPRESS)  # config, model: the peak-memory child
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch, seq = args.batch, args.seq
    if args._peak:
        _peak_child(*args._peak, args, torch.device(args.device[0]))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)")
    for device in map(torch.device, args.device or ["cpu"] + ["cuda"] * torch.cuda.is_available()):
        configs = args.configs or ["tiny", "default"] + ["t4"] * (device.type == "cuda")
        print(f"\n{device}: tokens/s = median of {args.windows} windows, the models alternated")
        print(
            f"{'config':<8} {'batch x seq':>11} {'model':<17} {'params':>11} {'tokens/s':>9} "
            f"{'(range)':>17} {'ratio':>6}  peak memory"
        )
        for config in configs:
            args.batch, args.seq = batch or CONFIGS[config][1], seq or CONFIGS[config][2]
            for m, r in speed(config, args, device).items():
                ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
                spread = "({:,.0f}-{:,.0f})".format(*r["spread"])
                mem = "" if args.no_memory else peak_memory(config, m, args, device)
                print(
                    f"{config:<8} {f'{args.batch} x {args.seq}':>11} {m:<17} {r['params']:>11,} "
                    f"{r['tokens_per_s']:>9,.0f} {spread:>17} {ratio:>6}  {mem}",
                    flush=True,
                )
    if args.ddp:
        args.batch, args.seq = batch or CONFIGS["tiny"][1], seq or CONFIGS["tiny"][2]
        ddp_table(args)


if __name__ == "__main__":
    main()
