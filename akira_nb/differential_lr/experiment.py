"""Experiment 013 (differential learning rates) in one call: does AKIRA's band LR hierarchy
(slow low bands, fast high bands) learn faster, generalise better and train more stably than a
uniform LR, and do the bands move at their prescribed rates?

Arms (each a :mod:`akira_nb.bandformer.train` arm, one ``train()`` call per arm x seed):

- ``band``: the band transformer with differential LRs (the LR preset's band LRs, the shared
  LR for embeddings and the final norm);
- ``band_geomean``: the same model with every group at the geometric mean of the band LRs
  (013's control: "same total learning budget, LR = geometric mean");
- ``band_uniform``: every group at the preset's shared LR;
- ``baseline_differential``: "differential LR without bands": the parameter-matched GPT with
  the same band LRs over its hidden units split into the band slices.

Every arm trains the same token budget at the same seeds, and a seed fixes the data order too
(``data_seed`` is the study's, one for all), so the comparisons are paired. The uniform-LR
sweep trains the band model at uniform LRs ``factor x geometric mean`` (``sweep``, on
``sweep_seeds``), so the control is a tuned baseline: the best uniform LR is reported beside
the geometric mean (``x1`` is the ``band_geomean`` arm itself, and the shared-LR arm is one
more uniform point).

Measurements per arm x seed (:mod:`.evaluate`): steps to the target validation loss (the
control's mean final validation loss x (1 + ``target_margin``) unless ``target_loss`` is
given), final train / validation / test loss, the last-window train-loss variance (half that of the
step-to-step differences, after the warm-up) and the spikes (> 2x the running median, reported
beside it), ||dW|| / ||W|| per band against the prescribed ratios. Verdicts (:func:`claims`):
H1 at least 20% fewer steps (speedup >= 1.25x), H2 5% lower test loss, H3 30% less variance,
each SUPPORTED only when the threshold is met and the mean paired difference exceeds the std of
the paired differences (the paired t-test p beside it); H4 every band's weight-change ratio
within 2x of the prescribed one (with its spread). Below the seed's scale
(:func:`comparability`) every verdict is computed and reads "not comparable" in the kit
summary.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from akira_nb import runtime, standins
from akira_nb.bandformer.experiment import _check_distinct, _train_module
from akira_nb.runs import claim_lines

from . import evaluate as ev

EXPERIMENT = "013_differential_lr"
TITLE = "013 Differential learning rates: does the band LR hierarchy beat a uniform LR?"
ARMS = ("band", "band_geomean", "band_uniform", "baseline_differential")
CONTROL = "band_geomean"
TREATMENT = "band"
ARM_LABELS = {
    "band": "differential (band LRs)",
    "band_geomean": "uniform at the geometric mean",
    "band_uniform": "uniform at the shared LR",
    "baseline_differential": "differential LR without bands (matched GPT, hidden slices)",
}
# the seed's predictions: (hypothesis, claim, threshold)
HYPOTHESES = {
    "H1": ("faster learning", "Differential LR: 20% faster convergence (steps to target)", 0.20),
    "H2": ("better generalization", "Differential LR: 5% better test loss", 0.05),
    "H3": ("more stable", "Differential LR: 30% less loss variance", 0.30),
    "H4": ("rates match", "Actual weight changes: within 2x of prescribed ratios", 2.0),
}
# model presets by size and band count (7 bands: the 026 shapes; 8: the 7+1 layout)
MODEL_PRESETS = {"tiny": {7: "tiny", 8: "tiny_7p1"}, "big": {7: "default", 8: "canonical_7p1"}}

PRESETS: dict[str, dict[str, Any]] = {
    # the whole notebook in under 2 minutes on one CPU thread (band model ~50 ms/step)
    "tiny": dict(
        lr_preset="013",
        seeds=[0, 1, 2],
        sweep=[1 / 3, 3.0],
        sweep_seeds=[0],
        dataset="offline",
        data_seed=0,
        seq_len=32,
        batch_size=16,
        total_steps=80,
        warmup_steps=8,
        eval_every=8,
        eval_batches=2,
        checkpoint_every=40,
        monitor_every=8,
    ),
    "t4": dict(
        lr_preset="013",
        seeds=[0, 1, 2],
        sweep=[1 / 3, 3.0, 10.0],
        sweep_seeds=[0],
        dataset="wikitext-103",
        max_train_tokens=16_000_000,
        data_seed=0,
        seq_len=256,
        batch_size=16,
        total_steps=1000,
        warmup_steps=50,
        eval_every=50,
        eval_batches=20,
        checkpoint_every=250,
        monitor_every=50,
    ),
    "a100": dict(
        lr_preset="013",
        seeds=[0, 1, 2, 3, 4],
        sweep=[1 / 3, 3.0, 10.0],
        sweep_seeds=[0, 1],
        dataset="wikitext-103",
        data_seed=0,
        seq_len=256,
        batch_size=16,
        total_steps=5000,
        warmup_steps=100,
        eval_every=250,
        eval_batches=50,
        checkpoint_every=500,
        monitor_every=100,
    ),
}
STUDY_KEYS = (
    "lr_preset",
    "band_lrs",
    "shared_lr",
    "arms",
    "seeds",
    "sweep",
    "sweep_seeds",
    "target_loss",
    "target_margin",
    "window_fraction",
)
MAY_CHANGE = ("device", "progress", "checkpoint_every", "cpu_threads")
# the seed's scale: the 026/7+1 model on a real corpus, >= 3 seeds, >= 1,000 steps
MIN_SEEDS, MIN_STEPS = 3, 1000


def _optim():
    from akira_nb.bandformer import optim

    return optim


@dataclass
class Study:
    """One 013 study: the shared ``TrainConfig`` (``base``), the LR set, the arms, seeds, the
    uniform sweep and the measurement settings. Build it with :func:`study`."""

    base: Any
    lr_preset: str
    band_lrs: tuple
    shared_lr: float
    arms: list
    seeds: list
    sweep: list = field(default_factory=list)
    sweep_seeds: list = field(default_factory=list)
    target_loss: float | None = None
    target_margin: float = 0.02
    window_fraction: float = 0.25
    size: str | None = None

    def validate(self) -> Study:
        """Every setting checked (``ValueError`` naming it) before anything is written."""
        if not isinstance(self.arms, (list, tuple)) or not self.arms:
            raise ValueError(f"arms={self.arms!r} leaves nothing to train; choose from {ARMS}")
        for arm in self.arms:
            runtime.check_choice("arms", arm, ARMS)
        _check_distinct("arms", self.arms)
        self.seeds = runtime.check_seeds("seeds", self.seeds)
        self.sweep_seeds = runtime.check_seeds("sweep_seeds", self.sweep_seeds or self.seeds[:1])
        outside = [s for s in self.sweep_seeds if s not in self.seeds]
        if outside:
            raise ValueError(
                f"sweep_seeds={self.sweep_seeds!r}: {outside} not among seeds={self.seeds!r} "
                "(the sweep is compared with the arms on the same seeds)"
            )
        if not isinstance(self.sweep, (list, tuple)):
            raise ValueError(f"sweep={self.sweep!r} must be a list of LR factors (or [])")
        self.sweep = [
            runtime.check_real(f"sweep[{i}]", f, low=0, low_open=True)
            for i, f in enumerate(self.sweep)
        ]
        if any(math.isclose(f, 1.0) for f in self.sweep):
            raise ValueError("sweep must not hold 1: the x1 point is the band_geomean arm")
        _check_distinct("sweep", self.sweep)
        tags = [_factor_tag(f) for f in self.sweep]
        for i, t in enumerate(tags):
            if t in tags[:i]:
                raise ValueError(
                    f"sweep={self.sweep!r}: {self.sweep[tags.index(t)]!r} and {self.sweep[i]!r} "
                    f"share the tag x{t} (arms/sweep_x{t}_s<seed>.json); make the factors "
                    "differ in their first 4 significant digits"
                )
        if self.target_loss is not None:
            self.target_loss = runtime.check_real(
                "target_loss", self.target_loss, low=0, low_open=True
            )
        self.target_margin = runtime.check_real("target_margin", self.target_margin, 0, 1)
        self.window_fraction = runtime.check_real(
            "window_fraction", self.window_fraction, 0, 1, low_open=True
        )
        runtime.check_device("device", self.base.device)
        self.configs()
        b = self.base
        if b.total_steps - b.warmup_steps < ev.MIN_WINDOW:
            raise ValueError(
                f"total_steps={b.total_steps} with warmup_steps={b.warmup_steps} leaves "
                f"{b.total_steps - b.warmup_steps} step(s) after the warm-up; H3's stability "
                f"window needs at least {ev.MIN_WINDOW} steps after it"
            )
        return self

    @property
    def geomean(self) -> float:
        return _optim().geometric_mean(self.band_lrs)

    @property
    def tokens_per_arm(self) -> int:
        b = self.base
        return int(b.total_steps) * int(b.batch_size) * int(b.seq_len)

    def configs(self) -> list[tuple[dict, Any]]:
        """``(key, TrainConfig)`` of every training, in order: each arm at each seed, then each
        sweep point at each sweep seed. ``key``: kind (``arm``/``sweep``), arm, seed, tag,
        factor and uniform LR (sweep)."""
        out = []
        for arm in self.arms:
            for s in self.seeds:
                cfg = replace(self.base, arm=arm, seed=int(s)).validate()
                out.append(({"kind": "arm", "arm": arm, "seed": int(s), "tag": f"{arm}_s{s}"}, cfg))
        for f in self.sweep:
            lr = f * self.geomean
            over = {**self.base.model_overrides, "shared_lr": lr}
            for s in self.sweep_seeds:
                cfg = replace(self.base, arm="band_uniform", seed=int(s), model_overrides=over)
                tag = f"sweep_x{_factor_tag(f)}_s{s}"
                key = {"kind": "sweep", "arm": "band_uniform", "seed": int(s), "tag": tag}
                out.append(({**key, "factor": f, "lr": lr}, cfg.validate()))
        return out

    def to_dict(self) -> dict:
        return {
            "base": asdict(self.base),
            "lr_preset": self.lr_preset,
            "band_lrs": list(self.band_lrs),
            "shared_lr": self.shared_lr,
            "arms": list(self.arms),
            "seeds": list(self.seeds),
            "sweep": list(self.sweep),
            "sweep_seeds": list(self.sweep_seeds),
            "target_loss": self.target_loss,
            "target_margin": self.target_margin,
            "window_fraction": self.window_fraction,
            "tokens_per_arm": self.tokens_per_arm,
        }

    def describe(self) -> str:
        b = self.base
        return (
            f"013 at size {self.size or 'custom'}: LR preset {self.lr_preset} "
            f"(bands {', '.join(f'{v:g}' for v in self.band_lrs)}; shared {self.shared_lr:g}; "
            f"geometric mean {self.geomean:.3g}), model preset {b.preset}, {b.dataset}, arms "
            f"{', '.join(self.arms)}, seeds {self.seeds}, {b.total_steps} steps (warm-up "
            f"{b.warmup_steps}) x "
            f"{b.batch_size} x {b.seq_len} = {self.tokens_per_arm:,} tokens per arm; uniform "
            f"sweep x{', x'.join(f'{f:.3g}' for f in self.sweep) or ' (none)'} on seeds "
            f"{self.sweep_seeds}"
        )


def _factor_tag(factor: float) -> str:
    return f"{factor:.4g}"


def study(size: str | None = "tiny", **overrides) -> Study:
    """The one way to build a 013 study (notebook and CLI): ``PRESETS[size]`` with
    ``overrides`` on top (None means "not given"). Keys: ``lr_preset`` (a name of
    ``optim.LR_PRESETS`` or ``custom`` with ``band_lrs`` / ``shared_lr``), ``arms``, ``seeds``,
    ``sweep`` (LR factors of the geometric mean), ``sweep_seeds``, ``target_loss``,
    ``target_margin``, ``window_fraction`` and any ``TrainConfig`` field except ``arm`` /
    ``seed`` (e.g. ``offline=True``: local stand-ins of the same shape for every download,
    :mod:`akira_nb.standins`). The model preset follows the size and the LR set's band count
    (7: the 026 shapes, 8: the 7+1 layout). Given ``seeds`` without ``sweep_seeds``, the
    sweep runs on the first of them (as many as the size's sweep seeds); given ``total_steps``
    without ``warmup_steps``, the warm-up keeps the size's share of the steps (tiny 10%)."""
    train = _train_module()
    optim = _optim()
    size = runtime.check_choice("size", size, runtime.SIZES)
    train_fields = {f.name for f in fields(train.TrainConfig)} - {"arm", "seed"}
    unknown = sorted(set(overrides) - set(STUDY_KEYS) - train_fields)
    if unknown:
        raise ValueError(
            f"study() got unknown settings {unknown}; allowed: "
            f"{sorted(set(STUDY_KEYS) | train_fields)}"
        )
    given = {k: v for k, v in overrides.items() if v is not None}
    preset = PRESETS[size]
    settings = {**preset, **given}
    if (
        "seeds" in given
        and "sweep_seeds" not in given
        and isinstance(given["seeds"], (list, tuple))
    ):
        settings["sweep_seeds"] = list(given["seeds"])[: len(preset["sweep_seeds"])]
    if "total_steps" in given and "warmup_steps" not in given:
        total = runtime.check_int("total_steps", given["total_steps"], low=1)
        settings["warmup_steps"] = round(preset["warmup_steps"] * total / preset["total_steps"])
    plan_keys = {k: settings.pop(k) for k in STUDY_KEYS if k in settings}
    name = plan_keys.pop("lr_preset")
    pre = optim.lr_preset(name, plan_keys.pop("band_lrs", None), plan_keys.pop("shared_lr", None))
    n = len(pre.band_lrs)
    models = MODEL_PRESETS["tiny" if size == "tiny" else "big"]
    if n not in models and "preset" not in settings:
        raise ValueError(
            f"band_lrs has {n} learning rates; the study's models have 7 or 8 bands (or pass "
            "preset= and model_overrides with band_dims)"
        )
    settings.setdefault("preset", models.get(n))
    over = settings.pop("model_overrides", None) or {}
    if not isinstance(over, dict):
        raise ValueError(f"model_overrides={over!r} must be a dict of BandConfig fields")
    over = dict(over)
    over.update(band_lrs=tuple(pre.band_lrs), shared_lr=float(pre.shared_lr))
    settings.setdefault("cpu_threads", 1)
    arms = list(plan_keys.pop("arms", None) or ARMS)
    seeds = plan_keys.pop("seeds")
    base = train.TrainConfig(arm=arms[0], seed=0, model_overrides=over, **settings)
    return Study(
        base=base,
        lr_preset=name,
        band_lrs=tuple(pre.band_lrs),
        shared_lr=float(pre.shared_lr),
        arms=arms,
        seeds=seeds,
        size=size,
        **plan_keys,
    ).validate()


def comparability(plan: Study) -> str | None:
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


# ----------------------------------------------------------------------------- measurements


def measure(record: dict, target: float, window_fraction: float, warmup: int = 0) -> dict:
    """The per-run measurements of one saved training (``record``: ``TrainResult.summary()``
    plus ``test_loss``; ``warmup``: the steps the variance window leaves out)."""
    h = record["history"]
    out = {
        "steps_to_target": ev.steps_to_target(h["step"], h["val_loss"], target),
        "final_train_loss": h["train_loss"][-1],
        "final_val_loss": h["val_loss"][-1],
        "test_loss": record["test_loss"],
        "variance": ev.window_variance(record["step_losses"], window_fraction, warmup=warmup),
        "spikes": ev.spike_count(record["step_losses"]),
    }
    wc = record.get("weight_change") or {}
    if wc.get("step") and "band_0" in wc:
        out["rates"] = ev.rate_factors(wc, record["prescribed_lrs"])
    return out


def _censored(steps, budget: int) -> list[float]:
    return [budget if s is None else s for s in steps]


def arm_stats(measures: dict, plan: Study) -> dict:
    """Per arm: mean and std over seeds of every scalar measure, and the seeds that did not
    reach the target."""
    out = {}
    for arm, per_seed in measures.items():
        row = {"seeds": len(per_seed)}
        steps = [m["steps_to_target"] for m in per_seed]
        row["unreached"] = sum(s is None for s in steps)
        row["steps_to_target"] = ev.mean_std(_censored(steps, plan.base.total_steps))
        for k in ("final_train_loss", "final_val_loss", "test_loss", "variance", "spikes"):
            row[k] = ev.mean_std([m[k] for m in per_seed])
        out[arm] = row
    return out


def _fmt(ms, spec=".4f") -> str:
    m, s = ms
    return f"{m:{spec}} +- {s:{spec}}" if not math.isnan(s) else f"{m:{spec}}"


def claims(out: dict) -> list[dict]:
    """H1-H4, each with the seed's claim, the rule, the measured numbers and both verdicts
    (``seed_verdict``: SUPPORTED / NOT SUPPORTED; ``verdict``: the kit's word)."""
    plan, measures = out["study"], out["measures"]
    why = comparability(plan)
    rows = []

    def kit(seed_word: str) -> str:
        if plan.base.offline:
            return standins.NOT_COMPARABLE
        if why:
            return "not comparable"
        return "holds" if seed_word == ev.SUPPORTED else "does not hold"

    have = TREATMENT in measures and CONTROL in measures
    spread = (
        " (mean over seeds) AND it is larger than the seed-to-seed spread: mean paired "
        "difference > the std of the paired differences (same seeds, same data order); the "
        "paired t-test p is printed beside it, not judged"
    )
    rules = {
        "H1": "SUPPORTED when the differential arm needs at least 20% fewer steps to the target "
        "than the geometric-mean control (speedup = control / differential steps >= 1.25x) and "
        "reaches it at every seed" + spread,
        "H2": "SUPPORTED when the differential arm's test loss is at least 5% lower than the "
        "geometric-mean control's" + spread,
        "H3": "SUPPORTED when the differential arm's train-loss variance is at least 30% lower "
        "than the geometric-mean control's" + spread + f". Variance: over the last "
        f"{plan.window_fraction:.0%} of the steps (never the warm-up), half the variance of the "
        "per-step loss's first differences (the step-to-step noise; a trend, straight or "
        "bending, adds next to nothing). Spikes (> 2x the running median) are reported beside "
        "it, not judged: the seed's H3 claims less variance, and a count of rare events over a "
        "few seeds is too coarse to decide it",
    }
    for key in ("H1", "H2", "H3"):
        name, claim, thr = HYPOTHESES[key]
        rule = rules[key]
        if not have:
            rows.append(
                _claim(
                    key,
                    name,
                    claim,
                    rule,
                    "band and band_geomean not both run",
                    "not run",
                    "not run",
                    None,
                )
            )
            continue
        t, c = measures[TREATMENT], measures[CONTROL]
        if key == "H1":
            budget = plan.base.total_steps
            ts = [m["steps_to_target"] for m in t]
            cs = _censored([m["steps_to_target"] for m in c], budget)
            comp = ev.paired(cs, _censored(ts, budget))
            word = ev.verdict(comp, thr) if all(s is not None for s in ts) else ev.NOT_SUPPORTED
            measured = (
                f"steps to val loss {out['target']:.4f}: differential "
                f"{_fmt(ev.mean_std(_censored(ts, budget)), '.1f')}, uniform "
                f"{_fmt(ev.mean_std(cs), '.1f')} (unreached counted as the budget {budget}; "
                f"differential unreached in {sum(s is None for s in ts)} seed(s)); speedup "
                f"{_speedup(cs, _censored(ts, budget))}; fewer steps {comp['relative']:+.1%}"
            )
        else:
            field_ = "test_loss" if key == "H2" else "variance"
            comp = ev.paired([m[field_] for m in c], [m[field_] for m in t])
            word = ev.verdict(comp, thr)
            spec = ".4f" if key == "H2" else ".3g"
            measured = (
                f"{'test loss' if key == 'H2' else 'last-window loss variance'}: differential "
                f"{_fmt(ev.mean_std([m[field_] for m in t]), spec)}, uniform "
                f"{_fmt(ev.mean_std([m[field_] for m in c]), spec)}; improvement "
                f"{comp['relative']:+.1%}"
            )
        measured += (
            f"; paired improvement {comp['mean']:.4g} +- {comp['std']:.4g} over "
            f"{comp['n']} seeds (t-test p = {comp['p']:.3g})"
        )
        rows.append(_claim(key, name, claim, rule, measured, word, kit(word), comp))
    # H4
    name, claim, thr = HYPOTHESES["H4"]
    rule = (
        "SUPPORTED when for every band b > 0 of the differential arm, the median over intervals "
        "of (||dW_b||/||W_b||) / (||dW_0||/||W_0||), divided by lr_b / lr_0, lies within 2x "
        "(|mean log2 factor| + its std over seeds <= 1)"
    )
    rates = [m.get("rates") for m in measures.get(TREATMENT, [])]
    if not rates or any(r is None for r in rates):
        rows.append(
            _claim(
                "H4",
                name,
                claim,
                rule,
                "no weight-change monitor on the band arm",
                "not run",
                "not run",
                None,
            )
        )
    else:
        word, per_band = ev.rate_verdict(rates)
        measured = "factors (measured / prescribed ratio, geometric mean over seeds): " + ", ".join(
            f"{k} {v['factor']:.3g}" for k, v in per_band.items()
        )
        rows.append(_claim("H4", name, claim, rule, measured, word, kit(word), per_band))
    return rows


def _speedup(control, treatment) -> str:
    c, t = float(np.mean(control)), float(np.mean(treatment))
    return f"{c / t:.2f}x" if t > 0 else "n/a"


def _claim(key, name, claim, rule, measured, seed_word, kit_word, detail) -> dict:
    return {
        "key": key,
        "name": name,
        "claim": f"{key} ({name}): {claim}",
        "claimed": claim.split(": ", 1)[-1],
        "rule": rule,
        "measured": measured,
        "seed_verdict": seed_word,
        "verdict": kit_word,
        "detail": detail,
    }


def sweep_rows(out: dict) -> list[dict]:
    """The uniform-LR points (x1 = band_geomean, the shared-LR arm, the sweep) on the sweep
    seeds: LR, factor of the geometric mean, final val loss mean +- std; sorted by LR."""
    plan, records = out["study"], out["records"]
    seeds = set(plan.sweep_seeds)
    points: dict[float, dict] = {}

    def add(lr, factor, label, rec):
        p = points.setdefault(lr, {"lr": lr, "factor": factor, "label": label, "losses": []})
        p["losses"].append(rec["history"]["val_loss"][-1])

    for key, rec in records:
        if key["seed"] not in seeds:
            continue
        if key["kind"] == "sweep":
            add(key["lr"], key["factor"], f"x{key['factor']:.3g}", rec)
        elif key["arm"] == CONTROL:
            add(plan.geomean, 1.0, "x1 (geometric mean)", rec)
        elif key["arm"] == "band_uniform":
            add(plan.shared_lr, plan.shared_lr / plan.geomean, "shared LR", rec)
    rows = []
    for lr in sorted(points):
        p = points[lr]
        m, s = ev.mean_std(p["losses"])
        rows.append({**p, "mean": m, "std": s})
    return rows


def recommendation(out: dict) -> dict:
    """Differential LR is RECOMMENDED when H1 or H2 is SUPPORTED and the differential arm's
    mean final val loss (on the sweep seeds) is no worse than the best uniform LR's."""
    by = {c["key"]: c["seed_verdict"] for c in out["claims"]}
    best = min(out["sweep"], key=lambda r: r["mean"]) if out["sweep"] else None
    seeds = set(out["study"].sweep_seeds)
    diff = [
        r["history"]["val_loss"][-1]
        for k, r in out["records"]
        if k["kind"] == "arm" and k["arm"] == TREATMENT and k["seed"] in seeds
    ]
    benefit = ev.SUPPORTED in (by.get("H1"), by.get("H2"))
    beats = bool(best and diff and float(np.mean(diff)) <= best["mean"])
    rec = benefit and beats
    rule = (
        "RECOMMENDED when H1 or H2 is SUPPORTED and the differential arm's mean final "
        "validation loss (sweep seeds) is <= that of the best uniform LR of the sweep"
    )
    detail = (
        f"H1 {by.get('H1')}, H2 {by.get('H2')}; differential val loss "
        f"{float(np.mean(diff)) if diff else math.nan:.4f} vs best uniform "
        + (f"{best['mean']:.4f} at LR {best['lr']:.3g} ({best['label']})" if best else "n/a")
    )
    word = "RECOMMENDED" if rec else "NOT RECOMMENDED"
    return {"word": word, "rule": rule, "detail": detail, "line": f"Differential LR is {word}."}


def template(out: dict) -> str:
    """The seed's results template (section 4) and conclusion (section 5), filled in."""
    st, c = out["stats"], {x["key"]: x for x in out["claims"]}
    lines = ["Results (013 section 4, measured)", ""]
    if TREATMENT in st and CONTROL in st:
        d, u = st[TREATMENT], st[CONTROL]
        lines += [
            f"Convergence speed (steps to val loss {out['target']:.4f}; {out['target_rule']}):",
            f"- Differential: {_fmt(d['steps_to_target'], '.1f')} steps to target"
            + (f" ({d['unreached']} seed(s) never reached it)" if d["unreached"] else ""),
            f"- Uniform: {_fmt(u['steps_to_target'], '.1f')} steps to target"
            + (f" ({u['unreached']} seed(s) never reached it)" if u["unreached"] else ""),
            "- Speedup: "
            + (
                f"n/a ({d['unreached']} of {d['seeds']} seeds never reached it)"
                if d["unreached"]
                else f"{u['steps_to_target'][0] / d['steps_to_target'][0]:.2f}x"
            ),
            "",
            "Final test loss:",
            f"- Differential: {_fmt(d['test_loss'])}",
            f"- Uniform: {_fmt(u['test_loss'])}",
            f"- Improvement: {(u['test_loss'][0] - d['test_loss'][0]) / u['test_loss'][0]:+.1%}",
            "",
            "Stability (train-loss variance over the last window: half that of its first "
            "differences):",
            f"- Differential: {_fmt(d['variance'], '.3g')} (spikes {_fmt(d['spikes'], '.1f')})",
            f"- Uniform: {_fmt(u['variance'], '.3g')} (spikes {_fmt(u['spikes'], '.1f')})",
            "",
        ]
    h4 = c.get("H4")
    if not h4 or h4["seed_verdict"] == "not run":
        match = "not measured" + (f" ({h4['measured']})" if h4 else "")
    else:
        match = ("YES" if h4["seed_verdict"] == ev.SUPPORTED else "NO") + f" ({h4['measured']})"
    lines += [f"Weight change ratios match prescribed: {match}", ""]
    lines += ["Conclusion (013 section 5)", ""]
    for key in ("H1", "H2", "H3", "H4"):
        if key in c:
            detail = c[key]["detail"]
            p = f" (paired t-test p = {detail['p']:.3g})" if detail and "p" in detail else ""
            lines.append(f"{key} ({c[key]['name']}): {c[key]['seed_verdict']}{p}")
            lines.append(f"    rule: {c[key]['rule']}")
    why = comparability(out["study"])
    if why:
        lines.append(f"(not comparable with the seed's scale: {why}; computed all the same)")
    lines += [
        "",
        out["recommendation"]["line"],
        f"    rule: {out['recommendation']['rule']}",
        f"    {out['recommendation']['detail']}",
    ]
    return "\n".join(lines)


def arm_table(out: dict) -> str:
    """One row per arm: mean +- std over seeds of every measure."""
    head = (
        f"{'arm':<22} {'seeds':>5} {'steps->target':>16} {'train':>16} {'val':>16} "
        f"{'test':>16} {'variance':>20} {'spikes':>10}"
    )
    lines = [head]
    for arm, r in out["stats"].items():
        lines.append(
            f"{arm:<22} {r['seeds']:>5} {_fmt(r['steps_to_target'], '.1f'):>16} "
            f"{_fmt(r['final_train_loss']):>16} {_fmt(r['final_val_loss']):>16} "
            f"{_fmt(r['test_loss']):>16} {_fmt(r['variance'], '.3g'):>20} "
            f"{_fmt(r['spikes'], '.1f'):>10}"
        )
    return "\n".join(lines)


def sweep_table(out: dict) -> str:
    lines = [f"{'uniform LR':>11} {'x geomean':>10} {'final val loss':>18}  point"]
    for r in out["sweep"]:
        lines.append(
            f"{r['lr']:>11.3g} {r['factor']:>10.3g} {_fmt((r['mean'], r['std'])):>18}  {r['label']}"
        )
    if out["sweep"]:
        best = min(out["sweep"], key=lambda r: r["mean"])
        lines.append(
            f"best uniform LR {best['lr']:.3g} ({best['label']}) beside the geometric "
            f"mean {out['study'].geomean:.3g}"
        )
    return "\n".join(lines)


def rate_rows(out: dict) -> dict:
    """Per arm with a monitor: per band the measured and prescribed ratio (mean over seeds of
    the log), for the weight-change plot."""
    rows = {}
    for arm, per_seed in out["measures"].items():
        rates = [m["rates"] for m in per_seed if m.get("rates")]
        if not rates:
            continue
        keys = list(rates[0])
        rows[arm] = {
            k: {
                "measured": float(
                    np.exp(np.mean([np.log(max(r[k]["measured"], 1e-300)) for r in rates]))
                ),
                "prescribed": rates[0][k]["prescribed"],
            }
            for k in keys
        }
    return rows


# ----------------------------------------------------------------------------- the run


def run_study(
    plan: Study,
    name: str = "study",
    resume: bool = False,
    root=None,
    log=print,
    banner: bool = True,
) -> dict:
    """Train every (arm, seed) and sweep point of ``plan`` (each saved to
    ``arms/<tag>.json`` as it finishes and reloaded on ``resume``; a half-trained one continues
    from its checkpoint), measure, judge H1-H4, write ``results.json`` and the figures.
    Offline (``plan.base.offline``) the stand-ins banner is printed first (``banner=False``:
    the caller printed it) and ``results.json`` records ``"standins"``."""
    import torch

    from akira_nb import text
    from akira_nb.runs import Run, atomic_write_json

    train, optim = _train_module(), _optim()
    start = time.perf_counter()
    plan.validate()
    record = standins_record(plan, banner)  # the banner first, when offline
    configs = plan.configs()
    log = log or (lambda line: None)
    splits = train.make_data(configs[0][1])  # a corpus that cannot load fails before the run
    run = Run.open_or_create(
        EXPERIMENT, name, plan.to_dict(), resume=resume, root=root, may_change=MAY_CHANGE
    )
    first = configs[0][1]
    test_n = min(first.eval_batches * first.batch_size, splits.test.shape[0])
    test_blocks = splits.test[:test_n] if test_n else splits.val[:0]
    records = []
    for key, cfg in configs:
        path = run.file(f"arms/{key['tag']}.json")
        if resume and path.is_file():
            import json

            rec = json.loads(path.read_text())
            log(f"{key['tag']}: reloaded from {path.name}")
        else:
            res = train.train(cfg, run=run, resume=resume, tag=key["tag"])
            device = torch.device(res.device)
            blocks = (
                test_blocks if test_blocks.shape[0] else train.validation_blocks(cfg, splits.val)
            )
            rec = {
                **res.summary(),
                **key,
                "test_loss": train.evaluate(res.model, blocks, cfg, device),
                "test_split": "test" if test_blocks.shape[0] else "val (no test split)",
            }
            atomic_write_json(path, rec)
        records.append((key, rec))
    control = [r for k, r in records if k["kind"] == "arm" and k["arm"] == CONTROL]
    if plan.target_loss is not None:
        target, target_rule = plan.target_loss, "the target given (target_loss)"
    else:
        ref = control or [r for k, r in records if k["kind"] == "arm"]
        base = float(np.mean([r["history"]["val_loss"][-1] for r in ref]))
        target = base * (1 + plan.target_margin)
        target_rule = (
            f"the {'uniform control' if control else ref[0]['arm']} arm's mean final val loss "
            f"{base:.4f} x (1 + {plan.target_margin:g})"
        )
    measures: dict[str, list] = {}
    for key, rec in records:
        if key["kind"] == "arm":
            measures.setdefault(key["arm"], []).append(
                measure(rec, target, plan.window_fraction, plan.base.warmup_steps)
            )
    data = records[0][1]["data"]
    unigram_test = (
        text.unigram_cross_entropy(splits.train, test_blocks, splits.vocab_size)
        if test_blocks.shape[0]
        else math.nan
    )
    out = {
        "run": run,
        "study": plan,
        "records": records,
        "measures": measures,
        "target": target,
        "target_rule": target_rule,
        "unigram": float(data["unigram_val_loss"]),
        "unigram_test": float(unigram_test),
        "budget": optim.learning_budget(plan.band_lrs),
    }
    out["stats"] = arm_stats(measures, plan)
    out["sweep"] = sweep_rows(out)
    out["claims"] = claims(out)
    out["recommendation"] = recommendation(out)
    out["rates"] = rate_rows(out)
    out["tables"] = {"arms": arm_table(out), "sweep": sweep_table(out), "template": template(out)}
    out["lines"] = summary_lines(out)
    run.write_results(
        {
            "experiment": EXPERIMENT,
            "size": plan.size,
            "config": plan.to_dict(),
            "environment": runtime.environment_info(plan.base.device),
            "data": data,
            "target": target,
            "target_rule": target_rule,
            "unigram_val_loss": out["unigram"],
            "unigram_test_loss": out["unigram_test"],
            "learning_budget": out["budget"],
            "measures": measures,
            "stats": out["stats"],
            "sweep": out["sweep"],
            "rates": out["rates"],
            "claims": out["claims"],
            "recommendation": out["recommendation"],
            "comparability": comparability(plan),
            "standins": record,
            "curves": curves_of(records),
            "template": out["tables"]["template"],
            "summary": out["lines"],
            "wall_seconds": time.perf_counter() - start,
        }
    )
    out["figures"] = save_figures(run, out)
    log(f"results and figures: {run.path}")
    return out


def standins_record(plan: Study, banner: bool = True) -> dict | None:
    """Offline: the ``"standins"`` record of ``results.json`` (``{"banner", "replaced"}``),
    printing the banner first unless ``banner=False``; None for a run on the real data."""
    if not plan.base.offline:
        return None
    if banner:
        return standins.announce(plan.base.standins())
    return {"banner": standins.BANNER, "replaced": plan.base.standins()}


def curves_of(records) -> dict:
    """``{arm: {"step": [...], "val_loss": [[per seed]], "step_losses": [[per seed]],
    "seeds": [...]}}`` of the arms (not the sweep): what the plots and the widget read."""
    out: dict[str, dict] = {}
    for key, rec in records:
        if key["kind"] != "arm":
            continue
        c = out.setdefault(
            key["arm"],
            {"step": rec["history"]["step"], "val_loss": [], "step_losses": [], "seeds": []},
        )
        c["val_loss"].append(rec["history"]["val_loss"])
        c["step_losses"].append(rec["step_losses"])
        c["seeds"].append(key["seed"])
    return out


def summary_lines(out: dict) -> list[str]:
    plan = out["study"]
    b = out["budget"]
    lines = [
        plan.describe(),
        f"same total learning budget: uniform LR {b['geometric_mean']:.3g} = geometric mean of "
        f"the band LRs (keeps the sum of log LRs, {b['log_budget']:.3f}); the arithmetic mean "
        f"{b['arithmetic_mean']:.3g} would keep the plain sum "
        f"({b['arithmetic_over_geometric']:.1f}x larger)",
        f"trivial baselines: unigram cross-entropy {out['unigram']:.4f} (val), "
        f"{out['unigram_test']:.4f} (test) nats/token",
        "",
        out["tables"]["arms"],
        "",
        out["tables"]["sweep"],
        "",
    ]
    why = comparability(plan)
    if why:
        lines.append(f"not comparable with the seed's scale: {why}")
    lines += claim_lines(
        [
            {k: c[k] for k in ("claim", "rule", "claimed", "measured", "verdict")}
            | {"verdict": f"{c['seed_verdict']} (kit: {c['verdict']})"}
            for c in out["claims"]
        ]
    )
    lines.append(out["recommendation"]["line"] + f" ({out['recommendation']['detail']})")
    return lines


def save_figures(run, out: dict) -> dict:
    from . import plots

    figs = {
        "curves": plots.plot_curves(curves_of(out["records"]), out["target"], out["unigram"]),
        "weight_change": plots.plot_rates(out["rates"]),
        "sweep": plots.plot_sweep(out["sweep"], out["study"].geomean, out["stats"]),
    }
    return run.save_figures(figs)


def kit_summary(out: dict) -> dict:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    plan = out["study"]
    why = comparability(plan)
    notes = [
        plan.describe(),
        f"target: {out['target']:.4f} ({out['target_rule']})",
        out["recommendation"]["line"] + f" ({out['recommendation']['detail']})",
    ]
    if why:
        notes.insert(0, f"not comparable with the seed's scale: {why}")
    return {
        "experiment": EXPERIMENT,
        "title": TITLE,
        "size": plan.size,
        "run": str(out["run"].path),
        "claims": [
            {k: c[k] for k in ("claim", "rule", "claimed", "measured")} | {"verdict": c["verdict"]}
            for c in out["claims"]
        ],
        "baselines": [
            f"unigram cross-entropy: {out['unigram']:.4f} (val), {out['unigram_test']:.4f} "
            "(test) nats/token",
            sweep_table(out).splitlines()[-1] if out["sweep"] else "no uniform sweep",
        ],
        "notes": notes,
    }


__all__ = [
    "ARMS",
    "CONTROL",
    "EXPERIMENT",
    "HYPOTHESES",
    "PRESETS",
    "Study",
    "claims",
    "comparability",
    "kit_summary",
    "measure",
    "recommendation",
    "run_study",
    "standins_record",
    "study",
    "template",
]
