"""Training speed of the grokking models: epochs/s (full batch, evaluation excluded) for every
mixer at p = 53 and p = 113, on the CPU and on CUDA when present, and the speed-up of training
several seeds at once (stacked weights + vmap) over training them one after another.

    python benchmarks/grokking_speed.py [--epochs 200] [--primes 53 113] [--seeds 4] [--threads 1]

Figures are ratios measured in this one run; shared machines are noisy. For a mixer-vs-mixer
ratio on a shared machine, run one mixer per process and pair the processes (run them in turn,
A B A B ..., and take the ratio pair by pair), e.g.

    python benchmarks/grokking_speed.py --mixers fnet --primes 53 --epochs 1000 --seeds 0
    python benchmarks/grokking_speed.py --mixers standard --primes 53 --epochs 1000 --seeds 0
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from akira_nb.grokking.ensemble import train_seeds
from akira_nb.grokking.models import MIXERS
from akira_nb.grokking.train import TrainConfig, train


def config(p: int, mixer: str, epochs: int, device: str, threads: int) -> TrainConfig:
    return TrainConfig(
        p=p,
        mixer=mixer,
        n_epochs=epochs,
        eval_every=epochs,
        checkpoint_every=0,
        device=device,
        cpu_threads=threads,
    )


def epochs_per_s(cfg: TrainConfig) -> float:
    train(replace(cfg, n_epochs=5, eval_every=5), progress=False)  # warm-up
    return train(cfg, progress=False).epochs_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--primes", type=int, nargs="+", default=[53, 113])
    parser.add_argument(
        "--seeds", type=int, default=4, help="seeds trained at once (0 skips that comparison)"
    )
    parser.add_argument("--mixers", nargs="+", default=list(MIXERS), choices=list(MIXERS))
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for training, as TrainConfig.cpu_threads (default 1, the kit's "
        "default; 0: torch's default)",
    )
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} CPU threads, devices {devices}")
    for device in devices:
        print(f"\n== {device}: epochs/s, training only ({args.epochs} full-batch epochs) ==")
        print(f"{'p':>4} {'model':<13} {'epochs/s':>9} {'vs standard':>12}")
        for p in args.primes:
            base = None
            for mixer in args.mixers:
                cfg = config(p, mixer, args.epochs, device, args.threads)
                eps = epochs_per_s(cfg)
                base = eps if mixer == "standard" else base
                ratio = f"{eps / base:.2f}x" if base else "-"
                print(f"{p:>4} {mixer:<13} {eps:>9.1f} {ratio:>12}", flush=True)
        if args.seeds < 1:
            continue
        print(f"\n== {device}: {args.seeds} seeds at once vs one after another ==")
        print(
            f"{'p':>4} {'model':<13} {'one seed ep/s':>14} {'seed-epochs/s together':>23} "
            f"{'speed-up':>9}"
        )
        for p in args.primes:
            for mixer in ("standard", "fnet"):
                cfg = config(p, mixer, args.epochs, device, args.threads)
                single = epochs_per_s(cfg)
                train_seeds(cfg, range(args.seeds), n_epochs=5)  # warm-up
                together = train_seeds(cfg, range(args.seeds))["epochs_per_s"] * args.seeds
                print(
                    f"{p:>4} {mixer:<13} {single:>14.1f} {together:>23.1f} "
                    f"{together / single:>8.2f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
