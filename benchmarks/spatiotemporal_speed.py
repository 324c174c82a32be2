"""Speed and memory of experiment 033 (spectral band attention), beside the public reference when
given its checkout. Prints figures; asserts nothing.

    python benchmarks/spatiotemporal_speed.py          # the kit alone: fast32, 1 and 2 threads
    python benchmarks/spatiotemporal_speed.py --reference-dir /tmp/ref/akira --rounds 3
    python benchmarks/spatiotemporal_speed.py --cases large64 large64_pooled --steps64 40
    python benchmarks/spatiotemporal_speed.py --memory              # peak memory, exact wormhole

Cases (every run in its own process, so whole-process time and peak memory are per run):

- ``fast32``: the reference's own protocol (its README's ``python synthetic_2d.py --config fast
  --steps 300``): fast preset, 32x32, blob, 300 online steps (Adam 1e-3, batch 1), then its 101
  held-out frames. The reference prints ``Total time`` (its training loop: frame generation,
  the step, its per-step statistics) and ``Steps/sec`` (300 / that time); its steps/s here is
  300 / its printed total time. The kit's worker does the same: the training loop, then 101
  held-out frames (no rollout).
- ``large64``: the large preset at 64x64 with the **exact** wormhole search (as the reference,
  which never pools at 64x64), ``--steps64`` steps, no held-out frames on either side.
- ``large64_pooled``: the kit's 2x2-pooled wormhole search at 64x64, a separate, labelled option
  with no reference counterpart (no ratio line).
- ``fast32_bandnorm``: ``fast32`` with the reference's per-frame min-max band normalisation
  (``band_normalize=True``), kit only: compare its held-out MSE with ``fast32``'s.

Figures: steps/s of the training loop (``training``; the kit's forward + backward + optimizer
step alone beside it), steps/s of the whole process (start-up, imports, training, evaluation),
its wall and CPU seconds (``os.wait4``), peak RSS and threads. Kit and reference runs are
interleaved (kit, reference, reference, kit, ...; ``paired.interleave``) and the medians
reported; the last lines are ``kit/reference <case> <n>t: x<ratio>`` (training steps/s).

- ``fast32_projected`` / ``large64_projected``: ``fast32`` / ``large64`` with
  ``wormhole_similarity_features="projected"``: the similarity band's 32-dim features, as the
  reference searches (the like-for-like search; its ratio line beside the patch one).

The FLOP floor of the similarity search: the exact wormhole search scores every query against
every past position (``Q x N x D`` multiply-adds: kit D = 9, its 3x3 patch features, or 32
projected; reference D = 32, its projected band features) each time it runs (every
``wormhole_skip_steps`` = 2 steps). The benchmark measures this device's fp32 rate on a
1024x1024 square matmul at each thread count and prints the time that many FLOPs would take at
that rate (a floor only: a D = 9 score product runs far below that rate), beside the measured
steps, like with like: the whole training loop of each side (the kit's forward + backward +
optimizer step alone, labelled, after it).

``--memory``: peak RSS above start-up (CPU) or ``max_memory_allocated`` (CUDA) of a few training
steps with the exact wormhole at 32, 64, 96 and 128 px; the growth exponent from the largest
two grids, and whether 128x128 exact fits a T4's 16 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paired  # noqa: E402

REFERENCE_SCRIPT = (
    "experiments/experiments_supporting_literature_and_reference/"
    "033_EXP_SPECTRAL_BAND_ATTENTION/code/synthetic_2d.py"
)
EXACT = {"wormhole_max_spatial_tokens": 10**6}
PROJECTED = {"wormhole_similarity_features": "projected"}  # the band's 32-dim features
# name: (preset, grid, steps (None: --steps64), held-out frames, model overrides, reference?)
CASES = {
    "fast32": ("fast", 32, 300, 101, {}, True),
    "large64": ("large", 64, None, 0, EXACT, True),
    "large64_pooled": ("large", 64, None, 0, {}, False),
    "fast32_bandnorm": ("fast", 32, 300, 101, {"band_normalize": True}, False),
    "fast32_projected": ("fast", 32, 300, 101, PROJECTED, True),
    "large64_projected": ("large", 64, None, 0, {**EXACT, **PROJECTED}, True),
}
# the fast/large presets' wormhole search: every 2nd step; the reference's dims (its attnDim)
SKIP_STEPS, REFERENCE_SIM_DIMS, KIT_SIM_DIMS, TIME_DEPTH = 2, 32, 9, 8
PROJECTED_SIM_DIMS = 32  # the fast/large presets' base_dim (a test checks it)


def sim_dims(name: str) -> int:
    """The kit's similarity-feature dims in case ``name``: 3x3 patches or projected."""
    projected = CASES[name][4].get("wormhole_similarity_features") == "projected"
    return PROJECTED_SIM_DIMS if projected else KIT_SIM_DIMS


def case_label(name: str) -> str:
    if name.endswith("pooled"):
        return "pooled wormhole, kit option"
    label = "exact wormhole"
    if name.endswith("bandnorm"):
        label += ", band_normalize"
    if name.endswith("projected"):
        label += f", projected {PROJECTED_SIM_DIMS}-dim similarity features as the reference"
    return label


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kit_worker(name: str, steps: int, device: str, threads: int) -> dict:
    """One kit run of ``name`` in this process (the benchmark runs it as a subprocess)."""
    import torch

    from akira_nb.spatiotemporal.evaluate import evaluate
    from akira_nb.spatiotemporal.model import build_model
    from akira_nb.spatiotemporal.train import TrainConfig, train

    preset, grid, _, eval_steps, overrides, _ = CASES[name]
    torch.manual_seed(0)
    model = build_model("spectral", preset, grid_size=grid, **overrides).to(device)
    cfg = TrainConfig(
        grid_size=grid,
        steps=steps,
        eval_steps=max(eval_steps, 1),
        rollout_horizon=0,
        progress=False,
        device=device,
        cpu_threads=threads,
    )
    out = train(model, cfg)
    res = {
        "steps_per_s": out["steps_per_s"],
        "train_steps_per_s": out["train_steps_per_s"],
        "final_loss": out["final"],
        "threads": threads,
    }
    if eval_steps:
        tic = time.perf_counter()
        res["heldout_mse"] = evaluate(model, cfg)["mse"]
        res["eval_s"] = time.perf_counter() - tic
    return res


def memory_worker(grid: int, steps: int, device: str, threads: int) -> dict:
    """Peak memory of ``steps`` training steps, large preset, exact wormhole, at ``grid``."""
    import torch

    from akira_nb.spatiotemporal.model import build_model
    from akira_nb.spatiotemporal.train import TrainConfig, train

    torch.manual_seed(0)
    model = build_model("spectral", "large", grid_size=grid, **EXACT).to(device)
    base = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(grid_size=grid, steps=steps, progress=False, device=device)
    cfg.cpu_threads = threads
    out = train(model, cfg)
    res = {"grid": grid, "peak_above_start_mb": _rss_mb() - base, "steps_per_s": out["steps_per_s"]}
    if device.startswith("cuda"):
        res["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return res


MATMUL_N = 1024  # the square matmul whose rate the FLOP floor uses


def matmul_gflops(threads: int, device: str, n: int = MATMUL_N, reps: int = 10) -> float:
    """This device's fp32 matmul rate (GFLOP/s) at ``threads``: median of ``reps`` n^3 matmuls."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        times = []
        for _ in range(reps + 2):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            tic = time.perf_counter()
            a @ b
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - tic)
        return 2 * n**3 / sorted(times[2:])[reps // 2] / 1e9
    finally:
        torch.set_num_threads(old)


def search_floor_ms(grid: int, dims: int, gflops: float) -> float:
    """Time of one exact wormhole search's ``2 Q N D`` FLOPs at ``gflops``."""
    q = grid * grid
    return 2 * q * (TIME_DEPTH * q) * dims / (gflops * 1e9) * 1e3


def floor_line(name: str, grid: int, rows: dict, gflops: float) -> str:
    """The search's FLOP floor beside the measured steps, like with like: both sides' whole
    training loop (the kit's forward + backward + optimizer step alone, labelled, after)."""
    sg = grid // 2 if name.endswith("pooled") else grid  # large: 2x2 pooling
    d = sim_dims(name)
    fk = search_floor_ms(sg, d, gflops)
    kit_loop = 1e3 / paired.median(rows["kit"], "steps_per_s")
    kit_step = 1e3 / paired.median(rows["kit"], "train_steps_per_s")
    text = (
        f"  FLOP floor at the peak square-matmul rate measured here ({gflops:.0f} GFLOP/s, "
        f"fp32 {MATMUL_N}x{MATMUL_N}; the narrow D-dim score products run far below it): kit "
        f"{sg * sg} queries x {TIME_DEPTH * sg * sg} past x {d} dims = {fk:.2f} ms a search, "
        f"{fk / SKIP_STEPS:.2f} ms a step (one search every {SKIP_STEPS}); kit step "
        f"{kit_loop:.1f} ms (whole training loop; fwd+bwd+step alone {kit_step:.1f} ms)"
    )
    if not name.endswith("pooled"):
        fr = search_floor_ms(grid, REFERENCE_SIM_DIMS, gflops)
        text += f"; reference x {REFERENCE_SIM_DIMS} dims = {fr:.2f} ms a search"
        if "reference" in rows:
            ref_loop = 1e3 / paired.median(rows["reference"], "steps_per_s")
            text += f", its step {ref_loop:.1f} ms (whole training loop)"
    return text


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_kit(name: str, steps: int, device: str, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--steps64", str(steps)]
    cmd += ["--device", device, "--threads", str(threads)]
    r = paired.run_timed(cmd, cwd=Path(__file__).resolve().parents[1], env=_env(threads))
    row = json.loads(r["stdout"].strip().splitlines()[-1])
    row.update({k: r[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")})
    row["process_steps_per_s"] = steps / r["wall_s"]
    return row


def parse_reference(stdout: str, steps: int) -> dict:
    """The reference's training-loop figures from what ``synthetic_2d.py`` prints."""
    total = re.search(r"Total time:\s*([0-9.]+)s", stdout)
    if total is None:
        raise RuntimeError(f"no 'Total time: ...s' in the reference's output:\n{stdout[-2000:]}")
    row = {"loop_s": float(total.group(1)), "steps_per_s": steps / float(total.group(1))}
    ev = re.search(r"Eval mean loss:\s*([0-9.eE+-]+)", stdout)
    final = re.search(r"Final loss:\s*([0-9.eE+-]+)", stdout)
    if ev:
        row["heldout_mse"] = float(ev.group(1))
    if final:
        row["final_loss"] = float(final.group(1))
    return row


def run_reference(ref: Path, name: str, steps: int, device: str, threads: int) -> dict:
    preset, grid, _, eval_steps, _, _ = CASES[name]
    script = ref / REFERENCE_SCRIPT
    cmd = [sys.executable, script.name, "--config", preset, "--grid-size", str(grid)]
    cmd += ["--steps", str(steps), "--pattern-train", "blob", "--device", device]
    cmd += ["--eval-steps", str(eval_steps)]
    r = paired.run_timed(cmd, cwd=script.parent, env=_env(threads))
    row = parse_reference(r["stdout"], steps)
    row.update({k: r[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")})
    row["process_steps_per_s"] = steps / r["wall_s"]
    row["threads"] = threads
    return row


def _line(label: str, rows: list[dict]) -> str:
    m = lambda k: paired.median(rows, k)  # noqa: E731
    text = f"  {label:10s} training {m('steps_per_s'):7.2f} steps/s"
    if "train_steps_per_s" in rows[0]:
        text += f" (fwd+bwd+step alone {m('train_steps_per_s'):7.2f})"
    text += (
        f", whole process {m('process_steps_per_s'):6.2f} steps/s: {m('wall_s'):6.1f} s wall, "
        f"{m('cpu_s'):6.1f} CPU s, peak RSS {m('peak_rss_mb'):5.0f} MB, "
        f"{rows[0]['threads']} thread(s), n={len(rows)}"
    )
    if "heldout_mse" in rows[0]:
        text += f"; held-out MSE {m('heldout_mse'):.2e}"
    return text


def memory_report(device: str, threads: int, steps: int) -> None:
    root = Path(__file__).resolve().parents[1]
    rows = []
    for grid in (32, 64, 96, 128):
        cmd = [sys.executable, __file__, "--memory-worker", str(grid), "--steps64", str(steps)]
        cmd += ["--device", device, "--threads", str(threads)]
        r = paired.run_timed(cmd, cwd=root, env=_env(threads))
        row = json.loads(r["stdout"].strip().splitlines()[-1])
        key = "cuda_peak_mb" if "cuda_peak_mb" in row else "peak_above_start_mb"
        row["mb"] = row[key]
        rows.append(row)
        print(
            f"  exact wormhole {grid:3d}px, {steps} steps: peak {row['mb']:7.0f} MB "
            f"({key}), {row['steps_per_s']:.2f} steps/s",
            flush=True,
        )
    a, b = rows[-2], rows[-1]
    import math

    expo = math.log(max(b["mb"], 1e-9) / max(a["mb"], 1e-9)) / math.log(b["grid"] / a["grid"])
    print(
        f"  peak memory grows as grid^{expo:.2f} from {a['grid']} to {b['grid']} px; 128x128 "
        f"exact needs ~{b['mb']:.0f} MB measured here "
        f"({'fits' if b['mb'] < 16 * 1024 else 'does not fit'} a T4's 16 GB; the search's "
        "score chunks are capped at 64 MB, whatever the grid)"
    )


def main(argv=None) -> int:
    from akira_nb.runtime import ArgumentParser  # one-line errors

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["fast32"], choices=list(CASES))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rounds", type=int, default=3, help="paired rounds per case (default 3)")
    p.add_argument("--steps64", type=int, default=40, help="steps of the 64x64 cases")
    p.add_argument("--reference-dir", default=None, help="a checkout of Gman-Superfly/AKIRA")
    p.add_argument("--device", default="cpu")
    p.add_argument("--memory", action="store_true", help="peak memory of the exact wormhole")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker or args.memory_worker:
        n = args.threads[0]
        if args.worker:
            steps = CASES[args.worker][2] or args.steps64
            print(json.dumps(kit_worker(args.worker, steps, args.device, n)))
        else:
            print(json.dumps(memory_worker(args.memory_worker, args.steps64, args.device, n)))
        return 0
    try:
        ref = paired.reference_dir(args.reference_dir, REFERENCE_SCRIPT)
        for t in args.threads:
            if t < 1:
                raise ValueError(f"--threads {t!r}: each thread count must be >= 1")
        if args.rounds < 1:
            raise ValueError(f"--rounds {args.rounds!r} must be >= 1")
    except ValueError as exc:
        print(exc)
        return 2
    ratios = []
    for name in args.cases:
        preset, grid, steps, _, _, has_ref = CASES[name]
        steps = steps or args.steps64
        for t in args.threads:
            cases = {"kit": lambda n=name, s=steps, t=t: run_kit(n, s, args.device, t)}
            if ref is not None and has_ref:
                cases["reference"] = lambda n=name, s=steps, t=t: run_reference(
                    ref, n, s, args.device, t
                )
            rows = paired.interleave(cases, args.rounds)
            label = case_label(name)
            print(f"{name} ({preset}, {grid}x{grid}, {steps} steps, {label}), {t} thread(s):")
            for who, rs in rows.items():
                print(_line(who, rs), flush=True)
            print(floor_line(name, grid, rows, matmul_gflops(t, args.device)), flush=True)
            if "reference" in rows:
                kit_v = paired.median(rows["kit"], "steps_per_s")
                ref_v = paired.median(rows["reference"], "steps_per_s")
                ratios.append(paired.ratio_line(f"{name} {t}t", kit_v, ref_v, "steps/s"))
    if args.memory:
        print("memory (large preset, exact wormhole):")
        memory_report(args.device, args.threads[0], 3)
    if ref is None:
        print("(no --reference-dir: the kit's figures alone; no reference figure is typed in)")
    for line in ratios:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
