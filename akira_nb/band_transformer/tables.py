"""Experiment 026's tables, from the trained studies' records: each training
(:class:`Training`), the parameter table (every group with its size and LR), the loss table
(arm x budget at its tuned LR, with training FLOPs), the sweep table, what the arms say
(:func:`comparison_lines`), the learning check, and the reference's reported losses beside
the measured ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from akira_nb.band_transformer import sweep
from akira_nb.band_transformer.claims import REFERENCE_LOSSES, common_budget, comparability
from akira_nb.band_transformer.presets import Study
from akira_nb.bandformer import train


@dataclass
class Training:
    """One training of a study: its arm, budget (``steps``), LR multiplier, seed, run-folder
    tag and ``TrainConfig``; the :class:`~akira_nb.bandformer.train.TrainResult` (its model
    dropped for a sweep point that lost); training FLOPs per token; and, for a band-layout arm's
    first seed, its band ablation curve."""

    arm: str
    steps: int
    multiplier: float
    seed: int
    tag: str
    cfg: Any
    result: Any
    flops_per_token: float
    ablation: dict | None = None

    @property
    def loss(self) -> float:
        """The final validation loss (at least ``final_eval_predictions`` predictions)."""
        return float(self.result.final_val_loss)

    @property
    def unigram(self) -> float:
        """The unigram cross-entropy of the same validation blocks."""
        return float(self.result.data["unigram_val_loss"])

    @property
    def learned(self) -> bool:
        """:func:`akira_nb.lr_sweep.learned`: at least the margin below the unigram."""
        return sweep.learned(self.loss, self.unigram)

    def record(self) -> dict:
        """The training as one JSON row (the sweep tables of results.json)."""
        return {
            "tag": self.tag,
            "arm": self.arm,
            "budget": self.steps,
            "lr_multiplier": self.multiplier,
            "seed": self.seed,
            "lrs": dict(self.result.prescribed_lrs),
            "final_val_loss": self.loss,
            "unigram_val_loss": self.unigram,
            "learned": self.learned,
            "flops_per_token": self.flops_per_token,
        }


def lr_text(lrs: dict, multiplier: float) -> str:
    """An arm's LRs in a few characters: ``LR 0.00095 (x0.316)`` for one LR, ``9.5e-06..0.0095,
    shared 0.00095 (x0.316)`` for a hierarchy (``lrs``: the optimiser's prescribed LRs)."""
    values = [float(v) for v in lrs.values()]
    scale = f" (x{sweep.tag(multiplier)})"
    if not values:
        return "-" + scale
    if max(values) <= min(values) * (1 + 1e-9):
        return f"LR {values[0]:.2g}{scale}"
    bands = [float(v) for k, v in lrs.items() if k != "shared"] or values
    shared = f", shared {float(lrs['shared']):.2g}" if "shared" in lrs else ""
    return f"{min(bands):.2g}..{max(bands):.2g}{shared}{scale}"


def _si(value: float) -> str:
    """``1.08M``, ``554G``: 3 significant digits and an SI prefix."""
    if not math.isfinite(value) or value == 0:
        return f"{value:g}"
    exp = min(max(int(math.floor(math.log10(abs(value)) / 3)), 0), 6)
    return f"{value / 1000**exp:.3g}{['', 'k', 'M', 'G', 'T', 'P', 'E'][exp]}"


def parameter_rows(models: dict) -> list[dict]:
    """Per arm (``{arm: (model, TrainConfig)}``, first seed): its parameter counts, width
    (``d_model``) and every parameter group with its size and LR (the optimiser's groups in the
    arm's LR mode, at its tuned multiplier; a band's ``/no_decay`` sibling counted with it)."""
    from akira_nb.bandformer.model import model_summary

    rows = []
    for arm, (model, cfg) in models.items():
        s = model_summary(model)
        groups = {}
        opt = train.make_optimizer(model, cfg, cfg.band_config())
        for g in opt.param_groups:
            key = g["name"].removesuffix("/no_decay")
            n = sum(p.numel() for p in g["params"])
            prev = groups.get(key, {"params": 0})
            groups[key] = {"params": prev["params"] + n, "lr": float(g["base_lr"])}
        rows.append({"arm": arm, "lr_mode": cfg.resolved_lr_mode(), **s, "groups": groups})
    return rows


def parameter_table(rows: list[dict]) -> str:
    """Text: one column per arm; total, width, embedding, non-embedding, band fraction, then
    each group's parameters @ its LR."""
    if not rows:
        return "(no arm)"
    w = 22
    keys = []
    for r in rows:
        keys += [k for k in r["groups"] if k not in keys]
    keys.sort(key=lambda k: (k == "shared", int(k.split("_")[1]) if k.startswith("band_") else 0))
    head = f"{'':<20}" + "".join(f"{r['arm']:>{w}}" for r in rows)
    lines = [head, "-" * len(head)]
    for label, fn in (
        ("parameters", lambda r: f"{r['total']:,}"),
        ("width (d_model)", lambda r: f"{r['d_model']:,}"),
        ("embedding", lambda r: f"{r['embedding']:,}"),
        ("non-embedding", lambda r: f"{r['non_embedding']:,}"),
        ("in bands (non-emb.)", lambda r: f"{r['band_fraction']:.1%}"),
        ("LR mode", lambda r: r["lr_mode"]),
    ):
        lines.append(f"{label:<20}" + "".join(f"{fn(r):>{w}}" for r in rows))
    for k in keys:
        cells = []
        for r in rows:
            g = r["groups"].get(k)
            cells.append(f"{g['params']:,} @ {g['lr']:.3g}" if g else "-")
        lines.append(f"{k:<20}" + "".join(f"{c:>{w}}" for c in cells))
    lines.append("(each arm at its tuned LR of its longest budget)")
    return "\n".join(lines)


def loss_rows(trainings: list, plan: Study, sweeps: dict) -> list[dict]:
    """Per arm and budget (the reported trainings: the sweep's best point and the other seeds at
    its multiplier): the tuned LR, the final validation loss and perplexity (mean +- std over
    seeds), whether every seed learned, tokens, tokens/s, parameters, width, training FLOPs per
    token and in all, the sweep's outcome (``sweeps[(arm, steps)]``), beside the unigram."""
    rows = []
    for steps in plan.budgets:
        for arm in plan.arms_at(steps):
            ts = [t for t in trainings if t.arm == arm and t.steps == steps]
            if not ts:
                continue
            first, losses = ts[0], np.array([t.loss for t in ts], dtype=float)
            mean = float(losses.mean())
            rows.append(
                dict(
                    arm=arm,
                    budget=steps,
                    tokens=plan.tokens_at(steps),
                    tokens_seen=[int(t.result.tokens_seen) for t in ts],  # counted by the trainer
                    seeds=[t.seed for t in ts],
                    losses=losses.tolist(),
                    val_loss=mean,
                    val_loss_std=float(losses.std()) if len(ts) > 1 else None,
                    val_ppl=float(np.exp(mean)) if mean < 700 else math.inf,
                    learned=all(t.learned for t in ts),
                    unigram=first.unigram,
                    lr_multiplier=first.multiplier,
                    lrs=dict(first.result.prescribed_lrs),
                    lr_text=lr_text(first.result.prescribed_lrs, first.multiplier),
                    sweep=sweeps[(arm, steps)],
                    tokens_per_s=float(np.mean([t.result.tokens_per_s for t in ts])),
                    params=int(first.result.params["total"]),
                    d_model=int(first.result.params["d_model"]),
                    flops_per_token=first.flops_per_token,
                    train_flops=first.flops_per_token * plan.tokens_at(steps),
                    final_predictions=int(first.result.data.get("final_val_predictions", 0)),
                )
            )
    return rows


def learned_text(row: dict) -> str:
    return "yes" if row["learned"] else "DID NOT LEARN"


def loss_table(rows: list[dict], plan: Study) -> str:
    """Arm x budget: the tuned LR, the final validation loss (mean +- std over seeds), the
    learning check, FLOPs per token and in all, parameters."""
    head = (
        f"{'arm':<17}{'steps':>7}{'tokens':>10}  {'LR (tuned)':<44}{'val loss':>16}"
        f"{'FLOP/token':>11}{'FLOP':>8}{'params':>10}  learned"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        std = f" +- {r['val_loss_std']:.3f}" if r["val_loss_std"] is not None else ""
        lr = r["lr_text"] + ("" if r["sweep"]["swept"] else " not swept")
        lines.append(
            f"{r['arm']:<17}{r['budget']:>7,}{r['tokens']:>10,}  {lr:<44}"
            f"{r['val_loss']:>8.4f}{std:<8}{_si(r['flops_per_token']):>11}"
            f"{_si(r['train_flops']):>8}{r['params']:>10,}  {learned_text(r)}"
        )
    if not rows:
        return "(no arm)"
    b = plan.base
    lines.append(
        f"val loss: the final model on {_predictions(rows)} predictions of the validation split "
        f"(unigram cross-entropy of the same blocks {rows[0]['unigram']:.4f} nats/token: an arm "
        f"not {sweep.LEARN_MARGIN:g} nats below it did not learn); every arm of a budget trained "
        f"on {plan.budget_text()}; LR (tuned): the best point of the arm's sweep on seed "
        f"{plan.seeds[0]} (the sweep table), the other seeds at that multiplier; FLOP: training "
        f"FLOPs (forward + backward, counted on one step of {b.batch_size} x {b.seq_len}), per "
        "token and in all"
    )
    short = [a for a in plan.arms if a not in plan.arms_at(plan.budgets[-1])]
    if len(plan.budgets) > 1 and short:
        lines.append(
            f"{', '.join(short)}: trained (and swept) at {plan.budgets[0]:,} steps only; "
            f"{', '.join(plan.arms_at(plan.budgets[-1]))} at every budget"
        )
    return "\n".join(lines)


def _predictions(rows: list[dict]) -> str:
    n = {r.get("final_predictions") for r in rows} - {None}
    return f"{n.pop():,}" if len(n) == 1 else "the final set's"


def sweep_table(rows: list[dict]) -> str:
    """Per arm and budget, every LR multiplier tried on the first seed with its final validation
    loss (``*``: the best, the arm's reported point) and where the best lies."""
    lines = ["LR sweep (first seed): final validation loss at each LR multiplier (* the best)"]
    for r in rows:
        sw = r["sweep"]
        points = "  ".join(
            f"x{sweep.tag(m)} {loss:.4f}{'*' if m == sw['best'] else ' '}"
            for m, loss in sw["points"]
        )
        lines.append(f"{r['arm']:<17}{r['budget']:>7,}  {points}  ({sw['note']})")
    return "\n".join(lines)


def comparison_lines(rows: list[dict], params: list[dict]) -> list[str]:
    """What the arms say, printed from the run: the GPTs' widths and parameters beside the band
    model's, FLOPs per token, whether the gain comes from the LR hierarchy (``band_uniform``)
    or the wormhole (``band_no_wormhole``), and the learning check."""
    lines = []
    p = {r["arm"]: r for r in params}
    if "band" in p and "baseline" in p:
        b, g = p["band"], p["baseline"]
        lines.append(
            f"width: the parameter-matched baseline is {g['d_model'] / b['d_model']:.2g}x as wide "
            f"as the band model (d_model {g['d_model']} vs {b['d_model']}; {g['total']:,} vs "
            f"{b['total']:,} parameters)"
            + (
                f"; baseline_wide has the band model's width ({p['baseline_wide']['d_model']}) and "
                f"{p['baseline_wide']['total']:,} parameters "
                f"({p['baseline_wide']['total'] / g['total']:.2g}x the matched one's)"
                if "baseline_wide" in p
                else ""
            )
        )
    by = {(r["arm"], r["budget"]): r for r in rows}
    flops = {r["arm"]: r["flops_per_token"] for r in rows}
    if "band" in flops and "baseline" in flops:
        lines.append(
            "training FLOPs per token: "
            + ", ".join(f"{a} {_si(f)}" for a, f in flops.items())
            + f" (band / baseline = {flops['band'] / flops['baseline']:.2f}x)"
        )
    for arm, what in (("band_uniform", "LR hierarchy"), ("band_no_wormhole", "wormhole")):
        steps = common_budget(by, "band", arm)
        if steps is None:
            continue
        b, o = by[("band", steps)], by[(arm, steps)]
        diff = o["val_loss"] - b["val_loss"]
        unlearned = [r["arm"] for r in (b, o) if not r["learned"]]
        lines.append(
            f"{what}: {arm} {o['val_loss']:.4f} ({_lr_note(o)}) vs band {b['val_loss']:.4f} "
            f"({_lr_note(b)}) at {steps:,} steps: {arm} - band = {diff:+.4f} nats (positive: "
            f"the {what} helps the band model; near 0: the band model's result does not come "
            "from it)"
            + (f"; not judged: {', '.join(unlearned)} did not learn" if unlearned else "")
        )
    lines.append(learning_line(rows))
    return lines


def _lr_note(row: dict) -> str:
    """``tuned LR x0.316`` or ``the preset's LRs, not swept``."""
    if row["sweep"]["swept"]:
        return f"tuned LR x{sweep.tag(row['lr_multiplier'])}"
    return "the preset's LRs, not swept"


def learning_line(rows: list[dict]) -> str:
    """The learning check of every arm and budget, in one line."""
    if not rows:
        return "learning check: no arm trained"
    bad = [
        f"{r['arm']} at {r['budget']:,} steps DID NOT LEARN ({r['val_loss']:.4f})"
        for r in rows
        if not r["learned"]
    ]
    return (
        f"learning check (final validation loss at least {sweep.LEARN_MARGIN:g} nats below the "
        f"unigram {rows[0]['unigram']:.4f}): "
        + ("; ".join(bad) if bad else "every arm learned at every budget")
    )


def reference_rows(rows: list[dict], plan: Study) -> list[dict]:
    """The reference's final eval losses beside the matching arm's measured loss (at its
    longest budget, tuned LR). Never comparable in value: the reference's loss counted eos
    padding (a lower, deflated loss); :func:`comparability` says what else differs."""
    by = {r["arm"]: r for r in rows}  # budgets ascend: the longest wins
    out = []
    for ref in REFERENCE_LOSSES["runs"].values():
        r = by.get(ref["arm"]) if ref["arm"] else None
        out.append(
            dict(
                reference=ref["label"],
                reported=f"{ref['loss'][-1]:.4f} (ppl {ref['ppl'][-1]:.2f}) at step "
                f"{REFERENCE_LOSSES['steps'][-1]}, {ref['it_s']:g} it/s on an A100",
                arm=ref["arm"] or "-",
                measured=(
                    f"{r['val_loss']:.4f} (ppl {r['val_ppl']:.2f}) after {r['tokens']:,} tokens "
                    f"({r['budget']:,} steps, {r['lr_text']})"
                    if r
                    else "not run (no arm of the kit: the reference layout at a uniform LR)"
                ),
                comparable="not comparable",
            )
        )
    return out


def reference_table(rows: list[dict], plan: Study | None = None) -> str:
    """:func:`reference_rows` as text, headed by why they are not comparable."""
    why = comparability(plan) if plan is not None else None
    lines = [
        "the reference's reported eval losses beside this run's: not comparable (its loss "
        "counted eos padding" + (f"; and {why}" if why else "") + ")"
    ]
    for r in rows:
        lines.append(f"{r['reference']}")
        lines.append(f"    reference: {r['reported']}")
        lines.append(f"    measured ({r['arm']}): {r['measured']}")
    lines.append(f"    ({REFERENCE_LOSSES['wormhole_claim']})")
    return "\n".join(lines)


def arm_line(res, learned: bool | None = None) -> str:
    """One line per trained arm, for logs and saved notebooks (``learned=False``: marked)."""
    c, p = res.config, res.params
    frac = f", {p['band_fraction']:.0%} of non-embedding in bands" if p.get("bands") else ""
    mark = " [DID NOT LEARN]" if learned is False else ""
    return (
        f"{c['arm']} seed {c['seed']}, {c['total_steps']:,} steps: val loss "
        f"{res.final_val_loss:.4f}{mark} (ppl {res.final_val_ppl:.2f}) after "
        f"{res.tokens_seen:,} tokens, {p['total']:,} params{frac}, "
        f"{res.tokens_per_s:,.0f} tokens/s, {res.seconds:.1f} s"
    )
