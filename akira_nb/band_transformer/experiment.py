"""Experiment 026 (the band transformer) in one call: :func:`run_experiment` trains every arm of
a :class:`~akira_nb.band_transformer.presets.Study` at its tuned LR at each budget (the LR sweep
of :mod:`akira_nb.lr_sweep`), runs the AQ analysis as soon as its models are trained, the band
ablations and statistics, the tables and the claims, and writes ``results.json`` and the
figures into the run folder (resumable: finished trainings are reloaded from their final
checkpoints). Used by ``notebooks/026_band_transformer.py`` and ``python -m akira_nb
bandformer``.
"""

from __future__ import annotations

import time
from typing import Callable

from akira_nb import runtime, standins
from akira_nb.band_transformer import sweep
from akira_nb.band_transformer.ablation import (
    AblationRun,
    band_statistics,
    maturation_of,
)
from akira_nb.band_transformer.aq_analysis import aq_line, aq_texts_of, run_aq_analysis
from akira_nb.band_transformer.claims import REFERENCE_DEFECTS, claims, comparability
from akira_nb.band_transformer.presets import (
    BAND_LAYOUT_ARMS,
    EXPERIMENT,
    MAY_CHANGE,
    Study,
    tag_of,
)
from akira_nb.band_transformer.tables import (
    Training,
    arm_line,
    comparison_lines,
    loss_rows,
    loss_table,
    parameter_rows,
    parameter_table,
    reference_rows,
    reference_table,
    sweep_table,
)
from akira_nb.bandformer import train
from akira_nb.claims import claim_lines


class WandbLogger:
    """Logs every arm to Weights & Biases as it trains: one wandb run per arm, named as the
    reference named its runs (``akira_seed<seed>_<YYYYmmdd_HHMMSS>``, here after the arm), with
    the arm's config; :meth:`start` gives the ``log`` callback of
    :func:`akira_nb.bandformer.train.train`, which sends the reference's metric names
    (``train/step``, ``train/loss``, ``eval/loss``, ``eval/perplexity``, ``lr/<group>``, plus
    ``train/tokens`` and ``train/grad_norm``) after every evaluation; :meth:`end` closes the
    run. ``wandb``: the imported module."""

    def __init__(self, wandb, project: str = "akira_exp026"):
        self.wandb, self.project, self.run = wandb, project, None

    def start(self, cfg) -> Callable[[dict], None]:
        import datetime as dt

        stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
        self.run = self.wandb.init(
            project=self.project,
            name=f"{cfg.arm}_akira_seed{cfg.seed}_{stamp}",
            config=cfg.to_dict(),
            reinit=True,
        )
        run = self.run
        return lambda metrics: run.log(metrics, step=int(metrics["train/step"]))

    def end(self, cfg, result) -> None:
        if self.run is not None:
            self.run.summary["final/val_loss"] = result.final_val_loss
            self.run.finish()
            self.run = None


class _Runner:
    """Trains a study's points one at a time into ``run`` and keeps what the analyses need:
    ``reported`` (each arm and budget's sweep winner and its other seeds, the
    :class:`Training` s whose numbers are reported, models kept), ``sweeps`` (each arm and
    budget's :func:`akira_nb.band_transformer.sweep.run_sweep` outcome) and ``points`` (every
    training, models of the losing sweep points dropped)."""

    def __init__(self, plan: Study, run, resume: bool, tracker, log, ablation_blocks):
        self.plan, self.run, self.resume, self.tracker = plan, run, resume, tracker
        self.log, self.blocks = log, ablation_blocks
        self.reported: list[Training] = []
        self.points: list[Training] = []
        self.sweeps: dict[tuple[str, int], dict] = {}

    def train(self, arm: str, steps: int, multiplier: float, seed: int) -> Training:
        """One training (reloaded from its final checkpoint when a resumed run has it)."""
        from akira_nb.runs import atomic_write_json

        cfg = self.plan.config(arm, steps, multiplier, seed)
        tag = tag_of(arm, steps, multiplier, seed)
        tracked = arm in BAND_LAYOUT_ARMS and seed == self.plan.seeds[0]
        arm_run = AblationRun(self.run, cfg, tag, self.blocks, self.resume) if tracked else self.run
        metrics = self.tracker.start(cfg) if self.tracker is not None else None
        res = train.train(cfg, run=arm_run, resume=self.resume, tag=tag, log=metrics)
        if self.tracker is not None:
            self.tracker.end(cfg, res)
        res.model.eval()
        flops = train.step_flops(cfg) / cfg.tokens_per_step
        ablation = arm_run.result(res.model) if tracked else None
        t = Training(arm, steps, multiplier, seed, tag, cfg, res, flops, ablation)
        summary = {**res.summary(), **t.record()}
        atomic_write_json(self.run.file(f"arms/{tag}.json"), summary)
        self.points.append(t)
        self.log(arm_line(res, t.learned) + f" (LR x{sweep.tag(multiplier)})")
        return t

    def arm(self, arm: str, steps: int) -> None:
        """``arm`` at budget ``steps``: its sweep on the first seed
        (:func:`akira_nb.lr_sweep.run_sweep`; the winner is its first seed's result), then its
        other seeds at the winner's multiplier."""
        plan, trained = self.plan, {}

        def loss_at(m: float) -> float:
            trained[m] = self.train(arm, steps, m, plan.seeds[0])
            top = sweep.best({k: t.loss for k, t in trained.items()})
            for k, t in trained.items():
                if k != top:
                    t.result.model = None  # a losing point: its numbers stay, its model goes
            return trained[m].loss

        out = sweep.run_sweep(loss_at, plan.grid_of(arm), plan.max_extensions)
        self.sweeps[(arm, steps)] = out
        best = trained[out["best"]]
        self.reported.append(best)
        for seed in plan.seeds_at(arm, steps)[1:]:
            self.reported.append(self.train(arm, steps, best.multiplier, seed))
        train.trim_heap()

    def aq_models(self) -> dict | None:
        """``{(arm, seed): model}`` of the AQ architectures' ``aq_seeds`` at the first budget,
        once all are trained (None before)."""
        need = {(arm, s) for arm in self.plan.aq_arms for s in self.plan.aq_seeds}
        have = {
            (t.arm, t.seed): t.result.model
            for t in self.reported
            if t.steps == self.plan.budgets[0]
        }
        return {k: have[k] for k in need} if need <= set(have) else None

    def longest(self) -> dict[str, Training]:
        """Each arm's first-seed reported training at its longest budget."""
        out = {}
        for t in self.reported:  # budgets ascend
            if t.seed == self.plan.seeds[0]:
                out[t.arm] = t
        return {arm: out[arm] for arm in self.plan.arms if arm in out}


def run_experiment(
    plan: Study,
    name: str = "comparison",
    resume: bool = False,
    root=None,
    tracker: WandbLogger | None = None,
    log=print,
    banner: bool = True,
) -> dict:
    """Train every arm of ``plan`` at every budget it has, each at its tuned LR (the sweep of
    the module docstring), run the analyses, write ``results.json`` and the figures into the
    run folder and return ``{"run", "study", "results", "trainings", "sweeps", "models",
    "figures", "tables", "lines", "claims", ...}`` (``results``: the reported trainings'
    ``TrainResult`` s, budget by budget, arm by arm, seed by seed).

    Everything is validated, and the data loaded, before the run folder exists, so bad input
    leaves nothing behind. With ``resume=True`` finished trainings (sweep points included) are
    reloaded from their final checkpoints (``arms/<tag>.json`` records each; band ablation
    curves are reloaded from ``arms/<tag>_ablation.json``), a partly trained one continues.
    The AQ analysis runs as soon as the models it compares are trained (the band model and the
    baseline at the first budget come first). ``tracker``: a :class:`WandbLogger` (the CLI's
    ``--wandb``), started before and ended after each training.
    Offline (``plan.base.offline``) the stand-ins banner is printed first (``banner=False``:
    the caller printed it) and ``results.json`` records ``"standins"``. ``results.json`` holds
    the run's process CPU-seconds (``cpu_seconds``, every thread) and wall seconds."""
    from akira_nb.runs import Run
    from akira_nb.text import get_tokenizer

    start, cpu_start = time.perf_counter(), time.process_time()
    plan.validate()  # a study changed after it was built
    record = standins_record(plan, banner)  # the banner first, when offline
    log = log or (lambda line: None)
    first_cfg = plan.config(plan.arms[0], plan.budgets[0])
    opening = dict(
        experiment=EXPERIMENT,
        name=name,
        config=plan.to_dict(),
        resume=resume,
        root=root,
        may_change=MAY_CHANGE,
    )
    Run.resumable(**opening)  # a refused resume before the (long) corpus load
    # a corpus that cannot load, or a batch larger than its train split, fails here, before the
    # run folder exists; so does the AQ analysis's text corpus (needed only after training)
    splits = train.make_data(first_cfg)
    aq_texts = aq_texts_of(plan)
    run = Run.open_or_create(**opening)
    val = train.validation_blocks(first_cfg, splits.val)  # every arm's fixed validation set
    runner = _Runner(
        plan, run, resume, tracker, log, val[: plan.ablation_batches * plan.base.batch_size]
    )
    tokenizer = get_tokenizer(first_cfg.tokenizer)
    aq_out = None
    for steps in plan.budgets:
        for arm in plan.arms_at(steps):
            runner.arm(arm, steps)
            models = runner.aq_models()
            if aq_out is None and models is not None:
                # as soon as its models are trained, before the other arms' are in memory (at
                # t4 the analysis itself takes ~4.4 GB on a CPU)
                aq_out = run_aq_analysis(
                    plan, models, tokenizer, run=run, resume=resume, log=log, texts=aq_texts
                )
    out = analyse(plan, runner, aq_out or {}, val)
    out.update(run=run, standins=record)
    out["figures"] = save_figures(run, out)
    out.update(runtime.cost(start, cpu_start))  # cpu_seconds, wall_seconds
    out["lines"].append(cost_line(out))
    run.write_results(results_json(out))
    log(f"results and figures: {run.path}")
    return out


def analyse(plan: Study, runner: _Runner, aq_out: dict, val) -> dict:
    """Everything computed from the trained models and records (no training): the tables'
    rows, band statistics and ablations of each arm's tuned first seed at its longest budget,
    claims, tables and printed lines."""
    longest = runner.longest()
    results = [t.result for t in runner.reported]
    params = parameter_rows({arm: (t.result.model, t.cfg) for arm, t in longest.items()})
    rows = loss_rows(runner.reported, plan, runner.sweeps)
    stats_blocks = val[: plan.stats_sequences]
    stats = {
        arm: band_statistics(t.result.model, stats_blocks)
        for arm, t in longest.items()
        if arm not in train.BASELINE_ARMS
    }
    train.trim_heap()
    ablations = {
        arm: {**t.ablation, "budget": t.steps, "tag": t.tag}
        for arm, t in longest.items()
        if t.ablation
    }
    maturation = {arm: maturation_of(ab) for arm, ab in ablations.items()}
    out = {
        "study": plan,
        "results": results,
        "trainings": runner.reported,
        "points": runner.points,
        "sweeps": runner.sweeps,
        "models": {(t.arm, t.steps, t.seed): t.result.model for t in runner.reported},
        "param_rows": params,
        "loss_rows": rows,
        "unigram": runner.reported[0].unigram,
        "stats": stats,
        "ablations": ablations,
        "maturation": maturation,
        "aq": aq_out,
        "data": results[0].data,
        "longest": {arm: t.result for arm, t in longest.items()},
        "val_blocks": val,  # the validation blocks, for a look inside the trained models
    }
    out["reference"] = reference_rows(rows, plan)
    out["claims"] = claims(out)
    out["tables"] = {
        "parameters": parameter_table(params),
        "sweep": sweep_table(rows),
        "loss": loss_table(rows, plan),
        "reference": reference_table(out["reference"], plan),
    }
    out["comparisons"] = comparison_lines(rows, params)
    out["lines"] = summary_lines(out)
    return out


def cost_line(out: dict) -> str:
    """The run's own cost (:func:`akira_nb.runtime.cost_line`) and how many trainings it ran."""
    return f"{runtime.cost_line(out)}, {len(out['points'])} trainings"


def results_json(out: dict) -> dict:
    """What ``results.json`` holds."""
    plan = out["study"]
    return {
        "experiment": EXPERIMENT,
        "size": plan.size,
        "config": plan.to_dict(),
        "environment": runtime.environment_info(plan.base.device),
        "data": out["data"],
        "budgets": list(plan.budgets),
        "tokens_per_arm": plan.tokens_per_arm,
        "tokens_per_budget": {str(s): plan.tokens_at(s) for s in plan.budgets},
        "unigram_val_loss": out["unigram"],
        "learn_margin": sweep.LEARN_MARGIN,
        "parameters": out["param_rows"],
        "losses": out["loss_rows"],
        "sweeps": [t.record() for t in out["points"]],
        "arms": [{**t.result.summary(), **t.record()} for t in out["trainings"]],
        "band_statistics": out["stats"],
        "ablations": out["ablations"],
        "maturation": out["maturation"],
        "aq": {arm: v["summary"] for arm, v in out["aq"].items()},
        "aq_results": {arm: v["result"].to_dict() for arm, v in out["aq"].items()},
        "reference": out["reference"],
        "reference_defects": list(REFERENCE_DEFECTS),
        "comparisons": out["comparisons"],
        "claims": out["claims"],
        "comparability": comparability(plan),
        "standins": out.get("standins"),
        "summary": out["lines"],
        "cpu_seconds": out["cpu_seconds"],
        "wall_seconds": out["wall_seconds"],
    }


def standins_record(plan: Study, banner: bool = True) -> dict | None:
    """Offline: the ``"standins"`` record of ``results.json`` (``{"banner", "replaced"}``),
    printing the banner first unless ``banner=False``; None for a run on the real data."""
    if not plan.base.offline:
        return None
    if banner:
        return standins.announce(plan.standins())
    return {"banner": standins.BANNER, "replaced": plan.standins()}


def summary_lines(out: dict) -> list[str]:
    """The printed summary: one line per reported training, the tables, what the arms say, the
    AQ lines, the verdicts."""
    learned = {(r["arm"], r["budget"]): r["learned"] for r in out["loss_rows"]}
    lines = [arm_line(t.result, learned.get((t.arm, t.steps))) for t in out.get("trainings", [])]
    tables = out["tables"]
    lines += ["", tables["parameters"], "", tables["sweep"], "", tables["loss"], ""]
    lines += out["comparisons"] + [""]
    why = comparability(out["study"])
    lines += [tables["reference"], ""]
    lines += [aq_line(arm, v["summary"]) for arm, v in out["aq"].items()]
    for arm, m in out["maturation"].items():
        lines.append(
            f"maturation {arm} ({m['budget']} steps): band maturity steps {m['maturity']}, final "
            "ablation increase " + ", ".join(f"{v:+.3f}" for v in m["final_increase"])
        )
    if why:
        lines.append(f"not comparable with the seed's predictions: {why}")
    lines += claim_lines(out["claims"])
    return lines


def save_figures(run, out: dict) -> dict:
    """Every figure of the study into the run folder's ``figures/``; returns {name: path}."""
    from akira_nb.band_transformer import plots

    curves = curve_rows(out)
    figs = {
        "curves": plots.plot_curves(curves, out["unigram"]),
        "loss_vs_flops": plots.plot_loss_vs_flops(curves, out["unigram"]),
        "lr_sweep": plots.plot_lr_sweep(out["loss_rows"]),
        "parameters": plots.plot_parameters(out["param_rows"]),
        "band_statistics": plots.plot_band_statistics(out["stats"]),
        "band_spectra": plots.plot_band_spectra(out["stats"]),
        "weight_change": plots.plot_weight_change(list(out["longest"].values())),
        "ablation": plots.plot_ablation(out["ablations"]),
        "aq_per_band": plots.plot_aq(out["aq"]),
    }
    return run.save_figures(figs)


def curve_rows(out: dict) -> list[dict]:
    """Per reported training: its validation curve (tokens, FLOPs, loss at each evaluation),
    final loss, arm, budget, seed, whether its arm learned at that budget."""
    learned = {(r["arm"], r["budget"]): r["learned"] for r in out["loss_rows"]}
    rows = []
    for t in out["trainings"]:
        h = t.result.history
        rows.append(
            dict(
                arm=t.arm,
                budget=t.steps,
                seed=t.seed,
                tokens=list(h["tokens"]),
                flops=[n * t.flops_per_token for n in h["tokens"]],
                val_loss=list(h["val_loss"]),
                final=t.loss,
                learned=learned.get((t.arm, t.steps), True),
            )
        )
    return rows
