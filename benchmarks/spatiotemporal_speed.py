"""Speed and memory of experiment 033 (spectral band attention). Prints figures; asserts nothing.

    python benchmarks/spatiotemporal_speed.py                 # every case, CPU or CUDA
    python benchmarks/spatiotemporal_speed.py --cases fast32 --threads 1
    python benchmarks/spatiotemporal_speed.py --cases fast32 fast32_bandnorm  # band_normalize

Cases (each in its own subprocess so peak memory is per case):

- ``fast32``: the reference protocol: fast preset, 32x32, blob, 300 online steps (Adam 1e-3,
  batch 1), then held-out per-pixel MSE on 101 frames and a 20-step rollout, beside
  copy-last-frame's and linear extrapolation's on the same frames. The reference code ran ~15
  steps/s on 2-core CPUs with held-out MSE 0.008-0.014 (inventory 1.11).

Speed: ``steps/s`` is wall-clock (steps / the whole training loop, frame generation included:
the reference's measure, and what the "reference ... -> xN" ratio uses); ``train-only`` times
only forward + backward + optimizer step.
- ``large64`` / ``xlarge128``: online steps at the presets' own grids (reference: 2.3 and 0.2
  steps/s, 654 MB and 1.19 GB peak RSS).
- ``batched32``: batched protocol, 16 streams, frames/s.
- ``fast32_bandnorm``: ``fast32`` with the reference's per-frame min-max band normalisation
  (``band_normalize=True``): compare its held-out and rollout MSE with ``fast32``'s.
- ``large64_exact``: ``large64`` with the exact (unpooled) wormhole search: compare speeds.

Peak memory: CUDA ``max_memory_allocated`` on a GPU; on CPU the peak RSS and the peak above the
RSS after start-up (what the model and its step need).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = {
    # name: (preset, grid, steps, batch, evaluate, model overrides)
    "fast32": ("fast", 32, 300, 1, True, {}),
    "large64": ("large", 64, 60, 1, False, {}),
    "xlarge128": ("xlarge", 128, 15, 1, False, {}),
    "batched32": ("fast", 32, 60, 16, False, {}),
    "fast32_bandnorm": ("fast", 32, 300, 1, True, {"band_normalize": True}),
    "large64_exact": ("large", 64, 60, 1, False, {"wormhole_max_spatial_tokens": 10**6}),
}
DEFAULT_CASES = ("fast32", "large64", "xlarge128", "batched32")
REFERENCE = {"fast32": (15.0, None), "large64": (2.3, 654), "xlarge128": (0.2, 1190)}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(name: str, device: str, threads: int | None) -> dict:
    import torch

    from akira_nb.spatiotemporal.evaluate import evaluate
    from akira_nb.spatiotemporal.model import build_model
    from akira_nb.spatiotemporal.train import TrainConfig, train

    if threads:
        torch.set_num_threads(threads)
    preset, grid, steps, batch, do_eval, overrides = CASES[name]
    torch.manual_seed(0)
    model = build_model("spectral", preset, grid_size=grid, **overrides).to(device)
    base_rss = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    cfg = TrainConfig(
        pattern="blob",
        grid_size=grid,
        steps=steps,
        batch=batch,
        protocol="batched" if batch > 1 else "online",
        progress=False,
        device=device,
        cpu_threads=threads or torch.get_num_threads(),
    )
    tic = time.perf_counter()
    out = train(model, cfg)
    wall = time.perf_counter() - tic
    res = {
        "case": name,
        "preset": preset,
        "grid": grid,
        "batch": batch,
        "steps": steps,
        "steps_per_s": out["steps_per_s"],  # wall-clock, as the reference measured
        "train_steps_per_s": out["train_steps_per_s"],
        "frames_per_s": out["frames_per_s"],
        "wall_s": wall,
        "peak_rss_mb": _rss_mb(),
        "peak_rss_above_start_mb": _rss_mb() - base_rss,
        "threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        res["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        res["gpu"] = torch.cuda.get_device_name()
    if do_eval:
        ev = evaluate(
            model,
            TrainConfig(
                grid_size=grid,
                eval_steps=101,
                rollout_horizon=20,
                device=device,
                cpu_threads=cfg.cpu_threads,
            ),
        )
        res["heldout_mse"] = ev["mse"]
        res["rollout_mse"] = ev["rollout_mse"]
        for b in ("copy_last", "linear_extrap"):  # the same frames, the same rollout horizon
            bev = evaluate(
                build_model(b), TrainConfig(grid_size=grid, eval_steps=101, rollout_horizon=20)
            )
            res[f"heldout_{b}"] = bev["mse"]
            res[f"rollout_{b}"] = bev["rollout_mse"]
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=list(CASES))
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)  # worker mode
    args = p.parse_args(argv)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.case:
        print(json.dumps(run_case(args.case, args.device, args.threads)))
        return 0
    rows = []
    for name in args.cases:
        cmd = [sys.executable, __file__, "--case", name, "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        ref = REFERENCE.get(name)
        line = (
            f"{name:10s} {row['preset']:7s} {row['grid']:4d}px batch {row['batch']:2d}: "
            f"{row['steps_per_s']:8.2f} steps/s (train-only {row['train_steps_per_s']:.2f}) "
            f"{row['frames_per_s']:8.1f} frames/s  "
            f"peak RSS {row['peak_rss_mb']:7.0f} MB (+{row['peak_rss_above_start_mb']:.0f} MB)"
        )
        if "cuda_peak_mb" in row:
            line += f"  CUDA peak {row['cuda_peak_mb']:.0f} MB"
        if ref:
            ratio = row["steps_per_s"] / ref[0]
            line += f"  | reference {ref[0]} steps/s (wall-clock) -> x{ratio:.1f}"
        print(line, flush=True)
        if "heldout_mse" in row:
            print(
                f"{'':10s} held-out per-pixel MSE: spectral {row['heldout_mse']:.2e}, "
                f"copy-last {row['heldout_copy_last']:.2e}, linear extrapolation "
                f"{row['heldout_linear_extrap']:.2e} (reference model: 8e-3 to 1.4e-2)"
            )
            print(
                f"{'':10s} 20-step rollout per-pixel MSE: spectral {row['rollout_mse']:.3g}, "
                f"copy-last {row['rollout_copy_last']:.3g}, linear extrapolation "
                f"{row['rollout_linear_extrap']:.3g}"
            )
    mem = {
        r["grid"]: r.get("cuda_peak_mb", r["peak_rss_above_start_mb"])
        for r in rows
        if r["batch"] == 1
    }
    if 64 in mem and 128 in mem:
        print(
            f"memory 64 -> 128 px: x{mem[128] / max(mem[64], 1e-9):.1f}; xlarge at 128x128 needs "
            f"~{mem[128]:.0f} MB per stream (T4: 16 GB)"
        )
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
