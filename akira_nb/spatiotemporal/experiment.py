"""The 033 study: every model under one protocol on the same held-out frames, and its runner.

:func:`run_experiment` is the one runner the CLI and the notebook call: the comparison
(:func:`compare`: the spectral model, the MLP and the zero-parameter baselines), optional
variants of the spectral model (:func:`add_variants`) and the pattern sweep
(:func:`pattern_sweep`), the figures, and ``results.json``. The tables and lines that print a
run's numbers live here too; the seed's claims and their verdicts live in :mod:`.claims`.

Each model of a study is an *arm* (``spectral``, ``variants/<name>/spectral``,
``sweep/<pattern>/<model>``). With a run folder, a finished arm's evaluated summary is saved as
``arms/<arm>.json`` beside its final checkpoint in ``checkpoints/<arm>/``; calling again with
the same run reloads finished arms without training and continues partly trained ones.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace

import torch
from tqdm.auto import tqdm

from akira_nb import runtime
from akira_nb.runs import Run, atomic_write_json, check_resume, read_json, to_jsonable
from akira_nb.spatiotemporal import patterns as P
from akira_nb.spatiotemporal import plots, widgets
from akira_nb.spatiotemporal.claims import (
    EXPERIMENT,
    SEED_CLAIMS,
    claims,
    comparability,
    rollout_lead,
)
from akira_nb.spatiotemporal.evaluate import evaluate, evaluation_times
from akira_nb.spatiotemporal.model import BASELINES, build_model
from akira_nb.spatiotemporal.presets import Study
from akira_nb.spatiotemporal.train import (
    RESUME_MAY_CHANGE,
    TrainConfig,
    checkpoint_config,
    threads,
    train,
    training_times,
    write_stats_csv,
)

# what a finished arm's saved summary may differ in from the settings that reload it: nothing
# that changes its numbers (the evaluation settings do, unlike for a checkpoint)
ARM_MAY_CHANGE = ("progress", "device", "cpu_threads", "checkpoint_every")


def arm_config(cfg: TrainConfig, model, preset: str, overrides: dict) -> dict:
    """What an arm's saved summary (``arms/<arm>.json``) was made with (plain JSON values)."""
    return to_jsonable(
        {"train": cfg, "model": model.config(), "preset": preset, "overrides": overrides}
    )


def _reload_arm(run, arm: str, model, cfg: TrainConfig, config: dict, device):
    """A finished arm's saved entry, with ``model`` holding its final weights; None when the
    arm has not finished, or finished with other settings (then :func:`train` continues it
    from its checkpoint, or refuses a change that alters training, and it is evaluated anew)."""
    path = run.path / "arms" / f"{arm}.json"
    if not path.is_file():
        return None
    saved = read_json(path)
    try:
        check_resume(saved.get("config"), config, f"the arm {path}", ARM_MAY_CHANGE)
    except ValueError:
        return None
    entry = saved["entry"]
    if entry.get("train") is not None:
        state = run.latest_checkpoint(
            arm,
            map_location=device,
            config=checkpoint_config(model, cfg),
            may_change=RESUME_MAY_CHANGE,
        )
        if state is None or int(state["step"]) != cfg.steps:
            return None  # its final checkpoint is gone: train() continues from the newest
        model.load_state_dict(state["model"])
        entry["rows"] = state["rows"].tolist()
    return entry


def _arm(name, cfg, preset, overrides, run, prefix, viz, device):
    """One arm of :func:`compare`: reloaded when it finished with the same settings, else
    trained (a trainable model) and evaluated; returns ``(entry, stats rows, model)``."""
    runtime.seed_everything(cfg.seed)
    model = build_model(name, preset, grid_size=cfg.grid_size, **overrides).to(device)
    arm = prefix + name
    config = arm_config(cfg, model, preset, overrides)
    entry = _reload_arm(run, arm, model, cfg, config, device) if run is not None else None
    if entry is not None:
        rows = entry.pop("rows", [])
        entry["reloaded"] = True
        return entry, rows, model
    entry = {"params": sum(p.numel() for p in model.parameters())}
    rows = []
    if name not in BASELINES:
        arm_cfg = cfg
        if run is not None:  # the final step is always kept: a reload needs it
            arm_cfg = replace(cfg, checkpoint_every=cfg.checkpoint_every or cfg.steps)
        entry["train"] = train(
            model,
            arm_cfg,
            run=run,
            stats_rows=rows,
            viz=viz if name == "spectral" else None,
            tag=arm,
        )
    entry["eval"] = evaluate(model, cfg)
    if run is not None:
        atomic_write_json(
            run.file(f"arms/{arm}.json"),
            {"config": config, "entry": strip_entry(entry)},
        )
    return entry, rows, model


def compare(
    cfg: TrainConfig,
    models=("spectral", "mlp", "copy_last", "linear_extrap"),
    preset: str = "fast",
    overrides: dict | None = None,
    run=None,
    stats_csv: str | None = None,
    viz=None,
    prefix: str = "",
) -> dict:
    """Train every trainable model in ``models`` under the same protocol (each from the same
    seed), evaluate all of them on the same held-out frames, and return
    ``{"models": {name: {"train": ..., "eval": ..., "model": ...}}, "best_baseline": ...}``.

    With ``run`` each model is an *arm* named ``prefix + name``: trained arms checkpoint under
    ``checkpoints/<arm>/`` (every ``cfg.checkpoint_every`` steps, and always the final step),
    and each finished arm's evaluated summary is saved as ``arms/<arm>.json``. Called again
    with the same run (a resumed notebook or ``--resume``), an arm finished with the same
    settings (outside :data:`ARM_MAY_CHANGE`) is reloaded without training or evaluating
    (``entry["reloaded"] = True``; its model gets its final weights from its checkpoint); a
    partly trained arm, or one asked for more steps, continues from its newest checkpoint.
    Without ``prefix`` it also writes ``results.json`` and ``stats.csv`` (the spectral model's
    per-step statistics)."""
    device = runtime.get_device(cfg.device)
    overrides = dict(overrides or {})
    results = {
        "train_config": asdict(cfg),
        "preset": preset,
        "overrides": overrides,
        "metric": "per-pixel MSE (mean over pixels and frames) of predictions clamped to "
        "[0, 1], one-step and rollout alike; training losses on the raw output",
        "models": {},
    }
    with runtime.cpu_threads(threads(cfg), device):  # the thread count training uses
        results["environment"] = runtime.environment_info(device)
    for name in models:
        entry, rows, model = _arm(name, cfg, preset, overrides, run, prefix, viz, device)
        if name == "spectral" and not prefix:
            paths = [run.file("stats.csv")] if run is not None else []
            paths += [stats_csv] if stats_csv else []
            for path in paths:
                write_stats_csv(path, rows)
            if paths:
                entry["stats_csv"] = [str(p) for p in paths]
        entry["model"] = model
        results["models"][name] = entry
    evals = {k: v["eval"]["mse"] for k, v in results["models"].items()}
    base = {k: v for k, v in evals.items() if k in BASELINES}
    if base:
        results["best_baseline"] = min(base, key=base.get)
    if run is not None and not prefix:
        run.write_results(strip_models(results))
    return results


VARIANTS = {
    "spectral_linear_base": {"residual": "linear"},
    "spectral_no_wormhole": {"attention_types": ("temporal", "neighbor")},
}


def add_variants(
    results: dict, cfg: TrainConfig, variants=VARIANTS, preset: str = "fast", run=None
) -> dict:
    """Train and evaluate variants of the spectral model (``name -> config overrides``) under
    the same protocol and frames, and add them to ``results["models"]``. With ``run`` each
    variant is the arm ``variants/<name>/spectral`` (resumable, see :func:`compare`)."""
    for name, overrides in variants.items():
        res = compare(
            cfg,
            ("spectral",),
            preset,
            {**results.get("overrides", {}), **overrides},
            run=run,
            prefix=f"variants/{name}/",
        )
        entry = res["models"]["spectral"]
        entry["overrides"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()
        }
        results["models"][name] = entry
    return results


def strip_models(results: dict) -> dict:
    """``results`` without the live model objects and tensors (what goes in results.json)."""
    out = {k: v for k, v in results.items() if k != "models"}
    out["models"] = {name: strip_entry(e) for name, e in results.get("models", {}).items()}
    return out


def strip_entry(entry: dict) -> dict:
    """One model's entry without its live model object and tensors."""
    e = {k: v for k, v in entry.items() if k != "model"}
    if "eval" in e:
        e["eval"] = {k: v for k, v in e["eval"].items() if not torch.is_tensor(v)}
    if "train" in e:
        e["train"] = dict(e["train"])
    return e


# The columns of the seed's comparison table (plus the baselines' and the kit's metrics).
COMPARISON_COLUMNS = (
    "model",
    "params",
    "final",
    "min",
    "last_window_mean",
    "improvement_pct",
    "eval_mean",
    "eval_ssim",
    "eval_mse_low",
    "eval_mse_high",
    "rollout_mse",
    "steps_per_s",
    "train_steps_per_s",
)


def comparison_rows(results: dict, claimed: dict | None = None) -> list[dict]:
    """One row per model: the reference's comparison metrics (+ SSIM, band errors), with the
    reference's claimed value beside each measured one where ``claimed`` has it."""
    rows = []
    for name, e in results["models"].items():
        tr, ev = e.get("train", {}), e["eval"]
        row = {
            "model": name,
            "params": e["params"],
            "final": tr.get("final"),
            "min": tr.get("min"),
            "last_window_mean": tr.get("last_window_mean"),
            "improvement_pct": tr.get("improvement_pct"),
            "eval_mean": ev["mse"],
            "eval_ssim": ev["ssim"],
            "eval_mse_low": ev["mse_low"],
            "eval_mse_high": ev["mse_high"],
            "rollout_mse": ev.get("rollout_mse"),
            "steps_per_s": tr.get("steps_per_s"),
            "train_steps_per_s": tr.get("train_steps_per_s"),
        }
        if claimed and name in claimed:
            row.update({f"claimed_{k}": v for k, v in claimed[name].items()})
        rows.append(row)
    return rows


def claims_rows(rows: list[dict], results: dict | None = None) -> list[dict]:
    """From :func:`comparison_rows` with claims: one row per (model, metric) with the
    reference's claimed value beside the measured one, and whether they are comparable
    (``results`` given: its protocol against ``claims.SEED_PROTOCOL``)."""
    why_not = comparability(results) if results is not None else None
    out = []
    for r in rows:
        for key in SEED_CLAIMS.get(r["model"], {}):
            if f"claimed_{key}" in r:
                row = {
                    "model": r["model"],
                    "metric": key,
                    "claimed": r[f"claimed_{key}"],
                    "measured": r.get(key),
                }
                if results is not None:
                    row["comparable"] = "yes" if why_not is None else "NO"
                    if key == "steps_per_s":  # another machine: never comparable
                        row["comparable"] = "NO (machine)"
                out.append(row)
    return out


def claims_text(results: dict) -> str:
    """The reference's claims beside this run's numbers, with each verdict and its rule; when
    the protocol differs from the seed's it says so first (every verdict: not comparable)."""
    why_not = comparability(results)
    head = "claimed by the reference (RESULTS.md: blob 32x32, 500 online steps, preset fast)"
    lines = [head + " beside this run:"]
    if why_not:
        lines.append(f"NOT COMPARABLE ({why_not}): the numbers below are not the seed's protocol")
    rows = claims_rows(comparison_rows(results, SEED_CLAIMS), results)
    if rows:
        lines.append(plots.format_table(rows))
    cl = claims(results)
    lines.append(plots.format_table(cl, ["claim", "claimed", "measured", "verdict"]))
    lines += [f"  rule ({c['claim']}): {c['rule']}" for c in cl]
    return "\n".join(lines)


def pattern_sweep(
    cfg: TrainConfig,
    patterns=P.PATTERNS,
    preset: str = "fast",
    overrides: dict | None = None,
    models=("spectral", "copy_last", "linear_extrap"),
    run=None,
) -> list[dict]:
    """Train and evaluate on each pattern (train pattern = eval pattern); one row per pattern
    with every model's held-out per-pixel MSE, the best baseline, ``best_over_spectral``
    (best baseline MSE / spectral MSE: > 1 means the spectral model is better) and the verdict.
    With ``run`` each (pattern, model) is the arm ``sweep/<pattern>/<model>``, resumable arm by
    arm (see :func:`compare`); ``row["reloaded"]`` counts the arms reloaded, not retrained."""
    rows = []
    for name in tqdm(patterns, desc="patterns", disable=not cfg.progress):
        c = replace(cfg, pattern=name, pattern_eval=None)
        res = compare(c, models, preset, overrides, run=run, prefix=f"sweep/{name}/")
        row = {"pattern": name}
        row.update({m: e["eval"]["mse"] for m, e in res["models"].items()})
        row.update({f"{m}_ssim": e["eval"]["ssim"] for m, e in res["models"].items()})
        best = res.get("best_baseline")
        if best and "spectral" in row:
            row["best_baseline"] = best
            row["best_over_spectral"] = row[best] / row["spectral"] if row["spectral"] else None
            row["beats_best_baseline"] = row["spectral"] < row[best]
        spec = res["models"].get("spectral", {}).get("train")
        if spec:
            row["spectral_final_loss"] = spec.get("final")
        row["smooth"] = name in P.SMOOTH_PATTERNS
        row["reloaded"] = sum(bool(e.get("reloaded")) for e in res["models"].values())
        rows.append(row)
    return rows


def rollout_lines(results: dict) -> list[str]:
    """The rollout as measured in ``results``: each model's per-pixel MSE at the first and last
    fed-back step and its worst step, then for how many leading steps each trained model stays
    below each baseline (:func:`rollout_lead`)."""
    curves = {
        m: e["eval"]["rollout_curve"]
        for m, e in results["models"].items()
        if e.get("eval", {}).get("rollout_curve")
    }
    if not curves:
        return []
    horizon = max(len(c) for c in curves.values())
    lines = [
        f"{horizon}-step rollout (each model fed its own predictions, clamped to [0, 1]), "
        "per-pixel MSE:"
    ]
    for m, c in curves.items():
        worst = max(range(len(c)), key=c.__getitem__)
        lines.append(
            f"  {m}: step 1 {c[0]:.3g}, step {len(c)} {c[-1]:.3g}, worst {c[worst]:.3g} "
            f"(step {worst + 1}), mean {sum(c) / len(c):.3g}"
        )
    for m in curves:
        if m in BASELINES:
            continue
        leads = [
            f"{b} for {rollout_lead(results, m, b)} of {horizon} steps"
            for b in BASELINES
            if rollout_lead(results, m, b) is not None
        ]
        if leads:
            lines.append(f"  {m} stays below {', '.join(leads)}")
    return lines


def heldout_gap(cfg: TrainConfig, pattern: str | None = None) -> dict:
    """How far the held-out frames lie from the training frames: the per-pixel MSE between the
    closest (evaluation frame, training frame) pair, beside copy-last-frame's per-pixel error on
    the evaluation frames, and their ratio (0: the evaluation replays a training frame)."""
    pattern = pattern or cfg.pattern_eval or cfg.pattern
    params = cfg.params_for(pattern)
    train = P.frames(pattern, training_times(cfg), cfg.grid_size, **params).flatten(1).double()
    held = P.frames(pattern, evaluation_times(cfg), cfg.grid_size, **params).flatten(1).double()
    # squared distances of every pair at once, [n_eval, n_train], without an [n, m, H*W] tensor
    dist = (held**2).sum(1)[:, None] + (train**2).sum(1)[None] - 2 * held @ train.T
    nearest = float(dist.clamp_min(0).min()) / train.shape[1]
    copy_last = float(((held[1:] - held[:-1]) ** 2).mean())
    return {
        "pattern": pattern,
        "nearest_train_mse": nearest,
        "copy_last_mse": copy_last,
        "ratio": nearest / copy_last if copy_last > 0 else math.inf,
        "n_train": train.shape[0],
    }


def heldout_line(cfg: TrainConfig, pattern: str | None = None) -> str:
    """:func:`heldout_gap` in one line."""
    g = heldout_gap(cfg, pattern)
    return (
        f"held-out frames ({g['pattern']}, t = {cfg.eval_start}+): the nearest of the "
        f"{g['n_train']} training frames is {g['ratio']:.2g}x copy-last-frame's per-pixel error "
        f"away (MSE {g['nearest_train_mse']:.3g} vs {g['copy_last_mse']:.3g}; 0 would mean the "
        "evaluation replays training frames)"
    )


def arm_lines(results: dict) -> str:
    """One line per trained arm (what a saved notebook shows once its progress bars are gone):
    steps, final training loss, held-out and rollout MSE beside the baselines'."""
    base = {b: results["models"][b]["eval"] for b in BASELINES if b in results["models"]}
    lines = []
    for name, e in results["models"].items():
        if name in BASELINES:
            continue
        tr, ev = e.get("train", {}), e["eval"]
        steps = len(tr.get("losses", []))
        held = ", ".join(f"{b} {v['mse']:.3g}" for b, v in base.items())
        line = (
            f"{name}: {steps} steps, final loss {tr.get('final', float('nan')):.3g}, held-out "
            f"MSE {ev['mse']:.3g} vs {held}"
        )
        if ev.get("rollout_mse") is not None:
            roll = ", ".join(
                f"{b} {v['rollout_mse']:.3g}" for b, v in base.items() if "rollout_mse" in v
            )
            line += f"; rollout MSE {ev['rollout_mse']:.3g} vs {roll}"
            lead = rollout_lead(results, name, "copy_last")
            if lead is not None:
                n = len(ev["rollout_curve"])
                line += f" (ahead of copy_last for {lead} of {n} rollout steps)"
        if tr.get("resumed_from"):
            line += f" (resumed from step {tr['resumed_from']})"
        if e.get("reloaded"):
            line += " (reloaded, not retrained)"
        lines.append(line)
    return "\n".join(lines)


def brightness_line(ev: dict) -> str:
    """Whether a rollout (``evaluate(..., keep_frames=True)``) brightens, fades or holds: the
    mean brightness of the fed-back frames beside the true frames', first and last step."""
    lit, truth = ev["rollout_frames"].flatten(1).mean(1), ev["rollout_truth"].flatten(1).mean(1)
    return (
        f"mean brightness of the rollout frames: step 1 {lit[0]:.3g} (truth {truth[0]:.3g}), "
        f"step {len(lit)} {lit[-1]:.3g} (truth {truth[-1]:.3g})"
    )


# -- the runner -----------------------------------------------------------------------------

COMPARE_MODELS = ("spectral", "mlp", "copy_last", "linear_extrap")
# the figures a run saves (role -> figures/<name>.png): the CLI's and the notebook's names
CLI_FIGURES = {"loss": "loss", "rollout": "rollout", "links": "prediction_and_links"}
NOTEBOOK_FIGURES = {
    "loss": "loss_curves",
    "rollout": "rollout_curves",
    "sweep": "pattern_bars",
    "links": "wormhole_links",
    "explorer": "explorer_chirp",
}


@dataclass
class Outcome:
    """What :func:`run_experiment` returns."""

    run: Run
    results: dict  # compare's results: every model's entry, with its live model
    rows: list[dict]  # comparison_rows beside the seed's claims
    out: dict  # what results.json holds (and cli.main returns)
    table: list[dict] | None = None  # the pattern sweep's rows
    figures: dict = field(default_factory=dict)  # {figure name: path}
    rollout: dict | None = None  # the spectral model's evaluation with its rollout frames


def save_figures(run: Run, results: dict, cfg: TrainConfig, table, names: dict):
    """Save the figures of ``names`` (role -> file name; roles: loss, rollout, sweep, links,
    explorer) and the spectral model's ``rollout.gif``; returns ``({name: path}, the spectral
    model's evaluation with its rollout frames, or None)``."""
    figs = {}
    if "loss" in names:
        figs[names["loss"]] = plots.loss_curves(results)
    if "rollout" in names:
        figs[names["rollout"]] = plots.rollout_curves(results)
    if "sweep" in names and table:
        figs[names["sweep"]] = plots.pattern_bars(table)
    paths = run.save_figures(figs)
    if "spectral" not in results["models"]:
        return paths, None
    model = results["models"]["spectral"]["model"]
    figs = {}
    if "links" in names:
        figs[names["links"]] = widgets.explore_frame(
            model,
            cfg.pattern_eval or cfg.pattern,
            t=cfg.eval_start,
            grid_size=cfg.grid_size,
            threshold=model.wormhole.threshold,
            max_connections=model.wormhole.max_connections,
            freq_cutoff=model.cfg.freq_cutoff,
        )
    if "explorer" in names:  # the explorer's view at its start settings
        figs[names["explorer"]] = widgets.explore_frame(
            model, "chirp", t=cfg.eval_start, grid_size=cfg.grid_size
        )
    paths.update(run.save_figures(figs))
    ev = evaluate(model, cfg, keep_frames=True)
    if "rollout_frames" in ev:
        plots.rollout_gif(
            ev["rollout_truth"], ev["rollout_frames"], run.file("rollout.gif"), label="spectral"
        )
    return paths, ev


def run_experiment(
    study: Study,
    models=COMPARE_MODELS,
    *,
    run: Run,
    variants: dict | None = None,
    sweep: bool = False,
    figures: dict = CLI_FIGURES,
    stats_csv: str | None = None,
    viz=None,
    extra: dict | None = None,
    started: tuple[float, float] | None = None,
) -> Outcome:
    """Run a 033 study into ``run``: :func:`compare` on ``study.train`` for ``models``, then
    the spectral ``variants`` (:func:`add_variants`) and, with ``sweep``, every pattern
    (:func:`pattern_sweep` on ``study.sweep``); save ``figures`` (:func:`save_figures`) and
    write ``results.json``: the results without live models, ``run``, ``size``, ``rows``,
    ``claims``, ``pattern_table`` (with ``sweep``), ``figures`` (the PNG names), ``extra`` and
    the run's cost (``wall_seconds``, ``cpu_seconds`` since ``started``, a
    ``(time.perf_counter(), time.process_time())`` pair; default: now). Arms resume one by one
    (:func:`compare`). ``stats_csv`` / ``viz``: as :func:`compare`."""
    start, cpu = started or (time.perf_counter(), time.process_time())
    cfg, preset, overrides = study.train, study.preset, study.overrides
    results = compare(cfg, models, preset, overrides, run=run, stats_csv=stats_csv, viz=viz)
    if variants:
        add_variants(results, cfg, variants, preset, run=run)
    rows = comparison_rows(results, SEED_CLAIMS)
    table = None
    if sweep:
        table = pattern_sweep(study.sweep, P.PATTERNS, preset, overrides, run=run)
    paths, ev = save_figures(run, results, cfg, table, figures)
    out = strip_models(results)
    out.update(run=str(run.path), size=study.size, rows=rows, claims=claims(results))
    if table is not None:
        out["pattern_table"] = table
    out["figures"] = sorted(p.name for p in (run.path / "figures").glob("*.png"))
    out.update(extra or {})
    out.update(runtime.cost(start, cpu))
    run.write_results(out)
    return Outcome(run, results, rows, out, table, paths, ev)


def resume_check(study: Study, table: list[dict], run: Run) -> tuple[list[str], bool]:
    """The notebook's two resume checks; returns ``(lines, ok)``. (1) The sweep again from
    ``run``: every arm must be reloaded, not retrained, and the table come out identical to
    ``table``. (2) The first pattern's spectral arm cut off half-way in a scratch run folder
    (deleted afterwards), then continued: it must end where the uninterrupted arm ended."""
    again = pattern_sweep(study.sweep, P.PATTERNS, study.preset, study.overrides, run=run)
    n_arms = sum(r["reloaded"] for r in again)

    def plain(rows):
        return [{k: v for k, v in r.items() if k != "reloaded"} for r in rows]

    same = plain(again) == plain(table)
    lines = [
        f"resume check: {n_arms} of {len(again) * 3} sweep arms reloaded; identical table: {same}"
    ]
    whole = table[0]  # the uninterrupted arm: the sweep's first pattern, spectral
    arm_cfg = replace(study.sweep, pattern=whole["pattern"], progress=False)
    half = arm_cfg.steps // 2
    with tempfile.TemporaryDirectory() as scratch:
        cut = Run.create(EXPERIMENT, "resume-check", root=scratch)
        prefix = f"sweep/{whole['pattern']}/"
        compare(replace(arm_cfg, steps=half), ("spectral",), study.preset, run=cut, prefix=prefix)
        resumed = compare(arm_cfg, ("spectral",), study.preset, run=cut, prefix=prefix)
    resumed = resumed["models"]["spectral"]
    got = (resumed["eval"]["mse"], resumed["train"]["final"])
    want = (whole["spectral"], whole["spectral_final_loss"])
    lines.append(
        f"continued check ({whole['pattern']}): stopped at step {half} of {arm_cfg.steps}, "
        f"continued from step {resumed['train']['resumed_from']}; held-out MSE {got[0]:.6g} vs "
        f"uninterrupted {want[0]:.6g}, final loss {got[1]:.6g} vs {want[1]:.6g}"
    )
    ok = n_arms == len(again) * 3 and same and resumed["train"]["resumed_from"] == half > 0
    ok = ok and all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-12) for a, b in zip(got, want))
    return lines, ok
