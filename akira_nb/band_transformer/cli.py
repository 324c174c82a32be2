"""``python -m akira_nb bandformer``: experiment 026's flags (:func:`add_arguments`, torch-free)
and :func:`main`, one call into :func:`akira_nb.band_transformer.experiment.run_experiment`
(``--selftest``: the model test). The flags build the study the one way
(:func:`akira_nb.band_transformer.presets.study`); :data:`DESCRIPTION` is the ``--help`` text.
"""

from __future__ import annotations

import argparse

from akira_nb import runtime
from akira_nb.bandformer.config import ARMS, DATASETS, LR_MODES

DESCRIPTION = """\
Experiment 026, the band transformer: 7 bands with their own learning rates and a cross-band
wormhole against a parameter-matched GPT and a GPT of its width, every arm at its own tuned LR
at one or more token budgets.

Without --size, and with AKIRA_SIZE unset, it runs the reference notebook's protocol (inventory
2.6): wikitext-103 with the GPT-2 tokenizer, 5,000 steps x 16 x 256 tokens per arm, evaluation
every 500 steps on 50 batches, every arm at two seeds. --size tiny|t4|a100 (or AKIRA_SIZE) picks
a preset instead; every flag overrides either. The first line printed says which settings the
preset filled in. Every arm is compared at its own tuned LR (a sweep of a multiplier on its
preset LRs, --lr_multipliers, extended beyond an edge while the best sits there) at each of
--budgets (tiny: 200 and 500 steps). Arms: baseline (the parameter-matched GPT, one LR),
baseline_wide (the GPT as wide as the band model), band (differential LRs + wormhole),
band_uniform (every group at the shared LR), band_geomean (at the geometric mean of the band
LRs), band_no_wormhole, reference (the reference's layout: shared attention + band MLPs).
--model / --lr-mode / --no-wormhole pick one arm the reference's way; --arms picks several.
Then the seed's four predictions (Action Quanta % per band, low-frequency bands, universality,
per-band maturation) on two seeds of the band model and of the baseline, each beside its chance
level and a verdict rule, and the reference's reported losses beside the measured ones.

--offline replaces every download with a local stand-in of the same shape (akira_nb.standins:
wikitext / TinyStories -> the kit's offline corpus through gpt2-standin, vocabulary 50257), so
the t4 / a100 shapes run anywhere; it says so on its first line and every verdict reads not
comparable. On a CPU, shrink the counts, never the widths: e.g. ``--size t4 --offline
--total_steps 2 --eval_batches 1 --ablation_batches 1``.

Example: ``python -m akira_nb bandformer --size t4 --arms baseline band --total_steps 3000``;
``python -m akira_nb bandformer --selftest`` prints the model test and exits.
"""

MODELS = ("band", "baseline", "reference")

# (model, lr_mode) -> arm; the wormhole switch is applied on top (see arm_for)
_ARM_OF = {
    ("band", "differential"): "band",
    ("band", "uniform"): "band_uniform",
    ("band", "geomean"): "band_geomean",
    ("reference", "differential"): "reference",
    ("baseline", "uniform"): "baseline",
    ("baseline", "differential"): "baseline_differential",  # the band LRs over hidden slices
}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.replace(",", " ").split()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for add in (_plan_arguments, _model_arguments, _training_arguments, _run_arguments):
        add(parser.add_argument)


def _plan_arguments(a) -> None:
    """The size, the arms, the budgets and the LR sweep (and --selftest)."""
    a(
        "--selftest",
        action="store_true",
        help="print the model test (the seed's `python akira_band_transformer.py`) and exit",
    )
    a(
        "--size",
        default=None,
        choices=list(runtime.SIZES),
        help="size preset (default: AKIRA_SIZE when set, else the reference notebook's protocol)",
    )
    a(
        "--arms",
        nargs="+",
        default=None,
        choices=ARMS,
        help="arms to train (default: baseline band band_uniform band_no_wormhole reference "
        "baseline_wide)",
    )
    a(
        "--budgets",
        type=int,
        nargs="+",
        default=None,
        help="optimiser steps per arm, one or more, ascending (tiny: 200 500; t4: 2000); "
        "--total_steps N is one budget",
    )
    a(
        "--lr_multipliers",
        "--lr-multipliers",
        type=runtime.parse_floats,
        default=None,
        help="the LR sweep: multipliers of each swept arm's preset LRs (band LRs and shared LR "
        "together), one (no sweep) or >= 3 spanning >= 10x, e.g. '0.316,1,3.16'",
    )
    a(
        "--max_extensions",
        "--max-extensions",
        type=int,
        default=None,
        help="sweep points tried beyond an edge of the grid while the best sits there, per side "
        "(tiny: 1, t4: 0)",
    )
    a(
        "--sweep_arms",
        "--sweep-arms",
        nargs="*",
        default=None,
        choices=ARMS,
        help="arms whose LR is swept (the others train at the preset's LRs); tiny: baseline band "
        "baseline_wide; t4: baseline band",
    )
    a(
        "--long_arms",
        "--long-arms",
        nargs="*",
        default=None,
        choices=ARMS,
        help="arms trained at the budgets after the first (tiny: baseline band)",
    )


def _model_arguments(a) -> None:
    """One arm the reference's way (--model, --lr-mode, the wormhole) and the model's shape."""
    a(
        "--model",
        default=None,
        choices=MODELS,
        help="train one model the reference's way: band, baseline (matched GPT) or reference "
        "(shared attention + band MLPs); with --lr-mode and --use_wormhole/--no-wormhole it "
        "names one arm",
    )
    a(
        "--lr-mode",
        "--lr_mode",
        dest="lr_mode",
        default=None,
        choices=LR_MODES,
        help="with --model: differential (each band its LR; default), geomean (every group at "
        "the geometric mean of the band LRs) or uniform (every group at the shared LR)",
    )
    a(
        "--use_wormhole",
        "--use-wormhole",
        dest="use_wormhole",
        action="store_true",
        default=None,
        help="with --model: switch the cross-band wormhole on (the band model's default; the "
        "reference layout's reported runs had none)",
    )
    a(
        "--no-wormhole",
        "--no_wormhole",
        dest="use_wormhole",
        action="store_false",
        help="with --model band: the band_no_wormhole arm; with --model reference: no wormhole",
    )
    a("--num_layers", "--num-layers", type=int, default=None, help="blocks (reference: 6)")
    a(
        "--num_heads",
        "--num-heads",
        type=int,
        default=None,
        help="heads of the shared full-width attention (reference layout) and of the matched "
        "baseline (8); the band layout's heads are band_dim // d_head per band",
    )
    a(
        "--band_dims",
        "--band-dims",
        type=_ints,
        default=None,
        help="band widths, e.g. '128,96,80,64,64,48,32' (sum = hidden size)",
    )
    a(
        "--band_lrs",
        "--band-lrs",
        type=runtime.parse_floats,
        default=None,
        help="one learning rate per band, e.g. '1e-5,3e-5,1e-4,3e-4,1e-3,3e-3,1e-2'",
    )
    a("--shared_lr", "--shared-lr", type=float, default=None, help="LR of shared parameters")


def _training_arguments(a) -> None:
    """The training and evaluation settings, the seeds, the analyses' sizes."""
    a("--batch_size", "--batch-size", type=int, default=None, help="sequences per step (16)")
    a("--total_steps", "--total-steps", type=int, default=None, help="optimiser steps per arm")
    a("--warmup_steps", "--warmup-steps", type=int, default=None, help="linear warm-up steps")
    a("--seq_len", "--seq-len", type=int, default=None, help="tokens per sequence (256)")
    a(
        "--dataset",
        default=None,
        choices=DATASETS,
        help="offline (no download, byte tokenizer), wikitext-2, wikitext-103 or tinystories "
        "(Hugging Face, GPT-2 tokenizer)",
    )
    a(
        "--eval_every",
        "--eval-every",
        type=int,
        default=None,
        help="evaluate on the fixed validation batches every N steps (500)",
    )
    a(
        "--eval_batches",
        "--eval-batches",
        type=int,
        default=None,
        help="validation batches per evaluation (50)",
    )
    a(
        "--final_eval_predictions",
        "--final-eval-predictions",
        type=int,
        default=None,
        help="predictions of the validation split behind each final validation loss, at least "
        "(the whole split when it holds fewer; 0: the eval_batches set); tiny, t4: 50000",
    )
    a("--seed", type=int, default=None, help="a single training seed (same as --seeds N)")
    a("--seeds", type=int, nargs="+", default=None, help="training seeds of every arm")
    a(
        "--aq_seeds",
        "--aq-seeds",
        type=int,
        nargs="*",
        default=None,
        help="the two seeds of the band model and of the baseline compared by the Action Quanta "
        "analysis (trained too when not in --seeds); none: skip the predictions' AQ part",
    )
    a(
        "--ablation_batches",
        "--ablation-batches",
        type=int,
        default=None,
        help="validation batches of each band ablation (t4: 10)",
    )
    a(
        "--stats_sequences",
        "--stats-sequences",
        type=int,
        default=None,
        help="validation sequences of the per-band statistics (t4: 64)",
    )
    a(
        "--aq_samples",
        "--aq-samples",
        type=int,
        default=None,
        help="sequences per input type of the Action Quanta analysis (t4: 500)",
    )


def _run_arguments(a) -> None:
    """Downloads, device, threads, W&B, the run folder."""
    a(
        "--offline",
        action="store_true",
        help="local stand-ins of the same shape for every download (akira_nb.standins): "
        "wikitext / TinyStories -> the offline corpus tokenized by gpt2-standin (vocabulary "
        "50257, so the model has the real shapes); the banner is the first line printed and "
        "every verdict reads not comparable",
    )
    a("--device", default=None, help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    a(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for training (default 1, fastest for tiny models on shared cores; "
        "0: torch's default, left as it is; see runtime.cpu_threads)",
    )
    a(
        "--wandb",
        action="store_true",
        help="log to Weights & Biases (needs wandb and a login: `wandb login` or WANDB_API_KEY; "
        "checked before the run starts)",
    )
    a(
        "--wandb_project",
        "--wandb-project",
        default="akira_exp026",
        help="wandb project (the reference's akira_exp026)",
    )
    runtime.add_run_flags(a, "comparison-<size>")


# flags that set the TrainConfig field of the same name
_FLAG_FIELDS = (
    "batch_size",
    "total_steps",
    "warmup_steps",
    "seq_len",
    "dataset",
    "eval_every",
    "eval_batches",
    "final_eval_predictions",
    "device",
)
# flags that set a model field (BandConfig), flag -> field
_MODEL_FLAGS = {
    "num_layers": "n_layers",
    "num_heads": "n_heads",
    "band_dims": "band_dims",
    "band_lrs": "band_lrs",
    "shared_lr": "shared_lr",
}


def arm_for(model: str, lr_mode: str | None, wormhole: bool | None) -> tuple[str, dict]:
    """``(arm, model overrides)`` for the reference-style ``--model --lr-mode --use_wormhole /
    --no-wormhole``: band + differential is ``band`` (``band_no_wormhole`` without the
    wormhole), band + uniform / geomean ``band_uniform`` / ``band_geomean``, reference +
    differential ``reference``, baseline ``baseline`` (one LR, no wormhole), baseline +
    differential ``baseline_differential`` (the band LRs over the GPT's hidden slices)."""
    runtime.check_choice("model", model, MODELS)
    if lr_mode is not None:
        runtime.check_choice("lr_mode", lr_mode, LR_MODES)
    if model == "baseline":
        if lr_mode == "geomean":
            raise ValueError(
                "--lr-mode geomean does not apply to --model baseline: its uniform LR is the "
                "shared one; pick uniform (default) or differential (the band LRs over its "
                "hidden slices)"
            )
        if wormhole is not None:
            raise ValueError("--use_wormhole / --no-wormhole do not apply to --model baseline")
        return ("baseline_differential" if lr_mode == "differential" else "baseline"), {}
    mode = lr_mode or "differential"
    arm = _ARM_OF.get((model, mode))
    if arm is None:
        allowed = sorted(f"{m} + {lr}" for m, lr in _ARM_OF)
        raise ValueError(
            f"--model {model} --lr-mode {mode} is not an arm; allowed: {', '.join(allowed)}"
        )
    if arm == "band" and wormhole is False:
        return "band_no_wormhole", {}
    return arm, ({} if wormhole is None else {"wormhole": wormhole})


def config_from_args(args: argparse.Namespace):
    """The :class:`~akira_nb.band_transformer.presets.Study` the flags ask for, built the one way
    (``presets.study``): the size from ``runtime.size_from`` (None: the reference notebook's
    protocol), the flags on top."""
    from akira_nb.band_transformer import presets

    size = runtime.size_from(args.size)
    overrides = {k: getattr(args, k) for k in _FLAG_FIELDS}
    model_over = {f: getattr(args, flag) for flag, f in _MODEL_FLAGS.items()}
    model_over = {k: (tuple(v) if isinstance(v, list) else v) for k, v in model_over.items()}
    arms = args.arms
    if args.model is not None:
        if arms is not None:
            raise ValueError(
                f"--model {args.model} and --arms {' '.join(arms)} given together; --model "
                "picks one arm, --arms several: pass one of them"
            )
        arm, extra = arm_for(args.model, args.lr_mode, args.use_wormhole)
        arms = [arm]
        model_over.update(extra)
    elif args.lr_mode is not None or args.use_wormhole is not None:
        raise ValueError(
            "--lr-mode and --use_wormhole / --no-wormhole choose the arm of one --model; pass "
            "--model band|baseline|reference (or --arms band_uniform, band_no_wormhole, ...)"
        )
    overrides["arms"] = arms
    if args.budgets is not None and args.total_steps is not None:
        raise ValueError(
            f"--budgets {' '.join(map(str, args.budgets))} and --total_steps "
            f"{args.total_steps} given together; pass one of them (--total_steps N is one budget)"
        )
    for key in ("budgets", "lr_multipliers", "max_extensions", "sweep_arms", "long_arms"):
        overrides[key] = getattr(args, key)
    overrides["model_overrides"] = {k: v for k, v in model_over.items() if v is not None} or None
    overrides["cpu_threads"] = args.threads
    if args.seed is not None and args.seeds is not None:
        raise ValueError(
            f"--seed {args.seed} and --seeds {args.seeds} given together; pass one of them "
            "(--seed N is the same as --seeds N)"
        )
    overrides["seeds"] = [args.seed] if args.seed is not None else args.seeds
    overrides["aq_seeds"] = args.aq_seeds
    overrides["progress"] = not args.quiet
    overrides["offline"] = args.offline or None
    overrides["ablation_batches"] = args.ablation_batches
    overrides["stats_sequences"] = args.stats_sequences
    if args.aq_samples is not None:
        overrides["aq"] = {"num_samples": args.aq_samples}
    return presets.study(size, **overrides)


def check_wandb(enabled: bool):
    """The ``wandb`` module when ``enabled`` (None otherwise); a ``ValueError`` saying how to
    install it when it is asked for and missing, or how to log in when no login is configured
    (checked before the run folder exists: without one ``wandb.init`` would stop the run at its
    first arm, with a traceback)."""
    if not enabled:
        return None
    try:
        import wandb
    except ImportError as exc:
        raise ValueError(
            "--wandb needs the wandb package, which is not installed here: pip install wandb "
            "(or drop --wandb)"
        ) from exc
    if not wandb_logged_in(wandb):
        raise ValueError(
            "--wandb needs a Weights & Biases login and none is configured here: run `wandb "
            "login` (or set WANDB_API_KEY, or WANDB_MODE=offline to log locally), or drop --wandb"
        )
    return wandb


def wandb_logged_in(wandb) -> bool:
    """Whether ``wandb`` can start a run without asking for a key, checked without a prompt
    and without the network: WANDB_MODE offline / disabled needs no login; otherwise a key in
    WANDB_API_KEY, wandb's settings or the netrc file (``wandb.login(prompt=False,
    verify=False)``; older wandb without ``prompt``: ``wandb.sdk.lib.apikey.api_key()``).
    True when this wandb offers neither (it will say so itself)."""
    import inspect
    import os

    if os.environ.get("WANDB_MODE", "").strip().lower() in {"offline", "dryrun", "disabled"}:
        return True
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    if "prompt" in inspect.signature(wandb.login).parameters:
        return bool(wandb.login(prompt=False, verify=False))
    try:
        from wandb.sdk.lib import apikey
    except ImportError:
        return True
    return apikey.api_key() is not None


def main(args: argparse.Namespace) -> dict | None:
    """Run the comparison (or, with ``--selftest``, print the model test and return None);
    returns what :func:`experiment.kit_summary` reads."""
    if args.selftest:
        from akira_nb.bandformer.selftest import selftest

        print(selftest(), flush=True)
        return None
    plan = config_from_args(args)  # every setting checked before anything is written
    wandb = check_wandb(args.wandb)
    from akira_nb.band_transformer import experiment

    record = experiment.standins_record(plan)  # offline: the banner is the first line
    print(plan.describe(), flush=True)

    import matplotlib

    if not runtime.in_ipython():
        matplotlib.use("Agg")

    tracker = experiment.WandbLogger(wandb, args.wandb_project) if wandb is not None else None
    out = experiment.run_experiment(
        plan,
        name=args.name or f"comparison-{plan.size or 'reference'}",
        resume=args.resume,
        root=args.output_dir,
        tracker=tracker,
        log=None,  # train prints one line per arm as it ends; the summary follows
        banner=record is None,  # printed above
    )
    for line in out["lines"]:
        print(line)
    print(f"results and figures: {out['run'].path}")
    return out
