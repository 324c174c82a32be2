"""Grokking: standard attention vs wave (FFT) token mixing on a + b mod p.

Without --size, and with AKIRA_SIZE unset, it runs the seed document's own protocol: p = 53, all
five models, 30,000 full-batch epochs, train_frac 0.3, lr 1e-3, weight decay 1, one seed.
--size tiny|t4|a100 (or AKIRA_SIZE) picks a preset instead. Every flag below overrides either,
e.g. ``python -m akira_nb grokking --p 53 --n_epochs 30000 --wave_modes fnet full --seeds 0 1 2``.
The first line printed says which settings the preset filled in.
"""

from __future__ import annotations

import argparse

from akira_nb import runtime
from akira_nb.grokking import presets
from akira_nb.grokking.presets import WAVE_MODES
from akira_nb.modular_arithmetic.config import MIXERS  # noqa: F401  (the one table; torch-free)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _add_study_flags(parser.add_argument)
    _add_training_flags(parser.add_argument)
    _add_run_flags(parser.add_argument)


def _add_study_flags(a) -> None:
    """The size, the arms (primes, models) and the training length and split."""
    a(
        "--size",
        default=None,
        choices=list(runtime.SIZES),
        help="size preset (default: AKIRA_SIZE when set, else the seed's own protocol)",
    )
    a("--p", type=int, nargs="+", default=None, help="prime(s) >= 3 to train on (seed: 53)")
    a("--n_epochs", "--n-epochs", type=int, default=None, help="full-batch epochs per model")
    a(
        "--wave_modes",
        "--wave-modes",
        nargs="*",
        default=None,
        choices=WAVE_MODES,
        help="wave modes to compare with standard attention (default: all four)",
    )
    a("--no_standard", "--no-standard", action="store_true", help="skip standard attention")
    a(
        "--train_frac",
        "--train-frac",
        type=float,
        default=None,
        help="fraction of the p^2 pairs used for training (seed: 0.3)",
    )


def _add_training_flags(a) -> None:
    """The optimiser, the loss, Grokfast and the model's widths."""
    a("--lr", type=float, default=None, help="AdamW learning rate (seed: 1e-3)")
    a("--weight_decay", "--weight-decay", type=float, default=None, help="AdamW weight decay (1)")
    a("--beta1", type=float, default=None, help="AdamW beta1 (0.9)")
    a("--beta2", type=float, default=None, help="AdamW beta2 (0.98, Nanda et al.)")
    a(
        "--warmup_epochs",
        "--warmup-epochs",
        type=int,
        default=None,
        help="linear learning-rate warm-up epochs (10)",
    )
    a("--float32_loss", "--float32-loss", action="store_true", help="loss in float32, not 64")
    a(
        "--grokfast_lamb",
        "--grokfast-lamb",
        type=float,
        default=None,
        help="Grokfast-EMA amplification lambda (0, the default, switches it off)",
    )
    a(
        "--grokfast_alpha",
        "--grokfast-alpha",
        type=float,
        default=None,
        help="Grokfast-EMA decay alpha (0.98)",
    )
    a("--d_model", "--d-model", type=int, default=None, help="residual width (128)")
    a("--n_heads", "--n-heads", type=int, default=None, help="attention heads (4)")
    a("--d_mlp", "--d-mlp", type=int, default=None, help="MLP width (512)")


def _add_run_flags(a) -> None:
    """Seeds, logging, checkpoints, the device and the run folder."""
    a("--seed", type=int, default=None, help="a single seed (same as --seeds N)")
    a("--seeds", type=int, nargs="+", default=None, help="seeds, one arm each (seed: 0)")
    a(
        "--data_seed",
        "--data-seed",
        type=int,
        default=None,
        help="seed of the train/test split (default: each arm's seed)",
    )
    a(
        "--eval_every",
        "--eval-every",
        type=int,
        default=None,
        help="log losses, accuracies and progress measures every N epochs (100)",
    )
    a(
        "--grok_threshold",
        "--grok-threshold",
        type=float,
        default=None,
        help="test accuracy that counts as grokked, kept to the end (0.95)",
    )
    a(
        "--checkpoint_every",
        "--checkpoint-every",
        type=int,
        default=None,
        help="save a resumable checkpoint every N epochs (0: only the final state)",
    )
    a(
        "--snapshot_every",
        "--snapshot-every",
        type=int,
        default=None,
        help="save six-panel frames every N epochs (0: off)",
    )
    a(
        "--progress_every",
        "--progress-every",
        type=int,
        default=None,
        help="keep a weights-only snapshot every N epochs for restricted/excluded loss with "
        "the final model's key frequencies (0: off)",
    )
    a("--device", default=None, help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    a(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for training (default 1, fastest for these tiny models on shared "
        "cores; 0: torch's default, left as it is; see runtime.cpu_threads)",
    )
    a(
        "--ensemble",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="train the seeds of each model together as one vmapped ensemble, same results "
        "within float tolerance and same files (default off on every device: 1.05x on a "
        "2-core CPU, not yet measured on a GPU)",
    )
    runtime.add_run_flags(a, "comparison-<size>")
    a(
        "--offline",
        action="store_true",
        help="run on local stand-ins for every download, as every sub-command takes it; "
        "grokking downloads nothing, so nothing is replaced and the run is the same",
    )


# grokking downloads nothing: --offline replaces nothing (recorded as such in results.json)
OFFLINE_NOTE = "--offline: grokking downloads nothing, so nothing is replaced; the run is the same"


# flags that set the TrainConfig field of the same name
_FLAG_FIELDS = (
    "n_epochs",
    "train_frac",
    "lr",
    "weight_decay",
    "beta1",
    "beta2",
    "warmup_epochs",
    "grokfast_lamb",
    "grokfast_alpha",
    "d_model",
    "n_heads",
    "d_mlp",
    "data_seed",
    "eval_every",
    "grok_threshold",
    "checkpoint_every",
    "snapshot_every",
    "progress_every",
    "device",
)


def config_from_args(args: argparse.Namespace):
    """The :class:`~akira_nb.grokking.presets.Study` the flags ask for, built the one way
    (``presets.study``): the size from ``runtime.size_from`` (None: the seed's protocol),
    the flags on top."""
    size = runtime.size_from(args.size)
    overrides = {k: getattr(args, k) for k in _FLAG_FIELDS}
    if args.float32_loss:
        overrides["float64_loss"] = False
    overrides["cpu_threads"] = args.threads
    overrides["primes"] = args.p
    if args.seed is not None and args.seeds is not None:
        raise ValueError(
            f"--seed {args.seed} and --seeds {args.seeds} given together; pass one of them "
            "(--seed N is the same as --seeds N)"
        )
    overrides["seeds"] = [args.seed] if args.seed is not None else args.seeds
    if args.wave_modes is not None or args.no_standard:
        waves = list(args.wave_modes) if args.wave_modes is not None else list(WAVE_MODES)
        overrides["mixers"] = ([] if args.no_standard else ["standard"]) + waves
    return presets.study(size, **overrides)


def main(args: argparse.Namespace) -> dict:
    """Run the comparison; returns what :func:`claims.kit_summary` reads (the run, its
    folder, the rows, table, verdicts and the study)."""
    plan = config_from_args(args)  # checked before torch is imported: bad input fails at once
    from akira_nb.grokking import experiment

    print(plan.describe(), flush=True)
    if args.offline:
        print(OFFLINE_NOTE, flush=True)
    out = experiment.run_experiment(
        plan,
        name=args.name or f"comparison-{plan.size or 'seed'}",
        resume=args.resume,
        root=args.output_dir,
        progress=not args.quiet,
        ensemble=args.ensemble,
    )
    out["standins"] = {"offline": args.offline, "replaced": {}}
    results = out["run"].read_results()
    out["run"].write_results({**results, "standins": out["standins"]})
    print("\n".join(experiment.arm_line(r) for r in out["results"]))
    print(out["table"])
    print("\n".join(out["verdicts"]))
    print(experiment.cost_line(out["cost"]))
    print(f"results and figures: {out['run'].path}")
    return out
