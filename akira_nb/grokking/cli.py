"""Grokking: standard attention vs wave (FFT) token mixing on a + b mod p.

``python -m akira_nb grokking --size tiny`` runs the size preset; every flag overrides it, e.g.
``python -m akira_nb grokking --p 53 --n_epochs 30000 --wave_modes fnet full --seeds 0 1 2``.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from akira_nb import runtime
from akira_nb.grokking.data import check_p
from akira_nb.grokking.experiment import preset, run_experiment
from akira_nb.grokking.models import MIXERS
from akira_nb.grokking.train import TrainConfig

WAVE_MODES = [m for m in MIXERS if m != "standard"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a(
        "--size",
        default=None,
        choices=list(runtime.SIZES),
        help="preset (default: AKIRA_SIZE, else tiny); flags below override it",
    )
    a("--p", type=int, nargs="+", default=None, help="prime(s) >= 3")
    a("--n_epochs", "--n-epochs", type=int, default=None)
    a(
        "--wave_modes",
        "--wave-modes",
        nargs="*",
        default=None,
        choices=WAVE_MODES,
        help="wave modes to compare with standard attention",
    )
    a("--no_standard", "--no-standard", action="store_true", help="skip the standard model")
    a("--train_frac", "--train-frac", type=float, default=None)
    a("--lr", type=float, default=None)
    a("--weight_decay", "--weight-decay", type=float, default=None)
    a("--beta2", type=float, default=None)
    a("--warmup_epochs", "--warmup-epochs", type=int, default=None)
    a("--float32_loss", "--float32-loss", action="store_true", help="loss in float32, not 64")
    a("--grokfast_lamb", "--grokfast-lamb", type=float, default=None, help="0 disables")
    a("--grokfast_alpha", "--grokfast-alpha", type=float, default=None)
    a("--d_model", "--d-model", type=int, default=None)
    a("--n_heads", "--n-heads", type=int, default=None)
    a("--d_mlp", "--d-mlp", type=int, default=None)
    a("--seed", type=int, default=None, help="a single seed (same as --seeds N)")
    a("--seeds", type=int, nargs="+", default=None)
    a("--eval_every", "--eval-every", type=int, default=None)
    a("--grok_threshold", "--grok-threshold", type=float, default=None)
    a("--checkpoint_every", "--checkpoint-every", type=int, default=None)
    a(
        "--snapshot_every",
        "--snapshot-every",
        type=int,
        default=None,
        help="save six-panel frames every N epochs (0: off)",
    )
    a("--device", default="auto")
    a("--name", default=None, help="run name (default: comparison-<size>)")
    a(
        "--output_dir",
        "--output-dir",
        default=None,
        help="runs root (default: AKIRA_RUNS_DIR or runs/)",
    )
    a("--resume", action="store_true", help="continue the newest run with this name")
    a("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, dict]:
    size = args.size or runtime.get_size(default="tiny")
    pre = preset(size)
    names = {f.name for f in fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
    overrides.pop("seed", None)  # seeds and primes are lists handled below
    overrides.pop("p", None)
    if args.float32_loss:
        overrides["float64_loss"] = False
    primes = args.p if args.p else pre["primes"]
    base = TrainConfig(p=primes[0], **{**{k: v for k, v in pre.items() if k in names}, **overrides})
    mixers = [] if args.no_standard else ["standard"]
    mixers += args.wave_modes if args.wave_modes is not None else WAVE_MODES
    seeds = [args.seed] if args.seed is not None else (args.seeds or pre["seeds"])
    plan = {
        "size": size,
        "primes": primes,
        "mixers": mixers,
        "seeds": seeds,
        "name": args.name or f"comparison-{size}",
    }
    for p in primes:
        check_p(p)
    base.validate()
    return base, plan


def main(args: argparse.Namespace) -> dict:
    base, plan = config_from_args(args)
    if not plan["mixers"]:
        raise ValueError("wave_modes=[] with --no_standard leaves no model to train")
    out = run_experiment(
        base,
        plan["primes"],
        plan["mixers"],
        plan["seeds"],
        name=plan["name"],
        resume=args.resume,
        root=args.output_dir,
        progress=not args.quiet,
    )
    print(out["table"])
    print("\n".join(out["verdicts"]))
    print(f"results and figures: {out['run'].path}")
    return out
