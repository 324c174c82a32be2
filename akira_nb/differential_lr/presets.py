"""Experiment 013's presets and study: the arms, the size presets (:data:`PRESETS`), the
:class:`Study` (checked when built) and :func:`study`, the one way to build one (notebook, CLI).

Arms (each an :mod:`akira_nb.bandformer.train` arm): ``band`` (the band LRs), ``band_geomean``
(one LR for every group at the geometric mean of the band LRs: "the same total learning
budget"), ``baseline_differential`` (the band LRs over a matched GPT's hidden slices: no bands)
and, not by default, ``band_uniform`` (one LR at the shared LR: once tuned, ``band_geomean``).
Every arm is swept (multipliers of its prescribed LRs, the kit's rule: :mod:`akira_nb.lr_sweep`)
on ``sweep_seeds`` at every budget; the other seeds train at the longest budget's tuned LR.
Every seed fixes the data order too (one ``data_seed``), so the comparisons are paired.
Torch is imported only when a study is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from akira_nb import lr_sweep, runtime
from akira_nb.bandformer import config as band_config
from akira_nb.differential_lr import sweep as sw
from akira_nb.differential_lr.evaluate import MIN_WINDOW
from akira_nb.lr_sweep import LEARN_MARGIN
from akira_nb.runtime import FINAL_EVAL_PREDICTIONS

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

    def __post_init__(self):
        """Every setting checked (``ValueError`` naming it) when the study is built, before
        anything is written; lists normalised (seeds checked, budgets sorted)."""
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

    def _check_window(self, budget: int) -> None:
        left = budget - self.warmup_for(budget)
        if left < MIN_WINDOW:
            raise ValueError(
                f"total_steps={budget} with warmup_steps={self.warmup_for(budget)} leaves {left} "
                f"step(s) after the warm-up; H3's stability window needs at least "
                f"{MIN_WINDOW} steps after it"
            )

    @property
    def geomean(self) -> float:
        return band_config.geometric_mean(self.band_lrs)

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
        )  # dataclasses.replace re-runs the config's __post_init__ checks

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
    size = runtime.check_choice("size", size, runtime.SIZES)
    train_fields = {f.name for f in fields(band_config.TrainConfig)} - {"arm", "seed"}
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
    pre = band_config.lr_preset(
        name, plan_keys.pop("band_lrs", None), plan_keys.pop("shared_lr", None)
    )
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
    base = band_config.TrainConfig(arm=arms[0], seed=0, model_overrides=over, **settings)
    return Study(
        base=base,
        lr_preset=name,
        band_lrs=tuple(pre.band_lrs),
        shared_lr=float(pre.shared_lr),
        arms=arms,
        seeds=seeds,
        size=size,
        **plan_keys,
    )


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
