"""Measurements and statistics of the differential-LR study (013), as pure functions of saved
curves (lists of numbers), so every one is tested on hand-made curves.

- :func:`steps_to_target`: the first step at which the validation curve reaches a target loss,
  linearly interpolated between the two evaluations around the crossing (None: never).
- :func:`window_variance`: the step-to-step noise of the per-step train loss over the last
  window after the warm-up: half the variance of its first differences (so a loss still
  falling, on a line or a curve, is not "unstable").
- :func:`spike_count`: steps whose train loss exceeds ``factor`` x the running median of the
  ``window`` steps before it.
- :func:`rate_factors`: each band's measured relative weight change, relative to band 0 (the
  median over the monitor's intervals), against its prescribed LR ratio.
- :func:`paired`: a paired comparison over seeds (same seeds, same data order): the mean
  improvement, its seed-to-seed spread, the relative improvement and a paired t-test.
- :func:`verdict` / :func:`rate_verdict`: the seed's thresholds and the spread rule.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

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


__all__ = [
    "NOT_SUPPORTED",
    "SUPPORTED",
    "mean_std",
    "paired",
    "rate_factors",
    "rate_verdict",
    "spike_count",
    "steps_to_target",
    "verdict",
    "window_variance",
]
