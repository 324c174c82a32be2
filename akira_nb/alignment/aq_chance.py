"""AQ counts read against chance: the seed's interpretation table (:func:`interpret`), a count
beside its chance level (:func:`chance_text`), and the universal overlap (random-token AQ ∩ text
AQ) against its paired null (:func:`universal_overlap`, :func:`universal_word`).
"""

from __future__ import annotations

import math

import numpy as np

from akira_nb.alignment.thresholds import (
    AT_CHANCE_SDS,
    CHANCE_RULE,
    null_count_variance,
    overlap_null,
    paired_null_overlap,
    too_few_replicates,
)
from akira_nb.runtime import check_real

# The null whose replicates give the universal overlap's chance level, per method: the basic
# method's neuron permutations of B (the same permutations in both input types); the others'
# token shuffles (1 streamed replicate for gurnee and ot, ``n_shuffles`` Procrustes fits).
UNIVERSAL_NULL = {
    "basic": "neuron-permutation",
    "gurnee": "token-shuffle",
    "ot": "token-shuffle",
    "procrustes": "token-shuffle",
}


# The seed's interpretation table ("Interpreting Results"), as (lower bound %, word, meaning).
INTERPRETATION = (
    (20.0, "very strong", "Action Quanta likely exist as discrete units"),
    (10.0, "strong", "AQ candidates worth investigating further"),
    (5.0, "moderate", "may need a lower threshold or different models"),
    (-math.inf, "weak", "AQ may be emergent (not discrete)"),
)
INTERPRETATION_RULE = (
    "the seed's table on the AQ % of neurons: > 20% very strong, 10-20% strong, 5-10% moderate, "
    "< 5% weak; applied, as the seed did, to the raw %, and to the % above chance: the count "
    "over every compared layer pair minus the count expected by chance over the same pairs "
    "(per pair the largest mean count of the method's nulls above the same threshold), "
    f"negative when the count is below chance; {CHANCE_RULE}; a count at or below chance "
    "reads so, not a word of the table; where a rule derived from the scores' shape (mean + k "
    "std, percentile) flags nothing in the data nor the null (its threshold above every score) "
    "no verdict is read from it"
)
FLAGS_NOTHING = "the rule flags nothing here (threshold above every score)"


def interpret(pct: float) -> str:
    """The seed's interpretation word for an AQ percentage (see :data:`INTERPRETATION`)."""
    pct = check_real("pct", pct)
    for low, word, _ in INTERPRETATION:
        if pct > low:
            return word
    return "weak"


def replicates(n: int) -> str:
    """``"1 replicate"``, ``"5 replicates"``."""
    return f"{n} replicate" + ("" if n == 1 else "s")


def universal_overlap(a, b) -> dict:
    """The universal AQ of one method and layer pair: the random-token AQ set ``a`` ∩ the text AQ
    set ``b`` (the same model's neurons), beside its chance level from the paired null
    (:data:`UNIVERSAL_NULL`, :func:`~.thresholds.paired_null_overlap`: replicate ``i`` of
    both input types made by the same null, each thresholded by the method's main rule) and,
    labelled as such, the independence bound (hypergeometric, :func:`~.thresholds.overlap_null`),
    which ignores that per-neuron properties carry over between input types."""
    name = UNIVERSAL_NULL[a.name]
    if a.name == "basic" and not np.array_equal(a.extra["null_perm"], b.extra["null_perm"]):
        raise ValueError("the basic method's neuron permutations differ between the input types")
    rule, value = a.rules[0]
    indices = sorted(set(a.aq_indices.tolist()) & set(b.aq_indices.tolist()))
    paired = paired_null_overlap(a.nulls[name], b.nulls[name], len(indices), rule, value)
    independent = overlap_null(len(a.scores), a.aq_indices, b.aq_indices)
    out = {
        "observed": len(indices),
        "n_a": independent["n_a"],
        "n_b": independent["n_b"],
        "n_total": independent["n_total"],
        "rule": a.main.rule_text,
        "null": name,
        "n_null": paired["n_null"],
        "chance": paired["expected"],
        "p_value": paired["p_value"],
        "null_overlaps": paired["null_overlaps"],
        "independent_expected": independent["expected"],
        "independent_p_value": independent["p_value"],
        "indices": indices,
        "model": a.model,
    }
    out["verdict"] = universal_word(out)
    return out


def chance_text(s: dict) -> str:
    """``"149 of 512 against 155.9 expected by chance: -6.9 (-1.3% of neurons), at chance (2
    sd = 21.0)"``: one :meth:`AQResult.chance_summary`."""
    return (
        f"{s['count']} of {s['total']} against {s['chance']:.1f} expected by chance: "
        f"{s['excess']:+.1f} ({s['excess_pct']:+.1f}% of neurons), {s['word']} "
        f"({AT_CHANCE_SDS:g} sd = {AT_CHANCE_SDS * s['sd']:.1f})"
    )


def universal_word(u: dict) -> str:
    """The universal overlap against its paired null: ``"not measurable: null of N
    replicates (needs >= 19)"`` below :data:`~.thresholds.MIN_NULL_REPLICATES` replicates
    (its p-value cannot reach 0.05); else ``"above chance"`` when p < 0.05, ``"below chance"``
    when the overlap lies more than 2 sd of the null overlaps below their mean, else
    ``"at chance"``."""
    few = too_few_replicates(u["n_null"])
    if few:
        return few
    if u["p_value"] < 0.05:
        return "above chance"
    sd = math.sqrt(null_count_variance(u["null_overlaps"], u["n_total"]))
    return "below chance" if u["observed"] < u["chance"] - AT_CHANCE_SDS * sd else "at chance"


def universal_line(method: str, key: str, u: dict) -> str:
    """One printable line of :func:`universal_overlap`'s result."""
    word = universal_word(u)
    reps = replicates(u["n_null"])
    null = (
        f"({reps}): {word}, no p-value"
        if word.startswith("not measurable")
        else (f"({reps}, p = {u['p_value']:.2g}): {word}")
    )
    return (
        f"universal {method} [{u['model']}'s neurons] layers {key}: {u['observed']} in both "
        f"(random {u['n_a']}, text {u['n_b']} of {u['n_total']}; {u['rule']}); chance "
        f"{u['chance']:.1f} from the paired {u['null']} null {null}; independence bound "
        f"(hypergeometric, ignores per-neuron properties): {u['independent_expected']:.1f}, "
        f"p = {u['independent_p_value']:.2g}"
    )


__all__ = [
    "FLAGS_NOTHING",
    "INTERPRETATION",
    "INTERPRETATION_RULE",
    "UNIVERSAL_NULL",
    "chance_text",
    "interpret",
    "replicates",
    "universal_line",
    "universal_overlap",
    "universal_word",
]
