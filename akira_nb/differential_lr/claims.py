"""013's claims: the seed's hypotheses H1-H4 (:data:`SEED_CLAIMS`), one function each, judged
by the kit's one verdict rule (:func:`akira_nb.claims.judge`), the recommendation, the seed's
results template and this experiment's section of the kit summary (:func:`kit_summary`).

Every comparison is paired (same seeds, same data order) and made between the tuned arms at the
longest budget: the differential arm (``band``) against the uniform control (``band_geomean``),
each at the best LR of its own sweep. An arm that did not learn (:func:`.evaluate.learned`)
judges nothing ("not measurable: arm X did not learn"); below the seed's scale
(:func:`comparability`) every verdict is "not comparable", the computed one beside it. Each
claim row also keeps ``key``, ``name``, ``detail`` and ``seed_verdict``: the seed's own words
(SUPPORTED / NOT SUPPORTED / "not run" / "not measurable: ...").
"""

from __future__ import annotations

import math

import numpy as np

from akira_nb.claims import Section, judge, offline
from akira_nb.differential_lr import evaluate as ev
from akira_nb.differential_lr.presets import EXPERIMENT, TITLE
from akira_nb.lr_sweep import LEARN_MARGIN

CONTROL = "band_geomean"
TREATMENT = "band"
# the seed's predictions: (hypothesis, claim, threshold)
SEED_CLAIMS = {
    "H1": ("faster learning", "Differential LR: 20% faster convergence (steps to target)", 0.20),
    "H2": ("better generalization", "Differential LR: 5% better test loss", 0.05),
    "H3": ("more stable", "Differential LR: 30% less loss variance", 0.30),
    "H4": ("rates match", "Actual weight changes: within 2x of prescribed ratios", 2.0),
}
# the seed's scale: the 026/7+1 model on a real corpus, >= 3 seeds, >= 1,000 steps
MIN_SEEDS, MIN_STEPS = 3, 1000
JUDGED = (ev.SUPPORTED, ev.NOT_SUPPORTED)  # the seed's words for a claim its rule decided
NOT_RUN = "not run"
UNITS = {
    "H1": "x",
    "H2": "% test loss vs uniform",
    "H3": "% variance vs uniform",
    "H4": "x off (worst band)",
}
SIGNIFICANT = 0.05  # a p below it is called significant in the prose (never judged)


def comparability(plan) -> str | None:
    """Why this study is below the seed's scale (None when it is not)."""
    b, why = plan.base, []
    if b.offline:
        why.append("offline stand-ins (the kit's offline corpus and a stand-in tokenizer)")
    if b.preset.startswith("tiny"):
        bc = b.band_config()
        why.append(f"the {b.preset} model ({bc.n_layers} layers, {bc.d_model} wide)")
    if b.dataset == "offline":
        why.append("the offline byte corpus")
    if len(plan.seeds) < MIN_SEEDS:
        why.append(f"{len(plan.seeds)} seed(s) < {MIN_SEEDS}")
    if b.total_steps < MIN_STEPS:
        why.append(f"{b.total_steps} steps < {MIN_STEPS}")
    return ", ".join(why) or None


def blocked(learn: dict, arms) -> tuple[str, str] | None:
    """``("arm X did not learn", the losses in words)`` when an arm of ``arms`` did not learn
    (what makes a claim "not measurable"); else None."""
    bad = [a for a in arms if a in learn and not learn[a]["ok"]]
    if not bad:
        return None
    why = f"arm {', '.join(bad)} did not learn"
    return why, "; ".join(f"arm {a} {learn[a]['line']}" for a in bad)


# ----------------------------------------------------------------------------- claims


def fmt(ms, spec=".4f") -> str:
    m, s = ms
    return f"{m:{spec}} +- {s:{spec}}" if not math.isnan(s) else f"{m:{spec}}"


SPREAD = (
    " (mean over seeds) AND it is larger than the seed-to-seed spread: mean paired difference > "
    "the std of the paired differences (same seeds, same data order); the paired t-test p is "
    "printed beside it with the direction of the difference, not judged"
)
TUNED = (
    "; both arms at their own tuned LR (the best of their sweep) at the longest budget, and "
    f"neither judged unless both learned (final val loss at least {LEARN_MARGIN:g} nats below the"
    " unigram loss at every seed)"
)


def rules(plan) -> dict:
    """The rule of each hypothesis, in words."""
    return {
        "H1": "SUPPORTED when the differential arm needs at least 20% fewer steps to the target "
        "than the uniform control (speedup = control / differential steps >= 1.25x) and "
        "reaches the target at every seed" + SPREAD + TUNED,
        "H2": "SUPPORTED when the differential arm's test loss is at least 5% lower than the "
        "uniform control's" + SPREAD + TUNED,
        "H3": "SUPPORTED when the differential arm's train-loss variance is at least 30% lower "
        "than the uniform control's" + SPREAD + TUNED + f". Variance: over the last "
        f"{plan.window_fraction:.0%} of the steps (never the warm-up), half the variance of the "
        "per-step loss's first differences (the step-to-step noise; a trend, straight or "
        "bending, adds next to nothing). Spikes (> 2x the running median) are reported beside "
        "it, not judged: the seed's H3 claims less variance, and a count of rare events over a "
        "few seeds is too coarse to decide it",
        "H4": "SUPPORTED when for every band b > 0 of the differential arm (at its tuned LR: the "
        "ratios are the prescribed ones), the median over intervals of (||dW_b||/||W_b||) / "
        "(||dW_0||/||W_0||), divided by lr_b / lr_0, lies within 2x (|mean log2 factor| + its "
        "std over seeds <= 1); not judged unless the differential arm learned",
    }


def direction(comp: dict, better: str, worse: str) -> str:
    """The paired difference's direction with its p: "differential slower, paired t-test p =
    0.018" (``better`` / ``worse``: the words for an improvement / a loss)."""
    word = better if comp["mean"] > 0 else worse if comp["mean"] < 0 else "no different"
    p = comp["p"]
    sig = ""
    if not math.isnan(p) and p < SIGNIFICANT:
        sig = ", significant" if comp["mean"] > 0 else ", significant, against the claim"
    return (
        f"differential {word}, paired t-test p = {p:.3g}{sig}; paired improvement "
        f"{comp['mean']:.4g} +- {comp['std']:.4g} over {comp['n']} seeds"
    )


def _h1(out: dict) -> tuple[str, str, float, dict]:
    """H1's verdict, prose, speedup and detail."""
    t, c = out["measures"][TREATMENT], out["measures"][CONTROL]
    budget = budget_of(out)
    ts_raw = [m["steps_to_target"] for m in t]
    ts, cs = ev.censored(ts_raw, budget), ev.censored([m["steps_to_target"] for m in c], budget)
    comp = ev.paired(cs, ts)
    reaches_every_seed = all(s is not None for s in ts_raw)
    word = ev.verdict(comp, SEED_CLAIMS["H1"][2]) if reaches_every_seed else ev.NOT_SUPPORTED
    speedup = float(np.mean(cs) / np.mean(ts)) if np.mean(ts) > 0 else math.nan
    rel = comp["relative"]
    measured = (
        f"steps to val loss {out['target']:.4f}: differential {fmt(ev.mean_std(ts), '.1f')}, "
        f"uniform {fmt(ev.mean_std(cs), '.1f')} (a seed that never reaches the target counts as "
        f"the budget, {budget}; the differential arm never reached it at "
        f"{len(ts) - sum(s is not None for s in ts_raw)} of {len(ts)} seeds); speedup "
        f"{speedup:.2f}x: the differential arm needs {abs(rel):.1%} "
        f"{'fewer' if rel >= 0 else 'more'} steps; {direction(comp, 'faster', 'slower')}"
    )
    return word, measured, speedup, {**comp, "speedup": speedup, "every_seed": reaches_every_seed}


def _h23(key: str, out: dict) -> tuple[str, str, float, dict]:
    """H2's (test loss) or H3's (variance) verdict, prose, change in % and detail."""
    field_, what = ("test_loss", "test loss") if key == "H2" else ("variance", "variance")
    t, c = out["measures"][TREATMENT], out["measures"][CONTROL]
    tv, cv = [m[field_] for m in t], [m[field_] for m in c]
    comp = ev.paired(cv, tv)
    change = -100 * comp["relative"]  # the differential arm's, relative to the control's
    spec = ".4f" if key == "H2" else ".3g"
    less, more = ("lower", "higher") if key == "H2" else ("less", "more")
    measured = (
        f"{'test loss' if key == 'H2' else 'last-window loss variance'}: differential "
        f"{fmt(ev.mean_std(tv), spec)}, uniform {fmt(ev.mean_std(cv), spec)}: the differential "
        f"arm's {what} is {abs(change):.1f}% {less if change <= 0 else more}; "
        f"{direction(comp, f'{less} {what}', f'{more} {what}')}"
    )
    return ev.verdict(comp, SEED_CLAIMS[key][2]), measured, change, comp


def budget_of(out: dict) -> int:
    """The budget (steps) the hypotheses are judged at: the longest."""
    return int(out.get("budget_steps") or out["study"].base.total_steps)


def sides(out: dict, arms=(TREATMENT, CONTROL)) -> str:
    """Which budget and LR each side of H1-H4 had."""
    tuned = out.get("tuned", {}).get(budget_of(out), {})
    labels = {TREATMENT: "differential", CONTROL: "uniform"}
    parts = []
    for arm, label in ((a, labels[a]) for a in arms):
        t = tuned.get(arm)
        parts.append(
            f"{label} ({arm}) at x{t['mult']:.3g} of its prescribed LRs (geometric-mean LR "
            f"{t['lr']:.3g})"
            if t
            else f"{label} ({arm}) at its prescribed LRs"
        )
    return f"at {budget_of(out)} steps: " + ", ".join(parts)


def _h4(out: dict) -> tuple[str, str, float, dict]:
    """H4's verdict, prose, worst band (x off its prescribed ratio, with its spread) and the
    per-band factors."""
    rates = [m["rates"] for m in out["measures"][TREATMENT]]
    word, per_band = ev.rate_verdict(rates)
    worst = max(
        2.0 ** (abs(v["mean_log2"]) + (0.0 if math.isnan(v["std_log2"]) else v["std_log2"]))
        for v in per_band.values()
    )
    measured = (
        "factors (measured / prescribed ratio, geometric mean over seeds): "
        + ", ".join(f"{k} {v['factor']:.3g}" for k, v in per_band.items())
        + f"; the worst band is {worst:.3g}x off its prescribed ratio (with its spread)"
    )
    return word, measured, worst, per_band


def _judge(key: str, out: dict, learn: dict, arms, missing: str | None, measure) -> dict:
    """One hypothesis's row through :func:`akira_nb.claims.judge`: "not run" when ``missing``
    says what was not run; else ``measure(out)`` (the seed's word, prose, value, detail) on
    ``arms`` at their tuned LRs, not judged when one of them did not learn, and "not
    comparable" below the seed's scale."""
    plan = out["study"]
    name, claim, _ = SEED_CLAIMS[key]
    texts = dict(
        claim=f"{key} ({name}): {claim}",
        rule=rules(plan)[key],
        claimed=claim.split(": ", 1)[-1],
        key=key,
        name=name,
    )
    if missing:
        return judge(
            **texts, measured=f"{NOT_RUN}: {missing}", holds=None, seed_verdict=NOT_RUN, detail=None
        )
    word, measured, value, detail = measure(out)
    measured = f"{sides(out, arms)}; {measured}"
    stop = blocked(learn, arms)
    if stop:
        word, measured = f"not measurable: {stop[0]}", f"{stop[1]}; not judged; {measured}"
    return judge(
        **texts,
        measured=measured,
        holds=None if stop else word == ev.SUPPORTED,
        why_not=comparability(plan),
        value=value,
        unit=UNITS[key],
        unmeasurable=stop[0] if stop else None,
        seed_verdict=word,
        detail=detail,
    )


def _both_missing(out: dict) -> str | None:
    have = TREATMENT in out["measures"] and CONTROL in out["measures"]
    return None if have else "band and band_geomean not both run"


def h1_claim(out: dict, learn: dict) -> dict:
    """H1 (faster learning): steps to the target, differential against uniform."""
    return _judge("H1", out, learn, (TREATMENT, CONTROL), _both_missing(out), _h1)


def h2_claim(out: dict, learn: dict) -> dict:
    """H2 (better generalization): the test loss, differential against uniform."""
    return _judge(
        "H2", out, learn, (TREATMENT, CONTROL), _both_missing(out), lambda o: _h23("H2", o)
    )


def h3_claim(out: dict, learn: dict) -> dict:
    """H3 (more stable): the last window's train-loss variance, differential against uniform."""
    return _judge(
        "H3", out, learn, (TREATMENT, CONTROL), _both_missing(out), lambda o: _h23("H3", o)
    )


def h4_claim(out: dict, learn: dict) -> dict:
    """H4 (rates match): the differential arm's per-band weight change against its prescribed
    ratios."""
    rates = [m.get("rates") for m in out["measures"].get(TREATMENT, [])]
    missing = None
    if not rates or any(r is None for r in rates):
        missing = "no weight-change monitor on the band arm"
    return _judge("H4", out, learn, (TREATMENT,), missing, _h4)


def claims(out: dict) -> list[dict]:
    """H1-H4 of ``out`` (``study``, ``measures``: ``{arm: [per-seed measures]}`` of the tuned
    arms at the longest budget, ``target``, ``unigram``; ``tuned`` / ``budget_steps`` when
    known, for the text). H1-H3 are measured even when an arm did not learn, but then not
    judged."""
    learn = ev.learning(out["measures"], out["unigram"])
    rows = [h(out, learn) for h in (h1_claim, h2_claim, h3_claim, h4_claim)]
    return offline(rows) if out["study"].base.offline else rows


# ----------------------------------------------------------------------------- recommendation


def recommendation(out: dict) -> dict:
    """Differential LR is RECOMMENDED when H1 or H2 is SUPPORTED and the tuned differential
    arm's mean final val loss (every seed, longest budget) is no worse than the tuned uniform
    control's; not judged when either did not learn."""
    by = {c["key"]: c["seed_verdict"] for c in out["claims"]}
    stats = out["stats"]
    rule = (
        "RECOMMENDED when H1 or H2 is SUPPORTED and the differential arm's mean final "
        "validation loss is <= the uniform control's (both at their tuned LR, at the longest "
        "budget, mean over every seed: the tuned points of the sweep figure)"
    )
    stop = next((w for w in by.values() if w.startswith("not measurable")), None)
    if TREATMENT not in stats or CONTROL not in stats:
        word, detail = "NOT JUDGED", "band and band_geomean not both run"
    elif stop:
        word, detail = "NOT JUDGED", stop
    else:
        d, u = stats[TREATMENT]["final_val_loss"][0], stats[CONTROL]["final_val_loss"][0]
        ok = ev.SUPPORTED in (by.get("H1"), by.get("H2")) and d <= u
        word = "RECOMMENDED" if ok else "NOT RECOMMENDED"
        detail = (
            f"H1 {by.get('H1')}, H2 {by.get('H2')}; {sides(out)}: differential val loss "
            f"{d:.4f} vs uniform {u:.4f} (mean over {stats[TREATMENT]['seeds']} seeds)"
        )
    line = (
        f"Differential LR is {word}." if word != "NOT JUDGED" else "Differential LR is not judged."
    )
    return {"word": word, "rule": rule, "detail": detail, "line": line}


# ----------------------------------------------------------------------------- the template


def template(out: dict) -> str:
    """The seed's results template (section 4) and conclusion (section 5), filled in from the
    claims and the arm statistics (no number computed twice)."""
    c = {x["key"]: x for x in out["claims"]}
    lines = ["Results (013 section 4, measured)", f"({sides(out)})", ""]
    lines += _template_measures(out, c)
    h4 = c.get("H4")
    if not h4 or h4["seed_verdict"] == NOT_RUN:
        match = "not measured" + (f" ({h4['measured']})" if h4 else "")
    elif h4["seed_verdict"] in JUDGED:
        match = ("YES" if h4["seed_verdict"] == ev.SUPPORTED else "NO") + f" ({h4['measured']})"
    else:
        match = h4["seed_verdict"]
    lines += [f"Weight change ratios match prescribed: {match}", ""]
    lines += ["Conclusion (013 section 5)", ""]
    for key in ("H1", "H2", "H3", "H4"):
        if key in c:
            lines.append(h_line(c[key]))
            lines.append(f"    rule: {c[key]['rule']}")
    why = comparability(out["study"])
    if why:
        lines.append(f"(not comparable with the seed's scale: {why}; computed all the same)")
    r = out["recommendation"]
    lines += ["", r["line"], f"    rule: {r['rule']}", f"    {r['detail']}"]
    return "\n".join(lines)


def h_line(c: dict) -> str:
    """A hypothesis in one line: its verdict and the direction of the difference with its p."""
    d = c["detail"]
    extra = ""
    if d and "p" in d and c["seed_verdict"] in JUDGED:
        extra = f" ({direction(d, *DIRECTION_WORDS[c['key']]).split(';')[0]})"
    return f"{c['key']} ({c['name']}): {c['seed_verdict']}{extra}"


DIRECTION_WORDS = {
    "H1": ("faster", "slower"),
    "H2": ("lower test loss", "higher test loss"),
    "H3": ("less variance", "more variance"),
}


def _template_measures(out: dict, c: dict) -> list[str]:
    st = out["stats"]
    if TREATMENT not in st or CONTROL not in st:
        return []
    d, u = st[TREATMENT], st[CONTROL]
    h1, h2 = c.get("H1", {}), c.get("H2", {})

    def unreached(r):
        return f" ({r['unreached']} seed(s) never reached it)" if r["unreached"] else ""

    speed = h1.get("measured_value")
    change = h2.get("measured_value")
    return [
        f"Convergence speed (steps to val loss {out['target']:.4f}; {out['target_rule']}):",
        f"- Differential: {fmt(d['steps_to_target'], '.1f')} steps to target{unreached(d)}",
        f"- Uniform: {fmt(u['steps_to_target'], '.1f')} steps to target{unreached(u)}",
        "- Speedup (uniform / differential steps; a seed that never reached it counts as the "
        f"budget): {'n/a' if speed is None else f'{speed:.2f}x'} (H1: {h1.get('seed_verdict')})",
        "",
        "Final test loss:",
        f"- Differential: {fmt(d['test_loss'])}",
        f"- Uniform: {fmt(u['test_loss'])}",
        "- Differential vs uniform: "
        + ("n/a" if change is None else f"{abs(change):.1f}% {'higher' if change > 0 else 'lower'}")
        + f" test loss (H2: {h2.get('seed_verdict')})",
        "",
        "Stability (train-loss variance over the last window: half that of its first differences):",
        f"- Differential: {fmt(d['variance'], '.3g')} (spikes {fmt(d['spikes'], '.1f')})",
        f"- Uniform: {fmt(u['variance'], '.3g')} (spikes {fmt(u['spikes'], '.1f')})",
        "",
    ]


# ----------------------------------------------------------------------------- kit summary


KIT_KEYS = ("claim", "claimed", "measured", "rule", "verdict", "measured_value", "unit")


def kit_summary(out: dict) -> Section:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    plan = out["study"]
    why = comparability(plan)
    notes = [
        plan.describe(),
        f"target: {out['target']:.4f} ({out['target_rule']})",
        out["recommendation"]["line"] + f" ({out['recommendation']['detail']})",
        f"CPU time of the run: {out['cpu_seconds']:.0f} CPU-s (this process, every thread)",
    ]
    if why:
        notes.insert(0, f"not comparable with the seed's scale: {why}")
    tuned = out["tuned"][plan.longest]
    return {
        "experiment": EXPERIMENT,
        "title": TITLE,
        "size": plan.size,
        "run": str(out["run"].path),
        "claims": [
            {k: c[k] for k in KIT_KEYS}
            | ({"computed_verdict": c["computed_verdict"]} if "computed_verdict" in c else {})
            for c in out["claims"]
        ],
        "baselines": [
            f"unigram cross-entropy: {out['unigram']:.4f} (val), {out['unigram_test']:.4f} "
            "(test) nats/token",
            f"tuned at {plan.longest} steps: "
            + ", ".join(
                f"{arm} x{r['mult']:.3g} (LR {r['lr']:.3g}) val {r['final_val_loss'][0]:.4f}"
                + ("" if r["learned"] else " (did not learn)")
                for arm, r in tuned.items()
            ),
        ],
        "notes": notes,
    }


__all__ = [
    "CONTROL",
    "LEARN_MARGIN",
    "MIN_SEEDS",
    "MIN_STEPS",
    "SEED_CLAIMS",
    "TREATMENT",
    "blocked",
    "claims",
    "comparability",
    "h1_claim",
    "h2_claim",
    "h3_claim",
    "h4_claim",
    "kit_summary",
    "recommendation",
    "rules",
    "template",
]
