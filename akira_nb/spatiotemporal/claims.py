"""The 033 seed's claims beside a run's numbers: what the reference claimed (:data:`SEED_CLAIMS`),
whether a run is comparable with it (:func:`comparability`), one function per seed claim, each
judged by the kit's one rule (:func:`akira_nb.claims.judge`), the comparisons with the
zero-parameter baselines, and this experiment's section of the kit summary (:func:`kit_summary`).

Every function reads a results dict (``experiment.compare``'s, or the results.json of a run).
"""

from __future__ import annotations

import math

from akira_nb.claims import Section, judge
from akira_nb.spatiotemporal.model import BASELINES

EXPERIMENT = "033_spectral_band_attention"

# the reference's RESULTS.md, blob 32x32, 500 steps, --config fast --model compare
SEED_CLAIMS = {
    "spectral": {
        "final": 0.0031,
        "min": 0.0020,
        "last_window_mean": 0.0059,
        "improvement_pct": 94.3,
        "eval_mean": 0.011,
        "steps_per_s": 21.4,
    },
    "mlp": {
        "final": 0.031,
        "min": 0.018,
        "last_window_mean": 0.033,
        "improvement_pct": 28.8,
        "eval_mean": 0.296,
        "steps_per_s": 27.7,
    },
}
# the protocol behind SEED_CLAIMS; other runs print the claims as "not comparable"
SEED_PROTOCOL = {"pattern": "blob", "grid_size": 32, "steps": 500, "protocol": "online"}


def comparability(results: dict) -> str | None:
    """None when ``results`` followed the seed's protocol (:data:`SEED_PROTOCOL`: blob 32x32,
    500 online steps, evaluated on blob, preset fast); otherwise the reason its numbers are not
    comparable with :data:`SEED_CLAIMS`."""
    cfg = results["train_config"]
    got = {k: cfg.get(k) for k in SEED_PROTOCOL}
    evaluated = cfg.get("pattern_eval") or cfg["pattern"]
    preset = results.get("preset", "fast")
    if got == SEED_PROTOCOL and evaluated == "blob" and preset == "fast":
        return None
    return (
        f"this run: {cfg['pattern']} {cfg['grid_size']}x{cfg['grid_size']}, {cfg['steps']} "
        f"{cfg['protocol']} steps, preset {preset}, evaluated on {evaluated}; the seed's claims: "
        "blob 32x32, 500 online steps, preset fast"
    )


def mse(results: dict, model: str) -> float | None:
    """``model``'s held-out per-pixel MSE in ``results`` (None when it did not run)."""
    entry = results["models"].get(model)
    return entry["eval"]["mse"] if entry else None


def _spectral_train(results: dict) -> dict:
    return results["models"].get("spectral", {}).get("train", {})


# -- one function per seed claim ------------------------------------------------------------


def generalisation_claim(results: dict, why_not: str | None) -> dict:
    spec, mlp = mse(results, "spectral"), mse(results, "mlp")
    c_spec, c_mlp = SEED_CLAIMS["spectral"]["eval_mean"], SEED_CLAIMS["mlp"]["eval_mean"]
    ratio = mlp / spec if spec and mlp is not None else None
    return judge(
        "the spectral model generalises ~26x better than the MLP",
        "holds if the MLP's held-out per-pixel MSE is >= 13x the spectral model's "
        "(half the claimed ratio), blob 32x32, 500 steps",
        f"held-out MSE {c_spec} vs {c_mlp} ({c_mlp / c_spec:.1f}x)",
        f"held-out MSE {spec:.3g} vs {mlp:.3g} ({ratio:.1f}x)" if ratio is not None else None,
        ratio is not None and ratio >= 13,
        why_not=why_not,
        value=ratio,
        unit="x",
    )


def heldout_mse_claim(results: dict, why_not: str | None) -> dict:
    spec, c_spec = mse(results, "spectral"), SEED_CLAIMS["spectral"]["eval_mean"]
    return judge(
        "the spectral model's held-out per-pixel MSE is 0.011",
        "holds if measured <= 0.011 (the kit's frames are held out; the seed's replayed training)",
        str(c_spec),
        f"{spec:.3g}" if spec is not None else None,
        spec is not None and spec <= c_spec,
        why_not=why_not,
        value=spec,
        unit="per-pixel MSE",
    )


def improvement_claim(results: dict, why_not: str | None) -> dict:
    imp = _spectral_train(results).get("improvement_pct")
    return judge(
        "the spectral model's training loss improves 94.3% (first vs last window)",
        "holds if measured improvement >= 84.3% (claimed minus 10 points)",
        "94.3%",
        f"{imp:.1f}%" if imp is not None else None,
        imp is not None and imp >= 84.3,
        why_not=why_not,
        value=imp,
        unit="%",
    )


def speed_claim(results: dict, why_not: str | None) -> dict:
    """Speed depends on the machine: never comparable, never judged (whatever ``why_not``)."""
    sps = _spectral_train(results).get("steps_per_s")
    return judge(
        "the spectral model trains at 21.4 steps/s",
        "speed depends on the machine: reported, never judged",
        "21.4 steps/s",
        f"{sps:.1f} steps/s (wall-clock)" if sps is not None else None,
        None,
        why_not="a speed depends on the machine",
        value=sps,
        unit="steps/s",
        unmeasurable="a speed depends on the machine",
    )


CLAIMS = (generalisation_claim, heldout_mse_claim, improvement_claim, speed_claim)


def claims(results: dict) -> list[dict]:
    """The seed's claims (:data:`CLAIMS`), each with its rule, the claimed and measured values,
    ``measured_value`` and ``unit``, and a verdict from :func:`akira_nb.claims.judge`: "not
    comparable" away from the seed's protocol (:func:`comparability`; the rule's own result on
    this run's numbers beside it as ``computed_verdict``), "not run" without a measurement."""
    why_not = comparability(results)
    return [claim(results, why_not) for claim in CLAIMS]


# -- the baselines --------------------------------------------------------------------------


def baseline_verdict(results: dict, model: str = "spectral") -> str:
    """Plain words: does ``model`` beat each baseline on the held-out per-pixel MSE?"""
    ev = {k: v["eval"]["mse"] for k, v in results["models"].items()}
    if model not in ev:
        return f"{model} was not run"
    parts = []
    for b in BASELINES + ("mlp",):
        if b in ev and b != model:
            ratio = ev[b] / ev[model] if ev[model] > 0 else math.inf
            word = "beats" if ev[model] < ev[b] else "does NOT beat"
            parts.append(f"{model} {word} {b} ({ev[model]:.2e} vs {ev[b]:.2e}, {ratio:.2f}x)")
    return "; ".join(parts)


def rollout_lead(results: dict, model: str, baseline: str) -> int | None:
    """For how many leading rollout steps ``model``'s per-pixel error stays below
    ``baseline``'s (the horizon when it never falls behind; None without both curves)."""
    a = results["models"].get(model, {}).get("eval", {}).get("rollout_curve")
    b = results["models"].get(baseline, {}).get("eval", {}).get("rollout_curve")
    if not a or not b:
        return None
    lead = 0
    for x, y in zip(a, b):
        if x >= y:
            break
        lead += 1
    return lead


def _rollout_baseline_lines(results: dict, trained: list[str]) -> list[str]:
    roll = {
        m: e["eval"]["rollout_mse"]
        for m, e in results["models"].items()
        if e["eval"].get("rollout_mse") is not None
    }
    if not roll:
        return []
    horizon = results["train_config"]["rollout_horizon"]
    lines = [
        f"{horizon}-step autoregressive rollout MSE: "
        + ", ".join(f"{m} {v:.3g}" for m, v in roll.items())
    ]
    for m in trained:
        leads = [
            f"{b} for {rollout_lead(results, m, b)}"
            for b in BASELINES
            if rollout_lead(results, m, b) is not None
        ]
        if leads:
            lines.append(f"{m}'s rollout error stays below {', '.join(leads)} of {horizon} steps")
    return lines


def baseline_lines(results: dict) -> list[str]:
    """Each trained model's held-out and rollout MSE beside copy-last-frame's and linear
    extrapolation's on the same frames."""
    lines = []
    trained = [m for m in results["models"] if m not in BASELINES]
    for m in trained:
        for b in BASELINES:
            if b in results["models"]:
                a, c = mse(results, m), mse(results, b)
                word = "beats" if a < c else "does NOT beat"
                lines.append(
                    f"held-out per-pixel MSE: {m} {a:.3g} {word} {b} {c:.3g} "
                    f"({c / a if a else math.inf:.2f}x)"
                )
    return lines + _rollout_baseline_lines(results, trained)


def kit_summary(out: dict) -> Section:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    why_not = comparability(out)
    cfg = out["train_config"]
    notes = [
        f"blob-trained models; held-out frames from t = {cfg['eval_start']} (the seed evaluated "
        "at t = 10000, which replays blob's training frames)",
        baseline_verdict(out, "spectral" if "spectral" in out["models"] else "mlp"),
    ]
    if why_not:
        notes.insert(0, f"not comparable with the seed's claims: {why_not}")
    if "mlp" not in out["models"]:
        notes.append("the MLP was not trained in this run (--model compare trains it)")
    return {
        "experiment": EXPERIMENT,
        "title": "033 spectral band attention: next-frame prediction beside zero-parameter "
        "baselines",
        "size": out.get("size"),
        "run": str(out["run"]),
        "claims": claims(out),
        "baselines": baseline_lines(out),
        "notes": notes,
    }
