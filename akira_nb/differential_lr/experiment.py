"""Experiment 013 (differential learning rates) in one call: :func:`run_experiment` tunes and
trains every arm of a :class:`~.presets.Study` at every budget (:mod:`.trainings`: each
training once, saved as it finishes, reloaded on resume), measures the tuned arms at the longest
budget (:mod:`.evaluate`), judges H1-H4 and the recommendation (:mod:`.claims`), and writes
``results.json`` and the figures; plus its tables and :func:`trained_model` (a tuned arm's
final weights, for a look inside with ``run_with_cache``).

H1's target is the tuned uniform control's mean final validation loss on the evaluation set
(the curves') x (1 + ``target_margin``), unless the study gives one. The reported final losses
are over at least ``final_eval_predictions`` held-out predictions; the sweep ranks on the
evaluation set.
"""

from __future__ import annotations

import math
import time

import numpy as np

from akira_nb import runtime, standins
from akira_nb.claims import claim_lines
from akira_nb.differential_lr import evaluate as ev
from akira_nb.differential_lr.claims import (
    CONTROL,
    TREATMENT,
    claims,
    comparability,
    fmt,
    recommendation,
    template,
)
from akira_nb.differential_lr.presets import EXPERIMENT, MAY_CHANGE, Study
from akira_nb.differential_lr.trainings import (
    Trainings,
    load_final_model,
    sweep_rows,
    tune,
    tuned_rows,
)
from akira_nb.lr_sweep import LEARN_MARGIN
from akira_nb.runs import Run

# ----------------------------------------------------------------------------- tables


def tuned_table(out: dict) -> str:
    """Arm x budget: the tuned multiplier and LR, the final val loss (over the held-out set)
    and the learning check."""
    lines = [
        f"tuned arms: final val loss over {out['held_out']['val']:,} held-out predictions, the "
        "learning check against the unigram loss of the same blocks",
        f"{'arm':<22} {'steps':>6} {'tuned':>8} {'LR (geo mean)':>14} {'seeds':>5} "
        f"{'final val loss':>17}  learning check (unigram - {LEARN_MARGIN:g} nats)",
    ]
    for budget, arms in out["tuned"].items():
        for arm, r in arms.items():
            word = "learned" if r["learned"] else "DID NOT LEARN"
            note = f"; {r['note']}" if r["note"] else ""
            lines.append(
                f"{arm:<22} {budget:>6} {'x' + format(r['mult'], '.3g'):>8} {r['lr']:>14.3g} "
                f"{len(r['seeds']):>5} {fmt(r['final_val_loss']):>17}  {word}{note}"
            )
    return "\n".join(lines)


def sweep_table(out: dict) -> str:
    """Every sweep point: final val loss on the evaluation set (what the sweep ranks by) on
    the sweep seeds, the tuned one starred."""
    seeds = out["study"].sweep_seeds
    lines = [
        f"LR sweeps: final val loss on the evaluation set ({out['held_out']['eval']:,} "
        f"predictions, the curves' set; mean over sweep seed(s) {seeds}) at multipliers of "
        "each arm's prescribed LRs; * the tuned point (its loss over the held-out set: above)"
    ]
    for row in out["sweep"]:
        points = ", ".join(
            f"x{p['mult']:.3g}{'*' if p['mult'] == row['best'] else ''} {p['loss']:.4f}"
            for p in row["points"]
        )
        ext = f"; {row['extensions']} point(s) added by the edge rule" if row["extensions"] else ""
        note = f"; {row['note']}" if row["note"] else ""
        lines.append(f"{row['arm']:<22} {row['budget']:>5} steps: {points}{ext}{note}")
    return "\n".join(lines)


def arm_table(out: dict) -> str:
    """One row per tuned arm at the longest budget: mean +- std over seeds of every measure."""
    head = (
        f"{'arm':<22} {'seeds':>5} {'steps->target':>16} {'train':>16} {'val':>16} "
        f"{'test':>16} {'variance':>20} {'spikes':>10}"
    )
    n = out["held_out"]
    lines = [
        f"every arm at its tuned LR, {out['budget_steps']} steps (val over {n['val']:,} "
        f"held-out predictions, test over {n['test']:,} of the {n['test_split']} split):",
        head,
    ]
    for arm, r in out["stats"].items():
        lines.append(
            f"{arm:<22} {r['seeds']:>5} {fmt(r['steps_to_target'], '.1f'):>16} "
            f"{fmt(r['final_train_loss']):>16} {fmt(r['final_val_loss']):>16} "
            f"{fmt(r['test_loss']):>16} {fmt(r['variance'], '.3g'):>20} "
            f"{fmt(r['spikes'], '.1f'):>10}"
        )
    return "\n".join(lines)


def rate_rows(out: dict) -> dict:
    """Per arm with a monitor: per band the measured and prescribed ratio (mean over seeds of
    the log), for the weight-change plot."""
    rows = {}
    for arm, per_seed in out["measures"].items():
        rates = [m["rates"] for m in per_seed if m.get("rates")]
        if not rates:
            continue
        rows[arm] = {
            k: {
                "measured": float(
                    np.exp(np.mean([np.log(max(r[k]["measured"], 1e-300)) for r in rates]))
                ),
                "prescribed": rates[0][k]["prescribed"],
            }
            for k in rates[0]
        }
    return rows


# ----------------------------------------------------------------------------- the run


def run_experiment(
    plan: Study,
    name: str = "study",
    resume: bool = False,
    root=None,
    log=print,
    banner: bool = True,
) -> dict:
    """Tune and train every arm of ``plan`` at every budget (:func:`tune`; each training saved
    to ``arms/<tag>.json`` as it finishes and reloaded on ``resume``; a half-trained one
    continues from its checkpoint), measure, judge H1-H4, write ``results.json`` and the
    figures. Offline (``plan.base.offline``) the stand-ins banner is printed first
    (``banner=False``: the caller printed it) and ``results.json`` records ``"standins"``.
    ``cpu_seconds``: this call's process CPU time (every thread)."""
    from akira_nb.bandformer import train

    cpu, start = time.process_time(), time.perf_counter()
    record = standins_record(plan, banner)  # the banner first, when offline
    log = log or (lambda line: None)
    opening = dict(
        experiment=EXPERIMENT,
        name=name,
        config=plan.to_dict(),
        resume=resume,
        root=root,
        may_change=MAY_CHANGE,
    )
    Run.resumable(**opening)  # a refused resume before the (long) corpus load
    # a corpus that cannot load fails before the run folder exists
    splits = train.make_data(plan.config(plan.arms[0], 1.0, plan.longest, 0))
    run = Run.open_or_create(**opening)
    trainings = Trainings(plan, run, resume, splits, log)
    sweeps = {arm: tune(trainings, arm) for arm in plan.arms}
    out = measure_study(plan, trainings, sweeps)
    out.update(run=run, standins=record, unigram_test=_unigram_test(trainings))
    out["val_blocks"] = trainings.val_blocks  # the held-out validation blocks (token ids)
    out["tables"] = {
        "tuned": tuned_table(out),
        "sweep": sweep_table(out),
        "arms": arm_table(out),
        "template": template(out),
    }
    out["lines"] = summary_lines(out)
    out["cpu_seconds"] = time.process_time() - cpu
    out["wall_seconds"] = time.perf_counter() - start
    run.write_results(results_json(out))
    out["figures"] = save_figures(run, out)
    log(f"results and figures: {run.path}")
    return out


def measure_study(plan: Study, trainings: Trainings, sweeps: dict) -> dict:
    """Everything measured and judged from the trainings: tuned rows per budget, the longest
    budget's measures and statistics, the target, H1-H4, the recommendation, the rates."""
    tuned = tuned_rows(plan, trainings, sweeps)
    longest = tuned[plan.longest]
    tuned_records = {
        arm: [trainings.records[tag] for tag in row["tags"]] for arm, row in longest.items()
    }
    target, target_rule = _target(plan, longest)
    warmup = plan.warmup_for(plan.longest)
    measures = {
        arm: [ev.measure(rec, target, plan.window_fraction, warmup) for _, rec in recs]
        for arm, recs in tuned_records.items()
    }
    out = {
        "study": plan,
        "records": list(trainings.records.values()),
        "tuned_records": tuned_records,
        "sweeps": sweeps,
        "sweep": sweep_rows(plan, sweeps, trainings.held_out()["eval"]),
        "tuned": tuned,
        "budget_steps": plan.longest,
        "measures": measures,
        "target": target,
        "target_rule": target_rule,
        "unigram": trainings.unigram,
        "unigram_eval": trainings.unigram_eval,
        "held_out": trainings.held_out(),
        "budget": _learning_budget(plan.band_lrs),
    }
    out["stats"] = ev.arm_stats(measures, plan.longest)
    out["claims"] = claims(out)
    out["recommendation"] = recommendation(out)
    out["rates"] = rate_rows(out)
    return out


def _target(plan: Study, longest: dict) -> tuple[float, str]:
    """H1's target val loss: given, else the tuned control's mean final val loss on the
    evaluation set (the set of the curves the target is read on) x (1 + target_margin) at the
    longest budget (the first arm's when the control was not run)."""
    if plan.target_loss is not None:
        return plan.target_loss, "the target given (target_loss)"
    arm = CONTROL if CONTROL in longest else next(iter(longest))
    base = longest[arm]["eval_val_loss"][0]
    label = "tuned uniform control" if arm == CONTROL else f"tuned {arm}"
    return base * (1 + plan.target_margin), (
        f"the {label} arm's mean final val loss on the evaluation set (the curves') "
        f"{base:.4f} at {plan.longest} steps x (1 + {plan.target_margin:g})"
    )


def _unigram_test(trainings: Trainings) -> float:
    from akira_nb import text

    s = trainings.splits
    if not trainings.has_test:
        return math.nan
    return float(text.unigram_cross_entropy(s.train, trainings.test_blocks, s.vocab_size))


def results_json(out: dict) -> dict:
    plan = out["study"]
    first, held_out = out["records"][0][1], out["held_out"]
    return {
        "experiment": EXPERIMENT,
        "size": plan.size,
        "config": plan.to_dict(),
        "environment": runtime.environment_info(plan.base.device),
        # the reported final losses' set (the trainer's final_val_* are the evaluation set's)
        "data": {
            **first["data"],
            "final_val_blocks": held_out["val_blocks"],
            "final_val_predictions": held_out["val"],
            "unigram_val_loss": out["unigram"],
        },
        "held_out": held_out,
        "budgets": plan.budgets,
        "target": out["target"],
        "target_rule": out["target_rule"],
        "unigram_val_loss": out["unigram"],
        "unigram_eval_loss": out["unigram_eval"],  # the curves' set's
        "unigram_test_loss": out["unigram_test"],
        "learn_margin": LEARN_MARGIN,
        "learning_budget": out["budget"],
        "sweep": out["sweep"],
        "tuned": {str(b): rows for b, rows in out["tuned"].items()},
        "measures": out["measures"],
        "stats": out["stats"],
        "rates": out["rates"],
        "claims": out["claims"],
        "recommendation": out["recommendation"],
        "comparability": comparability(plan),
        "standins": out["standins"],
        "curves": curves_of(out["tuned_records"]),
        "template": out["tables"]["template"],
        "summary": out["lines"],
        "trainings": len(out["records"]),
        "training_cpu_seconds": training_cpu_seconds(out),
        "cpu_seconds": out["cpu_seconds"],
        "wall_seconds": out["wall_seconds"],
    }


def training_cpu_seconds(out: dict) -> float:
    """The CPU seconds of every training of the study, summed over the runs that trained them
    (a resumed study counts the ones it reloaded at their first cost)."""
    return float(sum(rec.get("cpu_seconds", 0.0) for _, rec in out["records"]))


def standins_record(plan: Study, banner: bool = True) -> dict | None:
    """Offline: the ``"standins"`` record of ``results.json`` (``{"banner", "replaced"}``),
    printing the banner first unless ``banner=False``; None for a run on the real data."""
    if not plan.base.offline:
        return None
    if banner:
        return standins.announce(plan.base.standins())
    return {"banner": standins.BANNER, "replaced": plan.base.standins()}


def curves_of(tuned_records: dict) -> dict:
    """``{arm: {"step": [...], "val_loss": [[per seed]], "step_losses": [[per seed]],
    "seeds": [...]}}`` of the tuned arms at the longest budget: what the plots and the
    explorer read."""
    out: dict[str, dict] = {}
    for arm, recs in tuned_records.items():
        c = out.setdefault(
            arm,
            {"step": recs[0][1]["history"]["step"], "val_loss": [], "step_losses": [], "seeds": []},
        )
        for key, rec in recs:
            c["val_loss"].append(rec["history"]["val_loss"])
            c["step_losses"].append(rec["step_losses"])
            c["seeds"].append(key["seed"])
    return out


def summary_lines(out: dict) -> list[str]:
    plan = out["study"]
    b = out["budget"]
    lines = [
        plan.describe(),
        f"same total learning budget: uniform LR {b['geometric_mean']:.3g} = geometric mean of "
        f"the band LRs (keeps the sum of log LRs, {b['log_budget']:.3f}); the arithmetic mean "
        f"{b['arithmetic_mean']:.3g} would keep the plain sum "
        f"({b['arithmetic_over_geometric']:.1f}x larger)",
        f"trivial baselines: unigram cross-entropy {out['unigram']:.4f} (val), "
        f"{out['unigram_test']:.4f} (test) nats/token over the held-out sets; "
        f"{out['unigram_eval']:.4f} on the evaluation set (the curves')",
        "",
        out["tables"]["tuned"],
        "",
        out["tables"]["sweep"],
        "",
        out["tables"]["arms"],
        "",
    ]
    why = comparability(plan)
    if why:
        lines.append(f"not comparable with the seed's scale: {why}")
    lines += claim_lines(out["claims"])
    lines.append(out["recommendation"]["line"] + f" ({out['recommendation']['detail']})")
    return lines


def save_figures(run, out: dict) -> dict:
    from akira_nb.differential_lr import plots

    figs = {
        "curves": plots.plot_curves(
            curves_of(out["tuned_records"]), out["target"], out["unigram_eval"]
        ),
        "weight_change": plots.plot_rates(out["rates"]),
        "sweep": plots.plot_sweep(out["sweep"], out["tuned"], out["unigram"]),
    }
    return run.save_figures(figs)


def _learning_budget(band_lrs) -> dict:
    from akira_nb.bandformer import optim

    return optim.learning_budget(band_lrs)


def trained_model(out: dict, arm: str = TREATMENT, seed: int | None = None):
    """The trained model of ``arm`` at its tuned LR at the longest budget (``seed``: one of its
    seeds; None: the first), loaded on the CPU from its final checkpoint in the run folder, in
    eval mode: the model to look inside (``model.run_with_cache(tokens)``)."""
    plan = out["study"]
    row = out["tuned"][plan.longest][arm]
    seed = row["seeds"][0] if seed is None else seed
    if seed not in row["seeds"]:
        raise ValueError(f"seed={seed!r}: {arm} trained at seeds {row['seeds']} at its tuned LR")
    key = plan.key(arm, row["mult"], plan.longest, seed)
    return load_final_model(plan, out["run"], key).eval()


__all__ = [
    "arm_table",
    "curves_of",
    "measure_study",
    "rate_rows",
    "results_json",
    "run_experiment",
    "standins_record",
    "summary_lines",
    "sweep_table",
    "trained_model",
    "tuned_table",
]
