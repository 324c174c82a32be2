"""The seed document's grokking claims beside this run's numbers, and the kit-summary section.

``SEED_CLAIMS`` holds the seed's numbers; :func:`comparability` says why a study cannot be set
beside them; one function per seed claim builds its row through :func:`akira_nb.claims.judge`
(the kit's one verdict rule); :func:`claims` lists them all; :func:`kit_summary` is this
experiment's section of the kit summary.
"""

from __future__ import annotations

from akira_nb.claims import Section, claim_lines, judge
from akira_nb.grokking.presets import EXPERIMENT, FFT_ONLY, SEED_PROTOCOL, WAVE_MODES, Study

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
SPEED_UNMEASURABLE = (
    "arms timed one after another, not a paired timing (benchmarks/grokking_speed.py gives one)"
)


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


def _acc(r: dict) -> str:
    return f"{r['test_acc_mean']:.3f} +- {r['test_acc_std']:.3f} ({r['seeds']} seed(s), p={r['p']})"


def _grok(r: dict) -> str:
    if not r["grokked"]:
        return f"never ({r['seeds']} seed(s), p={r['p']})"
    return f"{r['grok_epoch_mean']:.0f} ({r['grokked']}/{r['seeds']} seed(s) grokked, p={r['p']})"


def _at(p: int, p_claim: int) -> str:
    """What a claimed value says when the run's prime is not the claim's."""
    return "" if p == p_claim else f" (the seed's, at p={p_claim})"


def accuracy_claim(p: int, p_claim: int, mixer: str, r: dict | None, why_not) -> dict:
    """The seed's final test accuracy of ``mixer`` at ``p_claim`` (its table) beside the mean
    over seeds of this run's ``r`` at ``p``: holds within +- ACC_TOLERANCE."""
    c = SEED_CLAIMS[(p_claim, mixer)]
    return judge(
        f"p={p} {mixer}: final test accuracy",
        f"holds if the measured mean is within +-{ACC_TOLERANCE} of the claim",
        f"{c['test_acc']:.3f}{_at(p, p_claim)}",
        _acc(r) if r else "not run",
        bool(r) and abs(r["test_acc_mean"] - c["test_acc"]) <= ACC_TOLERANCE,
        why_not=why_not,
        value=r["test_acc_mean"] if r else None,
        unit="",
    )


def grok_epoch_claim(p: int, mixer: str, r: dict | None, plan: Study, why_not) -> dict:
    """The seed's grok epoch of ``mixer`` at p = 53 ("never" for standard): holds within
    GROK_FACTOR either way, or, for "never", if no seed grokked."""
    claimed = SEED_CLAIMS[(53, mixer)]["grok_epoch"]
    if claimed is None:
        rule = "holds if no seed grokked"
        holds = bool(r) and r["grokked"] == 0
    else:
        rule = (
            f"holds if the mean grok epoch is within {GROK_FACTOR:g}x of the claim either way "
            f"(resolution {plan.base.eval_every} epochs)"
        )
        g = r["grok_epoch_mean"] if r and r["grokked"] else None
        holds = g is not None and claimed / GROK_FACTOR <= g <= claimed * GROK_FACTOR
    return judge(
        f"p={p} {mixer}: grok epoch (test acc >= {plan.base.grok_threshold} to the end)",
        rule,
        ("never" if claimed is None else f"{claimed}") + _at(p, 53),
        _grok(r) if r else "not run",
        holds,
        why_not=why_not,
        value=r["grok_epoch_mean"] if r and r["grokked"] else None,
        unit="epochs",
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


def _gate_measured(by: dict, plan: Study) -> tuple[str, bool | None, float | None]:
    """The gate claim's measured prose, whether its rule holds, and the ratio (see
    :func:`gate_claim`)."""
    eval_every, n_epochs = plan.base.eval_every, plan.base.n_epochs
    gate = by.get("learned_gate")
    others = [m for m in GATE_OTHERS if m in by]
    grokked = [m for m in others if by[m]["grokked"]]
    if not gate or not others:
        return f"not run (needs learned_gate and one of {', '.join(GATE_OTHERS)})", None, None
    if not gate["grokked"]:
        did = f"{', '.join(grokked)} did" if grokked else "nor did the other wave modes"
        return f"learned_gate never grokked within {n_epochs} epochs; {did}", False, None
    if not grokked:
        measured = (
            f"learned_gate grokked at {gate['grok_epoch_mean']:.0f}; {', '.join(others)} never "
            f"grokked within {n_epochs} epochs"
        )
        return measured, True, None
    best = min(grokked, key=lambda m: by[m]["grok_epoch_mean"])
    ratio = by[best]["grok_epoch_mean"] / gate["grok_epoch_mean"]
    measured = gate_sentence(gate["grok_epoch_mean"], best, by[best]["grok_epoch_mean"])
    if ratio == 1:
        measured += f" (evaluation every {eval_every} epochs, so the ratio is not resolved)"
    return measured, ratio >= GATE_MIN_RATIO, ratio


def gate_claim(by: dict, plan: Study, why_not, p: int = 53) -> dict:
    """The seed's "learned_gate grokked at epoch 2,600 vs 23,000+ for others" (its finding 3):
    the ratio of the other wave modes' fastest grok epoch to learned_gate's. learned_gate never
    grokking refutes it; learned_gate grokking while no other wave mode does supports it."""
    measured, holds, ratio = _gate_measured(by, plan)
    return judge(
        f"p={p}: learned_gate groks ~10x sooner than the other wave modes",
        f"ratio of the fastest other wave mode's ({', '.join(GATE_OTHERS)}) mean grok epoch to "
        f"learned_gate's; holds if >= {GATE_MIN_RATIO:g}x, or if learned_gate grokked and no "
        f"other wave mode did within n_epochs; does not hold if learned_gate never grokked "
        f"(resolution {plan.base.eval_every} epochs)",
        "10x (2,600 vs 23,300-27,400)" + ("" if p == 53 else " (at p=53)"),
        measured,
        holds,
        why_not=why_not,
        value=ratio,
        unit="x",
    )


def speed_claim(by: dict, p: int, why_not) -> dict:
    """The seed's "FFT mixing trains 2.5x faster": the fastest FFT-only mode's epochs/s over
    standard's. Arms timed one after another decide nothing, so the rule is never judged here
    (a paired timing, ``benchmarks/grokking_speed.py``, can decide it)."""
    std = by.get("standard")
    speeds = {m: by[m]["epochs_per_s_mean"] for m in FFT_ONLY if m in by}
    measured, ratio = "not run", None
    if speeds and std and std["epochs_per_s_mean"] > 0:
        best = max(speeds, key=speeds.get)
        ratio = speeds[best] / std["epochs_per_s_mean"]
        measured = f"{ratio:.2f}x ({best}; arms timed one after another, not paired)"
    return judge(
        f"p={p}: FFT mixing trains 2.5x faster than attention",
        "epochs/s of the fastest of fnet/learned_gate/phase_shift over standard's, training "
        "only, this device; only a paired timing (python benchmarks/grokking_speed.py) can "
        "decide it, so arms timed one after another give no verdict",
        "2.5x (240 vs 92 it/s)" + ("" if p == 53 else " (at p=53)"),
        measured,
        None,
        why_not=why_not,
        value=ratio,
        unit="x",
        unmeasurable=SPEED_UNMEASURABLE,
    )


def waves_claim(by: dict, p: int, why_not) -> dict:
    """The seed's "Standard attention FAILED at p=53 ... FFT methods all grokked" (its findings
    1 and 2, table: standard 0.022, every wave mode 0.934-1.000): standard's accuracy below
    NOT_GENERALISED_ACC and every wave mode's, ``full`` included, at least GENERALISED_ACC.
    ``full`` keeps Q/K/V, so it only makes the rule stricter: it cannot carry the claim."""
    missing = [m for m in ("standard", *WAVE_MODES) if m not in by]
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
    return judge(
        f"p={p}: FFT beats attention (standard never generalises, every wave mode does)",
        f"holds if standard's mean final test accuracy is below {NOT_GENERALISED_ACC} and that "
        f"of every wave mode ({', '.join(WAVE_MODES)}) is at least {GENERALISED_ACC} (the "
        f"seed's lowest, phase_shift, is 0.934); measured value: standard's accuracy",
        "0.022 vs 0.934-1.000" + ("" if p == 53 else " (at p=53)"),
        measured,
        holds,
        why_not=why_not,
        value=value,
        unit="",
    )


def claims(rows: list[dict], plan: Study) -> list[dict]:
    """The seed's claims beside this run's numbers, each with its rule and verdict. At p = 53
    (or 113) the rows of that prime are used; otherwise the first prime's, marked "not
    comparable" (as is everything when :func:`comparability` gives a reason)."""
    why_not = comparability(plan)
    out = []
    for p_claim in (53, 113):
        if p_claim == 113 and 113 not in plan.primes:
            continue
        p = p_claim if p_claim in plan.primes else plan.primes[0]
        by = {r["mixer"]: r for r in rows if r["p"] == p}
        for cp, mixer in SEED_CLAIMS:
            if cp != p_claim:
                continue
            out.append(accuracy_claim(p, p_claim, mixer, by.get(mixer), why_not))
            if p_claim == 53:
                out.append(grok_epoch_claim(p, mixer, by.get(mixer), plan, why_not))
        if p_claim == 53:
            out.append(gate_claim(by, plan, why_not, p))
            out.append(speed_claim(by, p, why_not))
            out.append(waves_claim(by, p, why_not))
    return out


def verdicts(rows: list[dict], plan: Study) -> list[str]:
    """The claims of :func:`claims` as printed lines, each with its rule."""
    lines = claim_lines(claims(rows, plan))
    why_not = comparability(plan)
    if why_not:
        lines.insert(0, f"not comparable with the seed's claims: {why_not}")
    return lines


def kit_summary(out: dict) -> Section:
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
