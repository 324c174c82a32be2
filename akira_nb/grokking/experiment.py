"""The whole grokking study in one call: size presets, the comparison over primes x mixers x
seeds, the results table beside the seed document's claims, results.json and figures.

Used by both the notebook and ``python -m akira_nb grokking``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace

import matplotlib.pyplot as plt

from akira_nb import runtime
from akira_nb.claims import claim_lines
from akira_nb.grokking import ensemble as vmapped  # compare's ``ensemble`` flag owns the name
from akira_nb.grokking import plots
from akira_nb.grokking.models import MIXERS
from akira_nb.grokking.train import (
    RESUME_MAY_CHANGE,
    TrainConfig,
    TrainResult,
    summarize,
    train,
)
from akira_nb.runs import Run, atomic_write_json
from akira_nb.runtime import cost, cost_line  # noqa: F401  (re-exported for the notebook)

EXPERIMENT = "grokking"

# What the seed document (wave-llm "Attention vs Waves", 30k epochs, one seed, train_frac 0.3,
# its own unnormalised models) reports. Printed beside what this kit measures; never used as a
# result. it/s there include evaluation; its device is not stated.
SEED_CLAIMS = {
    (53, "standard"): {"test_acc": 0.022, "grok_epoch": None, "it_s": 92, "params": 211_000},
    (53, "fnet"): {"test_acc": 0.994, "grok_epoch": 27_400, "it_s": 240, "params": 146_000},
    (53, "learned_gate"): {"test_acc": 0.998, "grok_epoch": 2_600, "it_s": 233, "params": 146_000},
    (53, "phase_shift"): {"test_acc": 0.934, "grok_epoch": 28_000, "it_s": 233, "params": 146_000},
    (53, "full"): {"test_acc": 1.000, "grok_epoch": 23_300, "it_s": 94, "params": 211_000},
    (113, "standard"): {"test_acc": 1.000, "grok_epoch": None, "it_s": 79, "params": None},
    (113, "fnet"): {"test_acc": 1.000, "grok_epoch": None, "it_s": 112, "params": None},
    (113, "learned_gate"): {"test_acc": 1.000, "grok_epoch": None, "it_s": 108, "params": None},
}

# Per-size presets. None (no size given): the seed document's own protocol, SEED_PRESET (the
# seed's p = 53 comparison: all modes, 30k epochs, train_frac 0.3, lr 1e-3, one seed).
# tiny: a setting measured to learn within seconds on a CPU (p = 23 generalises slowly at
# train_frac 0.3; at 0.7 with lr 3e-3 standard and fnet pass 0.85 test accuracy within 800
# epochs). t4: the seed's p = 53 comparison. a100: p = 53 and p = 113, all modes, three seeds
# (the seed ran only standard / fnet / learned_gate at 113; ``--p 113 --wave_modes fnet
# learned_gate`` on the CLI does exactly that).
SEED_PROTOCOL = dict(
    mixers=list(MIXERS),
    n_epochs=30_000,
    train_frac=0.3,
    lr=1e-3,
    eval_every=100,
    checkpoint_every=2000,
    snapshot_every=0,
    progress_every=500,  # 61 weights-only snapshots per arm, 0.6-0.85 MB each at p = 53
)
SEED_PRESET = dict(SEED_PROTOCOL, primes=[53], seeds=[0])
PRESETS = {
    "tiny": dict(
        primes=[23],
        mixers=list(MIXERS),
        seeds=[0],
        n_epochs=1000,
        train_frac=0.7,
        lr=3e-3,
        eval_every=50,
        checkpoint_every=500,
        snapshot_every=0,
        progress_every=100,  # 11 snapshots per arm, ~37 MB for the five arms
    ),
    "t4": dict(SEED_PRESET),
    # 30 arms: progress snapshots every 1000 epochs keep the run folder near 0.7 GB
    "a100": dict(SEED_PROTOCOL, primes=[53, 113], seeds=[0, 1, 2], progress_every=1000),
}
# Wave modes without Q/K/V projections (``full`` keeps them).
FFT_ONLY = ("fnet", "learned_gate", "phase_shift")
WAVE_MODES = (*FFT_ONLY, "full")
ARM_KEYS = ("primes", "mixers", "seeds")  # a study's arms; every other setting is a TrainConfig
PER_ARM = ("p", "mixer", "seed")  # set per arm from the lists above


def preset(size: str | None) -> dict:
    """A copy of the preset for ``size`` (``tiny``, ``t4``, ``a100``; None: SEED_PRESET)."""
    if size is not None:
        runtime.check_choice("size", size, runtime.SIZES)
    pre = SEED_PRESET if size is None else PRESETS[size]
    return {k: (list(v) if isinstance(v, list) else v) for k, v in pre.items()}


@dataclass
class Study:
    """One comparison: the shared training settings (``base``) and the arms, every
    (p, mixer, seed) of ``primes`` x ``mixers`` x ``seeds``. Build it with :func:`study`."""

    base: TrainConfig
    primes: list
    mixers: list
    seeds: list
    size: str | None = None
    from_preset: dict = field(default_factory=dict)  # settings the preset filled in

    def validate(self) -> Study:
        """Check every arm's config, the seeds and the device; raises ValueError naming the
        setting. Nothing is written before this passes."""
        if not isinstance(self.primes, (list, tuple)) or not self.primes:
            raise ValueError(f"primes={self.primes!r} must be a list of at least one prime")
        if not isinstance(self.mixers, (list, tuple)) or not self.mixers:
            raise ValueError(
                f"mixers={self.mixers!r} leaves no model to train; choose from {list(MIXERS)}"
            )
        for mixer in self.mixers:
            runtime.check_choice("mixers", mixer, MIXERS)
        runtime.check_seeds("seeds", self.seeds)
        runtime.check_device("device", self.base.device)
        self.arms()
        for name in ("primes", "mixers"):
            runtime.check_distinct(name, getattr(self, name))  # one arm trained twice otherwise
        return self

    def arms(self) -> list[TrainConfig]:
        """Every arm's validated config, in training order."""
        return [
            replace(self.base, p=p, mixer=m, seed=int(s)).validate()
            for p in self.primes
            for m in self.mixers
            for s in self.seeds
        ]

    def to_dict(self) -> dict:
        """What identifies the run (its config.json): the shared settings and the arms."""
        return {"base": asdict(self.base), **{k: list(getattr(self, k)) for k in ARM_KEYS}}

    def describe(self) -> str:
        """One line: where the settings came from."""
        source = f"preset {self.size!r}" if self.size else "the seed's protocol (no size given)"
        filled = ", ".join(f"{k}={v}" for k, v in self.from_preset.items()) or "nothing"
        return f"settings: {source} filled {filled}"


def study(size: str | None = None, **overrides) -> Study:
    """The one way to build a comparison (the CLI and the notebook both use it): the preset for
    ``size`` (None: the seed's protocol, SEED_PRESET) with ``overrides`` on top.

    Override keys: ``primes``, ``mixers``, ``seeds`` and any :class:`TrainConfig` field except
    ``p``, ``mixer`` and ``seed`` (those are set per arm). A value of None means "not given".
    """
    allowed = set(ARM_KEYS) | {f.name for f in fields(TrainConfig)} - set(PER_ARM)
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"study() got unknown settings {unknown}; allowed: {sorted(allowed)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    pre = preset(size)
    settings = {**pre, **overrides}
    arms = {k: settings.pop(k) for k in ARM_KEYS}
    first = {k: v[0] if isinstance(v, (list, tuple)) and v else None for k, v in arms.items()}
    base = TrainConfig(p=first["primes"] or TrainConfig.p, seed=first["seeds"] or 0, **settings)
    from_preset = {k: v for k, v in pre.items() if k not in overrides}
    return Study(base, size=size, from_preset=from_preset, **arms).validate()


def _fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def results_table(rows: list[dict]) -> str:
    """Text table: measured mean +- std over seeds beside the seed document's claims."""
    head = (
        f"{'p':>4} {'model':<13} {'seeds':>5} {'test acc':>15} {'claimed':>8} "
        f"{'grok epoch (n grokked)':>24} {'claimed':>8} {'epochs/s':>14} {'claimed':>8} "
        f"{'params':>8} {'chance':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        claim = SEED_CLAIMS.get((r["p"], r["mixer"]), {})
        acc = f"{_fmt(r['test_acc_mean'])} +- {_fmt(r['test_acc_std'])}"
        if r["grokked"]:
            grok = f"{_fmt(r['grok_epoch_mean'], '.0f')} +- {_fmt(r['grok_epoch_std'], '.0f')}"
        else:
            grok = "never"
        grok += f" ({r['grokked']}/{r['seeds']})"
        speed = f"{_fmt(r['epochs_per_s_mean'], '.0f')} +- {_fmt(r['epochs_per_s_std'], '.0f')}"
        claimed_grok = claim.get("grok_epoch", "-") if claim else "-"
        if claim and claim.get("grok_epoch") is None:
            claimed_grok = "never" if claim.get("test_acc", 1) < 0.95 else "-"
        mixer = r["mixer"] + ("*" if r["mixer"] == "full" else "")
        lines.append(
            f"{r['p']:>4} {mixer:<13} {r['seeds']:>5} {acc:>15} "
            f"{_fmt(claim.get('test_acc')):>8} {grok:>24} {str(claimed_grok):>8} {speed:>14} "
            f"{_fmt(claim.get('it_s'), '.0f'):>8} {r['params']:>8} {_fmt(r['chance_acc']):>7}"
        )
    if any(r["mixer"] == "full" for r in rows):
        lines.append(f"* {FULL_NOTE}")
    lines.append(
        "epochs/s: arms trained one after another (not a paired timing); claimed it/s include "
        "the seed's evaluation, device not stated"
    )
    return "\n".join(lines)


FULL_NOTE = (
    "full: the kit divides its phase-alignment scores by sqrt(d_head), like dot-product "
    "attention; the seed's public version does not scale them"
)
# Verdict rules of the kit summary, one place (also printed with every verdict).
ACC_TOLERANCE = 0.05  # a test-accuracy claim holds within +- this
GROK_FACTOR = 2.0  # a grok-epoch claim holds within this factor either way
GATE_MIN_RATIO = 5.0  # "learned_gate ~10x sooner" holds at >= half the claimed ratio
GATE_OTHERS = ("fnet", "phase_shift", "full")  # the "others" of "10x sooner than the others"
# "standard never generalises, every wave mode does": below / at least these test accuracies
NOT_GENERALISED_ACC = 0.5
GENERALISED_ACC = 0.9


def comparability(plan: Study) -> str | None:
    """Why this study's numbers cannot be set beside the seed's p = 53 claims (None: they can).
    The kit's controlled models (shared init, betas 0.98, warm-up, float64 loss) differ from the
    seed's on purpose and do not count here."""
    base, why = plan.base, []
    if 53 not in plan.primes:
        why.append(f"trained at p = {', '.join(map(str, plan.primes))}, the seed at p = 53")
    for key in ("n_epochs", "train_frac", "lr"):
        if getattr(base, key) != SEED_PROTOCOL[key]:
            why.append(f"{key} {getattr(base, key)} (the seed: {SEED_PROTOCOL[key]})")
    if base.weight_decay != 1.0:
        why.append(f"weight_decay {base.weight_decay} (the seed: 1.0)")
    if base.grokfast_lamb:
        why.append(f"Grokfast on (lamb {base.grokfast_lamb}; the seed: off)")
    if not why:
        return None
    size = f"the {plan.size!r} preset" if plan.size else "these settings"
    return f"{size} is not the seed's p = 53 protocol: " + "; ".join(why)


def _claim(
    claim: str,
    rule: str,
    claimed: str,
    measured: str,
    holds,
    why_not,
    value=None,
    unit: str = "",
    unjudged: str = "the rule gives no verdict here",
) -> dict:
    """One claim row of the kit-summary contract: ``holds`` is the rule on this run's numbers
    (None: the rule cannot judge them, ``unjudged`` says why); away from the seed's protocol
    (``why_not``) the verdict is "not comparable" and ``computed_verdict`` says what the rule
    gives on this run's own numbers."""
    row = dict(claim=claim, rule=rule, claimed=claimed, measured=measured, unit=unit)
    if measured.startswith("not run"):
        return {**row, "verdict": "not run", "measured_value": None}
    row["measured_value"] = None if value is None else float(value)
    own = f"not measurable: {unjudged}" if holds is None else _word(holds)
    if why_not or holds is None:
        return {**row, "verdict": "not comparable", "computed_verdict": own}
    return {**row, "verdict": own}


def _word(holds: bool) -> str:
    return "holds" if holds else "does not hold"


def _acc(r: dict) -> str:
    return f"{r['test_acc_mean']:.3f} +- {r['test_acc_std']:.3f} ({r['seeds']} seed(s), p={r['p']})"


def _grok(r: dict) -> str:
    if not r["grokked"]:
        return f"never ({r['seeds']} seed(s), p={r['p']})"
    return f"{r['grok_epoch_mean']:.0f} ({r['grokked']}/{r['seeds']} seed(s) grokked, p={r['p']})"


def _gate_claim(by: dict, plan: Study, why_not, p: int = 53) -> dict:
    """The seed's "learned_gate grokked at epoch 2,600 vs 23,000+ for others" (its finding 3):
    the ratio of the other wave modes' fastest grok epoch to learned_gate's. learned_gate never
    grokking refutes it; learned_gate grokking while no other wave mode does supports it."""
    eval_every, n_epochs = plan.base.eval_every, plan.base.n_epochs
    gate = by.get("learned_gate")
    others = [m for m in GATE_OTHERS if m in by]
    grokked = [m for m in others if by[m]["grokked"]]
    holds, ratio = None, None
    if not gate or not others:
        measured = f"not run (needs learned_gate and one of {', '.join(GATE_OTHERS)})"
    elif not gate["grokked"]:
        holds = False
        did = f"{', '.join(grokked)} did" if grokked else "nor did the other wave modes"
        measured = f"learned_gate never grokked within {n_epochs} epochs; {did}"
    elif not grokked:
        holds = True
        measured = (
            f"learned_gate grokked at {gate['grok_epoch_mean']:.0f}; {', '.join(others)} never "
            f"grokked within {n_epochs} epochs"
        )
    else:
        best = min(grokked, key=lambda m: by[m]["grok_epoch_mean"])
        ratio = by[best]["grok_epoch_mean"] / gate["grok_epoch_mean"]
        measured = gate_sentence(gate["grok_epoch_mean"], best, by[best]["grok_epoch_mean"])
        if ratio == 1:
            measured += f" (evaluation every {eval_every} epochs, so the ratio is not resolved)"
        holds = ratio >= GATE_MIN_RATIO
    return _claim(
        f"p={p}: learned_gate groks ~10x sooner than the other wave modes",
        f"ratio of the fastest other wave mode's ({', '.join(GATE_OTHERS)}) mean grok epoch to "
        f"learned_gate's; holds if >= {GATE_MIN_RATIO:g}x, or if learned_gate grokked and no "
        f"other wave mode did within n_epochs; does not hold if learned_gate never grokked "
        f"(resolution {eval_every} epochs)",
        "10x (2,600 vs 23,300-27,400)" + ("" if p == 53 else " (at p=53)"),
        measured,
        holds,
        why_not,
        ratio,
        "x",
    )


def gate_sentence(gate_epoch: float, other: str, other_epoch: float) -> str:
    """``"learned_gate groks 1.5x sooner than fnet (learned_gate at epoch 550, fnet at 800)"``:
    which arm grokked when, with the ratio stated in the direction that makes it >= 1."""
    if gate_epoch == other_epoch:
        return f"learned_gate and {other} grok at the same logged epoch ({gate_epoch:.0f})"
    ratio = other_epoch / gate_epoch
    way = f"{ratio:.1f}x sooner" if ratio > 1 else f"{1 / ratio:.1f}x later"
    return (
        f"learned_gate groks {way} than {other} (learned_gate at epoch {gate_epoch:.0f}, "
        f"{other} at {other_epoch:.0f})"
    )


def _waves_claim(by: dict, p: int, why_not) -> dict:
    """The seed's "Standard attention FAILED at p=53 ... FFT methods all grokked" (its findings
    1 and 2, table: standard 0.022, every wave mode 0.934-1.000): standard's accuracy below
    NOT_GENERALISED_ACC and every wave mode's, ``full`` included, at least GENERALISED_ACC.
    ``full`` keeps Q/K/V, so it only makes the rule stricter: it cannot carry the claim."""
    needed = ("standard", *WAVE_MODES)
    missing = [m for m in needed if m not in by]
    holds, value = None, None
    if missing:
        measured = f"not run ({', '.join(missing)} missing)"
    else:
        waves = ", ".join(f"{m} {by[m]['test_acc_mean']:.3f}" for m in WAVE_MODES)
        measured = f"standard {by['standard']['test_acc_mean']:.3f}; {waves} (p={p})"
        holds = by["standard"]["test_acc_mean"] < NOT_GENERALISED_ACC and all(
            by[m]["test_acc_mean"] >= GENERALISED_ACC for m in WAVE_MODES
        )
        value = by["standard"]["test_acc_mean"]
    return _claim(
        f"p={p}: FFT beats attention (standard never generalises, every wave mode does)",
        f"holds if standard's mean final test accuracy is below {NOT_GENERALISED_ACC} and that "
        f"of every wave mode ({', '.join(WAVE_MODES)}) is at least {GENERALISED_ACC} (the "
        f"seed's lowest, phase_shift, is 0.934); measured value: standard's accuracy",
        "0.022 vs 0.934-1.000" + ("" if p == 53 else " (at p=53)"),
        measured,
        holds,
        why_not,
        value,
        "",
    )


def claims(rows: list[dict], plan: Study) -> list[dict]:
    """The seed's claims beside this run's numbers, each with its rule and verdict. At p = 53
    (or 113) the rows of that prime are used; otherwise the first prime's, marked "not
    comparable" (as is everything when :func:`comparability` gives a reason)."""
    why_not = comparability(plan)
    eval_every = plan.base.eval_every
    out = []
    for p_claim in (53, 113):
        if p_claim == 113 and 113 not in plan.primes:
            continue
        p = p_claim if p_claim in plan.primes else plan.primes[0]
        by = {r["mixer"]: r for r in rows if r["p"] == p}
        for (cp, mixer), c in SEED_CLAIMS.items():
            if cp != p_claim:
                continue
            r = by.get(mixer)
            measured = _acc(r) if r else "not run"
            holds = bool(r) and abs(r["test_acc_mean"] - c["test_acc"]) <= ACC_TOLERANCE
            at = "" if p == p_claim else f" (the seed's, at p={p_claim})"
            out.append(
                _claim(
                    f"p={p} {mixer}: final test accuracy",
                    f"holds if the measured mean is within +-{ACC_TOLERANCE} of the claim",
                    f"{c['test_acc']:.3f}{at}",
                    measured,
                    holds,
                    why_not,
                    r["test_acc_mean"] if r else None,
                    "",
                )
            )
            if p_claim != 53:
                continue
            claimed = c["grok_epoch"]
            if claimed is None:
                rule = "holds if no seed grokked"
                holds = bool(r) and r["grokked"] == 0
            else:
                rule = (
                    f"holds if the mean grok epoch is within {GROK_FACTOR:g}x of the claim "
                    f"either way (resolution {eval_every} epochs)"
                )
                g = r["grok_epoch_mean"] if r and r["grokked"] else None
                holds = g is not None and claimed / GROK_FACTOR <= g <= claimed * GROK_FACTOR
            out.append(
                _claim(
                    f"p={p} {mixer}: grok epoch (test acc >= {plan.base.grok_threshold} to "
                    "the end)",
                    rule,
                    ("never" if claimed is None else f"{claimed}") + at,
                    _grok(r) if r else "not run",
                    holds,
                    why_not,
                    r["grok_epoch_mean"] if r and r["grokked"] else None,
                    "epochs",
                )
            )
        if p_claim != 53:
            continue
        out.append(_gate_claim(by, plan, why_not, p))
        std = by.get("standard")
        speeds = {m: by[m]["epochs_per_s_mean"] for m in FFT_ONLY if m in by}
        measured, ratio = "not run", None
        if speeds and std and std["epochs_per_s_mean"] > 0:
            best = max(speeds, key=speeds.get)
            ratio = speeds[best] / std["epochs_per_s_mean"]
            measured = f"{ratio:.2f}x ({best}; arms timed one after another, not paired)"
        out.append(
            _claim(
                f"p={p}: FFT mixing trains 2.5x faster than attention",
                "epochs/s of the fastest of fnet/learned_gate/phase_shift over standard's, "
                "training only, this device; only a paired timing (python "
                "benchmarks/grokking_speed.py) can decide it, so arms timed one after another "
                "give no verdict",
                "2.5x (240 vs 92 it/s)" + ("" if p == 53 else " (at p=53)"),
                measured,
                None,
                why_not,
                ratio,
                "x",
                "arms timed one after another, not a paired timing "
                "(benchmarks/grokking_speed.py gives one)",
            )
        )
        out.append(_waves_claim(by, p, why_not))
    return out


def verdicts(rows: list[dict], plan: Study) -> list[str]:
    """The claims of :func:`claims` as printed lines, each with its rule."""
    lines = claim_lines(claims(rows, plan))
    why_not = comparability(plan)
    if why_not:
        lines.insert(0, f"not comparable with the seed's claims: {why_not}")
    return lines


def kit_summary(out: dict) -> dict:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    plan, rows = out["study"], out["rows"]
    why_not = comparability(plan)
    notes = [
        "the kit's models share Nanda et al.'s initialisation, AdamW betas (0.9, 0.98), a "
        "10-epoch warm-up and a float64 loss in every arm; the seed's public models did not",
        FULL_NOTE,
        f"grok epoch: first logged epoch from which test accuracy stays >= "
        f"{plan.base.grok_threshold}; resolution {plan.base.eval_every} epochs",
        "epochs/s are of arms trained one after another on a possibly shared machine; "
        "benchmarks/grokking_speed.py gives a paired figure",
    ]
    if why_not:
        notes.insert(0, f"not comparable with the seed's claims: {why_not}")
    return {
        "experiment": EXPERIMENT,
        "title": "Grokking on a + b mod p: standard attention vs wave (FFT) token mixing",
        "size": plan.size,
        "run": str(out["run"].path),
        "claims": claims(rows, plan),
        "baselines": [f"chance accuracy at p={p}: 1/p = {1 / p:.3f}" for p in plan.primes],
        "notes": notes,
    }


def arm_line(res: TrainResult) -> str:
    """One line per trained arm, for logs and saved notebooks (whose progress bars do not keep)."""
    c = res.config
    grok = f"grokked at epoch {res.grok_epoch}" if res.grok_epoch is not None else "never grokked"
    keys = ",".join(map(str, res.key_freqs)) or "none"
    return (
        f"p={c['p']} {c['mixer']} seed {c['seed']}: train acc {res.final['train_acc']:.3f}, "
        f"test acc {res.final['test_acc']:.3f} (chance {1 / c['p']:.3f}), {grok} "
        f"(test acc >= {c['grok_threshold']}), {res.epochs_per_s:.0f} epochs/s, "
        f"key freqs {{{keys}}}"
    )


def snapshot_saver(run: Run):
    """A ``snapshot_fn`` for :func:`compare` that saves six-panel frames under
    ``figures/frames_<tag>/``."""
    splits = {}  # per arm

    def save(cfg: TrainConfig, model, history, epoch: int) -> None:
        if cfg.tag not in splits:
            splits[cfg.tag] = cfg.dataset()
        data = splits[cfg.tag]
        fig = plots.plot_snapshot({"history": history, "config": asdict(cfg)}, model, data, epoch)
        run.save_figure(fig, f"frames_{cfg.tag}/epoch_{epoch:06d}")
        plt.close(fig)

    return save


def seed_groups(arms: list[TrainConfig]) -> list[list[TrainConfig]]:
    """Consecutive arms that differ only in their seed, in order (``Study.arms()`` lists the
    seeds of each (p, mixer) together)."""
    groups: list[list[TrainConfig]] = []
    for cfg in arms:
        if groups and replace(groups[-1][0], seed=cfg.seed) == cfg:
            groups[-1].append(cfg)
        else:
            groups.append([cfg])
    return groups


def compare(
    arms: list[TrainConfig],
    run: Run | None = None,
    resume: bool = False,
    progress: bool = True,
    snapshot_fn=None,
    ensemble: bool = False,
) -> list[TrainResult]:
    """Train every arm (one config each, e.g. ``study(...).arms()``, which checks them), one
    after another, or with ``ensemble=True`` the seeds of each (p, mixer) together as one
    vmapped ensemble (``ensemble.train_arms``), with the same results within float tolerance
    (see ``grokking.ensemble`` for which mixers are bitwise equal) and the same files.

    The ensemble is opt-in on every device: on a 2-core CPU it measured 1.05x, and its speed on
    a GPU has not been measured yet.

    With ``run``, each arm's summary is saved as ``arms/<tag>.json`` and its final checkpoint
    is kept, so ``resume=True`` reloads finished arms without training and continues partly
    trained ones from their newest checkpoint."""
    together = bool(arms) and runtime.check_bool("ensemble", ensemble)

    def keep(cfg: TrainConfig, res: TrainResult) -> TrainResult:
        if run is not None:
            atomic_write_json(run.file(f"arms/{cfg.tag}.json"), res.summary())
        return res

    results = []
    for group in seed_groups(arms):
        snaps = [
            (lambda m, h, e, c=c: snapshot_fn(c, m, h, e)) if snapshot_fn else None for c in group
        ]
        if together and len(group) > 1:
            done = vmapped.train_arms(
                group, run=run, resume=resume, progress=progress, snapshot_fns=snaps
            )
            results.extend(keep(c, r) for c, r in zip(group, done))
            continue
        for cfg, snap in zip(group, snaps):
            res = train(cfg, run=run, resume=resume, progress=progress, snapshot_fn=snap)
            results.append(keep(cfg, res))
    return results


def run_experiment(
    plan: Study,
    name: str = "comparison",
    resume: bool = False,
    root=None,
    progress: bool = True,
    ensemble: bool = False,
) -> dict:
    """Train every arm of ``plan``, write ``results.json`` and the figures into the run folder
    and return ``{"run", "figures", "results", "rows", "table", "verdicts", "study"}``
    (``figures``: {name: path} of every saved figure, what the notebook shows).

    ``ensemble=True``: train the seeds of each (p, mixer) together as one vmapped ensemble
    (opt-in on every device until it is measured faster on a GPU; :func:`compare`); the
    results agree within float tolerance and the files are the same.

    Every arm's config, the seeds and the device are checked before the run folder exists, so
    bad input leaves nothing behind. ``out["cost"]`` (also in results.json): the run's
    ``cpu_seconds`` (``time.process_time``, every thread) and ``wall_seconds``."""
    start, cpu = time.perf_counter(), time.process_time()
    plan.validate()
    runtime.check_bool("ensemble", ensemble)
    config = plan.to_dict()
    run = Run.open_or_create(
        EXPERIMENT, name, config, resume=resume, root=root, may_change=RESUME_MAY_CHANGE
    )
    base = plan.base
    snap = snapshot_saver(run) if base.snapshot_every else None
    results: list[TrainResult] = compare(
        plan.arms(), run=run, resume=resume, progress=progress, snapshot_fn=snap, ensemble=ensemble
    )
    rows = summarize(results)
    table = results_table(rows)
    verdict_lines = verdicts(rows, plan)
    record = {
        "experiment": EXPERIMENT,
        "size": plan.size,
        "config": config,
        "environment": runtime.environment_info(base.device),
        "table": rows,
        "seed_claims": {f"{p}/{m}": v for (p, m), v in SEED_CLAIMS.items()},
        "verdicts": verdict_lines,
        "claims": claims(rows, plan),
        "arms": [r.summary() for r in results],
    }
    run.write_results({**record, **cost(start, cpu)})  # kept should a figure fail
    figures = save_figures(run, results)
    spent = cost(start, cpu)
    run.write_results({**record, **spent})
    return {
        "run": run,
        "figures": figures,
        "results": results,
        "rows": rows,
        "table": table,
        "verdicts": verdict_lines,
        "study": plan,
        "cost": spent,
    }


def save_figures(run: Run, results: list[TrainResult]) -> dict:
    """Write every figure of the study into the run folder's ``figures/`` and close it; returns
    {name: path}. Per prime: the curves of every arm; the progress measures, embedding spectrum,
    frequency weights and neuron maps of the first seed's arms."""
    paths = {}
    for p in sorted({r.config["p"] for r in results}):
        group = [r for r in results if r.config["p"] == p]
        first_seed = [r for r in group if r.config["seed"] == group[0].config["seed"]]
        figs = {
            f"curves_p{p}": plots.plot_curves(group, f"a + b mod {p}: all models"),
            f"progress_p{p}": plots.plot_progress_measures(first_seed),
            f"embedding_spectrum_p{p}": plots.plot_embedding_spectrum(first_seed),
            f"frequency_weights_p{p}": plots.plot_frequency_weights(first_seed),
        }
        for res in first_seed:
            data = TrainConfig(**res.config).dataset()
            figs[f"neurons_{res.config['mixer']}_p{p}"] = plots.plot_neuron_maps(res, data)
        paths.update(run.save_figures(figs))
    return paths
