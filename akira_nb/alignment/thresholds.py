"""Threshold rules for calling a neuron an AQ candidate, and the counts expected by chance.

A score is one number per neuron; a rule (:data:`RULES`) turns the scores into a threshold and a
neuron is flagged when its score is strictly above it: ``"statistical"`` (``mean + k std``, the
reference's), ``"percentile"`` or ``"fixed"``. The share the first two flag is set by the shape
of the scores, whether or not anything corresponds, so every count is printed beside its
permutation null: B's token rows shuffled against A's destroy every correspondence, and
:func:`count_with_null` counts the null scores above the same threshold (and what the rule flags
when re-applied to the null). In memory :func:`permutation_null` permutes all of B's rows;
streamed, :class:`ShuffledStream` permutes them within each batch (seeded by the batch number,
so a resumed stream draws the same permutations). A threshold above every score says so
(:attr:`AQCount.threshold_above_every_score`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from akira_nb.alignment.choices import RULES
from akira_nb.runtime import check_int, check_real

DEFAULT_VALUES = {"statistical": 2.0, "percentile": 95.0, "fixed": 0.3}
FLAGS_NOTHING = "the rule flags nothing here"
RULE_TEXT = {
    "statistical": "mean + {value:g} std",
    "percentile": "{value:g}th percentile",
    "fixed": "fixed {value:g}",
}
# A permutation p-value cannot go below 1 / (1 + replicates): fewer than 19 never reach 0.05.
MIN_NULL_REPLICATES = 19
AT_CHANCE_SDS = 2.0  # a count within this many sd of its chance count reads "at chance"
CHANCE_RULE = (
    "a count reads 'at chance' when it lies within 2 sd of the count expected by chance, "
    "'above' / 'below chance' beyond; chance = the null's mean count above the same threshold "
    "(summed over layer pairs, as the counts are); sd^2 = v (1 + 1/R) summed over layer pairs, "
    "v the larger of the R null replicates' variance, the binomial n q (1 - q) (q = chance / n "
    "of n neurons) and 1 (so 1 or 2 neurons against a null of 0 are no evidence)"
)


def _scores(name: str, scores) -> np.ndarray:
    s = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=float)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of per-neuron scores")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return s


# the value each rule accepts: (low, high, low_open), and what it means
VALUE_RANGES = {"statistical": (0.0, None, True), "percentile": (0.0, 100.0, False)}
VALUE_MEANING = {
    "statistical": "k of mean + k std, k > 0",
    "percentile": "a percentile in [0, 100]",
    "fixed": "the threshold itself",
}


def check_rule(
    rule: str, value=None, rule_name: str = "rule", value_name: str = "value"
) -> tuple[str, float]:
    """The rule and its value (the rule's default when ``value`` is None), validated: the
    statistical rule's k > 0 (k <= 0 puts the threshold at or below the mean: it flags about
    half the neurons or more, whatever they are), the percentile in [0, 100], a finite fixed
    threshold. ``rule_name`` / ``value_name``: the names the error gives them (the caller's
    parameters, e.g. ``threshold_method`` / ``threshold_value``)."""
    if rule not in RULES:
        raise ValueError(
            f"{rule_name}={rule!r} is not allowed; choose one of {list(RULES)} (threshold rules)"
        )
    if value is None:
        value = DEFAULT_VALUES[rule]
    low, high, low_open = VALUE_RANGES.get(rule, (None, None, False))
    try:
        return rule, check_real(value_name, value, low, high, low_open=low_open)
    except ValueError as exc:
        raise ValueError(f"{exc} for the {rule} rule ({VALUE_MEANING[rule]})") from None


def threshold_value(scores, rule: str = "statistical", value: float | None = None) -> float:
    """The threshold ``rule`` gives for ``scores`` (see the module docstring)."""
    rule, value = check_rule(rule, value)
    s = _scores("scores", scores)
    if rule == "statistical":
        return float(s.mean() + value * s.std())
    if rule == "percentile":
        return float(np.percentile(s, value))
    return value


def apply_threshold(scores, rule: str = "statistical", value: float | None = None):
    """``(mask, threshold)``: which scores lie strictly above the rule's threshold."""
    t = threshold_value(scores, rule, value)
    return _scores("scores", scores) > t, t


# --------------------------------------------------------------------------------------- nulls
def _perm(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=generator)


def permute_rows(x, generator: torch.Generator | None = None, perm=None):
    """``x`` with its token rows permuted (numpy, torch, or a dict of layers sharing one
    permutation). ``perm`` fixes the permutation; else it is drawn from ``generator``."""
    if isinstance(x, Mapping):
        sizes = {len(v) for v in x.values()}
        if len(sizes) != 1:
            raise ValueError(f"the layers have different token counts {sorted(sizes)}")
        if perm is None:
            perm = _perm(sizes.pop(), generator or torch.Generator())
        return {k: permute_rows(v, perm=perm) for k, v in x.items()}
    n = len(x)
    if perm is None:
        perm = _perm(n, generator or torch.Generator())
    if len(perm) != n:
        raise ValueError(f"perm has {len(perm)} entries for {n} rows")
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(perm, device=x.device)]
    return np.asarray(x)[np.asarray(perm)]


def permutation_null(
    acts_a,
    acts_b,
    score_fn: Callable,
    n_permutations: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Null scores ``[n_permutations, n_scores]``: ``score_fn(acts_a, permuted acts_b)``.

    ``acts_a``/``acts_b``: in-memory activations over the same tokens (matrices, or dicts of
    layers); every permutation reorders all of B's token rows. ``score_fn`` is the pipeline that
    produced the real scores (e.g. ``lambda a, b: match_neurons(a, b).abs_corr``).
    """
    n_permutations = check_int("n_permutations", n_permutations, low=1)
    g = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    n_a = len(next(iter(acts_a.values()))) if isinstance(acts_a, Mapping) else len(acts_a)
    n_b = len(next(iter(acts_b.values()))) if isinstance(acts_b, Mapping) else len(acts_b)
    if n_a != n_b:
        raise ValueError(f"acts_a has {n_a} tokens and acts_b has {n_b}; they must be the same")
    return np.stack(
        [
            _scores("score_fn(...)", score_fn(acts_a, permute_rows(acts_b, g)))
            for _ in range(n_permutations)
        ]
    )


class ShuffledStream:
    """Feed ``stats`` (a ``StreamingCorrelation``) with B's rows permuted within each batch.

    Call ``update(xa, xb)`` with the same batches as the real accumulator; the permutation of
    batch ``i`` is drawn from ``seed`` and ``stats.n_updates``, so a resumed stream (a loaded
    ``stats``) continues with the permutations an uninterrupted one would have used.
    """

    def __init__(self, stats, seed: int = 0):
        self.stats = stats
        self.seed = check_int("seed", seed, low=0)

    def update(self, xa, xb):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stats.n_updates)
        self.stats.update(xa, permute_rows(xb, g))
        return self


def overlap_null(n_total: int, set_a, set_b) -> dict:
    """The **independence bound** of an overlap: two index sets against independent random sets
    of the same sizes drawn from ``n_total``: observed, expected (``|A| |B| / n``) and the
    hypergeometric p-value of seeing at least the observed overlap (the reference's chance
    level of its 'universal AQ').

    It is no null for the AQ sets of two input types: the same neurons are scored twice, and
    per-neuron properties (a neuron's spread, sparsity, how much it co-varies with the other
    model as a whole) carry over, so two sets that are each at chance still overlap far more
    than independent sets would. :func:`paired_null_overlap` gives the chance level that keeps
    those properties."""
    from scipy.stats import hypergeom

    n_total = check_int("n_total", n_total, low=1)
    a, b = set(np.asarray(set_a).tolist()), set(np.asarray(set_b).tolist())
    if any(not 0 <= i < n_total for i in a | b):
        raise ValueError(f"indices must lie in [0, {n_total})")
    k = len(a & b)
    return {
        "observed": k,
        "expected": len(a) * len(b) / n_total,
        "p_value": float(hypergeom.sf(k - 1, n_total, len(a), len(b))),
        "n_a": len(a),
        "n_b": len(b),
        "n_total": n_total,
    }


def _null_matrix(name: str, null) -> np.ndarray:
    x = np.atleast_2d(np.asarray(null.detach().cpu() if hasattr(null, "detach") else null, float))
    if x.ndim != 2 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite null scores [n_null, n_neurons]")
    return x


def paired_null_overlap(
    null_a, null_b, observed: int, rule: str = "fixed", value: float | None = None
) -> dict:
    """The overlap of two AQ sets of the same neurons expected by chance, from paired nulls.

    ``null_a``, ``null_b``: ``[n_null, n]`` null scores of the same ``n`` neurons under two
    conditions (random and text tokens), replicate ``i`` of both made by the **same** null
    operation (the same neuron permutation of B, or the same token-shuffle procedure), so each
    neuron keeps its own properties in both. Each replicate's null AQ set is ``rule``/``value``
    applied to that replicate's scores (re-derived from them for the statistical and percentile
    rules, as it was derived from the real scores); their overlap is one draw of the overlap
    under no correspondence. Returns the ``null_overlaps``, their mean (``expected``), ``n_null``
    and the permutation p-value of seeing at least ``observed``: ``(1 + #{null >= observed}) /
    (1 + n_null)`` (the observed set counted among the nulls, so it is never 0 and cannot go
    below ``1 / (1 + n_null)``: 19 replicates or more are needed to reach p < 0.05)."""
    a, b = _null_matrix("null_a", null_a), _null_matrix("null_b", null_b)
    if a.shape != b.shape:
        raise ValueError(
            f"null_a has shape {a.shape} and null_b {b.shape}: they must be the same replicates "
            "of the same neurons"
        )
    observed = check_int("observed", observed, low=0)
    rule, value = check_rule(rule, value)
    overlaps = [
        int(
            (
                (ra > threshold_value(ra, rule, value)) & (rb > threshold_value(rb, rule, value))
            ).sum()
        )
        for ra, rb in zip(a, b)
    ]
    k = len(overlaps)
    return {
        "observed": observed,
        "expected": float(np.mean(overlaps)),
        "null_overlaps": overlaps,
        "n_null": k,
        "p_value": (1 + sum(o >= observed for o in overlaps)) / (1 + k),
    }


# ------------------------------------------------------------------------------ chance levels
def null_count_variance(null_counts, total: int) -> float:
    """The variance of ``count - chance`` under the null, for one count of ``total`` neurons
    beside the mean of ``null_counts`` (its R replicates): ``v (1 + 1/R)``, ``v`` the larger of
    the replicates' sample variance (R >= 2), the binomial ``n q (1 - q)`` (``q`` = their mean
    / ``total``) and 1 (:data:`CHANCE_RULE`); ``(1 + 1/R)`` adds the error of the mean."""
    counts = np.asarray(null_counts, dtype=float)
    total = check_int("total", total, low=1)
    if counts.ndim != 1 or counts.size == 0 or not np.isfinite(counts).all():
        raise ValueError(f"null_counts={null_counts!r} must be a non-empty list of counts")
    q = min(max(counts.mean() / total, 0.0), 1.0)
    sample = counts.var(ddof=1) if counts.size >= 2 else 0.0
    return max(sample, total * q * (1 - q), 1.0) * (1 + 1 / counts.size)


def chance_word(excess: float, sd: float) -> str:
    """``"at chance"`` when ``|excess| <= AT_CHANCE_SDS * sd``, else ``"above chance"`` or
    ``"below chance"`` (:data:`CHANCE_RULE`)."""
    excess, sd = check_real("excess", excess), check_real("sd", sd, low=0.0)
    if abs(excess) <= AT_CHANCE_SDS * sd:
        return "at chance"
    return "above chance" if excess > 0 else "below chance"


def too_few_replicates(n_null: int) -> str | None:
    """``"not measurable: null of N replicates (needs >= 19)"`` when a null of ``n_null``
    replicates cannot give p < 0.05, else None."""
    n_null = check_int("n_null", n_null, low=0)
    if n_null >= MIN_NULL_REPLICATES:
        return None
    reps = f"{n_null} replicate" + ("" if n_null == 1 else "s")
    return f"not measurable: null of {reps} (needs >= {MIN_NULL_REPLICATES})"


# -------------------------------------------------------------------------------------- counts
@dataclass
class AQCount:
    """An AQ count with its rule, threshold and the permutation null side by side.

    ``null_counts``: per permutation, the null scores above the same ``threshold``;
    ``null_count``: their mean (the count expected by chance). ``null_counts_same_rule``: per
    permutation, what the rule flags when re-derived from the null scores themselves.
    """

    rule: str
    value: float
    threshold: float
    count: int
    total: int
    mask: np.ndarray
    null_counts: list = field(default_factory=list)
    null_counts_same_rule: list = field(default_factory=list)
    max_score: float = float("nan")

    @property
    def fraction(self) -> float:
        return self.count / self.total

    @property
    def threshold_above_every_score(self) -> bool:
        """The threshold lies at or above the largest score: nothing can be flagged."""
        return bool(self.threshold >= self.max_score)

    @property
    def flags_nothing(self) -> bool:
        """Nothing flagged in the data nor, above the same threshold, in any null replicate: the
        rule says nothing about this data (judge it by another rule)."""
        return self.count == 0 and not any(self.null_counts)

    @property
    def null_count(self) -> float | None:
        return float(np.mean(self.null_counts)) if self.null_counts else None

    @property
    def rule_text(self) -> str:
        return RULE_TEXT[self.rule].format(value=self.value)

    def line(self) -> str:
        """One printable line: count, %, threshold and rule, and the chance count beside it."""
        out = (
            f"AQ {self.count}/{self.total} ({100 * self.fraction:.1f}%) above "
            f"{self.threshold:.4g} ({self.rule_text})"
        )
        if self.null_counts:
            out += f"; token-shuffle null: {self.null_count:.1f} expected by chance"
            if self.rule != "fixed":
                same = float(np.mean(self.null_counts_same_rule))
                out += f" ({same:.1f} if the rule is re-applied to the null)"
        if self.threshold_above_every_score:
            out += f"; threshold above every score (max {self.max_score:.4g}): {FLAGS_NOTHING}"
        return out

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "rule_text": self.rule_text,
            "value": self.value,
            "threshold": self.threshold,
            "count": self.count,
            "total": self.total,
            "fraction": self.fraction,
            "null_count": self.null_count,
            "null_counts": [int(c) for c in self.null_counts],
            "null_counts_same_rule": [int(c) for c in self.null_counts_same_rule],
            "max_score": self.max_score,
            "threshold_above_every_score": self.threshold_above_every_score,
            "flags_nothing": self.flags_nothing,
            "indices": np.flatnonzero(self.mask).tolist(),
        }


def count_with_null(
    scores, null_scores=None, rule: str = "statistical", value: float | None = None
) -> AQCount:
    """Count the scores above ``rule``'s threshold, beside the null count (see the module).

    ``null_scores``: ``[n_scores]`` or ``[n_permutations, n_scores]`` from
    :func:`permutation_null` (or any null of the same pipeline); None skips the null.
    """
    rule, value = check_rule(rule, value)
    s = _scores("scores", scores)
    t = threshold_value(s, rule, value)
    mask = s > t
    out = AQCount(rule, value, t, int(mask.sum()), s.size, mask, max_score=float(s.max()))
    if null_scores is not None:
        null = np.asarray(
            null_scores.detach().cpu() if hasattr(null_scores, "detach") else null_scores, float
        )
        null = np.atleast_2d(null)
        if null.ndim != 2 or not np.isfinite(null).all():
            raise ValueError("null_scores must be [n_scores] or [n_permutations, n_scores], finite")
        out.null_counts = [int((row > t).sum()) for row in null]
        out.null_counts_same_rule = [
            int((row > threshold_value(row, rule, value)).sum()) for row in null
        ]
    return out


__all__ = [
    "AQCount",
    "AT_CHANCE_SDS",
    "CHANCE_RULE",
    "DEFAULT_VALUES",
    "FLAGS_NOTHING",
    "MIN_NULL_REPLICATES",
    "RULES",
    "ShuffledStream",
    "apply_threshold",
    "chance_word",
    "check_rule",
    "count_with_null",
    "null_count_variance",
    "overlap_null",
    "paired_null_overlap",
    "permutation_null",
    "permute_rows",
    "threshold_value",
    "too_few_replicates",
]
