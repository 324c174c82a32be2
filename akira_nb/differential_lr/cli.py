"""Experiment 013, differential learning rates: the band transformer with its band LRs against
one uniform LR (starting at their geometric mean: the same total learning budget) and the same
LR hierarchy over a standard GPT's hidden slices (no bands); every arm at its own tuned LR (a
sweep of multipliers of its prescribed LRs, the best point not at an edge) at every budget,
the same seeds and data order. H1-H4 compare the tuned arms at the longest budget, and only
arms that beat the unigram loss. Prints the tuned LRs, the sweeps, the seed's results template
and H1-H4 with their rules, and RECOMMENDED / NOT RECOMMENDED.

--offline replaces the wikitext-103 download with a local stand-in of the same shape (the kit's
offline corpus through gpt2-standin, vocabulary 50257; akira_nb.standins); it says so on its
first line and every verdict reads not comparable. On a CPU, shrink the counts, never the
widths: e.g. ``--size t4 --offline --total_steps 3 --eval-batches 1 --seeds 0 --sweep 3``.

Example: ``python -m akira_nb differential_lr --size tiny --lr-preset 013 --seeds 0 1 2``.
"""

from __future__ import annotations

import argparse

from akira_nb import runtime
from akira_nb.bandformer import config as band_config
from akira_nb.differential_lr.presets import ARMS, DEFAULT_ARMS

# The LR sets' names from the band library's torch-free table (--help imports no torch).
LR_PRESETS = (*band_config.LR_PRESETS, band_config.CUSTOM)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _study_arguments(parser.add_argument)
    _schedule_arguments(parser.add_argument)
    _run_arguments(parser.add_argument)


def _study_arguments(a) -> None:
    """The flags of the study: size, LR set, arms, seeds."""
    a(
        "--size",
        default=None,
        choices=list(runtime.SIZES),
        help="size preset (default: AKIRA_SIZE when set, else a100: the seed's full protocol, "
        "5 seeds)",
    )
    a(
        "--lr-preset",
        "--lr_preset",
        dest="lr_preset",
        default=None,
        help=f"LR set: {', '.join(LR_PRESETS)} (default 013: band 0 1e-5 .. band 6 3e-2, band 7 "
        "1e-3); custom takes --band-lrs",
    )
    a(
        "--band-lrs",
        "--band_lrs",
        dest="band_lrs",
        type=runtime.parse_floats,
        default=None,
        help="with --lr-preset custom: one LR per band (7 or 8), e.g. '1e-5,1e-4,...'",
    )
    a(
        "--shared-lr",
        "--shared_lr",
        dest="shared_lr",
        type=float,
        default=None,
        help="with --lr-preset custom: the shared parameters' LR (default: the geometric mean)",
    )
    a(
        "--arms",
        nargs="+",
        default=None,
        help=f"arms to train, of {' '.join(ARMS)} (default: {' '.join(DEFAULT_ARMS)}; "
        "band_uniform is band_geomean once its LR is tuned)",
    )
    a("--seeds", nargs="+", default=None, help="training seeds (default: 0 1 2; a100: 0..4)")


def _schedule_arguments(a) -> None:
    """The flags of the schedule: sweep seeds and multipliers, budgets, target."""
    a(
        "--sweep-seeds",
        "--sweep_seeds",
        dest="sweep_seeds",
        nargs="+",
        default=None,
        help="seeds of every LR sweep, among --seeds (default: the first seed; a100: two)",
    )
    a(
        "--sweep",
        type=runtime.parse_floats,
        default=None,
        help="LR multipliers of each arm's prescribed LRs, at least 3 spanning 10x, e.g. "
        "'0.316,1,3.16' (the default); '' for none (every arm at its prescribed LRs)",
    )
    a(
        "--budgets",
        nargs="+",
        default=None,
        help="total steps of each budget, e.g. 40 200 (tiny's); the longest is where H1-H4 "
        "are judged",
    )
    a(
        "--total_steps",
        "--total-steps",
        dest="total_steps",
        type=int,
        default=None,
        help="optimiser steps per arm: one budget (see --budgets)",
    )
    a(
        "--target-loss",
        "--target_loss",
        dest="target_loss",
        type=float,
        default=None,
        help="validation loss for steps-to-target (default: the tuned uniform control's mean "
        "final val loss x 1.02 at the longest budget)",
    )


def _run_arguments(a) -> None:
    """The flags of the run: evaluation batches, stand-ins, device, threads, run folder, resume."""
    a(
        "--eval-batches",
        "--eval_batches",
        dest="eval_batches",
        type=int,
        default=None,
        help="validation (and test) batches of each evaluation (t4: 20)",
    )
    a(
        "--final-eval-predictions",
        "--final_eval_predictions",
        dest="final_eval_predictions",
        type=int,
        default=None,
        help="held-out predictions behind each reported final loss, at least (the whole split "
        "when it holds fewer; 0: the eval-batches set); every size: 50000",
    )
    a(
        "--offline",
        action="store_true",
        help="local stand-ins of the same shape for every download (akira_nb.standins): "
        "wikitext-103 -> the offline corpus tokenized by gpt2-standin (vocabulary 50257, so the "
        "model has the real shapes); the banner is the first line printed and every verdict "
        "reads not comparable",
    )
    a("--device", default=None, help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    a("--threads", type=int, default=None, help="CPU threads for training (default 1)")
    runtime.add_run_flags(a, "study-<size>-<lr preset>")


def _seeds(values, flag="--seeds", what="seed"):
    if values is None:
        return None
    out = []
    for v in values:
        try:
            out.append(int(v))
        except ValueError:
            raise ValueError(f"{flag} {' '.join(values)}: {v!r} is not an integer {what}") from None
    return out


def config_from_args(args: argparse.Namespace):
    """The :class:`~akira_nb.differential_lr.presets.Study` the flags ask for (every flag
    checked before anything is written)."""
    size = runtime.size_from(args.size) or "a100"  # no size: the seed's full-scale protocol
    if args.lr_preset is not None:
        runtime.check_choice("lr_preset", args.lr_preset, LR_PRESETS)
    for arm in args.arms or ():
        runtime.check_choice("arms", arm, ARMS)
    from akira_nb.differential_lr import presets

    return presets.study(
        size,
        lr_preset=args.lr_preset,
        band_lrs=tuple(args.band_lrs) if args.band_lrs is not None else None,
        shared_lr=args.shared_lr,
        arms=args.arms,
        seeds=_seeds(args.seeds),
        sweep_seeds=_seeds(args.sweep_seeds, "--sweep-seeds"),
        sweep=args.sweep,
        budgets=_seeds(args.budgets, "--budgets", "step count"),
        total_steps=args.total_steps,
        target_loss=args.target_loss,
        eval_batches=args.eval_batches,
        final_eval_predictions=args.final_eval_predictions,
        offline=args.offline or None,
        device=args.device,
        cpu_threads=args.threads,
        progress=not args.quiet,
    )


def main(args: argparse.Namespace) -> dict:
    """Run the study; returns what :func:`.claims.kit_summary` reads."""
    plan = config_from_args(args)
    from akira_nb.differential_lr import experiment

    record = experiment.standins_record(plan)  # offline: the banner is the first line
    print(plan.describe(), flush=True)
    import matplotlib

    if not runtime.in_ipython():  # headless CLI; inside a notebook kernel leave its backend alone
        matplotlib.use("Agg")

    out = experiment.run_experiment(
        plan,
        name=args.name or f"study-{plan.size}-{plan.lr_preset}",
        resume=args.resume,
        root=args.output_dir,
        log=None,
        banner=record is None,  # printed above
    )
    for line in out["lines"]:
        print(line)
    print(out["tables"]["template"])
    print(
        f"this study: {out['cpu_seconds']:.0f} CPU-s (process time, every thread), "
        f"{out['wall_seconds']:.0f} s wall, {len(out['records'])} trainings"
    )
    print(f"results and figures: {out['run'].path}")
    return out
