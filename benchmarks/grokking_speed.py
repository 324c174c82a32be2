"""Training speed of the grokking models, beside the public reference when it is given.

    python benchmarks/grokking_speed.py [--reference-dir PATH] [--primes 53 113] [--epochs 200]
        [--mixers ...] [--rounds 3] [--threads 1] [--seeds 0]

For every model (standard, fnet, learned_gate, phase_shift, full) and prime, the kit's
``modular_arithmetic.train.train`` runs in its own process (full batch, train_frac 0.3, the kit's
defaults, no evaluation until the last epoch, no checkpoints or progress snapshots) and prints
training epochs per CPU-second and per wall-second (training alone, evaluation excluded) and
the whole process's figures (epochs over the process's CPU and wall time, imports and start-up
included).

With ``--reference-dir PATH`` (a checkout of github.com/unixsysdev/wave-llm-) the reference's
own training function, ``experiments/train_comparison.py: train_model`` with its models from
``experiments/models.py`` (seed 42, train_frac 0.3, lr 1e-3, weight decay 1, p and the model
as given), runs in a subprocess on the same number of epochs and threads, interleaved with the
kit (kit, reference, reference, kit, ...; ``benchmarks/paired.py``). The reference prints no
epochs/s of its own (its tqdm bar shows a smoothed rate of training plus its evaluation every
100 epochs), so a fixed number of epochs is timed around ``train_model`` with ``log_every``
set past the last epoch: it then evaluates once, at epoch 0 (one test forward and its Fourier
metrics; about 0.8 epochs' worth, 1.3 % of a 60-epoch span at p = 113). The kit's timed span
holds no evaluation, so the driver runs that evaluation's code again after training, times it
and subtracts it (printed per case). The run ends with ``kit/reference p<p> <model>:
x<ratio>`` per case: median training epochs per CPU-second, kit over reference. Without the
flag only the kit's figures are printed; no reference figure is ever typed in.

The two compute the same function, not the same work: the kit runs its MLP and unembedding at
the ``=`` position only (the only one read; its keys and values still see all three tokens),
the reference at all three positions. That is a valid speed-up of the same model, and part of
the ratio; the printed notes say so.

The fp32 matmul bound is measured on the same device and threads: the best FLOPs per
CPU-second (and per wall-second, printed beside it) of a matmul of the model's own shapes
([n_train, d_model] x [d_model, d_mlp], the MLP's input layer, and its two backward products).
Each model's % of it is its training FLOPs per epoch (the matmuls the kit's model performs:
forward, input and weight gradients; fnet's fixed DFT matrix has no weight gradient) times its
epochs per CPU-second, over the bound per CPU-second: the same unit on both sides, so with T
threads the share is not understated T-fold.

``--seeds N`` (N >= 2) also times N seeds trained one after another against the same N seeds
as one vmapped ensemble (``modular_arithmetic.ensemble``), in this process, and prints
seeds-epochs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import paired

MODELS = ("standard", "fnet", "learned_gate", "phase_shift", "full")
REFERENCE_SCRIPT = "experiments/train_comparison.py"
REPO = Path(__file__).resolve().parents[1]
NOTES = (
    "notes: the same function, computed differently: the kit runs its MLP and unembedding at "
    "'=' only (the only position read; keys and values still see all three tokens), the "
    "reference at all 3 positions; part of the ratio is that saving.",
    "       the reference's timed span holds its one evaluation (epoch 0); it is timed again "
    "after training and subtracted, the kit's timed span holds none. % bound: FLOPs per "
    "CPU-second over the matmul bound per CPU-second.",
)

# Run in the reference's experiments/ folder: imports its models and its training function and
# times a fixed number of epochs of train_model (its loop, its optimiser, its loss).
REFERENCE_DRIVER = """
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[4]))
sys.path.insert(0, ".")
from models import StandardAttentionTransformer, WaveTransformer, train_test_split
import torch.nn.functional as F
from train_comparison import compute_fourier_metrics, train_model
model_name, p, n_epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
device = torch.device("cpu")
train_data, test_data = train_test_split(p, 0.3, device, 42)
torch.manual_seed(42)
if model_name == "standard":
    model = StandardAttentionTransformer(p=p).to(device)
else:
    model = WaveTransformer(p=p, wave_mode=model_name).to(device)
cpu0, wall0 = time.process_time(), time.perf_counter()
train_model(model, train_data, test_data, n_epochs=n_epochs, lr=1e-3, weight_decay=1.0,
            log_every=n_epochs + 1, device=device, desc=model_name)
cpu1, wall1 = time.process_time(), time.perf_counter()
# train_model's one evaluation (log_every > n_epochs: at epoch 0 only), its code run again and
# timed, to subtract: the kit's timed span holds no evaluation
a_test, b_test, targets_test = test_data
model.eval()
with torch.no_grad():
    test_logits = model(a_test, b_test)
    F.cross_entropy(test_logits, targets_test).item()
    (test_logits.argmax(dim=-1) == targets_test).float().mean().item()
    compute_fourier_metrics(model, device)
eval_cpu, eval_wall = time.process_time() - cpu1, time.perf_counter() - wall1
print(json.dumps({"train_cpu_s": cpu1 - cpu0 - eval_cpu, "train_wall_s": wall1 - wall0 - eval_wall,
                  "eval_cpu_s": eval_cpu, "eval_wall_s": eval_wall, "epochs": n_epochs}))
"""


def kit_worker(model: str, p: int, epochs: int, threads: int, device: str) -> None:
    """One kit training run in this process; prints its JSON line (what ``_parse`` reads)."""
    from akira_nb.modular_arithmetic.train import TrainConfig, train

    cfg = TrainConfig(
        p=p,
        mixer=model,
        n_epochs=epochs,
        eval_every=epochs,
        checkpoint_every=0,
        progress_every=0,
        device=device,
        cpu_threads=threads,
    )
    res = train(cfg, progress=False)
    out = {"train_cpu_s": res.train_cpu_seconds, "train_wall_s": res.train_seconds}
    print(json.dumps({**out, "epochs": epochs}))


def _parse(run: dict) -> dict:
    """A worker's timings: its JSON line and the whole process's wall and CPU seconds."""
    line = [ln for ln in run["stdout"].splitlines() if ln.startswith("{")][-1]
    got = json.loads(line)
    n = got["epochs"]
    return {
        "eval_cpu_s": got.get("eval_cpu_s", 0.0),
        "train_cpu_s": got["train_cpu_s"],
        "train_wall_s": got["train_wall_s"],
        "epochs_per_cpu_s": n / got["train_cpu_s"],
        "epochs_per_wall_s": n / got["train_wall_s"],
        "process_cpu_s": run["cpu_s"],
        "process_wall_s": run["wall_s"],
        "process_epochs_per_cpu_s": n / run["cpu_s"],
        "process_epochs_per_wall_s": n / run["wall_s"],
    }


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def kit_case(model, p, epochs, threads, device):
    cmd = [sys.executable, __file__, "--worker", model, "--primes", str(p)]
    cmd += ["--epochs", str(epochs), "--threads", str(threads), "--device", device]
    env = {**_env(threads), "PYTHONPATH": str(REPO)}
    return lambda: _parse(paired.run_timed(cmd, cwd=REPO, env=env))


def reference_case(ref: Path, model, p, epochs, threads):
    cmd = [sys.executable, "-c", REFERENCE_DRIVER, model, str(p), str(epochs), str(threads)]
    return lambda: _parse(paired.run_timed(cmd, cwd=ref / "experiments", env=_env(threads)))


def train_flops(p: int, model: str, d: int = 128, heads: int = 4, d_mlp: int = 512) -> int:
    """Matmul FLOPs of one training epoch of the kit's model, per training example: forward,
    input gradient and weight gradient of every learned matmul (3x its forward), forward and
    input gradient of fnet's fixed [3d, d] matrix (2x). Element-wise work is not counted."""
    learned = 2 * d * d_mlp * 2 + 2 * d * p  # MLP in and out, unembedding (at '=' only)
    if model in ("standard", "full"):
        learned += 3 * 2 * d * 2 * d  # K and V at all three positions
        learned += 2 * 2 * d * d  # Q at '=', W_O
    fixed = 2 * 3 * d * d if model == "fnet" else 0
    if model == "full":
        fixed = 4 * 2 * d * 2 * (d // heads // 2 + 1)  # the rDFT of Q (1 position), K (3)
    return 3 * learned + 2 * fixed


def matmul_bound(n: int, d: int = 128, d_mlp: int = 512, threads: int = 1) -> dict:
    """Best fp32 FLOP/s of [n, d] @ [d, d_mlp] and its two backward products on this device,
    per wall-second (``flops_per_s``) and per CPU-second of this process (``flops_per_cpu_s``,
    the unit of the training figures: with T threads a CPU-second is about 1/T wall-second)."""
    import torch

    with_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x, w, g = torch.randn(n, d), torch.randn(d, d_mlp), torch.randn(n, d_mlp)
        shapes = {"x @ W": (x, w), "x.T @ g": (x.t(), g), "g @ W.T": (g, w.t())}
        best, best_cpu = {}, {}
        for name, (a, b) in shapes.items():
            for _ in range(3):
                a @ b
            walls, cpus = [], []
            for _ in range(7):
                t, c = time.perf_counter(), time.process_time()
                for _ in range(10):
                    a @ b
                walls.append((time.perf_counter() - t) / 10)
                cpus.append((time.process_time() - c) / 10)
            best[name] = 2 * n * d * d_mlp / min(walls)
            best_cpu[name] = 2 * n * d * d_mlp / max(min(cpus), 1e-9)
    finally:
        torch.set_num_threads(with_threads)
    return {
        "flops_per_s": max(best.values()),
        "flops_per_cpu_s": max(best_cpu.values()),
        "by_shape": best,
    }


def percent_of_bound(epochs_per_cpu_s: float, flops_per_epoch: float, bound: dict) -> float:
    """The share of the matmul bound a model reaches, both per CPU-second: its FLOPs per
    CPU-second over the bound's FLOPs per CPU-second, in %."""
    return 100 * epochs_per_cpu_s * flops_per_epoch / bound["flops_per_cpu_s"]


def ratio_rows(rows: dict, key: str = "epochs_per_cpu_s") -> tuple[float, float, float]:
    """(kit median, reference median, kit / reference) of ``key`` over the paired rounds."""
    kit, ref = paired.median(rows["kit"], key), paired.median(rows["reference"], key)
    return kit, ref, kit / ref


def _fmt(rows, key):
    return f"{paired.median(rows, key):8.2f}"


def seeds_together(p, model, epochs, n_seeds, threads, device) -> str:
    from akira_nb.modular_arithmetic.ensemble import train_seeds
    from akira_nb.modular_arithmetic.train import TrainConfig, train

    cfg = TrainConfig(
        p=p,
        mixer=model,
        n_epochs=epochs,
        eval_every=epochs,
        checkpoint_every=0,
        progress_every=0,
        device=device,
        cpu_threads=threads,
    )
    one_by_one = sum(
        train(TrainConfig(**{**cfg.__dict__, "seed": s}), progress=False).train_seconds
        for s in range(n_seeds)
    )
    together = train_seeds(cfg, range(n_seeds))["train_seconds"]
    seq, vec = n_seeds * epochs / one_by_one, n_seeds * epochs / together
    return f"{p:>4} {model:<13} {seq:>14.1f} {vec:>14.1f} {vec / seq:>8.2f}x"


def main(argv=None) -> int:
    from akira_nb.runtime import ArgumentParser  # one-line errors

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-dir", default=None, help="checkout of unixsysdev/wave-llm-")
    parser.add_argument("--primes", type=int, nargs="+", default=[53, 113])
    parser.add_argument("--epochs", type=int, default=200, help="training epochs per run")
    parser.add_argument("--mixers", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per case (median)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of every run")
    parser.add_argument("--device", default="cpu", help="the kit's device (the reference: cpu)")
    parser.add_argument("--seeds", type=int, default=0, help="N >= 2: also time N seeds vmapped")
    parser.add_argument("--worker", default=None, choices=list(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kit_worker(args.worker, args.primes[0], args.epochs, args.threads, args.device)
        return 0
    try:
        ref = paired.reference_dir(args.reference_dir, REFERENCE_SCRIPT)
    except ValueError as exc:
        print(exc)
        return 2
    import torch

    print(
        f"torch {torch.__version__}, {args.threads} thread(s), kit on {args.device}, "
        f"{args.epochs} epochs per run, {args.rounds} round(s), medians"
        + (f", reference {ref}" if ref else ", no reference (--reference-dir not given)")
    )
    ratios = []
    for p in args.primes:
        n_train = int(p * p * 0.3)
        bound = matmul_bound(n_train, threads=args.threads)
        print(
            f"\n== p = {p} ({n_train} training pairs): fp32 matmul bound "
            f"{bound['flops_per_cpu_s'] / 1e9:.1f} GFLOP per CPU-s, "
            f"{bound['flops_per_s'] / 1e9:.1f} GFLOP/s wall (best of "
            + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in bound["by_shape"].items())
            + f" for [{n_train}, 128] x [128, 512]) =="
        )
        head = (
            f"{'model':<13} {'who':<9} {'ep/cpu-s':>8} {'ep/wall-s':>9} "
            f"{'proc ep/cpu-s':>13} {'proc ep/wall-s':>14} {'GFLOP/ep':>8} {'% bound':>7}"
        )
        print(head + "\n" + "-" * len(head))
        for model in args.mixers:
            cases = {"kit": kit_case(model, p, args.epochs, args.threads, args.device)}
            if ref is not None:
                cases["reference"] = reference_case(ref, model, p, args.epochs, args.threads)
            rows = paired.interleave(cases, args.rounds)
            flops = train_flops(p, model) * n_train
            for who, got in rows.items():
                eps = paired.median(got, "epochs_per_cpu_s")
                pct = f"{percent_of_bound(eps, flops, bound):6.1f}%" if who == "kit" else ""
                print(
                    f"{model:<13} {who:<9} {_fmt(got, 'epochs_per_cpu_s')} "
                    f"{_fmt(got, 'epochs_per_wall_s'):>9} "
                    f"{_fmt(got, 'process_epochs_per_cpu_s'):>13} "
                    f"{_fmt(got, 'process_epochs_per_wall_s'):>14} "
                    f"{flops / 1e9 if who == 'kit' else float('nan'):>8.2f} {pct:>7}",
                    flush=True,
                )
            if ref is not None:
                kit, refv, cpu = ratio_rows(rows)
                ratios.append(paired.ratio_line(f"p{p} {model}", kit, refv, "epochs/s"))
                wall = ratio_rows(rows, "epochs_per_wall_s")[2]
                proc = ratio_rows(rows, "process_epochs_per_cpu_s")[2]
                ev = paired.median(rows["reference"], "eval_cpu_s")
                print(
                    f"{'':<13} kit/reference: training x{cpu:.2f} per CPU-s, x{wall:.2f} per "
                    f"wall-s; whole process x{proc:.2f} per CPU-s; the reference's epoch-0 "
                    f"evaluation ({ev:.3f} CPU-s, {ev * refv:.2f} epochs' worth) subtracted"
                )
    if args.seeds >= 2:
        print(f"\n== {args.seeds} seeds one after another vs one vmapped ensemble (kit) ==")
        print(f"{'p':>4} {'model':<13} {'seed-ep/s seq':>14} {'seed-ep/s vmap':>14} {'gain':>9}")
        for p in args.primes:
            for model in args.mixers:
                print(seeds_together(p, model, args.epochs, args.seeds, args.threads, args.device))
    if ratios:
        print("\nkit/reference: training epochs per CPU-second, median over rounds")
        print("\n".join(ratios))
        print("\n".join(NOTES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
