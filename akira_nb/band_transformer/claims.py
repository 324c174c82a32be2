"""Experiment 026's claims: the seed's numbers (:data:`SEED_CLAIMS`, and the reference notebook's
reported losses, :data:`REFERENCE_LOSSES`), why a run is or is not comparable with them
(:func:`comparability`), one function per seed claim, :func:`claims` (every row built by
:func:`akira_nb.claims.judge`) and :func:`kit_summary`.

The four predictions are read from the AQ analysis of two seeds of the band model and two of the
baseline (held-out Procrustes, each count beside the token-shuffle null's) and from the band
ablation curves; the loss claims compare each arm at its tuned LR at the longest budget both
arms trained. Below the seed's scale every verdict reads "not comparable", with what the rule
gives on the run's own numbers beside it (``computed_verdict``).
"""

from __future__ import annotations

import numpy as np

from akira_nb import standins
from akira_nb.band_transformer import sweep
from akira_nb.band_transformer.aq_analysis import MAIN_METHOD, aq_line
from akira_nb.band_transformer.presets import EXPERIMENT, TITLE, Study
from akira_nb.claims import Section, judge

HEADLINE = "the band model learns better than a parameter-matched GPT"

# ----------------------------------------------------------------------------- the reference

# The reference notebook's reported eval losses (inventory 2.6: A100, wikitext-103 with the
# GPT-2 tokenizer, one line per sequence padded to 256 with eos and the padding counted in the
# loss, 5,000 steps x 16 x 256, eval every 500 steps on 50 batches, one seed). Printed beside
# what this kit measures; never used as a result.
REFERENCE_LOSSES = {
    "steps": [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500],
    "runs": {
        "baseline": {
            "label": "Baseline GPT (70,509,568 params)",
            "arm": "baseline",
            "params": 70_509_568,
            "loss": [2.1135, 1.9898, 1.9165, 1.8629, 1.8189, 1.7772, 1.7467, 1.7308, 1.7230],
            "ppl": [8.28, 7.31, 6.80, 6.44, 6.17, 5.91, 5.74, 5.64, 5.60],
            "it_s": 9.0,
        },
        "no_wormhole_diff": {
            "label": "AKIRA v1 no wormhole, differential LR (60,015,616 params)",
            "arm": "reference",
            "params": 60_015_616,
            "loss": [2.1642, 2.0257, 1.9526, 1.8967, 1.8562, 1.8184, 1.7945, 1.7778, 1.7713],
            "ppl": [8.71, 7.58, 7.05, 6.66, 6.40, 6.16, 6.02, 5.92, 5.88],
            "it_s": 3.1,
        },
        "no_wormhole_uniform": {
            "label": "AKIRA v1 no wormhole, uniform LR 3e-4 (60,015,616 params)",
            "arm": None,  # the reference layout at a uniform LR: no arm of this kit
            "params": 60_015_616,
            "loss": [2.1533, 2.0275, 1.9527, 1.9004, 1.8524, 1.8194, 1.7963, 1.7832, 1.7758],
            "ppl": [8.61, 7.60, 7.05, 6.69, 6.37, 6.17, 6.03, 5.95, 5.90],
            "it_s": 4.0,
        },
    },
    "wormhole_claim": "AKIRA + wormhole + differential LR: '~1.99 (ppl ~7.3)', hard-coded, "
    "no training output in the notebook",
}
REFERENCE_PROTOCOL = dict(dataset="wikitext-103", total_steps=5000, batch_size=16, seq_len=256)
REFERENCE_DEFECTS = (
    "the reference's loss counted eos padding (each wikitext line padded to 256), so its 'ppl' "
    "5.6 is deflated and not a wikitext-103 perplexity; the kit packs documents (no padding)",
    "only 3.5% of the reference's parameters sat under band learning rates (its attention, "
    "wormhole, embeddings and untied head were shared); the kit's band layout puts about all "
    "non-embedding parameters in bands (the reference layout is kept as the 'reference' arm)",
    "the reference's baseline had 70.5M parameters against 60.0M (not matched); the kit's "
    "baseline is within 2% of the band model's count",
    "the reference's warm-up multiplied every LR in place at every step (compounding to ~0); "
    "the kit's schedule is a pure function of the step from each group's base LR",
    "the reference's v2 'spectral' model leaked up to 7 future tokens per layer through a "
    "symmetric convolution; every kit variant is tested causal",
)

# ----------------------------------------------------------------------------- the seed's claims

# The seed's claims, as (claim, claimed): its four predictions (seed 026 README / design doc
# 2.7), the reference's loss finding and the seed's hypothesis against the two GPTs.
SEED_CLAIMS = {
    "more_aq": (
        "more Action Quanta: ~8-12% AQ in the band model vs ~3-4% in a standard transformer",
        "band 8-12% vs baseline 3-4%",
    ),
    "low_frequency": (
        "cleaner separation: the low-frequency bands hold low-frequency AQ",
        "bands 0-2 hold the low-frequency AQ (GPT-2: layer 5 only)",
    ),
    "universality": (
        "better universality: ~50% overlap between random-token and text AQ vs ~25%",
        "band ~50% vs baseline ~25%",
    ),
    "per_band_grokking": (
        "per-band grokking: the bands mature at different rates",
        "per-band maturation (vs one global grokking)",
    ),
    "reference_result": (
        "the reference's result: the baseline beats the band model (1.7230 vs 1.7713)",
        "baseline 1.7230 vs bands 1.7713 (eval loss with padding counted)",
    ),
    "band_vs_matched": (
        HEADLINE,
        "the band model learns better than a standard transformer (seed 026)",
    ),
    "band_vs_wide": (
        "the band model learns better than a GPT of its width",
        "the band model learns better than a standard transformer (seed 026)",
    ),
}
# Verdict rules, one place (printed with every verdict).
AQ_RATIO = 2.0  # prediction 1: band % above chance >= this x the baseline's ...
AQ_MARGIN = 2.0  # ... and at least this many points above it
UNIVERSAL_RATIO = 1.5  # prediction 3: band overlap share >= this x the baseline's
MATURITY = 0.9  # prediction 4: a band is mature once its ablation loss reaches 90% of its final
SPREAD = 2.0  # prediction 4: the latest band matures >= this x later than the earliest


def comparability(plan: Study) -> str | None:
    """Why this study's numbers cannot be set beside the reference's losses and the seed's
    predictions (None: they can, though the reference's loss counted padding: see
    :data:`REFERENCE_DEFECTS`)."""
    b, why = plan.base, []
    if b.offline:
        why.append("offline stand-ins (the kit's offline corpus and a stand-in tokenizer)")
    if b.preset != "default" or any(
        k in (b.model_overrides or {}) for k in ("band_dims", "n_layers", "band_lrs")
    ):
        why.append(
            f"model preset {b.preset!r} with {dict(b.model_overrides or {})} (the 026 model: "
            "6 layers, bands (128, 96, 80, 64, 64, 48, 32), the 026 LRs)"
        )
    if b.dataset != REFERENCE_PROTOCOL["dataset"]:
        why.append(f"dataset {b.dataset!r} (the reference: wikitext-103, GPT-2 tokenizer)")
    ref_tokens = 5000 * 16 * 256
    if plan.tokens_per_arm < ref_tokens:
        why.append(f"{plan.tokens_per_arm:,} tokens per arm (the reference: {ref_tokens:,})")
    if len(plan.aq_seeds) < 2:
        why.append("no second seed for the AQ analysis")
    if not why:
        return None
    size = f"the {plan.size!r} preset" if plan.size else "these settings"
    return f"{size} is not the reference's scale: " + "; ".join(why)


def common_budget(by: dict, a: str, b: str) -> int | None:
    """The longest budget at which both arms were trained (None: none)."""
    both = [s for (arm, s) in by if arm == a and (b, s) in by]
    return max(both) if both else None


# ----------------------------------------------------------------------------- the claims


def _pct(e: dict | None) -> str:
    if not e:
        return "-"
    return f"{e['pct']:.1f}% (chance {e['chance_pct']:.1f}%, above chance {e['above_pct']:.1f}%)"


def _unlearned(by: dict, keys) -> str | None:
    """``"arm X did not learn (...)"`` for the rows ``by[(arm, steps)]`` of ``keys`` that did
    not learn (None: every one learned or none is there)."""
    bad = [by[k] for k in keys if k in by and not by[k].get("learned", True)]
    if not bad:
        return None
    return "; ".join(
        f"arm {r['arm']} did not learn at {r['budget']:,} steps (final validation loss "
        f"{r['val_loss']:.4f} vs unigram {r['unigram']:.4f})"
        for r in bad
    )


def _sweep_note(r: dict) -> str:
    sw = r.get("sweep") or {}
    if not sw.get("swept", True):
        return f"{r['arm']} not swept (the preset's LRs)"
    if sw.get("edge"):
        return (
            f"{r['arm']}'s best LR is at the {sw['edge']} edge of its sweep: the optimum may "
            "lie beyond"
        )
    return ""


def more_aq(band: dict | None, base: dict | None, why: str | None, unlearned) -> dict:
    """Prediction 1: more AQ in the band model than in the baseline, above chance."""
    claim, claimed = SEED_CLAIMS["more_aq"]
    rule = (
        f"{MAIN_METHOD} AQ ({'the seed' if base is None else base['rule']}) on random tokens, "
        f"mean over layers, % above chance (count minus the token-shuffle null's count above "
        f"the same threshold), the tuned models of the first budget: holds if the band model's "
        f"is >= {AQ_RATIO:g}x the baseline's and >= {AQ_MARGIN:g} points above it"
    )
    value = None
    if band and base and "random" in band["by_kind"] and "random" in base["by_kind"]:
        b, g = band["by_kind"]["random"], base["by_kind"]["random"]
        per_band = ", ".join(f"{e['pct']:.1f}/{e['chance_pct']:.1f}" for e in b.get("bands", []))
        measured = f"band {_pct(b)}; baseline {_pct(g)}; per band (AQ%/chance%): {per_band}"
        holds = b["above_pct"] >= AQ_RATIO * g["above_pct"] and (
            b["above_pct"] >= g["above_pct"] + AQ_MARGIN
        )
        value = b["above_pct"]
    else:
        measured, holds = "not run (needs the band and baseline arms at two aq_seeds)", None
    unit = "% of neurons above chance"
    return judge(claim, rule, claimed, measured, holds, why_not=why, value=value, unit=unit,
                 unmeasurable=unlearned)  # fmt: skip


def low_frequency(band: dict | None, why: str | None, unlearned) -> dict:
    """Prediction 2: the AQ neurons of the low bands have lower spectral centroids."""
    claim, claimed = SEED_CLAIMS["low_frequency"]
    rule = (
        f"{MAIN_METHOD} AQ of the band model, spectral centroid (DC excluded, cycles per token "
        "along the sequence, random tokens): holds if the AQ neurons of the lowest 3/7 of the "
        "bands (bands 0-2) have a lower median centroid than those of the highest 3/7 (bands "
        "4-6), two-sided Mann-Whitney U p < 0.05; at least 2 AQ neurons on each side"
    )
    measured, holds, value = "not run (needs the band arm at two aq_seeds)", None, None
    reason = unlearned  # the band model's AQ only
    spec = band.get("spectral") if band else None
    if spec and spec["aq_centroids_by_band"] is not None:
        cents = spec["aq_centroids_by_band"]
        k = max(1, round(3 * len(cents) / 7))
        low = [c for cs in cents[:k] for c in cs]
        high = [c for cs in cents[-k:] for c in cs]
        med = ", ".join(f"{np.median(c):.3f}" if c else "-" for c in cents)
        measured = (
            f"median AQ centroid per band {med} ({len(low)} low-band, {len(high)} high-band AQ)"
        )
        if len(low) >= 2 and len(high) >= 2:
            from scipy.stats import mannwhitneyu

            p = float(mannwhitneyu(low, high, alternative="two-sided").pvalue)
            measured += f"; low {np.median(low):.3f} vs high {np.median(high):.3f}, p = {p:.2g}"
            holds = bool(np.median(low) < np.median(high) and p < 0.05)
            value = float(np.median(low) - np.median(high))
        else:
            measured += "; too few AQ neurons for the test"
            reason = reason or "fewer than 2 AQ neurons in the low or the high bands"
    return judge(claim, rule, claimed, measured, holds, why_not=why, value=value,
                 unit="cycles/token", unmeasurable=reason)  # fmt: skip


def universality(band: dict | None, base: dict | None, why: str | None, unlearned) -> dict:
    """Prediction 3: a larger share of the structural AQ is also semantic in the band model."""
    claim, claimed = SEED_CLAIMS["universality"]
    rule = (
        f"{MAIN_METHOD} AQ found with both random tokens and text, as a share of the "
        "random-token (structural) AQ, summed over layers, beside the paired token-shuffle "
        f"null's chance share: holds if the band model's share is >= {UNIVERSAL_RATIO:g}x the "
        "baseline's and above its own chance share"
    )
    bu, gu = (band or {}).get("universal"), (base or {}).get("universal")
    value, reason = None, unlearned
    if bu and gu and bu["share"] is not None and gu["share"] is not None:
        measured = (
            f"band {bu['observed']}/{bu['structural']} = {bu['share']:.1f}% (chance "
            f"{bu['chance_share']:.1f}%); baseline {gu['observed']}/{gu['structural']} = "
            f"{gu['share']:.1f}% (chance {gu['chance_share']:.1f}%)"
        )
        holds = bu["share"] >= UNIVERSAL_RATIO * gu["share"] and bu["share"] > bu["chance_share"]
        value = bu["share"]
    elif bu or gu:
        measured, holds = "no structural AQ in one of the models: no share", None
        reason = reason or "no structural AQ in one of the models"
    else:
        measured, holds = "not run (needs both input types and two aq_seeds)", None
    return judge(claim, rule, claimed, measured, holds, why_not=why, value=value,
                 unit="% of structural AQ", unmeasurable=reason)  # fmt: skip


def per_band_grokking(maturation: dict, by: dict, why: str | None) -> dict:
    """Prediction 4: the bands mature at different rates (their ablation curves)."""
    claim, claimed = SEED_CLAIMS["per_band_grokking"]
    rule = (
        "band arm (first seed, tuned, its longest budget), each band's ablation curve "
        "(validation-loss increase when the band's sublayer outputs are zeroed, at each "
        "checkpoint kept): a band matures at the first step from which its increase stays >= "
        f"{MATURITY:g} of its final value; holds if, among the bands whose final increase is "
        f"positive (at least 2), the latest matures >= {SPREAD:g}x later than the earliest (>= 3 "
        "checkpoints; the weight-change curves and the uniform-LR arm's maturation are printed "
        "beside)"
    )
    mat = maturation.get("band")
    value, reason = None, None
    if mat:
        ms = [m for m in mat["maturity"] if m is not None]
        steps = mat.get("budget")
        measured = f"maturity steps per band {mat['maturity']} (checkpoints {mat['steps']})"
        uni = maturation.get("band_uniform")
        if uni:
            measured += f"; band_uniform {uni['maturity']}"
        holds = None
        reason = _unlearned(by, [("band", steps)]) if steps else None
        if len(mat["steps"]) >= 3 and len(ms) >= 2:
            holds = max(ms) >= SPREAD * max(min(ms), 1)
            value = max(ms) / max(min(ms), 1)
        else:
            measured += ": too few checkpoints or bands whose ablation raises the loss"
            reason = reason or "fewer than 3 checkpoints or 2 bands whose ablation raises the loss"
    else:
        measured, holds = "not run (needs the band arm)", None
    return judge(claim, rule, claimed, measured, holds, why_not=why, value=value, unit="x",
                 unmeasurable=reason)  # fmt: skip


_TUNED = (
    "final validation loss (mean over seeds, the final model on the validation set), each "
    "arm at its tuned LR (the best of its LR sweep; the preset's LRs for an arm not swept, "
    "as the measured text says), at the longest budget both arms trained: holds if "
)
# the loss claims: (seed claim, arm a, arm b, the rule's end): a's loss below b's
LOSS_CLAIMS = {
    "reference_result": (
        "baseline",
        "reference",
        "the baseline's is lower than the reference layout's (the reference's no-wormhole band "
        "model); measured value: baseline - reference",
    ),
    "band_vs_matched": (
        "band",
        "baseline",
        "the band model's is lower than the parameter-matched GPT's; measured value: band - "
        "baseline",
    ),
    "band_vs_wide": (
        "band",
        "baseline_wide",
        "the band model's is lower than that of the GPT as wide as it (more parameters); "
        "measured value: band - baseline_wide",
    ),
}


def loss_claim(key: str, by: dict, why: str | None) -> dict:
    """Loss claim ``key`` of :data:`LOSS_CLAIMS`: arm ``a`` ends with a lower loss than arm
    ``b`` (each at its tuned LR) at the longest budget both trained; ``measured_value``: a's
    loss minus b's (nats; negative holds); the other budgets and the sweeps' edges beside."""
    claim, claimed = SEED_CLAIMS[key]
    a, b, end = LOSS_CLAIMS[key]
    rule = _TUNED + end
    steps = common_budget(by, a, b)
    if steps is None:
        return judge(claim, rule, claimed, f"not run (needs the {a} and {b} arms)", None,
                     why_not=why)  # fmt: skip
    ra, rb = by[(a, steps)], by[(b, steps)]
    diff = ra["val_loss"] - rb["val_loss"]
    measured = (
        f"at {steps:,} steps ({ra['tokens']:,} tokens per arm), each at its best LR of the sweep "
        f"table: {a} "
        f"{ra['val_loss']:.4f} ({ra['lr_text']}) vs {b} {rb['val_loss']:.4f} ({rb['lr_text']}): "
        f"{a} - {b} = {diff:+.4f} nats"
    )
    others = [
        f"at {s:,} steps {by[(a, s)]['val_loss']:.4f} vs {by[(b, s)]['val_loss']:.4f} "
        f"({by[(a, s)]['val_loss'] - by[(b, s)]['val_loss']:+.4f})"
        for (arm, s) in sorted(by, key=lambda k: k[1])
        if arm == a and s != steps and (b, s) in by
    ]
    notes = [n for n in (_sweep_note(ra), _sweep_note(rb)) if n]
    measured += "".join(f"; {t}" for t in others + notes)
    unlearned = _unlearned(by, [(a, steps), (b, steps)])
    return judge(claim, rule, claimed, measured, diff < 0, why_not=why, value=diff, unit="nats",
                 unmeasurable=unlearned)  # fmt: skip


def claims(out: dict) -> list[dict]:
    """The seed's four predictions, the reference's loss finding and the band model against
    the two GPTs beside this run's numbers, each with its rule, verdict, ``measured_value`` and
    ``unit`` (and ``computed_verdict`` beside "not comparable"): :data:`SEED_CLAIMS` in order."""
    plan = out["study"]
    why = comparability(plan)
    aqs = {arm: v["summary"] for arm, v in (out.get("aq") or {}).items()}
    band, base = aqs.get("band"), aqs.get("baseline")
    by = {(r["arm"], r.get("budget", plan.budgets[0])): r for r in out.get("loss_rows", [])}
    first = plan.budgets[0]
    aq_unlearned = _unlearned(by, [("band", first), ("baseline", first)])
    rows = [
        more_aq(band, base, why, aq_unlearned),
        low_frequency(band, why, _unlearned(by, [("band", first)])),
        universality(band, base, why, aq_unlearned),
        per_band_grokking(out.get("maturation") or {}, by, why),
        *(loss_claim(key, by, why) for key in LOSS_CLAIMS),
    ]
    if plan.base.offline:  # stand-ins measure the code path, never the models
        for row in rows:
            if row["verdict"] != "not run":
                row["verdict"] = standins.NOT_COMPARABLE
    return rows


def kit_summary(out: dict) -> Section:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    plan = out["study"]
    why = comparability(plan)
    swept = ", ".join(a for a in plan.arms if a in plan.sweep_arms) or "none"
    notes = [
        f"budgets: {plan.budget_text()} ({plan.base.dataset}); arms {', '.join(plan.arms)} "
        f"({', '.join(plan.arms_at(plan.budgets[-1]))} at every budget); LR swept for {swept} "
        f"(x {', '.join(sweep.tag(m) for m in plan.lr_multipliers)} of the preset's LRs, "
        f"extended beyond an edge up to {plan.max_extensions} times); AQ on seeds "
        f"{plan.aq_seeds} of {', '.join(plan.aq_arms)} at {plan.budgets[0]:,} steps",
        *out["comparisons"],
        *REFERENCE_DEFECTS,
    ]
    if why:
        notes.insert(0, f"not comparable with the seed's predictions and the reference: {why}")
    baselines = [
        f"unigram cross-entropy of the validation set: {out['unigram']:.4f} nats/token",
        *[aq_line(arm, v["summary"]) for arm, v in out["aq"].items()],
    ]
    return {
        "experiment": EXPERIMENT,
        "title": TITLE,
        "size": plan.size,
        "run": str(out["run"].path),
        "headline": HEADLINE,
        "claims": out["claims"],
        "baselines": baselines,
        "notes": notes,
    }
