"""Experiment 000 (Action Quanta) in one call: :func:`run_experiment` compares a model pair
(:func:`akira_nb.alignment.aq.run_aq`), runs the grokking ground truth
(:mod:`.ground_truth`), sets the reference's numbers beside the measured ones
(:func:`reference_rows`), judges the claims (:mod:`.claims`) and writes results.json and
every figure into a run folder. Used by ``notebooks/000_action_quanta.py`` and
``python -m akira_nb action_quanta``.
"""

from __future__ import annotations

import time

from akira_nb import runtime, standins
from akira_nb.action_quanta.claims import (
    REFERENCE_DEFECTS,
    SEED_CLAIMS,
    cka_text,
    claims,
    comparability,
    count_short,
    per_pair,
)
from akira_nb.action_quanta.ground_truth import grokking_lines, run_grokking
from akira_nb.action_quanta.presets import EXPERIMENT, MAY_CHANGE, Study
from akira_nb.alignment import aq
from akira_nb.claims import claim_lines
from akira_nb.runtime import cost, cost_line  # noqa: F401  (re-exported for the notebook)


def _layers_text(values, fmt="{}") -> str:
    return " / ".join(fmt.format(v) for v in values.values()) + " (L3 / L5 / L7)"


def _method_count(name, rule, value):
    return lambda pr: count_short(pr.methods[name], rule, value) if name in pr.methods else None


def _kind_rows(result, kind: str) -> list[tuple]:
    """``(quantity, reported, measured, note)`` of the basic, CKA, OT and Procrustes counts of
    one input type."""
    ref = SEED_CLAIMS
    return [
        (
            f"basic AQ (excess > 0.3), {kind}",
            _layers_text({k: c for k, (c, _) in ref["basic"][kind].items()}),
            per_pair(result, kind, _method_count("basic", "fixed", 0.3)),
            "the reference truncated B to 3072 neurons",
        ),
        (
            f"linear CKA, {kind}",
            _layers_text(ref["cka"][kind], "{:.3f}"),
            per_pair(result, kind, lambda pr: cka_text(pr) if "linear" in pr.cka else None),
            "the reference's on 5,000 tokens; the kit's on its in-memory sample (all streamed "
            "tokens in brackets when stream_cka)",
        ),
        (
            f"OT |corr| > 0.5, {kind}",
            _layers_text(ref["ot_above_half"][kind], "{}/100"),
            per_pair(result, kind, _method_count("ot", "fixed", 0.5)),
            "the reference matched only the 100 highest-variance neurons; the kit all of them",
        ),
        (
            f"Procrustes AQ (mean + 2 std), {kind}",
            _layers_text(ref["procrustes_aq"][kind]),
            per_pair(result, kind, _method_count("procrustes", "statistical", 2.0)),
            "held-out here, in-sample in the reference",
        ),
    ]


def _procrustes_universal_rows(result) -> list[tuple]:
    """``(quantity, reported, measured, note)`` of the Procrustes error and the universal AQ."""
    ref = SEED_CLAIMS
    uni = result.universal.get("procrustes", {})
    error = per_pair(
        result,
        "random",
        lambda pr: (
            f"{pr.procrustes['test_error']:.3f} (train {pr.procrustes['train_error']:.3f})"
            if pr.procrustes
            else None
        ),
    )
    universal = ", ".join(
        f"L{k} {u['observed']} (chance {u['chance']:.1f}; independence bound "
        f"{u['independent_expected']:.1f})"
        for k, u in uni.items()
    )
    return [
        (
            "Procrustes error, random",
            _layers_text(ref["procrustes_error_random"], "{:.3f}"),
            error,
            "held-out here (train in brackets), in-sample in the reference",
        ),
        (
            "universal AQ (Procrustes, random ∩ text)",
            " / ".join(
                f"{ref['universal'][v]} (chance {ref['universal_chance'][v]})" for v in (3, 5, 7)
            )
            + " (L3 / L5 / L7)",
            universal or "not run",
            "the reference's chance is the independence bound (hypergeometric); the kit's "
            "chance comes from the paired token-shuffle null",
        ),
    ]


def reference_rows(result: aq.AQResult, p: Study) -> list[dict]:
    """One row per reported quantity: the reference's values at its layers 3 / 5 / 7, the
    measured values at every compared layer pair (with their chance levels), whether the two
    are comparable (:func:`~.claims.comparability`) and how the measurement differs."""
    comparable = "yes" if comparability(p) is None else "not comparable"
    if p.aq.offline:
        comparable = standins.NOT_COMPARABLE
    rows = _kind_rows(result, "random") + _kind_rows(result, "text")
    rows += _procrustes_universal_rows(result)
    return [
        dict(quantity=q, reported=r, measured=m, comparable=comparable, note=n)
        for q, r, m, n in rows
    ]


def reference_table(rows: list[dict]) -> str:
    """:func:`reference_rows` as text: one block per quantity."""
    lines = []
    for r in rows:
        lines.append(f"{r['quantity']} [{r['comparable']}]")
        lines.append(f"    reference: {r['reported']}")
        lines.append(f"    measured:  {r['measured']}")
        if r["note"]:
            lines.append(f"    ({r['note']})")
    return "\n".join(lines)


def summary_lines(out: dict) -> dict:
    """One line per analysis (for the notebook and logs)."""
    result, gk = out["result"], out.get("grok")
    lines = {}
    for kind in result.pairs:
        for method in aq.METHODS:
            s = result.chance_summary(kind, method)
            if s is None:
                continue
            word = result.verdict(kind, method)
            line = f"{kind} tokens, {aq.METHOD_TEXT[method]}: " + (
                f"{word} ({s['rule']})"
                if word == aq.FLAGS_NOTHING
                else f"{s['pct']:.1f}% AQ ({s['rule']}); {aq.chance_text(s)} -> {word}"
            )
            others = result.other_rule_counts(kind, method)
            lines[f"{kind}/{method}"] = line + (f"; {others}" if others else "")
        prs = [pr for pr in result.pairs[kind].values() if "linear" in pr.cka]
        if prs:
            ckas = [pr.cka["linear"] for pr in prs]
            line = (
                f"{kind} tokens: linear CKA {min(ckas):.3f}-{max(ckas):.3f} over the compared "
                f"layer pairs (in-memory sample of {prs[0].cka['n_tokens']} tokens)"
            )
            if all("linear_all_tokens" in pr.cka for pr in prs):
                alls = [pr.cka["linear_all_tokens"] for pr in prs]
                line += (
                    f"; {min(alls):.3f}-{max(alls):.3f} over all {prs[0].cka['n_tokens_all']} "
                    "streamed tokens"
                )
            lines[f"{kind}/cka"] = line
    for method, by in result.universal.items():
        obs = sum(u["observed"] for u in by.values())
        exp = sum(u["chance"] for u in by.values())
        ind = sum(u["independent_expected"] for u in by.values())
        words = {aq.universal_word(u) for u in by.values()}
        word = (
            words.pop() + " at every layer pair"
            if len(words) == 1
            else "; ".join(f"L{k} {aq.universal_word(u)}" for k, u in by.items())
        )
        first, n_null = next(iter(by.values())), min(u["n_null"] for u in by.values())
        null = f"paired {first['null']} null"
        if aq.too_few_replicates(n_null) is None:
            null += f" of {n_null} replicates"
        lines[f"universal/{method}"] = (
            f"universal AQ ({method}): {obs} in both input types vs {exp:.1f} expected by chance "
            f"({null}: {word}; independence bound {ind:.1f})"
        )
    for method, by in result.spectral.items():
        tested = [s for s in by.values() if s["lower_frequency"] is not None]
        low = sum(bool(s["lower_frequency"]) for s in tested)
        lines[f"spectral/{method}"] = (
            f"spectra ({method}, {METHOD_MODEL_TEXT[method]}): AQ lower-frequency in {low} of "
            f"{len(tested)} tested layer pairs"
        )
    if gk is not None:
        a = gk["agreement"]["well_explained"]
        lines["grokking"] = (
            f"grokking (p={gk['config']['p']}, {'both grokked' if gk['grokked'] else 'NOT grokked'}"
            f"): matched well-explained neurons share their key frequency "
            f"{a['same']}/{a['n']} vs chance {a['chance']:.3f}"
        )
    return lines


METHOD_MODEL_TEXT = {
    m: f"{aq.METHOD_MODEL[m]}'s neurons on {aq.METHOD_MODEL[m]}'s activations" for m in aq.METHODS
}


def run_name(p: Study) -> str:
    """``<size>-<pair>`` (``-offline`` offline): the run folder's default name."""
    pair = (p.pair or f"{p.aq.model_a}+{p.aq.model_b}").replace("/", "+").replace(":", "=")
    safe = "".join(ch if ch.isalnum() or ch in "_.=+-" else "-" for ch in pair)
    # offline runs get their own name: a resume never mixes stand-ins and the real models
    return f"{p.size or 'seed'}-{safe}" + ("-offline" if p.aq.offline else "")


def _load(p: Study, stage, models):
    """The text corpus and both models, loaded and checked before the run folder exists:
    ``(texts, (model_a, model_b))``."""
    texts = None
    if "text" in p.aq.input_types:  # a corpus that cannot load fails before the run folder
        with stage("inputs"):
            texts = aq.load_texts(aq.text_corpus_of(p.aq), p.aq.seed)
    if models is None:
        with stage("load models"):
            models = aq.load_models(p.aq)
    aq.check_models(p.aq, *models)
    return texts, models


def _results(p: Study, out: dict, record) -> dict:
    """What results.json holds (without the run's cost)."""
    gk = out["grok"]
    return {
        "experiment": EXPERIMENT,
        "size": p.size,
        "pair": p.pair,
        "config": p.to_dict(),
        "notes": p.notes,
        "environment": runtime.environment_info(p.aq.device),
        "aq": out["result"].to_dict(),
        "grokking": {k: v for k, v in gk.items() if k != "arrays"} if gk else None,
        "reference": out["reference"],
        "reference_defects": list(REFERENCE_DEFECTS),
        "claims": out["claims"],
        "summary": out["lines"],
        "standins": record,
    }


def _log_tables(p: Study, out: dict, log) -> None:
    why_not = comparability(p)
    log(
        "the reference's numbers beside this run's"
        + (f" (not comparable: {why_not})" if why_not else "")
    )
    log(reference_table(out["reference"]))
    for line in claim_lines(out["claims"]):
        log(line)


def run_experiment(
    p: Study,
    name: str | None = None,
    resume: bool = False,
    root=None,
    progress: bool = True,
    log=print,
    models=None,
    banner: bool = True,
) -> dict:
    """Run the comparison of ``p`` (and the grokking ground truth), write ``results.json`` and
    every figure into a run folder, and return ``{"run", "study", "result", "grok", "models",
    "claims", "reference", "lines", "figures", "cost"}`` (``models``: the pair, for a look
    inside). A resume is checked first; the text corpus and both models are loaded and
    checked before the run folder exists. ``models``: ``(model_a, model_b)`` already loaded.
    Offline (``p.aq.offline``) the stand-ins banner is printed first (``banner=False``: the
    caller printed it, :func:`standins_record`), results.json records ``"standins"`` and every
    verdict against the seed reads :data:`akira_nb.standins.NOT_COMPARABLE`."""
    from akira_nb.runs import Run

    start, cpu = time.perf_counter(), time.process_time()
    runtime.check_device("device", p.aq.device)
    record = standins_record(p, banner)  # the banner first, when offline
    log = log or (lambda line: None)
    stage = aq.Stages(p.aq.device)
    opening = dict(
        experiment=EXPERIMENT,
        name=name or run_name(p),
        config=p.to_dict(),
        resume=resume,
        root=root,
        may_change=MAY_CHANGE,
    )
    Run.resumable(**opening)  # a refused resume before the (long) loads
    texts, (model_a, model_b) = _load(p, stage, models)
    run = Run.open_or_create(**opening)
    for note in p.notes:
        log(f"note: {note}")
    result = aq.run_aq(
        p.aq, model_a, model_b, run, resume, progress, log=log, texts=texts, stages=stage
    )
    gk = None
    if p.grok is not None:
        with stage("grokking"):
            gk = run_grokking(p.grok, run=run, resume=resume, progress=progress)
        for line in grokking_lines(gk):
            log(line)
    for line in aq.stage_lines(result.stages):
        log(line)
    out = {"run": run, "study": p, "result": result, "grok": gk, "models": (model_a, model_b)}
    out["reference"] = reference_rows(result, p)
    out["claims"] = claims(out)
    out["lines"] = summary_lines(out)
    _log_tables(p, out, log)
    results = _results(p, out, record)
    run.write_results({**results, **cost(start, cpu)})  # kept should a figure fail
    out["figures"] = save_figures(run, out)
    out["cost"] = cost(start, cpu)
    run.write_results({**results, **out["cost"]})
    log(cost_line(out["cost"]))
    log(f"results and figures: {run.path}")
    return out


def standins_record(p: Study, banner: bool = True) -> dict | None:
    """Offline: the ``"standins"`` record of ``results.json`` (``{"banner", "replaced"}``,
    :func:`akira_nb.alignment.aq.offline_replacements`), printing the banner first unless
    ``banner=False``; None for a run on the real models."""
    if not p.aq.offline:
        return None
    replaced = aq.offline_replacements(p.aq)
    if banner:
        return standins.announce(replaced)
    return {"banner": standins.BANNER, "replaced": replaced}


def save_figures(run, out: dict) -> dict:
    """Every figure of the run into ``figures/``; returns ``{name: path}``."""
    from akira_nb.action_quanta import plots

    result, paths = out["result"], {}

    def save(name, fig):
        paths.update(run.save_figures({name: fig}))

    for kind, by in result.pairs.items():
        for key, pr in by.items():
            save(f"basic_{kind}_L{key}", plots.seed_figure(pr))
            save(f"ot_{kind}_L{key}", plots.ot_matches(pr))
        save(f"cka_{kind}", plots.cka_heatmap(*result.cka_matrix[kind], title=f"{kind} tokens"))
    save("universality", plots.universality(result))
    for method in ("basic", "ot", "procrustes"):
        for key, s in result.spectral.get(method, {}).items():
            if s["n_aq"] >= 2:  # a figure of AQ vs the rest needs AQ
                save(f"spectra_{method}_L{key}", plots.spectral_figure(s))
    if out.get("grok") is not None:
        save("grokking", plots.grokking_figure(out["grok"]))
    return paths


__all__ = [
    "cost",
    "cost_line",
    "reference_rows",
    "reference_table",
    "run_experiment",
    "run_name",
    "save_figures",
    "standins_record",
    "summary_lines",
]
