"""Experiment 033: spectral band attention for next-frame prediction (train, evaluate, compare).

``python -m akira_nb spatiotemporal [flags]`` takes every flag of the reference's
``synthetic_2d.py`` plus ``--seed --size --batch --eval-start --checkpoint-every --resume
--output_dir --threads --wormhole-threshold --max-connections``. Every run also evaluates the
zero-parameter baselines (copy-last-frame, linear extrapolation) on the same held-out frames;
``--model compare`` adds the MLP. The whole config is checked before a run folder is made.

Size: ``--size``, else ``AKIRA_SIZE``, else the reference's defaults (32x32, 300 steps), built
by ``presets.study`` as the notebook builds its settings. Grid: ``--grid-size``, else an explicit
``--config``'s own grid (turbo/fast/default 32, large 64, xlarge 128), else the size's (tiny 16,
else 32): ``--size tiny --config large`` runs at 64x64.

The reference's comparison: ``python -m akira_nb spatiotemporal --config fast --grid-size 32
--steps 500 --model compare``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# torch, matplotlib and the model modules are imported inside main() / config_from_args(), so
# ``python -m akira_nb --help`` stays quick. Choice lists are literal here; a test checks they
# equal the real ones (patterns.PATTERNS, presets.MODEL_PRESETS).
from akira_nb import runtime

PATTERN_CHOICES = (
    "blob",
    "interference",
    "switching",
    "double_slit",
    "counter_rotate",
    "chirp",
    "phase_jump",
    "noisy_motion",
    "bifurcation",
    "wave_collision",
    "concentric",
    "moving_digits",
)
PRESET_CHOICES = ("turbo", "fast", "default", "large", "xlarge")
MODEL_CHOICES = ("spectral", "mlp", "compare")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    _data_arguments(p)
    _run_arguments(p)


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=None,
        choices=PRESET_CHOICES,
        help="model preset (default: fast); an explicit preset brings its own grid size",
    )
    p.add_argument(
        "--grid-size",
        "--grid_size",
        dest="grid_size",
        type=int,
        default=None,
        help="frame side in pixels (default: the --config preset's grid if --config is given, "
        "else the size's grid: tiny 16, otherwise 32)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default: the size's; the reference's 300 without a size)",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps; checked before the "
        "run folder is made",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads while training and evaluating, >= 0; 0: torch's default "
        "thread count (default: OMP_NUM_THREADS when set, else 1 for grids <= 32, fastest "
        "for these small steps on shared cores, and torch's default above)",
    )


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pattern-train",
        "--pattern_train",
        dest="pattern_train",
        default="blob",
        choices=PATTERN_CHOICES,
        help="pattern to train on (default: blob)",
    )
    p.add_argument(
        "--pattern-eval",
        "--pattern_eval",
        dest="pattern_eval",
        default=None,
        choices=PATTERN_CHOICES,
        help="pattern of the held-out frames (default: the training pattern)",
    )
    p.add_argument(
        "--eval-steps",
        "--eval_steps",
        dest="eval_steps",
        type=int,
        default=None,
        help="held-out frames scored (default: the size's; 101 without a size)",
    )
    p.add_argument(
        "--switch-period",
        "--switch_period",
        dest="switch_period",
        type=int,
        default=101,
        help="steps between the switching pattern's blob and interference blocks (default 101)",
    )
    p.add_argument(
        "--log-stats-csv",
        "--log_stats_csv",
        dest="log_stats_csv",
        default=None,
        help="also write the per-step statistics CSV here (always in the run folder); its "
        "folder must exist",
    )
    p.add_argument(
        "--viz-interval",
        "--viz_interval",
        dest="viz_interval",
        type=int,
        default=0,
        help="save a current / target / prediction / error snapshot every N steps (0: none)",
    )
    p.add_argument(
        "--viz-dir",
        "--viz_dir",
        dest="viz_dir",
        default=None,
        help="snapshot folder, created if its parent folder exists (default: viz/ in the "
        "run folder)",
    )


def _spectral_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--attn-topk-temporal",
        "--attn_topk_temporal",
        dest="attn_topk_temporal",
        type=int,
        default=None,
        help="past frames each pixel's temporal attention keeps (default: the preset's)",
    )
    p.add_argument(
        "--wormhole-threshold",
        "--wormhole_threshold",
        dest="wormhole_threshold",
        type=float,
        default=None,
        help="cosine similarity a wormhole link needs, in [0, 1] (default: the preset's, 0.9 "
        "for fast)",
    )
    p.add_argument(
        "--max-connections",
        "--max_connections",
        dest="max_connections",
        type=int,
        default=None,
        help="wormhole links kept per pixel, >= 1 (default: the preset's, 4 for fast)",
    )


def _run_arguments(p: argparse.ArgumentParser) -> None:
    _spectral_arguments(p)
    p.add_argument(
        "--model",
        default=None,
        choices=MODEL_CHOICES,
        help="model(s) to train; compare = spectral and MLP (default: spectral, as the "
        "reference; compare under a size preset). The baselines are always evaluated",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default 0)")
    p.add_argument(
        "--size",
        default=None,
        choices=list(runtime.SIZES),
        help="size preset for grid/steps/eval/checkpoint defaults (default: AKIRA_SIZE when "
        "set, else the reference's)",
    )
    p.add_argument(
        "--batch", type=int, default=1, help="streams per step; > 1 uses the batched protocol"
    )
    p.add_argument(
        "--eval-start",
        "--eval_start",
        dest="eval_start",
        type=float,
        default=10000.4,
        help="time of the first held-out frame (default 10000.4, off every training time); its "
        "warm-up frames must come after the last training frame",
    )
    p.add_argument(
        "--checkpoint-every",
        "--checkpoint_every",
        dest="checkpoint_every",
        type=int,
        default=None,
        help="checkpoint every N steps, 0: never (default: the size's; 0 without a size)",
    )
    runtime.add_run_flags(p.add_argument, None, "from its checkpoints")
    p.add_argument(
        "--offline",
        action="store_true",
        help="run on local stand-ins for every download, as every sub-command takes it; 033 "
        "downloads nothing, so nothing is replaced and the run is the same",
    )


# 033 downloads nothing: --offline replaces nothing (recorded as such in results.json)
OFFLINE_NOTE = "--offline: 033 downloads nothing, so nothing is replaced; the run is the same"


def _study(args):
    """The :class:`~.presets.Study` the flags ask for, built the one way
    (``presets.study``): the size from ``runtime.size_from``, the flags on top."""
    from akira_nb.spatiotemporal import presets

    overrides = {}
    if args.attn_topk_temporal is not None:
        overrides["top_k_temporal"] = args.attn_topk_temporal
    if getattr(args, "wormhole_threshold", None) is not None:
        overrides["wormhole_threshold"] = args.wormhole_threshold
    if getattr(args, "max_connections", None) is not None:
        overrides["wormhole_max_connections"] = args.max_connections
    return presets.study(
        runtime.size_from(getattr(args, "size", None)),
        preset=args.config,
        overrides=overrides,
        pattern=args.pattern_train,
        pattern_eval=args.pattern_eval,
        grid_size=args.grid_size,  # `is not None` inside: --grid-size 0 must fail validation
        steps=args.steps,
        lr=args.lr,
        protocol="batched" if args.batch > 1 else "online",
        batch=args.batch,
        eval_steps=args.eval_steps,
        eval_start=args.eval_start,
        switch_period=args.switch_period,
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        progress=not args.quiet,
        cpu_threads=getattr(args, "threads", None),
    )


TRAINED = {"spectral": ("spectral",), "mlp": ("mlp",), "compare": ("spectral", "mlp")}


def study_from_args(args):
    """``(Study, models)`` from parsed CLI arguments, all checked (the model config and the
    output paths too), so that a bad flag fails before anything is written."""
    size = runtime.size_from(getattr(args, "size", None))
    if args.model is None:  # a size preset runs the seed's comparison, with the MLP
        args.model = "spectral" if size is None else "compare"
    plan = _study(args)
    runtime.check_int("viz_interval", args.viz_interval, 0)
    check_output_path("log_stats_csv", args.log_stats_csv, folder=False)
    check_output_path("viz_dir", args.viz_dir, folder=True)
    return plan, TRAINED[args.model] + ("copy_last", "linear_extrap")


def config_from_args(args):
    """(TrainConfig, preset, overrides, models) from parsed CLI arguments
    (:func:`study_from_args`)."""
    plan, models = study_from_args(args)
    return plan.train, plan.preset, plan.overrides, models


def check_output_path(name: str, value, folder: bool) -> None:
    """Raise ValueError naming ``name`` unless ``value`` (None: not given) can be written
    without creating any folder but itself: its parent is an existing, writable folder, and the
    path is not already something else (a folder for a file, a file for a folder). Checked
    before anything is written, so a bad path fails before training, not after it."""
    import os

    if value is None:
        return
    path = Path(value)
    parent = path.parent
    what = "a folder" if folder else "a file"
    if not parent.is_dir():
        raise ValueError(
            f"{name}={value!r}: its parent folder {str(parent)!r} does not exist or is not a "
            f"folder; pass {what} inside an existing folder"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name}={value!r}: the folder {str(parent)!r} is not writable")
    if path.exists() and path.is_dir() != folder:
        raise ValueError(f"{name}={value!r} exists and is not {what}; pass {what} path")


def size_line(args) -> str:
    """One line: which size preset (or the reference's defaults) filled the flags not given."""
    size = runtime.size_from(getattr(args, "size", None))
    plan = _study(args)
    # the sweep is the notebook's; the CLI runs none
    filled = [f"{k} {v}" for k, v in plan.from_preset.items() if k != "sweep_steps"]
    if size is None:
        source = "no --size or AKIRA_SIZE: the reference's defaults"
    elif getattr(args, "size", None) is not None:
        source = f"size {size} (--size)"
    else:
        source = f"size {size} (AKIRA_SIZE)"
    return f"{source} filled: {', '.join(filled) or 'nothing (every flag given)'}"


def main(args) -> dict:
    import time

    start, cpu = time.perf_counter(), time.process_time()
    # validate everything first (device availability included): a bad flag leaves no run folder
    plan, models = study_from_args(args)
    cfg, preset = plan.train, plan.preset

    import matplotlib

    if not runtime.in_ipython():  # headless CLI; inside a notebook kernel leave its backend alone
        matplotlib.use("Agg")

    from akira_nb.runs import Run
    from akira_nb.spatiotemporal import claims, experiment, plots
    from akira_nb.spatiotemporal.train import RESUME_MAY_CHANGE

    print(size_line(args))
    if getattr(args, "offline", False):
        print(OFFLINE_NOTE, flush=True)
    name = f"{cfg.pattern}-{args.model}-{preset}-g{cfg.grid_size}-s{cfg.steps}-seed{cfg.seed}"
    run = Run.open_or_create(
        claims.EXPERIMENT,
        name,
        config={
            "train": cfg,
            "preset": preset,
            "overrides": plan.overrides,
            "models": list(models),
        },
        resume=args.resume,
        root=args.output_dir,
        may_change=RESUME_MAY_CHANGE,
    )
    viz = None
    if args.viz_interval > 0:  # --viz-dir's parent exists (checked)
        viz = plots.snapshot_saver(args.viz_dir or run.file("viz"), args.viz_interval)
    res = experiment.run_experiment(
        plan,
        models,
        run=run,
        stats_csv=args.log_stats_csv,
        viz=viz,
        extra={"standins": {"offline": bool(getattr(args, "offline", False)), "replaced": {}}},
        started=(start, cpu),
    )
    print(
        f"\n033 {cfg.pattern} grid {cfg.grid_size}, {cfg.steps} steps, preset {preset}; "
        f"held-out frames t = {cfg.eval_start}+ (per-pixel MSE of predictions clamped to "
        "[0, 1], one-step and rollout; final/min/last_window_mean: training loss, raw output)"
    )
    print(experiment.arm_lines(res.results))
    print(plots.format_table(res.rows, experiment.COMPARISON_COLUMNS))
    print(experiment.claims_text(res.results))
    trained = "spectral" if "spectral" in res.results["models"] else "mlp"
    print(claims.baseline_verdict(res.results, trained))
    print(runtime.cost_line(res.out))
    print(f"results: {run.path / 'results.json'}")
    return res.out
