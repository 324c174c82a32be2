"""Experiment 033: spectral band attention for next-frame prediction (train, evaluate, compare).

``python -m akira_nb spatiotemporal [flags]`` takes every flag of the reference's
``synthetic_2d.py`` plus ``--seed --size --batch --protocol --output_dir --resume``. Every run
also evaluates the zero-parameter baselines (copy-last-frame, linear extrapolation) on the same
held-out frames; ``--model compare`` adds the MLP.

Grid size: ``--grid-size`` when given; otherwise an explicit ``--config`` brings its preset's
own grid (turbo/fast/default 32, large 64, xlarge 128, so large/xlarge reach their pooled
wormhole search); otherwise the ``--size`` default (tiny 16, else 32). So ``--size tiny
--config large`` runs at 64x64: pass ``--grid-size`` to shrink it.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import matplotlib

from .. import runtime
from ..runs import Run
from . import patterns as P
from .presets import PRESETS

# (grid, steps, eval_steps, rollout_horizon, checkpoint_every) per size; None = reference values
SIZE_DEFAULTS = {
    None: (32, 300, 101, 20, 0),
    "tiny": (16, 60, 30, 8, 30),
    "t4": (32, 500, 101, 20, 100),
    "a100": (32, 3000, 101, 30, 500),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=None,
        choices=list(PRESETS),
        help="model preset (default: fast); an explicit preset brings its own grid size",
    )
    p.add_argument(
        "--grid-size",
        "--grid_size",
        dest="grid_size",
        type=int,
        default=None,
        help="default: the --config preset's grid if --config is given, else the --size grid",
    )
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument(
        "--pattern-train",
        "--pattern_train",
        dest="pattern_train",
        default="blob",
        choices=list(P.PATTERNS),
    )
    p.add_argument(
        "--pattern-eval",
        "--pattern_eval",
        dest="pattern_eval",
        default=None,
        choices=list(P.PATTERNS),
    )
    p.add_argument("--eval-steps", "--eval_steps", dest="eval_steps", type=int, default=None)
    p.add_argument(
        "--switch-period", "--switch_period", dest="switch_period", type=int, default=101
    )
    p.add_argument(
        "--log-stats-csv",
        "--log_stats_csv",
        dest="log_stats_csv",
        default=None,
        help="also write the per-step statistics CSV here (always in the run folder)",
    )
    p.add_argument("--viz-interval", "--viz_interval", dest="viz_interval", type=int, default=0)
    p.add_argument(
        "--viz-dir",
        "--viz_dir",
        dest="viz_dir",
        default=None,
        help="snapshot folder (default: viz/ in the run folder)",
    )
    p.add_argument(
        "--attn-topk-temporal",
        "--attn_topk_temporal",
        dest="attn_topk_temporal",
        type=int,
        default=None,
    )
    p.add_argument(
        "--model",
        default="spectral",
        choices=["spectral", "mlp", "compare"],
        help="baselines are always evaluated beside the model(s)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--size",
        default=None,
        choices=list(runtime.SIZES),
        help="size preset for steps/grid/eval defaults (default: the reference's)",
    )
    p.add_argument("--batch", type=int, default=1, help=">1 uses the batched protocol")
    p.add_argument("--eval-start", "--eval_start", dest="eval_start", type=float, default=10000.4)
    p.add_argument(
        "--checkpoint-every", "--checkpoint_every", dest="checkpoint_every", type=int, default=None
    )
    p.add_argument("--resume", action="store_true", help="continue the newest run of this name")
    p.add_argument(
        "--output_dir",
        "--output-dir",
        dest="output_dir",
        default=None,
        help="runs root (default: AKIRA_RUNS_DIR or runs/)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args):
    """(TrainConfig, preset, overrides, models) from parsed CLI arguments."""
    from .train import TrainConfig

    grid, steps, eval_steps, horizon, ckpt = SIZE_DEFAULTS[getattr(args, "size", None)]
    preset = args.config if args.config is not None else "fast"
    if args.grid_size is not None:  # `is not None`: --grid-size 0 must fail validation
        grid = args.grid_size
    elif args.config is not None:
        grid = PRESETS[preset].grid_size
    overrides = {}
    if args.attn_topk_temporal is not None:
        overrides["top_k_temporal"] = args.attn_topk_temporal
    cfg = TrainConfig(
        pattern=args.pattern_train,
        pattern_eval=args.pattern_eval,
        grid_size=grid,
        steps=args.steps if args.steps is not None else steps,
        lr=args.lr,
        protocol="batched" if args.batch > 1 else "online",
        batch=args.batch,
        eval_steps=args.eval_steps if args.eval_steps is not None else eval_steps,
        eval_start=args.eval_start,
        eval_warmup=PRESETS[preset].time_depth,
        rollout_horizon=horizon,
        switch_period=args.switch_period,
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every if args.checkpoint_every is not None else ckpt,
        progress=not args.quiet,
    ).validate()
    trained = {"spectral": ("spectral",), "mlp": ("mlp",), "compare": ("spectral", "mlp")}
    models = trained[args.model] + ("copy_last", "linear_extrap")
    return cfg, preset, overrides, models


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def main(args) -> dict:
    if not _in_ipython():  # headless CLI; inside a notebook kernel leave its backend alone
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import experiment, plots
    from .evaluate import evaluate

    cfg, preset, overrides, models = config_from_args(args)
    name = f"{cfg.pattern}-{args.model}-{preset}-g{cfg.grid_size}-s{cfg.steps}-seed{cfg.seed}"
    run = Run.open_or_create(
        "033_spectral_band_attention",
        name,
        config={
            "train": {k: v for k, v in asdict(cfg).items() if k != "progress"},
            "preset": preset,
            "overrides": overrides,
            "models": list(models),
        },
        resume=args.resume,
        root=args.output_dir,
    )
    viz = None
    if args.viz_interval > 0:
        viz_dir = Path(args.viz_dir) if args.viz_dir else run.file("viz")
        viz_dir.mkdir(parents=True, exist_ok=True)

        def snap(step, cur, target, pred, stats):
            fig = plots.snapshot_figure(cur, target, pred, plots.stats_title(step, stats))
            fig.savefig(viz_dir / f"step_{step:05d}.png", dpi=120)
            plt.close(fig)

        viz = (args.viz_interval, snap)
    results = experiment.compare(
        cfg, models, preset, overrides, run=run, stats_csv=args.log_stats_csv, viz=viz
    )
    claimed = experiment.CLAIMED if (cfg.pattern == "blob" and cfg.grid_size == 32) else None
    rows = experiment.comparison_rows(results, claimed)
    print(
        f"\n033 {cfg.pattern} grid {cfg.grid_size}, {cfg.steps} steps, preset {preset}; "
        f"held-out frames t = {cfg.eval_start}+ (per-pixel MSE)"
    )
    print(plots.format_table(rows, experiment.COMPARISON_COLUMNS))
    if claimed:
        print("claimed by the reference (RESULTS.md, 500 steps):")
        print(plots.format_table([{"model": m, **v} for m, v in claimed.items()]))
    print(experiment.verdict(results, "spectral" if "spectral" in results["models"] else "mlp"))
    for fig_name, fig in (
        ("loss", plots.loss_curves(results)),
        ("rollout", plots.rollout_curves(results)),
    ):
        run.save_figure(fig, fig_name)
        plt.close(fig)
    if "spectral" in results["models"]:
        model = results["models"]["spectral"]["model"]
        ev = evaluate(model, cfg, keep_frames=True)
        if "rollout_frames" in ev:
            plots.rollout_gif(ev["rollout_truth"], ev["rollout_frames"], run.file("rollout.gif"))
    out = experiment.strip_models(results)
    out["run"] = str(run.path)
    out["size"] = getattr(args, "size", None)
    out["rows"] = rows
    run.write_results(out)
    print(f"results: {run.path / 'results.json'}")
    return out
