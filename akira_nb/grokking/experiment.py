"""The grokking comparison run: every arm trained (one after another, or the seeds of a model
as one vmapped ensemble), the results table beside the seed's claims, results.json and figures.

:func:`run_experiment` is the one call the notebook and ``python -m akira_nb grokking`` make;
:func:`compare` trains a list of arms; :func:`results_table` and :func:`arm_line` print them.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace

import matplotlib.pyplot as plt

from akira_nb import runtime
from akira_nb.grokking import plots
from akira_nb.grokking.claims import FULL_NOTE, SEED_CLAIMS, claims, verdicts
from akira_nb.grokking.presets import EXPERIMENT, Study
from akira_nb.modular_arithmetic import (
    ensemble as vmapped,  # compare's ``ensemble`` flag owns the name
)
from akira_nb.modular_arithmetic.train import (
    RESUME_MAY_CHANGE,
    TrainConfig,
    TrainResult,
    summarize,
    train,
)
from akira_nb.runs import Run, atomic_write_json
from akira_nb.runtime import cost, cost_line  # noqa: F401  (re-exported for the notebook)


def _fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def results_table(rows: list[dict]) -> str:
    """Text table: measured mean +- std over seeds beside the seed document's claims."""
    head = (
        f"{'p':>4} {'model':<13} {'seeds':>5} {'test acc':>15} {'claimed':>8} "
        f"{'grok epoch (n grokked)':>24} {'claimed':>8} {'epochs/s':>14} {'claimed':>8} "
        f"{'params':>8} {'chance':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        claim = SEED_CLAIMS.get((r["p"], r["mixer"]), {})
        acc = f"{_fmt(r['test_acc_mean'])} +- {_fmt(r['test_acc_std'])}"
        if r["grokked"]:
            grok = f"{_fmt(r['grok_epoch_mean'], '.0f')} +- {_fmt(r['grok_epoch_std'], '.0f')}"
        else:
            grok = "never"
        grok += f" ({r['grokked']}/{r['seeds']})"
        speed = f"{_fmt(r['epochs_per_s_mean'], '.0f')} +- {_fmt(r['epochs_per_s_std'], '.0f')}"
        claimed_grok = claim.get("grok_epoch", "-") if claim else "-"
        if claim and claim.get("grok_epoch") is None:
            claimed_grok = "never" if claim.get("test_acc", 1) < 0.95 else "-"
        mixer = r["mixer"] + ("*" if r["mixer"] == "full" else "")
        lines.append(
            f"{r['p']:>4} {mixer:<13} {r['seeds']:>5} {acc:>15} "
            f"{_fmt(claim.get('test_acc')):>8} {grok:>24} {str(claimed_grok):>8} {speed:>14} "
            f"{_fmt(claim.get('it_s'), '.0f'):>8} {r['params']:>8} {_fmt(r['chance_acc']):>7}"
        )
    if any(r["mixer"] == "full" for r in rows):
        lines.append(f"* {FULL_NOTE}")
    lines.append(
        "epochs/s: arms trained one after another (not a paired timing); claimed it/s include "
        "the seed's evaluation, device not stated"
    )
    return "\n".join(lines)


def arm_line(res: TrainResult) -> str:
    """One line per trained arm, for logs and saved notebooks (whose progress bars do not keep)."""
    c = res.config
    grok = f"grokked at epoch {res.grok_epoch}" if res.grok_epoch is not None else "never grokked"
    keys = ",".join(map(str, res.key_freqs)) or "none"
    return (
        f"p={c['p']} {c['mixer']} seed {c['seed']}: train acc {res.final['train_acc']:.3f}, "
        f"test acc {res.final['test_acc']:.3f} (chance {1 / c['p']:.3f}), {grok} "
        f"(test acc >= {c['grok_threshold']}), {res.epochs_per_s:.0f} epochs/s, "
        f"key freqs {{{keys}}}"
    )


def snapshot_saver(run: Run):
    """A ``snapshot_fn`` for :func:`compare` that saves six-panel frames under
    ``figures/frames_<tag>/``."""
    splits = {}  # per arm

    def save(cfg: TrainConfig, model, history, epoch: int) -> None:
        if cfg.tag not in splits:
            splits[cfg.tag] = cfg.dataset()
        data = splits[cfg.tag]
        fig = plots.plot_snapshot({"history": history, "config": asdict(cfg)}, model, data, epoch)
        run.save_figure(fig, f"frames_{cfg.tag}/epoch_{epoch:06d}")
        plt.close(fig)

    return save


def seed_groups(arms: list[TrainConfig]) -> list[list[TrainConfig]]:
    """Consecutive arms that differ only in their seed, in order (``Study.arms()`` lists the
    seeds of each (p, mixer) together)."""
    groups: list[list[TrainConfig]] = []
    for cfg in arms:
        if groups and replace(groups[-1][0], seed=cfg.seed) == cfg:
            groups[-1].append(cfg)
        else:
            groups.append([cfg])
    return groups


def compare(
    arms: list[TrainConfig],
    run: Run | None = None,
    resume: bool = False,
    progress: bool = True,
    snapshot_fn=None,
    ensemble: bool = False,
) -> list[TrainResult]:
    """Train every arm (one config each, e.g. ``study(...).arms()``, which checks them), one
    after another, or with ``ensemble=True`` the seeds of each (p, mixer) together as one
    vmapped ensemble (``ensemble.train_arms``), with the same results within float tolerance
    (see ``modular_arithmetic.ensemble`` for which mixers are bitwise equal) and the same files.

    The ensemble is opt-in on every device: on a 2-core CPU it measured 1.05x, and its speed on
    a GPU has not been measured yet.

    With ``run``, each arm's summary is saved as ``arms/<tag>.json`` and its final checkpoint
    is kept, so ``resume=True`` reloads finished arms without training and continues partly
    trained ones from their newest checkpoint."""
    together = bool(arms) and runtime.check_bool("ensemble", ensemble)

    def keep(cfg: TrainConfig, res: TrainResult) -> TrainResult:
        if run is not None:
            atomic_write_json(run.file(f"arms/{cfg.tag}.json"), res.summary())
        return res

    results = []
    for group in seed_groups(arms):
        snaps = [
            (lambda m, h, e, c=c: snapshot_fn(c, m, h, e)) if snapshot_fn else None for c in group
        ]
        if together and len(group) > 1:
            done = vmapped.train_arms(
                group, run=run, resume=resume, progress=progress, snapshot_fns=snaps
            )
            results.extend(keep(c, r) for c, r in zip(group, done))
            continue
        for cfg, snap in zip(group, snaps):
            res = train(cfg, run=run, resume=resume, progress=progress, snapshot_fn=snap)
            results.append(keep(cfg, res))
    return results


def run_experiment(
    plan: Study,
    name: str = "comparison",
    resume: bool = False,
    root=None,
    progress: bool = True,
    ensemble: bool = False,
) -> dict:
    """Train every arm of ``plan``, write ``results.json`` and the figures into the run folder
    and return ``{"run", "figures", "results", "rows", "table", "verdicts", "study"}``
    (``figures``: {name: path} of every saved figure, what the notebook shows).

    ``ensemble=True``: train the seeds of each (p, mixer) together as one vmapped ensemble
    (opt-in on every device until it is measured faster on a GPU; :func:`compare`); the
    results agree within float tolerance and the files are the same.

    Every arm's config, the seeds and the device were checked when ``plan`` was built, so bad
    input leaves nothing behind. ``out["cost"]`` (also in results.json): the run's
    ``cpu_seconds`` (``time.process_time``, every thread) and ``wall_seconds``."""
    start, cpu = time.perf_counter(), time.process_time()
    runtime.check_bool("ensemble", ensemble)
    config = plan.to_dict()
    run = Run.open_or_create(
        EXPERIMENT, name, config, resume=resume, root=root, may_change=RESUME_MAY_CHANGE
    )
    base = plan.base
    snap = snapshot_saver(run) if base.snapshot_every else None
    results: list[TrainResult] = compare(
        plan.arms(), run=run, resume=resume, progress=progress, snapshot_fn=snap, ensemble=ensemble
    )
    rows = summarize(results)
    table = results_table(rows)
    verdict_lines = verdicts(rows, plan)
    record = {
        "experiment": EXPERIMENT,
        "size": plan.size,
        "config": config,
        "environment": runtime.environment_info(base.device),
        "table": rows,
        "seed_claims": {f"{p}/{m}": v for (p, m), v in SEED_CLAIMS.items()},
        "verdicts": verdict_lines,
        "claims": claims(rows, plan),
        "arms": [r.summary() for r in results],
    }
    run.write_results({**record, **cost(start, cpu)})  # kept should a figure fail
    figures = save_figures(run, results)
    spent = cost(start, cpu)
    run.write_results({**record, **spent})
    return {
        "run": run,
        "figures": figures,
        "results": results,
        "rows": rows,
        "table": table,
        "verdicts": verdict_lines,
        "study": plan,
        "cost": spent,
    }


def save_figures(run: Run, results: list[TrainResult]) -> dict:
    """Write every figure of the study into the run folder's ``figures/`` and close it; returns
    {name: path}. Per prime: the curves of every arm; the progress measures, embedding spectrum,
    frequency weights and neuron maps of the first seed's arms."""
    paths = {}
    for p in sorted({r.config["p"] for r in results}):
        group = [r for r in results if r.config["p"] == p]
        first_seed = [r for r in group if r.config["seed"] == group[0].config["seed"]]
        figs = {
            f"curves_p{p}": plots.plot_curves(group, f"a + b mod {p}: all models"),
            f"progress_p{p}": plots.plot_progress_measures(first_seed),
            f"embedding_spectrum_p{p}": plots.plot_embedding_spectrum(first_seed),
            f"frequency_weights_p{p}": plots.plot_frequency_weights(first_seed),
        }
        for res in first_seed:
            data = TrainConfig(**res.config).dataset()
            figs[f"neurons_{res.config['mixer']}_p{p}"] = plots.plot_neuron_maps(res, data)
        paths.update(run.save_figures(figs))
    return paths
