"""The AQ methods on one layer pair: the seed's basic method, Gurnee et al.'s max-correlation
excess, OT matching and held-out Procrustes (:class:`MethodResult` each, with its nulls and
threshold rules), Gurnee's max over every layer of B, and all of them on one pair
(:func:`analyse_pair` -> :class:`PairResult`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from akira_nb.alignment.aq_chance import replicates
from akira_nb.alignment.aq_config import pair_key
from akira_nb.alignment.cka import cka_scores, linear_cka_from_stats
from akira_nb.alignment.correlation import GURNEE_THRESHOLD, StreamingCorrelation
from akira_nb.alignment.excess import basic_excess, gurnee_excess
from akira_nb.alignment.procrustes import procrustes_align
from akira_nb.alignment.stages import Stages
from akira_nb.alignment.thresholds import AQCount, chance_word, count_with_null, null_count_variance
from akira_nb.alignment.transport import match_neurons
from akira_nb.runtime import check_choice, check_real, get_device

if TYPE_CHECKING:
    from akira_nb.alignment.aq_config import AQConfig
    from akira_nb.alignment.aq_stream import PairStream


METHOD_MODEL = {"basic": "A", "gurnee": "A", "ot": "A", "procrustes": "B"}
METHOD_TEXT = {
    "basic": "index-matched excess correlation (the seed's basic method)",
    "gurnee": "max-correlation excess (Gurnee et al.)",
    "ot": "OT-matched |corr| (aligned)",
    "procrustes": "held-out Procrustes aligned corr (aligned)",
}


@dataclass
class MethodResult:
    """One method's per-neuron scores for one layer pair, with its nulls and threshold rules.

    ``model``: whose neurons the scores (and AQ indices) are, ``"A"`` or ``"B"``. ``scores
    [n]``; ``nulls``: ``{name: [n_null, n]}``, the same scores when nothing corresponds (the
    ``token-shuffle`` null for every method; the basic method adds the ``neuron-permutation``
    null, index matching against randomly re-ordered B neurons, which is the one that says what
    comparing neurons by index finds between unrelated neurons). ``rules``: the printed
    ``(rule, value)`` pairs, the first being the main one. ``partner [n]``: the matched neuron in
    the other model (None for ``procrustes``). ``extra``: per-method arrays and scalars.
    """

    name: str
    model: str
    scores: np.ndarray
    nulls: dict
    rules: list
    partner: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def count(self, rule: str, value: float | None = None, null: str | None = None) -> AQCount:
        """The AQ count under ``rule``/``value`` beside ``null`` (default: the first null)."""
        null = null or next(iter(self.nulls))
        return count_with_null(
            self.scores, self.nulls[check_choice("null", null, list(self.nulls))], rule, value
        )

    def counts(self, rule: str, value: float | None = None) -> dict:
        """``{null name: AQCount}`` under one rule (the count is the same; the nulls differ)."""
        return {name: self.count(rule, value, name) for name in self.nulls}

    def flags_nothing(self, rule: str, value: float | None = None) -> bool:
        """``rule`` flags nothing in the scores nor in any null (above the same threshold), its
        threshold lying at or above every score: it says nothing about this data."""
        return all(
            c.flags_nothing and c.threshold_above_every_score
            for c in self.counts(rule, value).values()
        )

    def chance(self, rule: str, value: float | None = None) -> float:
        """The largest count expected by chance under ``rule`` over this method's nulls."""
        return max(c.null_count or 0.0 for c in self.counts(rule, value).values())

    def chance_null(self, rule: str, value: float | None = None) -> tuple[str, AQCount]:
        """``(name, count)`` of the null that sets :meth:`chance` (the largest mean count)."""
        counts = self.counts(rule, value)
        name = max(counts, key=lambda k: counts[k].null_count or 0.0)
        return name, counts[name]

    def chance_variance(self, rule: str, value: float | None = None) -> float:
        """The variance of ``count - chance`` under that null
        (:func:`~.thresholds.null_count_variance`)."""
        _, c = self.chance_null(rule, value)
        return null_count_variance(c.null_counts or [0], c.total)

    @property
    def main(self) -> AQCount:
        return self.count(*self.rules[0])

    @property
    def main_chance(self) -> float:
        return self.chance(*self.rules[0])

    @property
    def aq_indices(self) -> np.ndarray:
        return np.flatnonzero(self.main.mask)

    def line(self, rule: str, value: float | None = None) -> str:
        counts = self.counts(rule, value)
        c = next(iter(counts.values()))
        nulls = ", ".join(
            f"{name} null {x.null_count:.1f} ({replicates(len(x.null_counts))})"
            for name, x in counts.items()
        )
        word = chance_word(
            c.count - self.chance(rule, value), self.chance_variance(rule, value) ** 0.5
        )
        out = (
            f"{self.name} [{self.model}'s neurons]: AQ {c.count}/{c.total} "
            f"({100 * c.fraction:.1f}%) above {c.threshold:.4g} ({c.rule_text}); expected by "
            f"chance: {nulls}: {word}"
        )
        if c.rule != "fixed":
            same = ", ".join(f"{np.mean(x.null_counts_same_rule):.1f}" for x in counts.values())
            out += f" ({same} if the rule is re-applied to the null)"
        if c.threshold_above_every_score:
            out += f"; threshold above every score (max {c.max_score:.4g}): the rule flags nothing"
        return out

    def lines(self) -> list[str]:
        return [self.line(rule, value) for rule, value in self.rules]

    def to_dict(self) -> dict:
        counts = []
        for rule, value in self.rules:
            by = self.counts(rule, value)
            c = next(iter(by.values())).to_dict()
            for k in ("null_count", "null_counts", "null_counts_same_rule", "flags_nothing"):
                c.pop(k)
            c["flags_nothing"] = self.flags_nothing(rule, value)
            c["nulls"] = {
                name: {
                    "null_count": x.null_count,
                    "null_counts": [int(v) for v in x.null_counts],
                    "null_counts_same_rule": [int(v) for v in x.null_counts_same_rule],
                }
                for name, x in by.items()
            }
            c["chance"] = self.chance(rule, value)
            counts.append(c)
        return {
            "name": self.name,
            "model": self.model,
            "counts": counts,
            "score_mean": float(self.scores.mean()),
            "score_max": float(self.scores.max()),
            "null_score_mean": {k: float(v.mean()) for k, v in self.nulls.items()},
            "null_score_max": {k: float(v.max()) for k, v in self.nulls.items()},
        }


def _np(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)


def _fixed_rules(threshold: float) -> list:
    extra = [] if threshold == GURNEE_THRESHOLD else [("fixed", GURNEE_THRESHOLD)]
    return [("fixed", float(threshold))] + extra


def basic_method(stats, null, cfg: AQConfig) -> MethodResult:
    """The seed's basic method on one pair's statistics (:func:`~.excess.basic_excess`), with two
    nulls: the token-shuffled pair, and ``cfg.n_permutations`` neuron permutations of B (neuron
    ``i`` of A against a random B neuron, minus the same rotation baseline). The permutations
    are drawn from ``cfg.seed`` alone, so every input type and layer pair of the same widths
    gets the same ones (``extra["null_perm"]``): the paired null of the universal overlap."""
    real = basic_excess(stats, n_rotations=cfg.n_rotations, seed=cfg.seed)
    fake = basic_excess(null, n_rotations=cfg.n_rotations, seed=cfg.seed)
    m = real.actual.numel()
    corr = stats.corr().cpu()
    g = torch.Generator().manual_seed(cfg.seed + 7)
    perms = torch.stack(
        [torch.randperm(corr.shape[1], generator=g)[:m] for _ in range(cfg.n_permutations)]
    )
    neuron_null = corr[:m].gather(1, perms.T).T - real.baseline[None]  # corr[i, perm_k(i)]
    scores = _np(real.excess)
    return MethodResult(
        "basic",
        "A",
        scores,
        {"token-shuffle": _np(fake.excess)[None], "neuron-permutation": _np(neuron_null)},
        _fixed_rules(cfg.threshold),
        partner=np.arange(m),
        extra={
            "actual": _np(real.actual),
            "baseline": _np(real.baseline),
            "baseline_spread": float(real.baselines.std()),
            "null_perm": perms.numpy(),
            "summary": real.summary(cfg.threshold),
        },
    )


def gurnee_method(stats, null, cfg: AQConfig) -> MethodResult:
    """Gurnee et al.'s max-correlation excess on one pair's statistics."""
    real = gurnee_excess(stats, n_rotations=1, seed=cfg.seed)
    fake = gurnee_excess(null, n_rotations=1, seed=cfg.seed)
    return MethodResult(
        "gurnee",
        "A",
        _np(real.excess),
        {"token-shuffle": _np(fake.excess)[None]},
        _fixed_rules(cfg.threshold),
        partner=real.best_b.numpy(),
        extra={"max_corr": _np(real.actual), "baseline": _np(real.baseline)},
    )


def gurnee_all_layers(stream: PairStream, cfg: AQConfig, threshold: float = GURNEE_THRESHOLD):
    """Gurnee et al.'s universality as they defined it, per compared layer ``la`` of A: each A
    neuron's max correlation over **every** neuron of every layer in ``stream.all_b_layers``
    minus the same max with each B layer Haar-rotated (:func:`~.correlation.gurnee_excess`
    with ``layer_b=None``); universal when above ``threshold`` (their 0.5). Returns
    ``{str(la): {...}}`` with the count and % of A's neurons, their indices, the B layer each
    universal neuron's max lies in, and the arrays ``excess`` and ``best_layer_b``."""
    from collections import Counter

    sc = stream.all_b
    if sc is None:
        raise ValueError("the stream has no accumulator over all of B's layers (all_b_layers)")
    threshold = check_real("threshold", threshold)
    out = {}
    for la in stream.layers_a:
        ex = gurnee_excess(sc, layer_a=la, layer_b=None, n_rotations=1, seed=cfg.seed)
        excess = _np(ex.excess)
        pos, _ = sc.split_b(ex.best_b)
        best_layer = np.asarray(stream.all_b_layers)[pos.numpy()]
        idx = np.flatnonzero(excess > threshold)
        per_layer = Counter(int(v) for v in best_layer[idx])
        out[str(la)] = {
            "layer_a": int(la),
            "layers_b": list(stream.all_b_layers),
            "threshold": float(threshold),
            "n_neurons": int(excess.size),
            "count": int(idx.size),
            "pct": 100.0 * idx.size / excess.size,
            "count_seed_threshold": int((excess > cfg.threshold).sum()),
            "indices": idx.tolist(),
            "best_layer_b_of_aq": {str(k): per_layer[k] for k in sorted(per_layer)},
            "n_tokens": sc.n,
            "excess": excess,
            "best_layer_b": best_layer,
        }
    return out


GURNEE_ALL_ARRAYS = ("excess", "best_layer_b")


def _aligned_rules(cfg: AQConfig, with_half: bool) -> list:
    rules = [(cfg.threshold_method, cfg.rule_value)]
    if with_half and rules[0] != ("fixed", 0.5):
        rules.append(("fixed", 0.5))
    return rules


def ot_method(stats, null, cfg: AQConfig):
    """OT matching of every A neuron to one B neuron; ``(MethodResult, matching, null)``. The
    fixed 0.5 rule printed beside the configured one is the reference's '|corr| > 0.5' count."""
    m = match_neurons(stats.corr(), cfg.match_method)
    m0 = match_neurons(null.corr(), cfg.match_method)
    res = MethodResult(
        "ot",
        "A",
        m.abs_corr,
        {"token-shuffle": m0.abs_corr[None]},
        _aligned_rules(cfg, True),
        partner=m.b_idx,
        extra={"corr": m.corr},
    )
    return res, m, m0


def procrustes_method(xa, xb, groups, cfg: AQConfig):
    """Held-out orthogonal Procrustes on ``cfg.device`` (float32 on CUDA, float64 on the CPU:
    :func:`~.procrustes.procrustes_align`; on the CPU for any other device, which lacks
    ``torch.linalg.svd``); ``(MethodResult over B's neurons, ProcrustesResult)``."""
    device = get_device(cfg.device)
    pr = procrustes_align(
        xa,
        xb,
        train_frac=cfg.train_frac,
        seed=cfg.seed,
        groups=groups,
        n_shuffles=cfg.n_shuffles,
        device=device if device.type == "cuda" else "cpu",
    )
    res = MethodResult(
        "procrustes",
        "B",
        pr.aligned_corr,
        {"token-shuffle": pr.null_aligned_corr},
        _aligned_rules(cfg, True),
    )
    return res, pr


@dataclass
class PairResult:
    """Every method for one layer pair and one input type."""

    input_type: str
    layer_a: int
    layer_b: int
    n_tokens: int
    methods: dict
    cka: dict = field(default_factory=dict)
    matching: dict = field(default_factory=dict)
    procrustes: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return pair_key(self.layer_a, self.layer_b)

    def lines(self) -> list[str]:
        head = (
            f"{self.input_type} tokens, layer {self.layer_a} of A vs layer {self.layer_b} of B "
            f"({self.n_tokens} tokens)"
        )
        out = [head]
        c = self.cka
        if "linear_all_tokens" in c:
            out.append(
                f"  CKA linear {c['linear_all_tokens']:.3f} over all {c['n_tokens_all']} streamed "
                f"tokens (token-shuffled pair: {c['linear_all_tokens_null']:.3f})"
            )
        if "linear" in c:
            out.append(
                f"  CKA linear {c['linear']:.3f}, debiased {c['debiased']:.3f} (token-shuffled "
                f"pair: {c['linear_null']:.3f} / {c['debiased_null']:.3f}; in-memory sample of "
                f"{c['n_tokens']} tokens)"
            )
        if self.matching:
            m = self.matching
            out.append(
                f"  OT ({m['method']}): mean matched |corr| {m['mean_abs_corr']:.3f} (null "
                f"{m['null_mean_abs_corr']:.3f}), cost {m['total_cost']:.3f}, one-to-one "
                f"{m['one_to_one']}"
            )
        if self.procrustes:
            p = self.procrustes
            out.append(
                f"  Procrustes: held-out error {p['test_error']:.3f} (train {p['train_error']:.3f},"
                f" token-shuffle null {p['null_error']:.3f}; 0 perfect, 1 = predicting 0; "
                f"in-memory sample: {p['n_train']} train / {p['n_test']} held-out tokens)"
            )
        for m in self.methods.values():
            out += [f"  {line}" for line in m.lines()]
        return out

    def aligned_lines(self) -> list[str]:
        """:meth:`lines` of the aligned method only: CKA, OT, Procrustes and their counts."""
        skip = [
            f"  {line}"
            for name in ("basic", "gurnee")
            if name in self.methods
            for line in self.methods[name].lines()
        ]
        return [line for line in self.lines() if line not in skip]

    def to_dict(self) -> dict:
        return {
            "input_type": self.input_type,
            "layer_a": self.layer_a,
            "layer_b": self.layer_b,
            "n_tokens": self.n_tokens,
            "cka": self.cka,
            "matching": self.matching,
            "procrustes": self.procrustes,
            "methods": {k: m.to_dict() for k, m in self.methods.items()},
        }


def analyse_pair(
    stats: StreamingCorrelation,
    null: StreamingCorrelation,
    cfg: AQConfig,
    xa=None,
    xb=None,
    groups=None,
    input_type: str = "random",
    layers: tuple = (0, 0),
    stages: Stages | None = None,
) -> PairResult:
    """Every method on one layer pair: basic, gurnee and ot from the streamed statistics; CKA and
    procrustes from the in-memory sample ``xa [n, d_a]``, ``xb [n, d_b]`` (skipped when None).
    ``stages``: a :class:`Stages` that times each method."""
    stage = stages or Stages(None)
    with stage("rotations (basic + gurnee)"):
        methods = {"basic": basic_method(stats, null, cfg)}
        methods["gurnee"] = gurnee_method(stats, null, cfg)
    with stage("ot"):
        ot_res, m, m0 = ot_method(stats, null, cfg)
    methods["ot"] = ot_res
    matching = {
        **m.summary(),
        "null_mean_abs_corr": float(m0.abs_corr.mean()),
        "null_total_cost": m0.total_cost,
    }
    cka, proc = {}, {}
    if stats.track_a_cov:  # linear CKA over every streamed token, from the sums
        cka.update(
            linear_all_tokens=linear_cka_from_stats(stats),
            linear_all_tokens_null=linear_cka_from_stats(null),
            n_tokens_all=int(stats.n),
        )
    if xa is not None and xb is not None:
        xa, xb = torch.as_tensor(xa), torch.as_tensor(xb)
        g = torch.Generator().manual_seed(cfg.seed)
        with stage("cka"):  # B's rows shuffled as permute_rows(xb, g) shuffles them
            perm = torch.randperm(len(xb), generator=g)
            cka |= cka_scores(xa, xb, perm, device=get_device(cfg.device))
            cka["n_tokens"] = int(xa.shape[0])
        with stage("procrustes + null"):
            methods["procrustes"], pr = procrustes_method(xa, xb, groups, cfg)
        proc = pr.summary()
        proc["null_errors"] = list(pr.null_errors)
    return PairResult(
        input_type, int(layers[0]), int(layers[1]), stats.n, methods, cka, matching, proc
    )


__all__ = [
    "GURNEE_ALL_ARRAYS",
    "METHOD_MODEL",
    "METHOD_TEXT",
    "MethodResult",
    "PairResult",
    "analyse_pair",
    "basic_method",
    "gurnee_all_layers",
    "gurnee_method",
    "ot_method",
    "procrustes_method",
]
