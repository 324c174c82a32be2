"""Measurements and statistics of the differential-LR study (013), as pure functions of saved
curves and records (lists of numbers), so every one is tested on hand-made curves:
steps to a target (interpolated), the last window's step-to-step noise, spikes against the
running median, per-band weight-change factors against the prescribed LR ratios, paired
comparisons over seeds (same seeds, same data order) with the seed's thresholds and the
spread rule, one saved training's measures (:func:`measure`), their mean +- std per arm
(:func:`arm_stats`) and the learning check (:func:`learned`: every seed's final validation loss
at least :data:`~akira_nb.lr_sweep.LEARN_MARGIN` nats below the unigram loss).
"""

from __future__ import annotations

import math

import numpy as np

from akira_nb import lr_sweep
from akira_nb.lr_sweep import LEARN_MARGIN

SUPPORTED, NOT_SUPPORTED = "SUPPORTED", "NOT SUPPORTED"
MIN_WINDOW = 3  # the fewest steps a variance window takes (two differences)


def steps_to_target(steps, losses, target: float) -> float | None:
    """First step at which ``losses`` (evaluated at ``steps``) is <= ``target``: linear
    interpolation between the last evaluation above it and the first at or below it (the first
    evaluation itself when it is already there); None when the curve never gets there."""
    steps, losses = np.asarray(steps, dtype=float), np.asarray(losses, dtype=float)
    if steps.shape != losses.shape or steps.size == 0:
        raise ValueError(f"steps ({steps.size}) and losses ({losses.size}) must be equal, >= 1")
    hit = np.flatnonzero(losses <= target)
    if hit.size == 0:
        return None
    i = int(hit[0])
    if i == 0:
        return float(steps[0])
    s0, s1, l0, l1 = steps[i - 1], steps[i], losses[i - 1], losses[i]
    return float(s0 + (l0 - target) / (l0 - l1) * (s1 - s0))


def window_variance(losses, fraction: float = 0.25, min_steps: int = 8, warmup: int = 0) -> float:
    """The step-to-step noise of the per-step losses over the last ``max(min_steps, fraction *
    len)`` steps after the first ``warmup`` (the window never reaches into the warm-up): half
    the variance (ddof 0) of their first differences. For independent step-to-step noise this
    is the noise's variance; a trend adds nothing when straight and only its change of slope
    when curved (so a loss still bending down is not "unstable")."""
    y = np.asarray(losses, dtype=float)
    warmup = max(0, int(warmup))
    n = min(len(y) - warmup, max(min_steps, int(round(fraction * len(y)))))
    if n < MIN_WINDOW:
        raise ValueError(
            f"a variance window needs >= {MIN_WINDOW} steps after the warm-up ({warmup} of "
            f"{len(y)} steps); got {n}"
        )
    return float(np.var(np.diff(y[-n:])) / 2)


def spike_count(losses, factor: float = 2.0, window: int = 20, min_history: int = 5) -> int:
    """Steps t whose loss exceeds ``factor`` x the median of the (up to) ``window`` losses
    before it (counted once at least ``min_history`` losses precede it)."""
    y = np.asarray(losses, dtype=float)
    count = 0
    for t in range(min_history, len(y)):  # per step of a saved curve, not a hot path
        if y[t] > factor * np.median(y[max(0, t - window) : t]):
            count += 1
    return count


def rate_factors(weight_change: dict, lrs: dict, reference: str = "band_0") -> dict:
    """Per band key of ``weight_change`` (the monitor's history; ``shared`` left out):
    ``measured`` = median over intervals of (its relative change / the reference's),
    ``prescribed`` = its LR / the reference's, ``factor`` = measured / prescribed."""
    keys = [k for k in weight_change if k not in ("step", "shared")]
    if reference not in keys or not weight_change.get("step"):
        raise ValueError(f"weight_change has no intervals of {reference!r}")
    ref = np.asarray(weight_change[reference], dtype=float)
    out = {}
    for k in keys:
        measured = float(np.median(np.asarray(weight_change[k], dtype=float) / ref))
        prescribed = float(lrs[k]) / float(lrs[reference])
        out[k] = {"measured": measured, "prescribed": prescribed, "factor": measured / prescribed}
    return out


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; nan for one value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def paired(control, treatment, lower_is_better: bool = True) -> dict:
    """Paired comparison of ``treatment`` against ``control`` (one value per seed, the same
    seeds in the same order). ``diffs``: the improvement per seed (control - treatment when
    lower is better); ``mean`` / ``std`` of it; ``relative``: mean improvement / mean control;
    ``exceeds_spread``: mean improvement > its seed-to-seed std (False for fewer than 2 seeds);
    ``t`` / ``p``: the paired t-test (two-sided; nan below 2 seeds or with no spread)."""
    c, t = np.asarray(control, dtype=float), np.asarray(treatment, dtype=float)
    if c.shape != t.shape or c.size == 0:
        raise ValueError(f"paired values need one per seed on both sides; got {c.size}, {t.size}")
    d = (c - t) if lower_is_better else (t - c)
    mean, std = mean_std(d)
    tt, p = math.nan, math.nan
    if d.size > 1 and np.ptp(d) > 0:
        from scipy import stats  # imported when first needed (cli --help stays quick)

        res = stats.ttest_rel(c, t)
        tt, p = float(res.statistic), float(res.pvalue)
    base = float(c.mean())
    return {
        "diffs": d.tolist(),
        "mean": mean,
        "std": std,
        "relative": mean / base if base else math.nan,
        "exceeds_spread": bool(d.size > 1 and mean > std),
        "t": tt,
        "p": p,
        "n": int(d.size),
    }


def verdict(comparison: dict, threshold: float) -> str:
    """SUPPORTED when the relative improvement reaches ``threshold`` and the mean paired
    improvement exceeds its seed-to-seed spread; else NOT SUPPORTED."""
    ok = comparison["relative"] >= threshold and comparison["exceeds_spread"]
    return SUPPORTED if ok else NOT_SUPPORTED


def rate_verdict(factors_per_seed: list[dict], within: float = 2.0) -> tuple[str, dict]:
    """H4 over seeds: per band (band 0, the reference, and shared left out), the mean and std
    over seeds of log2(factor). SUPPORTED when every band's |mean| + std <= log2(within)
    (inside the 2x band with its spread); returns (verdict, {band: {mean_log2, std_log2}})."""
    if not factors_per_seed:
        raise ValueError("no weight-change factors to judge")
    keys = [k for k in factors_per_seed[0] if k != "band_0"]
    out, ok = {}, bool(keys)
    limit = math.log2(within)
    for k in keys:
        logs = [
            math.log2(f[k]["factor"]) if f[k]["factor"] > 0 else -math.inf for f in factors_per_seed
        ]
        m, s = mean_std(logs)
        spread = 0.0 if math.isnan(s) else s
        out[k] = {"mean_log2": m, "std_log2": s, "factor": 2.0**m if math.isfinite(m) else 0.0}
        ok = ok and abs(m) + spread <= limit
    return (SUPPORTED if ok else NOT_SUPPORTED), out


def measure(record: dict, target: float, window_fraction: float, warmup: int = 0) -> dict:
    """The per-run measurements of one saved training (``record``: ``TrainResult.summary()``
    plus ``test_loss``, and ``seed`` when known; ``warmup``: the steps the variance window
    leaves out)."""
    h = record["history"]
    out = {
        "seed": record.get("seed"),
        "steps_to_target": steps_to_target(h["step"], h["val_loss"], target),
        "final_train_loss": h["train_loss"][-1],
        "final_val_loss": record.get("final_val_loss", h["val_loss"][-1]),
        "test_loss": record["test_loss"],
        "variance": window_variance(record["step_losses"], window_fraction, warmup=warmup),
        "spikes": spike_count(record["step_losses"]),
    }
    wc = record.get("weight_change") or {}
    if wc.get("step") and "band_0" in wc:
        out["rates"] = rate_factors(wc, record["prescribed_lrs"])
    return out


def censored(steps, budget: int) -> list[float]:
    """Steps to target with a seed that never got there counted as the budget."""
    return [budget if s is None else s for s in steps]


def arm_stats(measures: dict, budget: int) -> dict:
    """Per arm: mean and std over seeds of every scalar measure, and the seeds that did not
    reach the target (counted as ``budget`` steps)."""
    out = {}
    for arm, per_seed in measures.items():
        row = {"seeds": len(per_seed)}
        steps = [m["steps_to_target"] for m in per_seed]
        row["unreached"] = sum(s is None for s in steps)
        row["steps_to_target"] = mean_std(censored(steps, budget))
        for k in ("final_train_loss", "final_val_loss", "test_loss", "variance", "spikes"):
            row[k] = mean_std([m[k] for m in per_seed])
        out[arm] = row
    return out


def learned(losses, unigram: float, margin: float = LEARN_MARGIN, seeds=None) -> dict:
    """The learning check of one arm: ``losses`` its final validation losses (one per seed, in
    ``seeds`` order). ``ok`` when every one learned (:func:`akira_nb.lr_sweep.learned`: at
    least ``margin`` nats below ``unigram``; NaN never is); ``failed``: the seeds that did not,
    with their loss; ``line``: the verdict in words."""
    seeds = list(range(len(losses))) if seeds is None else list(seeds)
    failed = [(s, v) for s, v in zip(seeds, losses) if not lr_sweep.learned(v, unigram, margin)]
    line = (
        f"learned (final val loss at least {margin:g} nats below the unigram {unigram:.4f} at "
        "every seed)"
        if not failed
        else "did not learn: final val loss "
        + ", ".join(f"{v:.4f} at seed {s}" for s, v in failed)
        + f" not at least {margin:g} nats below the unigram {unigram:.4f}"
    )
    return {"ok": not failed, "failed": failed, "line": line}


def learning(measures: dict, unigram: float, margin: float = LEARN_MARGIN) -> dict:
    """:func:`learned` of every arm of ``measures`` (``{arm: [per-seed measures]}``)."""
    return {
        arm: learned(
            [m["final_val_loss"] for m in per_seed],
            unigram,
            margin,
            [m.get("seed", i) for i, m in enumerate(per_seed)],
        )
        for arm, per_seed in measures.items()
    }


__all__ = [
    "LEARN_MARGIN",
    "NOT_SUPPORTED",
    "SUPPORTED",
    "arm_stats",
    "censored",
    "learned",
    "learning",
    "mean_std",
    "measure",
    "paired",
    "rate_factors",
    "rate_verdict",
    "spike_count",
    "steps_to_target",
    "verdict",
    "window_variance",
]
