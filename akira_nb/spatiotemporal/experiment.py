"""The 033 comparison: the per-size settings (:func:`study`, the one way the CLI and the notebook
build a config), every model under one protocol on the same held-out frames, variants of
the spectral model, the pattern sweep, the comparison table beside the reference's claims, the
claims with their verdicts (:func:`claims`; "not comparable" away from :data:`SEED_PROTOCOL`)
and this experiment's section of the kit summary (:func:`kit_summary`). Used by the notebook
and by ``python -m akira_nb spatiotemporal``.

Each model of a comparison is an *arm* (``spectral``, ``variants/<name>/spectral``,
``sweep/<pattern>/<model>``). With a run folder, a finished arm's evaluated summary is saved as
``arms/<arm>.json`` beside its final checkpoint in ``checkpoints/<arm>/``; calling again with
the same run reloads finished arms without training and continues partly trained ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

import torch
from tqdm.auto import tqdm

from .. import runtime
from ..runs import atomic_write_json, check_resume, read_json, to_jsonable
from ..runtime import cost, cost_line  # noqa: F401  (re-exported for the notebook)
from . import patterns as P
from .evaluate import evaluate, evaluation_times
from .model import BASELINES, build_model
from .presets import PRESETS, get_config
from .train import (
    RESUME_MAY_CHANGE,
    TrainConfig,
    checkpoint_config,
    threads,
    train,
    training_times,
    write_stats_csv,
)

# the reference's RESULTS.md, blob 32x32, 500 steps, --config fast --model compare
CLAIMED = {
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
# the protocol behind CLAIMED; other runs print the claims as "not comparable"
SEED_PROTOCOL = {"pattern": "blob", "grid_size": 32, "steps": 500, "protocol": "online"}
EXPERIMENT = "033_spectral_band_attention"

# Per-size settings. None (no size given): the reference's synthetic_2d.py defaults (32x32, 300
# steps, no checkpoints). sweep_steps: steps per pattern of the notebook's pattern sweep (the
# reference ran no sweep). tiny checkpoints mid-arm (every 30 steps), so the notebook's resume
# check at tiny continues an arm from a checkpoint, not only reloads finished ones.
SIZE_PRESETS = {
    None: dict(
        grid_size=32,
        steps=300,
        eval_steps=101,
        rollout_horizon=20,
        checkpoint_every=0,
        sweep_steps=300,
    ),
    "tiny": dict(
        grid_size=16,
        steps=60,
        eval_steps=30,
        rollout_horizon=8,
        checkpoint_every=30,
        sweep_steps=40,
    ),
    "t4": dict(
        grid_size=32,
        steps=500,
        eval_steps=101,
        rollout_horizon=20,
        checkpoint_every=100,
        sweep_steps=500,
    ),
    "a100": dict(
        grid_size=32,
        steps=3000,
        eval_steps=101,
        rollout_horizon=30,
        checkpoint_every=500,
        sweep_steps=2000,
    ),
}


@dataclass
class Study:
    """The settings of one 033 study: the comparison's :class:`TrainConfig` (``train``), the
    pattern sweep's (``sweep``: ``sweep_steps`` per pattern, no rollout), the model preset and
    its overrides. Build it with :func:`study`."""

    train: TrainConfig
    sweep: TrainConfig
    preset: str
    overrides: dict
    size: str | None = None
    from_preset: dict = field(default_factory=dict)  # settings the size's preset filled in

    def describe(self) -> str:
        """One line: where the settings came from."""
        source = f"size {self.size!r}" if self.size else "the reference's defaults (no size)"
        filled = ", ".join(f"{k}={v}" for k, v in self.from_preset.items()) or "nothing"
        return f"settings: {source} filled {filled}; model preset {self.preset}"


def study(
    size: str | None = None,
    preset: str | None = None,
    overrides: dict | None = None,
    **settings,
) -> Study:
    """The one way to build 033 settings (the CLI and the notebook both use it): the size's row
    of :data:`SIZE_PRESETS` (None: the reference's defaults) with ``settings`` on top.

    ``settings``: any :class:`TrainConfig` field, and ``sweep_steps``; None means "not given".
    ``preset``: the model preset (None: ``fast`` at the size's grid; a named preset brings its
    own grid, e.g. large 64x64, unless ``grid_size`` is given). ``overrides``: SpectralConfig
    fields on top of the preset. ``eval_warmup`` defaults to the preset's ``time_depth``.
    Everything is validated (the model config too); nothing is written."""
    if size is not None:
        runtime.check_choice("size", size, runtime.SIZES)
    allowed = {f.name for f in fields(TrainConfig)} | {"sweep_steps"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"study() got unknown settings {unknown}; allowed: {sorted(allowed)}")
    name = "fast" if preset is None else preset
    runtime.check_choice("preset", name, tuple(PRESETS))
    given = {k: v for k, v in settings.items() if v is not None}
    row = dict(SIZE_PRESETS[size])
    from_preset = {k: v for k, v in row.items() if k not in given}
    if preset is not None:  # a named preset brings its own grid
        row["grid_size"] = PRESETS[name].grid_size
        from_preset.pop("grid_size", None)
    values = {**row, **given}
    sweep_steps = runtime.check_int("sweep_steps", values.pop("sweep_steps"), 1)
    values.setdefault("eval_warmup", PRESETS[name].time_depth)
    train_cfg = TrainConfig(**values).validate()
    sweep = replace(train_cfg, steps=sweep_steps, rollout_horizon=0, pattern_eval=None)
    sweep.validate()
    overrides = dict(overrides or {})
    get_config(name, grid_size=train_cfg.grid_size, **overrides)  # raises on a bad override
    return Study(train_cfg, sweep, name, overrides, size=size, from_preset=from_preset)


# what a finished arm's saved summary may differ in from the settings that reload it: nothing
# that changes its numbers (the evaluation settings do, unlike for a checkpoint)
ARM_MAY_CHANGE = ("progress", "device", "cpu_threads", "checkpoint_every")


def arm_config(cfg: TrainConfig, model, preset: str, overrides: dict) -> dict:
    """What an arm's saved summary (``arms/<arm>.json``) was made with (plain JSON values)."""
    return to_jsonable(
        {"train": cfg, "model": model.config(), "preset": preset, "overrides": overrides}
    )


def _reload_arm(run, arm: str, model, cfg: TrainConfig, config: dict, device):
    """A finished arm's saved entry, with ``model`` holding its final weights; None when the
    arm has not finished, or finished with other settings (then :func:`train` continues it
    from its checkpoint, or refuses a change that alters training, and it is evaluated anew)."""
    path = run.path / "arms" / f"{arm}.json"
    if not path.is_file():
        return None
    saved = read_json(path)
    try:
        check_resume(saved.get("config"), config, f"the arm {path}", ARM_MAY_CHANGE)
    except ValueError:
        return None
    entry = saved["entry"]
    if entry.get("train") is not None:
        state = run.latest_checkpoint(
            arm,
            map_location=device,
            config=checkpoint_config(model, cfg),
            may_change=RESUME_MAY_CHANGE,
        )
        if state is None or int(state["step"]) != cfg.steps:
            return None  # its final checkpoint is gone: train() continues from the newest
        model.load_state_dict(state["model"])
        entry["rows"] = state["rows"].tolist()
    return entry


def compare(
    cfg: TrainConfig,
    models=("spectral", "mlp", "copy_last", "linear_extrap"),
    preset: str = "fast",
    overrides: dict | None = None,
    run=None,
    stats_csv: str | None = None,
    viz=None,
    prefix: str = "",
) -> dict:
    """Train every trainable model in ``models`` under the same protocol (each from the same
    seed), evaluate all of them on the same held-out frames, and return
    ``{"models": {name: {"train": ..., "eval": ...}}, "best_baseline": ..., ...}``.

    With ``run`` each model is an *arm* named ``prefix + name``: trained arms checkpoint under
    ``checkpoints/<arm>/`` (every ``cfg.checkpoint_every`` steps, and always the final step),
    and each finished arm's evaluated summary is saved as ``arms/<arm>.json``. Called again
    with the same run (a resumed notebook or ``--resume``), an arm finished with the same
    settings (outside :data:`ARM_MAY_CHANGE`) is reloaded without training or evaluating
    (``entry["reloaded"] = True``; its model gets its final weights from its checkpoint); a
    partly trained arm, or one asked for more steps, continues from its newest checkpoint.
    Without ``prefix`` it also writes ``results.json`` and ``stats.csv`` (the spectral model's
    per-step statistics)."""
    cfg.validate()
    device = runtime.get_device(cfg.device)
    overrides = dict(overrides or {})
    results = {
        "train_config": asdict(cfg),
        "preset": preset,
        "overrides": overrides,
        "metric": "per-pixel MSE (mean over pixels and frames) of predictions clamped to "
        "[0, 1], one-step and rollout alike; training losses on the raw output",
        "models": {},
    }
    with runtime.cpu_threads(threads(cfg), device):  # the thread count training uses
        results["environment"] = runtime.environment_info(device)
    for name in models:
        runtime.seed_everything(cfg.seed)
        model = build_model(name, preset, grid_size=cfg.grid_size, **overrides).to(device)
        arm = prefix + name
        config = arm_config(cfg, model, preset, overrides)
        entry = _reload_arm(run, arm, model, cfg, config, device) if run is not None else None
        if entry is not None:
            rows = entry.pop("rows", [])
            entry["reloaded"] = True
        else:
            entry = {"params": sum(p.numel() for p in model.parameters())}
            rows = []
            if name not in BASELINES:
                arm_cfg = cfg
                if run is not None:  # the final step is always kept: a reload needs it
                    arm_cfg = replace(cfg, checkpoint_every=cfg.checkpoint_every or cfg.steps)
                entry["train"] = train(
                    model,
                    arm_cfg,
                    run=run,
                    stats_rows=rows,
                    viz=viz if name == "spectral" else None,
                    tag=arm,
                )
            entry["eval"] = evaluate(model, cfg)
            if run is not None:
                atomic_write_json(
                    run.file(f"arms/{arm}.json"),
                    {"config": config, "entry": strip_entry(entry)},
                )
        if name == "spectral" and not prefix:
            paths = [run.file("stats.csv")] if run is not None else []
            paths += [stats_csv] if stats_csv else []
            for path in paths:
                write_stats_csv(path, rows)
            if paths:
                entry["stats_csv"] = [str(p) for p in paths]
        entry["model"] = model
        results["models"][name] = entry
    evals = {k: v["eval"]["mse"] for k, v in results["models"].items()}
    base = {k: v for k, v in evals.items() if k in BASELINES}
    if base:
        results["best_baseline"] = min(base, key=base.get)
    if run is not None and not prefix:
        run.write_results(strip_models(results))
    return results


VARIANTS = {
    "spectral_linear_base": {"residual": "linear"},
    "spectral_no_wormhole": {"attention_types": ("temporal", "neighbor")},
}


def add_variants(
    results: dict, cfg: TrainConfig, variants=VARIANTS, preset: str = "fast", run=None
) -> dict:
    """Train and evaluate variants of the spectral model (``name -> config overrides``) under
    the same protocol and frames, and add them to ``results["models"]``. With ``run`` each
    variant is the arm ``variants/<name>/spectral`` (resumable, see :func:`compare`)."""
    for name, overrides in variants.items():
        res = compare(
            cfg,
            ("spectral",),
            preset,
            {**results.get("overrides", {}), **overrides},
            run=run,
            prefix=f"variants/{name}/",
        )
        entry = res["models"]["spectral"]
        entry["overrides"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()
        }
        results["models"][name] = entry
    return results


def strip_models(results: dict) -> dict:
    """``results`` without the live model objects and tensors (what goes in results.json)."""
    out = {k: v for k, v in results.items() if k != "models"}
    out["models"] = {name: strip_entry(e) for name, e in results.get("models", {}).items()}
    return out


def strip_entry(entry: dict) -> dict:
    """One model's entry without its live model object and tensors."""
    e = {k: v for k, v in entry.items() if k != "model"}
    if "eval" in e:
        e["eval"] = {k: v for k, v in e["eval"].items() if not torch.is_tensor(v)}
    if "train" in e:
        e["train"] = dict(e["train"])
    return e


# The columns of the seed's comparison table (plus the baselines' and the kit's metrics).
COMPARISON_COLUMNS = (
    "model",
    "params",
    "final",
    "min",
    "last_window_mean",
    "improvement_pct",
    "eval_mean",
    "eval_ssim",
    "eval_mse_low",
    "eval_mse_high",
    "rollout_mse",
    "steps_per_s",
    "train_steps_per_s",
)


def comparison_rows(results: dict, claimed: dict | None = None) -> list[dict]:
    """One row per model: the reference's comparison metrics (+ SSIM, band errors), with the
    reference's claimed value beside each measured one where ``claimed`` has it."""
    rows = []
    for name, e in results["models"].items():
        tr, ev = e.get("train", {}), e["eval"]
        row = {
            "model": name,
            "params": e["params"],
            "final": tr.get("final"),
            "min": tr.get("min"),
            "last_window_mean": tr.get("last_window_mean"),
            "improvement_pct": tr.get("improvement_pct"),
            "eval_mean": ev["mse"],
            "eval_ssim": ev["ssim"],
            "eval_mse_low": ev["mse_low"],
            "eval_mse_high": ev["mse_high"],
            "rollout_mse": ev.get("rollout_mse"),
            "steps_per_s": tr.get("steps_per_s"),
            "train_steps_per_s": tr.get("train_steps_per_s"),
        }
        if claimed and name in claimed:
            row.update({f"claimed_{k}": v for k, v in claimed[name].items()})
        rows.append(row)
    return rows


def verdict(results: dict, model: str = "spectral") -> str:
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


def pattern_sweep(
    cfg: TrainConfig,
    patterns=P.PATTERNS,
    preset: str = "fast",
    overrides: dict | None = None,
    models=("spectral", "copy_last", "linear_extrap"),
    run=None,
) -> list[dict]:
    """Train and evaluate on each pattern (train pattern = eval pattern); one row per pattern
    with every model's held-out per-pixel MSE, the best baseline, ``best_over_spectral``
    (best baseline MSE / spectral MSE: > 1 means the spectral model is better) and the verdict.
    With ``run`` each (pattern, model) is the arm ``sweep/<pattern>/<model>``, resumable arm by
    arm (see :func:`compare`); ``row["reloaded"]`` counts the arms reloaded, not retrained."""
    rows = []
    for name in tqdm(patterns, desc="patterns", disable=not cfg.progress):
        c = replace(cfg, pattern=name, pattern_eval=None)
        res = compare(c, models, preset, overrides, run=run, prefix=f"sweep/{name}/")
        row = {"pattern": name}
        row.update({m: e["eval"]["mse"] for m, e in res["models"].items()})
        row.update({f"{m}_ssim": e["eval"]["ssim"] for m, e in res["models"].items()})
        best = res.get("best_baseline")
        if best and "spectral" in row:
            row["best_baseline"] = best
            row["best_over_spectral"] = row[best] / row["spectral"] if row["spectral"] else None
            row["beats_best_baseline"] = row["spectral"] < row[best]
        spec = res["models"].get("spectral", {}).get("train")
        if spec:
            row["spectral_final_loss"] = spec.get("final")
        row["smooth"] = name in P.SMOOTH_PATTERNS
        row["reloaded"] = sum(bool(e.get("reloaded")) for e in res["models"].values())
        rows.append(row)
    return rows


def comparability(results: dict) -> str | None:
    """None when ``results`` followed the seed's protocol (:data:`SEED_PROTOCOL`: blob 32x32,
    500 online steps, evaluated on blob, preset fast); otherwise the reason its numbers are not
    comparable with :data:`CLAIMED`."""
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


def claims_rows(rows: list[dict], results: dict | None = None) -> list[dict]:
    """From :func:`comparison_rows` with claims: one row per (model, metric) with the
    reference's claimed value beside the measured one, and whether they are comparable
    (``results`` given: its protocol against :data:`SEED_PROTOCOL`)."""
    why_not = comparability(results) if results is not None else None
    out = []
    for r in rows:
        for key in CLAIMED.get(r["model"], {}):
            if f"claimed_{key}" in r:
                row = {
                    "model": r["model"],
                    "metric": key,
                    "claimed": r[f"claimed_{key}"],
                    "measured": r.get(key),
                }
                if results is not None:
                    row["comparable"] = "yes" if why_not is None else "NO"
                    if key == "steps_per_s":  # another machine: never comparable
                        row["comparable"] = "NO (machine)"
                out.append(row)
    return out


def _mse(results: dict, model: str) -> float | None:
    entry = results["models"].get(model)
    return entry["eval"]["mse"] if entry else None


def claims(results: dict) -> list[dict]:
    """The seed's claims, each with its rule, the claimed and measured values and a verdict:
    "holds", "does not hold", "not comparable" (another protocol than the seed's: see
    :func:`comparability`) or "not run"; with ``measured_value`` and ``unit``, and beside "not
    comparable" the ``computed_verdict`` (the rule on this run's own numbers)."""
    why_not = comparability(results)
    spec, mlp = _mse(results, "spectral"), _mse(results, "mlp")
    c_spec, c_mlp = CLAIMED["spectral"]["eval_mean"], CLAIMED["mlp"]["eval_mean"]
    spec_train = results["models"].get("spectral", {}).get("train", {})
    out = []

    def add(claim, rule, claimed, measured, holds, value=None, unit=""):
        row = {"claim": claim, "rule": rule, "claimed": claimed, "unit": unit}
        if measured is None:
            out.append({**row, "measured": "-", "verdict": "not run", "measured_value": None})
            return
        row.update(measured=measured, measured_value=float(value))
        word = "holds" if holds else "does not hold"
        if why_not is not None:
            row.update(verdict="not comparable", computed_verdict=word)
        else:
            row["verdict"] = word
        out.append(row)

    ratio = mlp / spec if spec and mlp is not None else None
    add(
        "the spectral model generalises ~26x better than the MLP",
        "holds if the MLP's held-out per-pixel MSE is >= 13x the spectral model's "
        "(half the claimed ratio), blob 32x32, 500 steps",
        f"held-out MSE {c_spec} vs {c_mlp} ({c_mlp / c_spec:.1f}x)",
        f"held-out MSE {spec:.3g} vs {mlp:.3g} ({ratio:.1f}x)" if ratio is not None else None,
        ratio is not None and ratio >= 13,
        ratio,
        "x",
    )
    add(
        "the spectral model's held-out per-pixel MSE is 0.011",
        "holds if measured <= 0.011 (the kit's frames are held out; the seed's replayed training)",
        str(c_spec),
        f"{spec:.3g}" if spec is not None else None,
        spec is not None and spec <= c_spec,
        spec,
        "per-pixel MSE",
    )
    imp = spec_train.get("improvement_pct")
    add(
        "the spectral model's training loss improves 94.3% (first vs last window)",
        "holds if measured improvement >= 84.3% (claimed minus 10 points)",
        "94.3%",
        f"{imp:.1f}%" if imp is not None else None,
        imp is not None and imp >= 84.3,
        imp,
        "%",
    )
    sps = spec_train.get("steps_per_s")
    speed = {
        "claim": "the spectral model trains at 21.4 steps/s",
        "rule": "speed depends on the machine: reported, never judged",
        "claimed": "21.4 steps/s",
        "measured": f"{sps:.1f} steps/s (wall-clock)" if sps is not None else "-",
        "verdict": "not comparable" if sps is not None else "not run",
        "measured_value": float(sps) if sps is not None else None,
        "unit": "steps/s",
    }
    if sps is not None:
        speed["computed_verdict"] = "not measurable: a speed depends on the machine"
    out.append(speed)
    return out


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


def rollout_lines(results: dict) -> list[str]:
    """The rollout as measured in ``results``: each model's per-pixel MSE at the first and last
    fed-back step and its worst step, then for how many leading steps each trained model stays
    below each baseline (:func:`rollout_lead`)."""
    curves = {
        m: e["eval"]["rollout_curve"]
        for m, e in results["models"].items()
        if e.get("eval", {}).get("rollout_curve")
    }
    if not curves:
        return []
    horizon = max(len(c) for c in curves.values())
    lines = [
        f"{horizon}-step rollout (each model fed its own predictions, clamped to [0, 1]), "
        "per-pixel MSE:"
    ]
    for m, c in curves.items():
        worst = max(range(len(c)), key=c.__getitem__)
        lines.append(
            f"  {m}: step 1 {c[0]:.3g}, step {len(c)} {c[-1]:.3g}, worst {c[worst]:.3g} "
            f"(step {worst + 1}), mean {sum(c) / len(c):.3g}"
        )
    for m in curves:
        if m in BASELINES:
            continue
        leads = [
            f"{b} for {rollout_lead(results, m, b)} of {horizon} steps"
            for b in BASELINES
            if rollout_lead(results, m, b) is not None
        ]
        if leads:
            lines.append(f"  {m} stays below {', '.join(leads)}")
    return lines


def heldout_gap(cfg: TrainConfig, pattern: str | None = None) -> dict:
    """How far the held-out frames lie from the training frames: the per-pixel MSE between the
    closest (evaluation frame, training frame) pair, beside copy-last-frame's per-pixel error on
    the evaluation frames, and their ratio (0: the evaluation replays a training frame)."""
    pattern = pattern or cfg.pattern_eval or cfg.pattern
    params = cfg.params_for(pattern)
    train = P.frames(pattern, training_times(cfg), cfg.grid_size, **params).flatten(1).double()
    held = P.frames(pattern, evaluation_times(cfg), cfg.grid_size, **params).flatten(1).double()
    # squared distances of every pair at once, [n_eval, n_train], without an [n, m, H*W] tensor
    dist = (held**2).sum(1)[:, None] + (train**2).sum(1)[None] - 2 * held @ train.T
    nearest = float(dist.clamp_min(0).min()) / train.shape[1]
    copy_last = float(((held[1:] - held[:-1]) ** 2).mean())
    return {
        "pattern": pattern,
        "nearest_train_mse": nearest,
        "copy_last_mse": copy_last,
        "ratio": nearest / copy_last if copy_last > 0 else math.inf,
        "n_train": train.shape[0],
    }


def heldout_line(cfg: TrainConfig, pattern: str | None = None) -> str:
    """:func:`heldout_gap` in one line."""
    g = heldout_gap(cfg, pattern)
    return (
        f"held-out frames ({g['pattern']}, t = {cfg.eval_start}+): the nearest of the "
        f"{g['n_train']} training frames is {g['ratio']:.2g}x copy-last-frame's per-pixel error "
        f"away (MSE {g['nearest_train_mse']:.3g} vs {g['copy_last_mse']:.3g}; 0 would mean the "
        "evaluation replays training frames)"
    )


def baseline_lines(results: dict) -> list[str]:
    """Each trained model's held-out and rollout MSE beside copy-last-frame's and linear
    extrapolation's on the same frames."""
    lines = []
    trained = [m for m in results["models"] if m not in BASELINES]
    for m in trained:
        for b in BASELINES:
            if b in results["models"]:
                a, c = _mse(results, m), _mse(results, b)
                word = "beats" if a < c else "does NOT beat"
                lines.append(
                    f"held-out per-pixel MSE: {m} {a:.3g} {word} {b} {c:.3g} "
                    f"({c / a if a else math.inf:.2f}x)"
                )
    roll = {
        m: e["eval"]["rollout_mse"]
        for m, e in results["models"].items()
        if e["eval"].get("rollout_mse") is not None
    }
    if roll:
        horizon = results["train_config"]["rollout_horizon"]
        lines.append(
            f"{horizon}-step autoregressive rollout MSE: "
            + ", ".join(f"{m} {v:.3g}" for m, v in roll.items())
        )
        for m in trained:
            leads = [
                f"{b} for {rollout_lead(results, m, b)}"
                for b in BASELINES
                if rollout_lead(results, m, b) is not None
            ]
            if leads:
                lines.append(
                    f"{m}'s rollout error stays below {', '.join(leads)} of {horizon} steps"
                )
    return lines


def arm_lines(results: dict) -> str:
    """One line per trained arm (what a saved notebook shows once its progress bars are gone):
    steps, final training loss, held-out and rollout MSE beside the baselines'."""
    base = {b: results["models"][b]["eval"] for b in BASELINES if b in results["models"]}
    lines = []
    for name, e in results["models"].items():
        if name in BASELINES:
            continue
        tr, ev = e.get("train", {}), e["eval"]
        steps = len(tr.get("losses", []))
        held = ", ".join(f"{b} {v['mse']:.3g}" for b, v in base.items())
        line = (
            f"{name}: {steps} steps, final loss {tr.get('final', float('nan')):.3g}, held-out "
            f"MSE {ev['mse']:.3g} vs {held}"
        )
        if ev.get("rollout_mse") is not None:
            roll = ", ".join(
                f"{b} {v['rollout_mse']:.3g}" for b, v in base.items() if "rollout_mse" in v
            )
            line += f"; rollout MSE {ev['rollout_mse']:.3g} vs {roll}"
            lead = rollout_lead(results, name, "copy_last")
            if lead is not None:
                n = len(ev["rollout_curve"])
                line += f" (ahead of copy_last for {lead} of {n} rollout steps)"
        if tr.get("resumed_from"):
            line += f" (resumed from step {tr['resumed_from']})"
        if e.get("reloaded"):
            line += " (reloaded, not retrained)"
        lines.append(line)
    return "\n".join(lines)


def claims_text(results: dict) -> str:
    """The reference's claims beside this run's numbers, with each verdict and its rule; when
    the protocol differs from the seed's it says so first (every verdict: not comparable)."""
    from .plots import format_table

    why_not = comparability(results)
    head = "claimed by the reference (RESULTS.md: blob 32x32, 500 online steps, preset fast)"
    lines = [head + " beside this run:"]
    if why_not:
        lines.append(f"NOT COMPARABLE ({why_not}): the numbers below are not the seed's protocol")
    rows = claims_rows(comparison_rows(results, CLAIMED), results)
    if rows:
        lines.append(format_table(rows))
    cl = claims(results)
    lines.append(format_table(cl, ["claim", "claimed", "measured", "verdict"]))
    lines += [f"  rule ({c['claim']}): {c['rule']}" for c in cl]
    return "\n".join(lines)


def kit_summary(out: dict) -> dict:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    why_not = comparability(out)
    cfg = out["train_config"]
    notes = [
        f"blob-trained models; held-out frames from t = {cfg['eval_start']} (the seed evaluated "
        "at t = 10000, which replays blob's training frames)",
        verdict(out, "spectral" if "spectral" in out["models"] else "mlp"),
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
