"""Experiment 000's claims: the reference's reported numbers (:data:`SEED_CLAIMS`, inventory
section 3.6: basic method, aligned method, universal overlap, spectra) and Gurnee et al.'s known
answer beside this run's, one function per claim, each row judged by
:func:`akira_nb.claims.judge` ("not comparable" when the run is not the reference's protocol:
:func:`comparability` says why), and the kit-summary section (:func:`kit_summary`).

Every count is read against the count expected by chance over the whole set of compared layer
pairs (:meth:`~akira_nb.alignment.aq.AQResult.chance_summary`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from akira_nb import standins
from akira_nb.action_quanta.presets import EXPERIMENT, TITLE
from akira_nb.alignment import aq
from akira_nb.alignment.models import PAIRS
from akira_nb.alignment.thresholds import MIN_NULL_REPLICATES as MIN_REPLICATES
from akira_nb.claims import Section, judge, offline

if TYPE_CHECKING:
    from akira_nb.action_quanta.presets import Study

# The reference's reported numbers (inventory section 3.6; gpt2 vs gpt2-medium, layer L of A vs
# layer L of B, 500 x 64 tokens, neurons truncated to 3072, seed 42). Printed beside what this
# kit measures; never used as a result.
SEED_CLAIMS = {
    "basic": {  # excess > 0.3 (count, %)
        "random": {3: (15, 0.5), 5: (13, 0.4), 7: (10, 0.3)},
        "text": {3: (2, 0.1), 5: (7, 0.2), 7: (5, 0.2)},
    },
    "basic_excess": {  # random tokens: mean, std, max, min of the excess (read from its PNGs)
        3: (0.0102, 0.0750, 0.7966, -0.5016),
        5: (0.0069, 0.0671, 0.7557, -0.8505),
        7: (0.0135, 0.0559, 0.6094, -0.2205),
    },
    "cka": {
        "random": {3: 0.7179, 5: 0.6853, 7: 0.5287},
        "text": {3: 0.4560, 5: 0.8036, 7: 0.7491},
    },
    "ot_above_half": {  # of the 100 highest-variance neurons of each model
        "random": {3: 17, 5: 12, 7: 3},
        "text": {3: 41, 5: 23, 7: 13},
    },
    "procrustes_error_random": {3: 0.8941, 5: 1.0027, 7: 1.0228},  # fitted and scored in-sample
    "procrustes_aq": {  # aligned corr > mean + 2 std (B's neurons 0..3071)
        "random": {3: 138, 5: 111, 7: 106},
        "text": {3: 118, 5: 103, 7: 93},
    },
    "procrustes_threshold": {
        "random": {3: 0.6322, 5: 0.6488, 7: 0.6030},
        "text": {3: 0.7985, 5: 0.7582, 7: 0.7275},
    },
    "universal": {3: 28, 5: 31, 7: 19},  # random AQ ∩ text AQ (Procrustes)
    "universal_chance": {3: 5.3, 5: 3.7, 7: 3.2},  # independent sets (inventory's calculation)
}
REFERENCE_PROTOCOL = {
    "model_a": "gpt2",
    "model_b": "gpt2-medium",
    "layers": [3, 5, 7],
    "layer_pairing": "index",
    "num_samples": 500,
    "seq_length": 64,
}
REFERENCE_DEFECTS = (
    "the reference truncated gpt2-medium to its first 3072 neurons (the kit keeps all 4096)",
    "the reference fitted and scored Procrustes on the same tokens (the kit scores held-out "
    "sequences)",
    "the reference counted pad tokens of its text inputs (the kit excludes BOS, pad and "
    "document separators)",
    "the reference took the spectra of A's neurons for indices of B's neurons (the kit takes "
    "each method's spectra from the model its indices name)",
    "the reference read its mean + 2 std counts as findings; the share that rule flags is set by "
    "the shape of the scores (about 2.3% of a Gaussian, 0% of bounded scores piled up near 1, "
    "up to about 5%), so the kit prints the token-shuffle null beside every count and the "
    "fixed-0.5 count beside it",
)
COUNT_FACTOR = 2.0  # a reported count "holds" within this factor either way
CKA_TOLERANCE = 0.1  # a reported CKA holds within +- this
GURNEE_RANGE = (1.0, 5.0)  # % universal neurons, Gurnee et al.
MIN_NULL_REPLICATES = MIN_REPLICATES  # fewer: a permutation p-value cannot reach 0.05
GURNEE_MIN_TOKENS = 1_000_000  # fewer text tokens are not comparable (Gurnee: 100M)


def comparability(p: Study) -> str | None:
    """None when ``p`` follows the reference's protocol (:data:`REFERENCE_PROTOCOL`), else why
    its numbers cannot be set beside the reference's."""
    c = p.aq
    why = ["offline stand-ins (random weights and the offline corpus)"] if c.offline else []
    if (c.model_a, c.model_b) != ("gpt2", "gpt2-medium"):
        why.append(f"models {c.model_a} vs {c.model_b} (the reference: gpt2 vs gpt2-medium)")
    missing = [v for v in REFERENCE_PROTOCOL["layers"] if v not in c.layers]
    if missing:
        why.append(f"layers {list(c.layers)} lack {missing}")
    if c.layer_pairing != "index":
        why.append(f"layer pairing {c.layer_pairing!r} (the reference: same index)")
    if (c.num_samples, c.seq_length) != (500, 64):
        why.append(f"{c.num_samples} x {c.seq_length} tokens (the reference: 500 x 64)")
    return "; ".join(why) or None


def pair_at(result, kind: str, layer: int):
    """The :class:`~akira_nb.alignment.aq.PairResult` of ``kind`` whose layer of A is ``layer``
    (None when not compared)."""
    for (la, _), pr in zip(result.layer_pairs, result.pairs.get(kind, {}).values()):
        if la == layer:
            return pr
    return None


def per_pair(result, kind: str, fn) -> str:
    """``"L0-0 x, L1-1 y"`` over the compared pairs of ``kind`` (``fn(pair) -> str | None``)."""
    parts = []
    for pr in result.pairs.get(kind, {}).values():
        value = fn(pr)
        if value is not None:
            parts.append(f"L{pr.key} {value}")
    return ", ".join(parts) or "not run"


def cka_text(pr) -> str:
    """``"0.860 (sample of 4032 tokens; all 4032 streamed: 0.861)"``."""
    c = pr.cka
    out = f"{c['linear']:.3f} (sample of {c['n_tokens']} tokens"
    if "linear_all_tokens" in c:
        out += f"; all {c['n_tokens_all']} streamed: {c['linear_all_tokens']:.3f}"
    return out + ")"


def count_short(m, rule, value) -> str:
    """``"82 (chance 70.4)"``: a method's count under a rule beside its chance count."""
    return f"{m.count(rule, value).count} (chance {m.chance(rule, value):.1f})"


def measured_summary(result: aq.AQResult, kind: str, method: str, rule, value) -> str:
    """``"L0-0 82, L1-1 70 (152 of 512 = 29.7%); 152 of 512 against 146.4 expected by chance:
    ..."`` over every compared pair (:meth:`~.aq.AQResult.chance_summary`)."""
    by = result.pairs.get(kind, {})
    if not by or any(method not in pr.methods for pr in by.values()):
        return "not run"
    parts = [
        f"L{pr.layer_a}-{pr.layer_b} {pr.methods[method].count(rule, value).count}"
        for pr in by.values()
    ]
    s = result.chance_summary(kind, method, rule, value)
    return (
        f"{', '.join(parts)} ({s['count']} of {s['total']} = {s['pct']:.1f}%); {aq.chance_text(s)}"
    )


def seed_total(result, kind, method, rule, value):
    """The count summed at the reference's layers 3 / 5 / 7 (None when one is missing)."""
    got = [pair_at(result, kind, v) for v in REFERENCE_PROTOCOL["layers"]]
    if any(g is None or method not in g.methods for g in got):
        return None
    return sum(g.methods[method].count(rule, value).count for g in got)


def _within(measured, claimed) -> bool:
    return claimed / COUNT_FACTOR <= measured <= claimed * COUNT_FACTOR


COUNT_RULE = (
    f"holds if the total at layers 3, 5, 7 is within {COUNT_FACTOR:g}x of the reported total "
    "(gpt2 vs gpt2-medium, 500 x 64 tokens; on another run's own numbers: the total over its "
    "compared layer pairs); the count expected by chance is printed beside"
)


def count_claim(result, kind, method, rule, value, claim, extra_rule, reported, why_not):
    """A reported AQ count at layers 3 / 5 / 7 beside this run's (:data:`COUNT_RULE`): under the
    reference's protocol the total at those layers, else the total over the compared pairs."""
    total = sum(reported.values())
    seed = seed_total(result, kind, method, rule, value)
    s = result.chance_summary(kind, method, rule, value)
    own = _within(s["count"], total) if s else None
    return judge(
        claim,
        COUNT_RULE + extra_rule,
        f"{' / '.join(map(str, reported.values()))} ({total})",
        measured_summary(result, kind, method, rule, value),
        own if why_not else (None if seed is None else _within(seed, total)),
        why_not=why_not,
        value=seed if seed is not None else (s["count"] if s else None),
        unit="neurons",
        unmeasurable=None if s else "not run",
    )


def basic_count_claim(result, kind: str, why_not):
    """The basic method's AQ (excess > 0.3) at layers 3 / 5 / 7, random or text tokens."""
    return count_claim(
        result,
        kind,
        "basic",
        "fixed",
        0.3,
        f"basic method, {kind} tokens: AQ (excess > 0.3) at layers 3 / 5 / 7",
        "",
        {k: c for k, (c, _) in SEED_CLAIMS["basic"][kind].items()},
        why_not,
    )


def procrustes_count_claim(result, why_not):
    """The aligned method's Procrustes AQ (mean + 2 std) at layers 3 / 5 / 7, random tokens."""
    return count_claim(
        result,
        "random",
        "procrustes",
        "statistical",
        2.0,
        "aligned method, random tokens: Procrustes AQ (mean + 2 std) at layers 3 / 5 / 7",
        "; the share mean + 2 std flags is set by the shape of the scores (about 2.3% of a "
        "Gaussian, anything from 0% to about 5%), whether or not anything corresponds",
        SEED_CLAIMS["procrustes_aq"]["random"],
        why_not,
    )


def cka_claim(result, kind: str, why_not):
    """Linear CKA at layers 3 / 5 / 7 within :data:`CKA_TOLERANCE` of the reported values."""
    reported = SEED_CLAIMS["cka"][kind]
    got = [pair_at(result, kind, v) for v in reported]
    holds = None
    if all(g is not None and g.cka for g in got):
        holds = all(abs(g.cka["linear"] - reported[g.layer_a]) <= CKA_TOLERANCE for g in got)
    by = {k: pr for k, pr in result.pairs.get(kind, {}).items() if "linear" in pr.cka}
    have = [pr.layer_a for pr in by.values()]
    measured, value = "not run", None
    if by:
        measured = (
            ", ".join(f"L{pr.layer_a}-{pr.layer_b} {cka_text(pr)}" for pr in by.values())
            + " (token-shuffled pair: "
            + ", ".join(f"{pr.cka['linear_null']:.3f}" for pr in by.values())
            + ")"
        )
        value = float(np.mean([pr.cka["linear"] for pr in by.values()]))
    return judge(
        f"aligned method, {kind} tokens: linear CKA at layers 3 / 5 / 7",
        f"holds if every layer is within +-{CKA_TOLERANCE:g} of the reported CKA (measured "
        "value: the mean over the compared layer pairs)",
        " / ".join(f"{v:.3f}" for v in reported.values()),
        measured,
        holds,
        why_not=why_not,
        value=value,
        unmeasurable=None
        if holds is not None
        else f"layers {have} of A, not the reported 3 / 5 / 7",
    )


def universal_claim(result, why_not):
    """Universal AQ (random ∩ text, Procrustes) above the paired null's chance overlap."""
    uni = result.universal.get("procrustes", {})
    holds, few = None, "not run"
    if uni:
        few = aq.too_few_replicates(min(u["n_null"] for u in uni.values()))
        holds = None if few else all(u["p_value"] < 0.05 for u in uni.values())
    return judge(
        "universal AQ (random ∩ text, Procrustes) exceed the overlap expected by chance",
        "holds if the overlap's p-value under the paired token-shuffle null is < 0.05 at every "
        "compared layer (the same shuffle procedure applied to both input types, each replicate "
        "thresholded by the same rule; p = (1 + #null overlaps >= observed) / (1 + replicates)); "
        f"not measurable with fewer than {MIN_NULL_REPLICATES} replicates (p cannot reach "
        "0.05); the hypergeometric number beside it is the independence bound, not the chance "
        "level; measured value: the overlap summed over the compared layers",
        "28 / 31 / 19 at layers 3 / 5 / 7 (chance 5.3 / 3.7 / 3.2, independent sets)",
        ", ".join(
            f"L{k} {u['observed']} (chance {u['chance']:.1f} from {u['n_null']} replicates, "
            + (f"p {u['p_value']:.2g}" if u["n_null"] >= MIN_NULL_REPLICATES else "no p-value")
            + f": {aq.universal_word(u)}; independence bound {u['independent_expected']:.1f})"
            for k, u in uni.items()
        )
        or "not run",
        holds,
        why_not=why_not,
        value=sum(u["observed"] for u in uni.values()) if uni else None,
        unit="neurons",
        unmeasurable=few.removeprefix("not measurable: ") if few else None,
    )


def spectral_claim(result, why_not):
    """Procrustes AQ neurons lower-frequency than the others in most tested layer pairs."""
    spec = result.spectral.get("procrustes", {})
    tested = [s for s in spec.values() if s["lower_frequency"] is not None]
    lower = sum(bool(s["lower_frequency"]) for s in tested)
    return judge(
        "AQ neurons live in low-frequency bands (7 of 11 layers confirm)",
        f"{aq.SPECTRAL_RULE}; Procrustes AQ (B's neurons, B's activations); holds if more than "
        "half of the tested layer pairs confirm (measured value: the layer pairs that confirm)",
        "7 of 11 layers (universal AQ; differences -0.0025 to -0.0145, no test)",
        f"{lower} of {len(tested)} tested layer pairs ({len(spec) - len(tested)} with too few AQ)"
        if spec
        else "not run",
        lower > len(tested) / 2 if tested else None,
        why_not=why_not,
        value=lower if spec else None,
        unit="layer pairs",
        unmeasurable=None if tested else "no layer pair has 2 AQ neurons to test",
    )


def table_claim(result, why_not):
    """The seed's interpretation table reads the basic method's random-token AQ % as weak."""
    s = result.chance_summary("random", "basic")
    measured, raw, holds = "not run", None, None
    if s is not None:
        raw = s["pct"]
        measured = f"{raw:.1f}% ({aq.interpret(raw)} on the seed's table); {aq.chance_text(s)}"
        if s["word"] == "above chance":
            measured += f": {aq.interpret(s['excess_pct'])} on the seed's table"
        holds = aq.interpret(raw) == "weak"
    return judge(
        "verdict of the basic method on random tokens (the seed's interpretation table)",
        aq.INTERPRETATION_RULE + "; holds if the raw % reads 'weak', as the reference's did",
        "WEAK (0.4% on average)",
        measured,
        holds,
        why_not=why_not,
        value=raw,
        unit="% of neurons",
    )


def _gurnee_why_not(result, p: Study) -> str | None:
    """Why the Gurnee claim is not comparable: offline, not a known-answer pair, or too few
    text tokens (None when it is)."""
    kind_of_pair = PAIRS[p.pair].kind if p.pair in PAIRS else "custom"
    gall = result.gurnee_all.get("text", {})
    n_text = min((g.get("n_tokens", p.aq.n_tokens) for g in gall.values()), default=0)
    if p.aq.offline:
        return standins.NOT_COMPARABLE
    if kind_of_pair != "known-answer":
        return f"the pair is {kind_of_pair}, not a known-answer pair"
    if n_text < GURNEE_MIN_TOKENS:
        return f"{n_text} text tokens (Gurnee et al.: 100M)"
    return None


def gurnee_claim(result, p: Study):
    """Gurnee et al.'s known answer: 1-5% of neurons universal across seeds."""
    gall = result.gurnee_all.get("text", {})
    gpct, measured = None, "not run"
    if gall:
        gpct = float(np.mean([g["pct"] for g in gall.values()]))
        measured = (
            ", ".join(f"L{la} {g['count']} of {g['n_neurons']}" for la, g in gall.items())
            + f" ({gpct:.1f}% of A's neurons, averaged over the compared layers of A)"
        )
        if "text" in result.pairs:
            measured += "; paired layer only, with its token-shuffle null: " + measured_summary(
                result, "text", "gurnee", "fixed", 0.5
            )
    return judge(
        "same architecture, different seeds: 1-5% of neurons are universal (Gurnee et al.)",
        "Gurnee et al.'s definition on text tokens (they measured on the Pile): per A neuron, its "
        "max correlation over every neuron of every layer of B minus the same max with each B "
        "layer Haar-rotated (the rotation baseline is the chance correction), universal above "
        "0.5; % of A's neurons averaged over the compared layers of A; holds within "
        f"{GURNEE_RANGE[0]:g}-{GURNEE_RANGE[1]:g}% (a known-answer pair, >= 1M text tokens); "
        "needs gurnee_all_layers",
        "1.26% (pythia-160m), 4.16% (GPT-2 small), 1.23% (GPT-2 medium)",
        measured,
        GURNEE_RANGE[0] <= gpct <= GURNEE_RANGE[1] if gpct is not None else None,
        why_not=_gurnee_why_not(result, p),
        value=gpct,
        unit="% of neurons",
    )


GROKKING_CLAIM = (
    "beyond the seed: OT-matched neurons of two grokked models share their key frequency "
    "more often than chance"
)


def grokking_claim(gk):
    """Beyond the seed: matched neurons of two grokked models share their key frequency."""
    if gk is None:
        return judge(
            GROKKING_CLAIM,
            "one-sided binomial p < 0.05 against chance",
            "(no seed claim)",
            "not run",
            None,
        )
    a = gk["agreement"]["well_explained"]
    ok = a["p_value"] is not None and a["p_value"] < 0.05 and a["rate"] > a["chance"]
    grokked = gk["grokked"]
    return judge(
        GROKKING_CLAIM,
        "among matched pairs whose key frequency explains > "
        f"{gk['config']['explained']:g} of both neurons' variance: one-sided binomial "
        "p < 0.05 against sum_k P_A(k) P_B(k); not comparable when a model did not grok "
        "(measured value: the share of those pairs that share their key frequency)",
        "(no seed claim: the expected answer of a ground truth)",
        f"{a['same']}/{a['n']} = {a['rate'] if a['rate'] is not None else float('nan'):.3f} "
        f"(chance {a['chance']:.3f}, p {a['p_value'] if a['p_value'] is not None else 1:.2g})",
        ok,
        why_not=None if grokked else "a model did not grok",
        value=a["rate"],
        unmeasurable=None
        if grokked
        else "a model did not grok (its key frequencies are no ground truth)",
    )


def claims(out: dict) -> list[dict]:
    """The reference's claims and Gurnee et al.'s known answer beside this run's numbers, each
    judged by :func:`akira_nb.claims.judge` (with ``measured_value`` and ``unit``, and
    ``computed_verdict`` beside "not comparable"). Offline, every verdict against the seed reads
    :data:`akira_nb.standins.NOT_COMPARABLE` (stand-ins measure the code path, never the
    models); the grokking ground truth uses no stand-in and keeps its verdict."""
    p, result, gk = out["study"], out["result"], out.get("grok")
    why_not = comparability(p)
    rows = [basic_count_claim(result, kind, why_not) for kind in ("random", "text")]
    rows += [cka_claim(result, kind, why_not) for kind in ("random", "text")]
    rows.append(procrustes_count_claim(result, why_not))
    rows.append(universal_claim(result, why_not))
    rows.append(spectral_claim(result, why_not))
    rows.append(table_claim(result, why_not))
    rows.append(gurnee_claim(result, p))
    rows.append(grokking_claim(gk))
    return offline(rows, keep=[GROKKING_CLAIM]) if p.aq.offline else rows


def baseline_lines(out: dict) -> list[str]:
    """The baselines beside every AQ count: the rotation baseline, the nulls, the chance
    overlap, the CKA of a token-shuffled pair."""
    result = out["result"]
    lines = []
    for kind, by in result.pairs.items():
        for pr in by.values():
            b = pr.methods["basic"]
            lines.append(
                f"{kind} L{pr.key}: rotation baseline of the index-matched corr: mean "
                f"{b.extra['baseline'].mean():+.3f}, spread {b.extra['baseline_spread']:.3f} over "
                f"{result.config.n_rotations} Haar rotations; basic AQ {b.main.count}, chance "
                f"{b.main_chance:.1f} (token-shuffle and neuron-permutation nulls); OT AQ "
                f"{pr.methods['ot'].main.count} vs token-shuffle {pr.methods['ot'].main_chance:.1f}"
                f"; CKA {pr.cka.get('linear', float('nan')):.3f} vs token-shuffled "
                f"{pr.cka.get('linear_null', float('nan')):.3f}"
            )
    for method, by in result.universal.items():
        for key, u in by.items():
            p = (
                f", p = {u['p_value']:.2g}"
                if u["n_null"] >= MIN_NULL_REPLICATES
                else ", no p-value"
            )
            lines.append(
                f"universal {method} L{key}: overlap {u['observed']} vs {u['chance']:.1f} "
                f"expected by chance (paired {u['null']} null of {u['n_null']} replicates{p}: "
                f"{aq.universal_word(u)}; independence bound {u['independent_expected']:.1f})"
            )
    gk = out.get("grok")
    if gk is not None:
        a = gk["agreement"]["well_explained"]
        lines.append(
            f"grokking: same key frequency {a['rate'] if a['rate'] is not None else 0:.3f} vs "
            f"chance {a['chance']:.3f} and token-shuffle null {gk['null_agreement_rate']:.3f}"
        )
    return lines


def kit_summary(out: dict) -> Section:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    p = out["study"]
    why_not = comparability(p)
    notes = [
        f"models {p.aq.model_a} vs {p.aq.model_b}, layer pairs {out['result'].layer_pairs} "
        f"({p.aq.layer_pairing}), {p.aq.num_samples} x {p.aq.seq_length} tokens per input type; "
        "full widths (no truncation)",
        *REFERENCE_DEFECTS,
        *p.notes,
    ]
    if why_not:
        notes.insert(0, f"not comparable with the reference's numbers: {why_not}")
    gk = out.get("grok")
    if gk is not None and not gk["grokked"]:
        notes.append("a grokking model did not grok: its key frequencies are no ground truth")
    return {
        "experiment": EXPERIMENT,
        "title": TITLE,
        "size": p.size,
        "run": str(out["run"].path),
        "claims": out["claims"],
        "baselines": baseline_lines(out),
        "notes": notes,
    }


__all__ = [
    "CKA_TOLERANCE",
    "COUNT_FACTOR",
    "COUNT_RULE",
    "GURNEE_RANGE",
    "REFERENCE_DEFECTS",
    "REFERENCE_PROTOCOL",
    "SEED_CLAIMS",
    "baseline_lines",
    "basic_count_claim",
    "cka_claim",
    "claims",
    "comparability",
    "gurnee_claim",
    "grokking_claim",
    "kit_summary",
    "measured_summary",
    "procrustes_count_claim",
    "spectral_claim",
    "table_claim",
    "universal_claim",
]
