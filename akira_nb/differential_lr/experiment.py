"""Experiment 013 (differential learning rates) in one call: does AKIRA's band LR hierarchy
(slow low bands, fast high bands) learn faster, generalise better and train more stably than a
uniform LR, and do the bands move at their prescribed rates?

Arms (each a :mod:`akira_nb.bandformer.train` arm):

- ``band``: the band transformer with differential LRs (the LR preset's band LRs, the shared
  LR for embeddings and the final norm);
- ``band_geomean``: the same model with every group at one LR, the geometric mean of the band
  LRs at its prescribed point (013's control: "same total learning budget");
- ``baseline_differential``: "differential LR without bands": the parameter-matched GPT with
  the band LRs over its hidden units split into the band slices;
- ``band_uniform`` (not in the default arms): the band model at one LR, the shared LR at its
  prescribed point. Once its LR is tuned it is the same arm as ``band_geomean`` (the same
  model with one LR for every group), so the default study trains that one only.

Every arm is compared at its own tuned LR, at every budget of ``budgets`` (total steps):
a sweep of multipliers of the arm's prescribed LRs (every band LR and the shared LR scaled
together: a differential arm keeps its ratios, a uniform arm's one LR is scaled) on
``sweep_seeds``, by the kit's one sweep rule (:mod:`akira_nb.lr_sweep`, shared with 026): at
least 3 points spanning 10x, with the edge rule (a best point at an edge adds one point beyond
it, at most ``sweep_extensions`` times, then "the optimum may lie beyond"). A longer budget's
sweep is centred on the shorter one's tuned multiplier when the arm learned there (else on
x1). At the longest budget the other seeds train at the tuned multiplier; the sweep's best run
is the arm's result at its sweep seeds (no configuration is trained twice). Every training is
saved to ``arms/<tag>.json`` as it finishes (``<arm>_x<multiplier>_b<steps>_s<seed>``) and
reloaded on ``resume``.

Every seed fixes the data order too (``data_seed`` is the study's, one for all), so the
comparisons are paired. H1-H4 (:mod:`.claims`) compare the tuned ``band`` and ``band_geomean``
at the longest budget; an arm whose final validation loss is not at least
:data:`~akira_nb.lr_sweep.LEARN_MARGIN` nats below the unigram loss at every seed "did not
learn" and judges nothing. Below the seed's scale (:func:`~.claims.comparability`) every
verdict is computed and reads "not comparable" in the kit summary, with the computed one
beside it.

Final losses: a sweep ranks its points by the final validation loss on the evaluation set
(``eval_batches`` batches, the set of the loss curves). Every reported training (each sweep's
best point, the other seeds at the tuned LR) is then evaluated from its final weights on at
least ``final_eval_predictions`` predictions of the validation and of the test split (the
whole split when it holds fewer): those are the final validation and
test losses of every table, the learning check (against the unigram loss of the same
validation blocks) and H1-H4. Only the reported trainings pay for the large evaluation.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from akira_nb import lr_sweep, runtime, standins
from akira_nb.claims import claim_lines
from akira_nb.runs import read_json
from akira_nb.runtime import FINAL_EVAL_PREDICTIONS

from . import evaluate as ev
from . import sweep as sw
from .claims import (
    CONTROL,
    HYPOTHESES,
    LEARN_MARGIN,
    MIN_SEEDS,
    MIN_STEPS,
    TREATMENT,
    arm_stats,
    claims,
    comparability,
    fmt,
    learned,
    measure,
    recommendation,
    template,
)

EXPERIMENT = "013_differential_lr"
TITLE = "013 Differential learning rates: does the band LR hierarchy beat a uniform LR?"
ARMS = ("band", "band_geomean", "band_uniform", "baseline_differential")
DEFAULT_ARMS = ("band", "band_geomean", "baseline_differential")
ARM_LABELS = {
    "band": "differential (band LRs)",
    "band_geomean": "uniform (from the geometric mean)",
    "band_uniform": "uniform (from the shared LR)",
    "baseline_differential": "differential LR without bands (matched GPT, hidden slices)",
}
SWEEP = list(lr_sweep.GRID)  # multipliers of the prescribed LRs: 3 points spanning 10x
# model presets by size and band count (7 bands: the 026 shapes; 8: the 7+1 layout)
MODEL_PRESETS = {"tiny": {7: "tiny", 8: "tiny_7p1"}, "big": {7: "default", 8: "canonical_7p1"}}

PRESETS: dict[str, dict[str, Any]] = {
    # two budgets 5x apart; the longer one is where every arm learns (the learning check)
    "tiny": dict(
        lr_preset="013",
        seeds=[0, 1, 2],
        budgets=[40, 200],
        sweep=SWEEP,
        sweep_seeds=[0],
        dataset="offline",
        data_seed=0,
        seq_len=32,
        batch_size=16,
        warmup_steps=20,  # of the longest budget; a shorter one keeps the share (10%)
        eval_every=8,
        eval_batches=2,
        final_eval_predictions=FINAL_EVAL_PREDICTIONS,  # 1,613 of the 1,790 validation blocks
        checkpoint_every=100,
        monitor_every=8,
    ),
    "t4": dict(
        lr_preset="013",
        seeds=[0, 1, 2],
        budgets=[1000],
        sweep=SWEEP,
        sweep_seeds=[0],
        dataset="wikitext-103",
        max_train_tokens=16_000_000,
        data_seed=0,
        seq_len=256,
        batch_size=16,
        warmup_steps=50,
        eval_every=50,
        eval_batches=20,  # 81,600 predictions: the final losses' sets are this size
        final_eval_predictions=FINAL_EVAL_PREDICTIONS,
        checkpoint_every=250,
        monitor_every=50,
    ),
    "a100": dict(
        lr_preset="013",
        seeds=[0, 1, 2, 3, 4],
        budgets=[5000],
        sweep=SWEEP,
        sweep_seeds=[0, 1],
        dataset="wikitext-103",
        data_seed=0,
        seq_len=256,
        batch_size=16,
        warmup_steps=100,
        eval_every=250,
        eval_batches=50,
        final_eval_predictions=FINAL_EVAL_PREDICTIONS,
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
    "budgets",
    "sweep",
    "sweep_seeds",
    "sweep_extensions",
    "final_eval_predictions",
    "target_loss",
    "target_margin",
    "window_fraction",
)
MAY_CHANGE = ("device", "progress", "checkpoint_every", "cpu_threads")


def _optim():
    from akira_nb.bandformer import optim

    return optim


def _train_module():
    """The band-model trainer, imported when first needed (it imports torch)."""
    from akira_nb.bandformer import train

    return train


def check_budgets(budgets) -> list[int]:
    """``budgets`` sorted: distinct positive step counts, at least one."""
    if not isinstance(budgets, (list, tuple)) or not budgets:
        raise ValueError(f"budgets={budgets!r} must be a non-empty list of total steps")
    out = [runtime.check_int(f"budgets[{i}]", b, low=1) for i, b in enumerate(budgets)]
    runtime.check_distinct("budgets", out)
    return sorted(out)


@dataclass
class Study:
    """One 013 study: the shared ``TrainConfig`` (``base``, at the longest budget), the LR set,
    the arms, seeds, budgets, the per-arm LR sweep and the measurement settings. Build it with
    :func:`study`."""

    base: Any
    lr_preset: str
    band_lrs: tuple
    shared_lr: float
    arms: list
    seeds: list
    budgets: list = field(default_factory=list)
    sweep: list = field(default_factory=list)
    sweep_seeds: list = field(default_factory=list)
    sweep_extensions: int = lr_sweep.MAX_EXTENSIONS
    final_eval_predictions: int = 0
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
        runtime.check_distinct("arms", self.arms)
        self.seeds = runtime.check_seeds("seeds", self.seeds)
        self.sweep_seeds = runtime.check_seeds("sweep_seeds", self.sweep_seeds or self.seeds[:1])
        outside = [s for s in self.sweep_seeds if s not in self.seeds]
        if outside:
            raise ValueError(
                f"sweep_seeds={self.sweep_seeds!r}: {outside} not among seeds={self.seeds!r} "
                "(the sweep's best run is the arm's result at those seeds)"
            )
        self.budgets = check_budgets(self.budgets or [self.base.total_steps])
        if self.budgets[-1] != self.base.total_steps:
            raise ValueError(
                f"budgets={self.budgets!r}: the longest must equal total_steps="
                f"{self.base.total_steps} (study() sets it)"
            )
        self.sweep = sw.check_grid("sweep", self.sweep)
        self.sweep_extensions = runtime.check_int(
            "sweep_extensions", self.sweep_extensions, low=0, high=5
        )
        self.final_eval_predictions = runtime.check_int(
            "final_eval_predictions", self.final_eval_predictions, low=0
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
        for b in self.budgets:
            self._check_window(b)
            self.config(self.arms[0], 1.0, b, self.seeds[0])
        for arm in self.arms:
            self.config(arm, 1.0, self.budgets[-1], self.seeds[0])
        return self

    def _check_window(self, budget: int) -> None:
        left = budget - self.warmup_for(budget)
        if left < ev.MIN_WINDOW:
            raise ValueError(
                f"total_steps={budget} with warmup_steps={self.warmup_for(budget)} leaves {left} "
                f"step(s) after the warm-up; H3's stability window needs at least "
                f"{ev.MIN_WINDOW} steps after it"
            )

    @property
    def geomean(self) -> float:
        return _optim().geometric_mean(self.band_lrs)

    @property
    def longest(self) -> int:
        return self.budgets[-1]

    @property
    def tokens_per_arm(self) -> int:
        """Tokens of one training at the longest budget."""
        b = self.base
        return runtime.training_tokens(int(b.total_steps), int(b.batch_size), int(b.seq_len))

    def warmup_for(self, budget: int) -> int:
        """The warm-up of a training of ``budget`` steps: the longest budget's share."""
        return round(self.base.warmup_steps * budget / self.base.total_steps)

    def lr_of(self, arm: str, mult: float) -> float:
        """The geometric mean of the LRs ``arm``'s bands get at ``mult`` (its one LR for a
        uniform arm): the x axis of the sweep figure."""
        return mult * (self.shared_lr if arm == "band_uniform" else self.geomean)

    def key(self, arm: str, mult: float, budget: int, seed: int) -> dict:
        """The identity of one training (``tag``: its file and checkpoint folder name)."""
        mult = sw.norm(mult)
        return {
            "arm": arm,
            "mult": mult,
            "lr": self.lr_of(arm, mult),
            "budget": int(budget),
            "seed": int(seed),
            "tag": f"{arm}_x{sw.tag(mult)}_b{budget}_s{seed}",
        }

    def config(self, arm: str, mult: float, budget: int, seed: int):
        """The ``TrainConfig`` of ``arm`` at ``mult`` x its prescribed LRs, ``budget`` steps."""
        over = {
            **self.base.model_overrides,
            "band_lrs": tuple(mult * lr for lr in self.band_lrs),
            "shared_lr": mult * self.shared_lr,
        }
        return replace(
            self.base,
            arm=arm,
            seed=int(seed),
            total_steps=int(budget),
            warmup_steps=self.warmup_for(budget),
            model_overrides=over,
        ).validate()

    def configs(self) -> list[tuple[dict, Any]]:
        """``(key, TrainConfig)`` of the planned trainings when every sweep's best is its
        centre: per arm, each budget's first sweep points on the sweep seeds, then the other
        seeds at the longest budget (the edge rule may add points; the count without them)."""
        out = []
        for arm in self.arms:
            for budget in self.budgets:
                for m in self.sweep or [1.0]:
                    for s in self.sweep_seeds:
                        out.append((self.key(arm, m, budget, s), self.config(arm, m, budget, s)))
            for s in self.seeds:
                if s not in self.sweep_seeds:
                    out.append(
                        (
                            self.key(arm, 1.0, self.longest, s),
                            self.config(arm, 1.0, self.longest, s),
                        )
                    )
        return out

    def to_dict(self) -> dict:
        return {
            "base": asdict(self.base),
            "lr_preset": self.lr_preset,
            "band_lrs": list(self.band_lrs),
            "shared_lr": self.shared_lr,
            "arms": list(self.arms),
            "seeds": list(self.seeds),
            "budgets": list(self.budgets),
            "sweep": list(self.sweep),
            "sweep_seeds": list(self.sweep_seeds),
            "sweep_extensions": self.sweep_extensions,
            "final_eval_predictions": self.final_eval_predictions,
            "target_loss": self.target_loss,
            "target_margin": self.target_margin,
            "window_fraction": self.window_fraction,
            "learn_margin": LEARN_MARGIN,
            "tokens_per_arm": self.tokens_per_arm,
        }

    def describe(self) -> str:
        b = self.base
        sweep = (
            f"each arm's LRs x{', x'.join(f'{f:.3g}' for f in self.sweep)} on seeds "
            f"{self.sweep_seeds} (edge rule: up to {self.sweep_extensions} more points)"
            if self.sweep
            else "none (every arm at its prescribed LRs)"
        )
        return (
            f"013 at size {self.size or 'custom'}: LR preset {self.lr_preset} "
            f"(bands {', '.join(f'{v:g}' for v in self.band_lrs)}; shared {self.shared_lr:g}; "
            f"geometric mean {self.geomean:.3g}), model preset {b.preset}, {b.dataset}, arms "
            f"{', '.join(self.arms)}, seeds {self.seeds}, budgets "
            f"{', '.join(str(x) for x in self.budgets)} steps x {b.batch_size} x {b.seq_len} "
            f"tokens (warm-up {b.warmup_steps} at {self.longest}; the other seeds at the "
            f"longest budget only); LR sweep: {sweep}; {self._final_losses()}"
        )

    def _final_losses(self) -> str:
        if not self.final_eval_predictions:
            return "every loss on the evaluation set"
        return (
            f"the reported final losses over at least {self.final_eval_predictions:,} held-out "
            f"predictions (the sweep ranks on the evaluation set of {self.base.eval_batches} "
            "batches)"
        )


def study(size: str | None = "tiny", **overrides) -> Study:
    """The one way to build a 013 study (notebook and CLI): ``PRESETS[size]`` with
    ``overrides`` on top (None means "not given"). Keys: ``lr_preset`` (a name of
    ``optim.LR_PRESETS`` or ``custom`` with ``band_lrs`` / ``shared_lr``), ``arms``, ``seeds``,
    ``budgets`` (total steps of each budget), ``sweep`` (multipliers of each arm's prescribed
    LRs; ``[]``: no sweep), ``sweep_seeds``, ``sweep_extensions``, ``final_eval_predictions``
    (the held-out predictions behind every reported final loss), ``target_loss``,
    ``target_margin``, ``window_fraction`` and any ``TrainConfig`` field except ``arm`` /
    ``seed`` (e.g. ``offline=True``: local stand-ins of the same shape for every download,
    :mod:`akira_nb.standins`). ``total_steps`` without ``budgets`` is one budget. The model
    preset follows the size and the LR set's band count (7: the 026 shapes, 8: the 7+1
    layout). Given ``seeds`` without ``sweep_seeds``, the sweep runs on the first of them (as
    many as the size's sweep seeds); without ``warmup_steps``, the warm-up keeps the size's
    share of the steps (tiny 10%)."""
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
    for key in ("arms", "seeds", "sweep_seeds", "budgets"):  # None means the preset's; [] not
        if isinstance(given.get(key), (list, tuple)) and not given[key]:
            default = list(DEFAULT_ARMS) if key == "arms" else preset[key]
            raise ValueError(
                f"{key}={given[key]!r} is empty: pass at least one value (or None for the "
                f"{size} preset's {default})"
            )
    settings = {**preset, **given}
    if (
        "seeds" in given
        and "sweep_seeds" not in given
        and isinstance(given["seeds"], (list, tuple))
    ):
        settings["sweep_seeds"] = list(given["seeds"])[: len(preset["sweep_seeds"])]
    settings["budgets"] = _budgets(given, preset)
    settings["total_steps"] = settings["budgets"][-1]
    if "warmup_steps" not in given:
        share = preset["warmup_steps"] / preset["budgets"][-1]
        settings["warmup_steps"] = round(share * settings["total_steps"])
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
    arms = list(plan_keys.pop("arms", None) or DEFAULT_ARMS)
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


def _budgets(given: dict, preset: dict) -> list[int]:
    """The study's budgets: ``budgets`` given, else ``[total_steps]`` given, else the preset's."""
    if "budgets" in given:
        budgets = check_budgets(given["budgets"])
        if "total_steps" in given and given["total_steps"] != budgets[-1]:
            raise ValueError(
                f"total_steps={given['total_steps']!r} and budgets={budgets!r} disagree: the "
                "longest budget is the total steps (give one of them)"
            )
        return budgets
    if "total_steps" in given:
        return [runtime.check_int("total_steps", given["total_steps"], low=1)]
    return list(preset["budgets"])


# ----------------------------------------------------------------------------- trainings


class Trainings:
    """Every training of a study, each at most once: reloaded from ``arms/<tag>.json`` on
    ``resume``, else trained (from its checkpoint when half done) and saved there. The final
    losses of a reported training (:meth:`final`) are over ``val_blocks`` and ``test_blocks``
    (at least ``final_eval_predictions`` predictions each); ``unigram`` is the unigram loss of
    ``val_blocks``, ``unigram_eval`` that of the evaluation set (the curves')."""

    def __init__(self, plan: Study, run, resume: bool, splits, log):
        from akira_nb import text

        self.plan, self.run, self.resume, self.splits, self.log = plan, run, resume, splits, log
        self.records: dict[str, tuple[dict, dict]] = {}  # tag -> (key, record), in order
        first = plan.config(plan.arms[0], 1.0, plan.longest, plan.seeds[0])
        held_out = replace(first, final_eval_predictions=plan.final_eval_predictions)
        final_blocks = _train_module().final_validation_blocks
        self.has_test = bool(splits.test.shape[0])
        self.eval_blocks = min(first.eval_batches * first.batch_size, int(splits.val.shape[0]))
        self.val_blocks = final_blocks(held_out, splits.val)
        self.test_blocks = final_blocks(held_out, splits.test if self.has_test else splits.val)
        self.unigram = float(
            text.unigram_cross_entropy(splits.train, self.val_blocks, splits.vocab_size)
        )
        curves_set = _train_module().validation_blocks(first, splits.val)
        self.unigram_eval = float(  # the unigram loss of the curves' set
            text.unigram_cross_entropy(splits.train, curves_set, splits.vocab_size)
        )

    def get(self, arm: str, mult: float, budget: int, seed: int) -> dict:
        key = self.plan.key(arm, mult, budget, seed)
        if key["tag"] not in self.records:
            path = self.run.file(f"arms/{key['tag']}.json")
            if self.resume and path.is_file():
                rec = read_json(path)
                self.log(f"{key['tag']}: reloaded from {path.name}")
            else:
                rec = self._train(key)
            self.records[key["tag"]] = (key, rec)
        return self.records[key["tag"]][1]

    def _train(self, key: dict) -> dict:
        from akira_nb.runs import atomic_write_json

        train = _train_module()
        cfg = self.plan.config(key["arm"], key["mult"], key["budget"], key["seed"])
        cpu = time.process_time()
        res = train.train(cfg, run=self.run, resume=self.resume, tag=key["tag"])
        rec = {**res.summary(), **key, "cpu_seconds": time.process_time() - cpu}
        atomic_write_json(self.run.file(f"arms/{key['tag']}.json"), rec)
        return rec

    def final(self, arm: str, mult: float, budget: int, seed: int) -> dict:
        """The record of a reported training with its final losses over the held-out sets:
        ``final_val_loss`` over ``val_blocks``, ``test_loss`` over ``test_blocks`` (the
        validation split's when there is no test split), from the final weights in its
        checkpoint; computed once, saved in its ``arms/<tag>.json`` (``eval_val_loss``: the
        evaluation set's loss that the sweep ranked by)."""
        from akira_nb.runs import atomic_write_json

        key, rec = self.plan.key(arm, mult, budget, seed), self.get(arm, mult, budget, seed)
        if "final_val_predictions" in rec:
            return rec
        train, cpu = _train_module(), time.process_time()
        cfg = self.plan.config(arm, mult, budget, seed)
        device = runtime.get_device(cfg.device)
        with runtime.cpu_threads(cfg.cpu_threads, device):
            model = self._final_weights(key, cfg).to(device)
            val = train.evaluate(model, self.val_blocks, cfg, device)
            test = train.evaluate(model, self.test_blocks, cfg, device)
        per_block = int(self.val_blocks.shape[1]) - 1
        rec.update(
            eval_val_loss=rec["final_val_loss"],
            final_val_loss=val,
            final_val_predictions=int(self.val_blocks.shape[0]) * per_block,
            test_loss=test,
            test_predictions=int(self.test_blocks.shape[0]) * per_block,
            test_split="test" if self.has_test else "val (no test split)",
            final_eval_cpu_seconds=time.process_time() - cpu,
        )
        atomic_write_json(self.run.file(f"arms/{key['tag']}.json"), rec)
        return rec

    def _final_weights(self, key: dict, cfg):
        """The model of a finished training, loaded from its final checkpoint."""
        train = _train_module()
        state = self.run.latest_checkpoint(
            key["tag"], config=cfg.to_dict(), may_change=train.RESUME_MAY_CHANGE
        )
        if state is None or int(state["step"]) != cfg.total_steps:
            raise RuntimeError(
                f"{key['tag']}: no final checkpoint in {self.run.checkpoint_dir(key['tag'])} "
                f"to take its final losses from; delete arms/{key['tag']}.json to train it again"
            )
        model, _ = train.build_model(cfg)
        model.load_state_dict(state["model"])
        return model

    def held_out(self) -> dict:
        """The loss sets' sizes in predictions: ``eval`` (the curves' and the sweep's), ``val``
        and ``test`` (the reported final losses'), ``val_blocks`` and the test set's split."""
        per_block = int(self.val_blocks.shape[1]) - 1
        return {
            "val_blocks": int(self.val_blocks.shape[0]),
            "eval": self.eval_blocks * per_block,
            "val": int(self.val_blocks.shape[0]) * per_block,
            "test": int(self.test_blocks.shape[0]) * per_block,
            "test_split": "test" if self.has_test else "val (no test split)",
        }

    def final_loss(self, arm: str, mult: float, budget: int, seed: int) -> float:
        """A reported training's final validation loss over ``val_blocks`` (:meth:`final`)."""
        return float(self.final(arm, mult, budget, seed)["final_val_loss"])

    def eval_loss(self, arm: str, mult: float, budget: int, seed: int) -> float:
        """A training's final validation loss on the evaluation set (the curves' set)."""
        return float(self.get(arm, mult, budget, seed)["history"]["val_loss"][-1])

    def sweep_loss(self, arm: str, budget: int):
        """The sweep's loss at a multiplier: the mean over the sweep seeds of the final val
        loss on the evaluation set (every sweep point; the large sets only for the best)."""
        seeds = self.plan.sweep_seeds
        return lambda m: float(np.mean([self.eval_loss(arm, m, budget, s) for s in seeds]))


def tune(trainings: Trainings, arm: str) -> dict:
    """``{budget: sweep}`` of ``arm`` (:func:`.sweep.run_sweep`, the kit's sweep rule, on the
    sweep seeds, each budget centred on the previous one's tuned multiplier when the arm
    learned there), then the other seeds at the longest budget's tuned multiplier. Each sweep
    gains ``learned``."""
    plan, out, centre = trainings.plan, {}, 1.0
    for budget in plan.budgets:
        grid = [centre * m for m in plan.sweep] or [centre]
        extensions = plan.sweep_extensions if plan.sweep else 0
        res = sw.run_sweep(trainings.sweep_loss(arm, budget), grid, extensions)
        losses = [trainings.final_loss(arm, res["best"], budget, s) for s in plan.sweep_seeds]
        res["learned"] = learned(losses, trainings.unigram, seeds=plan.sweep_seeds)
        if not plan.sweep:
            res["note"] = "not tuned (sweep=[]): the prescribed LRs"
        out[budget] = res
        centre = res["best"] if res["learned"]["ok"] else 1.0
    for s in plan.seeds:
        trainings.get(arm, out[plan.longest]["best"], plan.longest, s)
    return out


def tuned_rows(plan: Study, trainings: Trainings, sweeps: dict) -> dict:
    """``{budget: {arm: row}}``: each arm at its tuned multiplier (``mult``, ``lr``), its seeds
    there (the sweep seeds; every seed at the longest budget), final val loss mean +- std over
    the held-out set (``final_val_loss``; :meth:`Trainings.final`) and on the evaluation set
    (``eval_val_loss``: the curves' set), the learning check (``learned``, ``learn_line``), and
    the sweep's note."""
    out: dict[int, dict] = {}
    for budget in plan.budgets:
        seeds = plan.seeds if budget == plan.longest else plan.sweep_seeds
        for arm, per_budget in sweeps.items():
            m = per_budget[budget]["best"]
            losses = [trainings.final_loss(arm, m, budget, s) for s in seeds]
            curves_end = [trainings.eval_loss(arm, m, budget, s) for s in seeds]
            check = learned(losses, trainings.unigram, seeds=seeds)
            out.setdefault(budget, {})[arm] = {
                "mult": m,
                "lr": plan.lr_of(arm, m),
                "seeds": list(seeds),
                "tags": [plan.key(arm, m, budget, s)["tag"] for s in seeds],
                "final_val_loss": ev.mean_std(losses),
                "predictions": trainings.held_out()["val"],
                "eval_val_loss": ev.mean_std(curves_end),
                "learned": check["ok"],
                "learn_line": check["line"],
                "note": per_budget[budget]["note"],
            }
    return out


def sweep_rows(plan: Study, sweeps: dict, predictions: int) -> list[dict]:
    """One row per arm and budget: the points (multiplier, LR, loss over ``predictions`` of the
    evaluation set), the tuned one, the note."""
    return [
        {
            "arm": arm,
            "budget": budget,
            "predictions": predictions,
            "points": [{**p, "lr": plan.lr_of(arm, p["mult"])} for p in res["points"]],
            "best": res["best"],
            "best_lr": plan.lr_of(arm, res["best"]),
            "extensions": res["extensions"],
            "note": res["note"],
            "learned": res["learned"]["ok"],
        }
        for arm, per_budget in sweeps.items()
        for budget, res in per_budget.items()
    ]


# ----------------------------------------------------------------------------- tables


def tuned_table(out: dict) -> str:
    """Arm x budget: the tuned multiplier and LR, the final val loss (over the held-out set)
    and the learning check."""
    lines = [
        f"tuned arms: final val loss over {out['held_out']['val']:,} held-out predictions, the "
        "learning check against the unigram loss of the same blocks",
        f"{'arm':<22} {'steps':>6} {'tuned':>8} {'LR (geo mean)':>14} {'seeds':>5} "
        f"{'final val loss':>17}  learning check (unigram - {LEARN_MARGIN:g} nats)",
    ]
    for budget, arms in out["tuned"].items():
        for arm, r in arms.items():
            word = "learned" if r["learned"] else "DID NOT LEARN"
            note = f"; {r['note']}" if r["note"] else ""
            lines.append(
                f"{arm:<22} {budget:>6} {'x' + format(r['mult'], '.3g'):>8} {r['lr']:>14.3g} "
                f"{len(r['seeds']):>5} {fmt(r['final_val_loss']):>17}  {word}{note}"
            )
    return "\n".join(lines)


def sweep_table(out: dict) -> str:
    """Every sweep point: final val loss on the evaluation set (what the sweep ranks by) on
    the sweep seeds, the tuned one starred."""
    seeds = out["study"].sweep_seeds
    lines = [
        f"LR sweeps: final val loss on the evaluation set ({out['held_out']['eval']:,} "
        f"predictions, the curves' set; mean over sweep seed(s) {seeds}) at multipliers of "
        "each arm's prescribed LRs; * the tuned point (its loss over the held-out set: above)"
    ]
    for row in out["sweep"]:
        points = ", ".join(
            f"x{p['mult']:.3g}{'*' if p['mult'] == row['best'] else ''} {p['loss']:.4f}"
            for p in row["points"]
        )
        ext = f"; {row['extensions']} point(s) added by the edge rule" if row["extensions"] else ""
        note = f"; {row['note']}" if row["note"] else ""
        lines.append(f"{row['arm']:<22} {row['budget']:>5} steps: {points}{ext}{note}")
    return "\n".join(lines)


def arm_table(out: dict) -> str:
    """One row per tuned arm at the longest budget: mean +- std over seeds of every measure."""
    head = (
        f"{'arm':<22} {'seeds':>5} {'steps->target':>16} {'train':>16} {'val':>16} "
        f"{'test':>16} {'variance':>20} {'spikes':>10}"
    )
    n = out["held_out"]
    lines = [
        f"every arm at its tuned LR, {out['budget_steps']} steps (val over {n['val']:,} "
        f"held-out predictions, test over {n['test']:,} of the {n['test_split']} split):",
        head,
    ]
    for arm, r in out["stats"].items():
        lines.append(
            f"{arm:<22} {r['seeds']:>5} {fmt(r['steps_to_target'], '.1f'):>16} "
            f"{fmt(r['final_train_loss']):>16} {fmt(r['final_val_loss']):>16} "
            f"{fmt(r['test_loss']):>16} {fmt(r['variance'], '.3g'):>20} "
            f"{fmt(r['spikes'], '.1f'):>10}"
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
        rows[arm] = {
            k: {
                "measured": float(
                    np.exp(np.mean([np.log(max(r[k]["measured"], 1e-300)) for r in rates]))
                ),
                "prescribed": rates[0][k]["prescribed"],
            }
            for k in rates[0]
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
    """Tune and train every arm of ``plan`` at every budget (:func:`tune`; each training saved
    to ``arms/<tag>.json`` as it finishes and reloaded on ``resume``; a half-trained one
    continues from its checkpoint), measure, judge H1-H4, write ``results.json`` and the
    figures. Offline (``plan.base.offline``) the stand-ins banner is printed first
    (``banner=False``: the caller printed it) and ``results.json`` records ``"standins"``.
    ``cpu_seconds``: this call's process CPU time (every thread)."""
    from akira_nb.runs import Run

    cpu, start = time.process_time(), time.perf_counter()
    plan.validate()
    record = standins_record(plan, banner)  # the banner first, when offline
    log = log or (lambda line: None)
    # a corpus that cannot load fails before the run folder exists
    splits = _train_module().make_data(plan.config(plan.arms[0], 1.0, plan.longest, 0))
    run = Run.open_or_create(
        EXPERIMENT, name, plan.to_dict(), resume=resume, root=root, may_change=MAY_CHANGE
    )
    trainings = Trainings(plan, run, resume, splits, log)
    sweeps = {arm: tune(trainings, arm) for arm in plan.arms}
    out = measure_study(plan, trainings, sweeps)
    out.update(run=run, standins=record, unigram_test=_unigram_test(trainings))
    out["tables"] = {
        "tuned": tuned_table(out),
        "sweep": sweep_table(out),
        "arms": arm_table(out),
        "template": template(out),
    }
    out["lines"] = summary_lines(out)
    out["cpu_seconds"] = time.process_time() - cpu
    out["wall_seconds"] = time.perf_counter() - start
    run.write_results(results_json(out))
    out["figures"] = save_figures(run, out)
    log(f"results and figures: {run.path}")
    return out


def measure_study(plan: Study, trainings: Trainings, sweeps: dict) -> dict:
    """Everything measured and judged from the trainings: tuned rows per budget, the longest
    budget's measures and statistics, the target, H1-H4, the recommendation, the rates."""
    tuned = tuned_rows(plan, trainings, sweeps)
    longest = tuned[plan.longest]
    tuned_records = {
        arm: [trainings.records[tag] for tag in row["tags"]] for arm, row in longest.items()
    }
    target, target_rule = _target(plan, longest)
    warmup = plan.warmup_for(plan.longest)
    measures = {
        arm: [measure(rec, target, plan.window_fraction, warmup) for _, rec in recs]
        for arm, recs in tuned_records.items()
    }
    out = {
        "study": plan,
        "records": list(trainings.records.values()),
        "tuned_records": tuned_records,
        "sweeps": sweeps,
        "sweep": sweep_rows(plan, sweeps, trainings.held_out()["eval"]),
        "tuned": tuned,
        "budget_steps": plan.longest,
        "measures": measures,
        "target": target,
        "target_rule": target_rule,
        "unigram": trainings.unigram,
        "unigram_eval": trainings.unigram_eval,
        "held_out": trainings.held_out(),
        "budget": _optim().learning_budget(plan.band_lrs),
    }
    out["stats"] = arm_stats(measures, plan.longest)
    out["claims"] = claims(out)
    out["recommendation"] = recommendation(out)
    out["rates"] = rate_rows(out)
    return out


def _target(plan: Study, longest: dict) -> tuple[float, str]:
    """H1's target val loss: given, else the tuned control's mean final val loss on the
    evaluation set (the set of the curves the target is read on) x (1 + target_margin) at the
    longest budget (the first arm's when the control was not run)."""
    if plan.target_loss is not None:
        return plan.target_loss, "the target given (target_loss)"
    arm = CONTROL if CONTROL in longest else next(iter(longest))
    base = longest[arm]["eval_val_loss"][0]
    label = "tuned uniform control" if arm == CONTROL else f"tuned {arm}"
    return base * (1 + plan.target_margin), (
        f"the {label} arm's mean final val loss on the evaluation set (the curves') "
        f"{base:.4f} at {plan.longest} steps x (1 + {plan.target_margin:g})"
    )


def _unigram_test(trainings: Trainings) -> float:
    from akira_nb import text

    s = trainings.splits
    if not trainings.has_test:
        return math.nan
    return float(text.unigram_cross_entropy(s.train, trainings.test_blocks, s.vocab_size))


def results_json(out: dict) -> dict:
    plan = out["study"]
    first, held_out = out["records"][0][1], out["held_out"]
    return {
        "experiment": EXPERIMENT,
        "size": plan.size,
        "config": plan.to_dict(),
        "environment": runtime.environment_info(plan.base.device),
        # the reported final losses' set (the trainer's final_val_* are the evaluation set's)
        "data": {
            **first["data"],
            "final_val_blocks": held_out["val_blocks"],
            "final_val_predictions": held_out["val"],
            "unigram_val_loss": out["unigram"],
        },
        "held_out": held_out,
        "budgets": plan.budgets,
        "target": out["target"],
        "target_rule": out["target_rule"],
        "unigram_val_loss": out["unigram"],
        "unigram_eval_loss": out["unigram_eval"],  # the curves' set's
        "unigram_test_loss": out["unigram_test"],
        "learn_margin": LEARN_MARGIN,
        "learning_budget": out["budget"],
        "sweep": out["sweep"],
        "tuned": {str(b): rows for b, rows in out["tuned"].items()},
        "measures": out["measures"],
        "stats": out["stats"],
        "rates": out["rates"],
        "claims": out["claims"],
        "recommendation": out["recommendation"],
        "comparability": comparability(plan),
        "standins": out["standins"],
        "curves": curves_of(out["tuned_records"]),
        "template": out["tables"]["template"],
        "summary": out["lines"],
        "trainings": len(out["records"]),
        "training_cpu_seconds": training_cpu_seconds(out),
        "cpu_seconds": out["cpu_seconds"],
        "wall_seconds": out["wall_seconds"],
    }


def training_cpu_seconds(out: dict) -> float:
    """The CPU seconds of every training of the study, summed over the runs that trained them
    (a resumed study counts the ones it reloaded at their first cost)."""
    return float(sum(rec.get("cpu_seconds", 0.0) for _, rec in out["records"]))


def standins_record(plan: Study, banner: bool = True) -> dict | None:
    """Offline: the ``"standins"`` record of ``results.json`` (``{"banner", "replaced"}``),
    printing the banner first unless ``banner=False``; None for a run on the real data."""
    if not plan.base.offline:
        return None
    if banner:
        return standins.announce(plan.base.standins())
    return {"banner": standins.BANNER, "replaced": plan.base.standins()}


def curves_of(tuned_records: dict) -> dict:
    """``{arm: {"step": [...], "val_loss": [[per seed]], "step_losses": [[per seed]],
    "seeds": [...]}}`` of the tuned arms at the longest budget: what the plots and the
    explorer read."""
    out: dict[str, dict] = {}
    for arm, recs in tuned_records.items():
        c = out.setdefault(
            arm,
            {"step": recs[0][1]["history"]["step"], "val_loss": [], "step_losses": [], "seeds": []},
        )
        for key, rec in recs:
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
        f"{out['unigram_test']:.4f} (test) nats/token over the held-out sets; "
        f"{out['unigram_eval']:.4f} on the evaluation set (the curves')",
        "",
        out["tables"]["tuned"],
        "",
        out["tables"]["sweep"],
        "",
        out["tables"]["arms"],
        "",
    ]
    why = comparability(plan)
    if why:
        lines.append(f"not comparable with the seed's scale: {why}")
    lines += claim_lines(out["claims"])
    lines.append(out["recommendation"]["line"] + f" ({out['recommendation']['detail']})")
    return lines


def save_figures(run, out: dict) -> dict:
    from . import plots

    figs = {
        "curves": plots.plot_curves(
            curves_of(out["tuned_records"]), out["target"], out["unigram_eval"]
        ),
        "weight_change": plots.plot_rates(out["rates"]),
        "sweep": plots.plot_sweep(out["sweep"], out["tuned"], out["unigram"]),
    }
    return run.save_figures(figs)


KIT_KEYS = ("claim", "claimed", "measured", "rule", "verdict", "measured_value", "unit")


def kit_summary(out: dict) -> dict:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    plan = out["study"]
    why = comparability(plan)
    notes = [
        plan.describe(),
        f"target: {out['target']:.4f} ({out['target_rule']})",
        out["recommendation"]["line"] + f" ({out['recommendation']['detail']})",
        f"CPU time of the run: {out['cpu_seconds']:.0f} CPU-s (this process, every thread)",
    ]
    if why:
        notes.insert(0, f"not comparable with the seed's scale: {why}")
    tuned = out["tuned"][plan.longest]
    return {
        "experiment": EXPERIMENT,
        "title": TITLE,
        "size": plan.size,
        "run": str(out["run"].path),
        "claims": [
            {k: c[k] for k in KIT_KEYS}
            | ({"computed_verdict": c["computed_verdict"]} if "computed_verdict" in c else {})
            for c in out["claims"]
        ],
        "baselines": [
            f"unigram cross-entropy: {out['unigram']:.4f} (val), {out['unigram_test']:.4f} "
            "(test) nats/token",
            f"tuned at {plan.longest} steps: "
            + ", ".join(
                f"{arm} x{r['mult']:.3g} (LR {r['lr']:.3g}) val {r['final_val_loss'][0]:.4f}"
                + ("" if r["learned"] else " (did not learn)")
                for arm, r in tuned.items()
            ),
        ],
        "notes": notes,
    }


__all__ = [
    "ARMS",
    "CONTROL",
    "DEFAULT_ARMS",
    "EXPERIMENT",
    "HYPOTHESES",
    "LEARN_MARGIN",
    "MIN_SEEDS",
    "MIN_STEPS",
    "PRESETS",
    "Study",
    "TREATMENT",
    "arm_stats",
    "claims",
    "comparability",
    "kit_summary",
    "measure",
    "recommendation",
    "run_study",
    "standins_record",
    "study",
    "template",
    "tune",
]
