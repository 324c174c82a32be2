"""Experiment 026's settings: the arms, the size presets (:data:`PRESETS`; None: the reference
notebook's protocol, :data:`REFERENCE_PRESET`) and the :class:`Study` that :func:`study` builds
from one of them with overrides on top (the CLI and the notebook both build it so).

A study trains every arm at its own tuned LR at one or more budgets: each arm of
``sweep_arms`` is trained on the first seed at every LR multiplier of ``lr_multipliers``
(extended beyond an edge while the best point sits there, ``max_extensions`` at most), its
other seeds at the best one; every arm trains at the first budget, only ``long_arms`` at the
longer ones. The AQ analysis compares two ``aq_seeds`` of the band model and of the baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from akira_nb import runtime, standins
from akira_nb.band_transformer import sweep
from akira_nb.bandformer.config import ARMS, TrainConfig
from akira_nb.bandformer.config import preset as model_preset
from akira_nb.runtime import FINAL_EVAL_PREDICTIONS

EXPERIMENT = "026_band_transformer"
TITLE = "026 Band transformer: 7 bands with their own learning rates vs a parameter-matched GPT"
DEFAULT_ARMS = (
    "baseline",
    "band",
    "band_uniform",
    "band_no_wormhole",
    "reference",
    "baseline_wide",
)
AQ_ARMS = ("band", "baseline")  # the two architectures of the predictions
BAND_LAYOUT_ARMS = ("band", "band_uniform", "band_geomean", "band_no_wormhole", "reference")
# the arms of the verdict on the band model against a standard GPT: trained at every budget
LONG_ARMS = ("band", "baseline", "baseline_wide")

# ----------------------------------------------------------------------------- presets

REFERENCE_PRESET = dict(
    arms=list(DEFAULT_ARMS),
    seeds=[0, 1],
    aq_seeds=[0, 1],
    preset="default",
    model_overrides={},
    dataset="wikitext-103",
    data_seed=0,
    seq_len=256,
    batch_size=16,
    total_steps=5000,
    budgets=[5000],
    warmup_steps=100,
    eval_every=500,
    eval_batches=50,
    final_eval_predictions=FINAL_EVAL_PREDICTIONS,
    checkpoint_every=500,
    monitor_every=100,
    lr_multipliers=list(sweep.LR_GRID),
    max_extensions=1,
    sweep_arms=list(LONG_ARMS),
    long_arms=list(LONG_ARMS),
    aq=dict(layers="all", num_samples=500, seq_length=64, text_corpus="wikitext-2"),
    stats_sequences=64,
    ablation_batches=10,
)
PRESETS = {
    # measured on 2 shared CPU cores: the notebook prints the run's CPU-seconds
    "tiny": dict(
        arms=list(DEFAULT_ARMS),
        seeds=[0],
        aq_seeds=[0, 1],
        preset="tiny",
        model_overrides=dict(
            band_lrs=(3e-5, 9e-5, 3e-4, 9e-4, 3e-3, 9e-3, 3e-2),  # the 026 set x 3
            shared_lr=3e-3,
        ),
        dataset="offline",
        data_seed=0,
        seq_len=32,
        batch_size=16,
        total_steps=200,  # at 60 the matched baseline had not yet left the unigram plateau
        # 1,000 steps (5x, every arm swept, 2 extensions) measured 738 CPU-s: over CI's budget
        budgets=[200, 500],
        warmup_steps=20,
        eval_every=20,
        eval_batches=2,
        final_eval_predictions=FINAL_EVAL_PREDICTIONS,  # 1,613 of the 1,790 validation blocks
        checkpoint_every=50,  # the ablation curve: 4 checkpoints per budget
        monitor_every=10,
        lr_multipliers=list(sweep.LR_GRID),
        max_extensions=1,
        sweep_arms=["baseline", "band", "baseline_wide"],  # the ablation arms: preset LRs
        long_arms=["baseline", "band"],
        aq=dict(
            layers="last",
            num_samples=32,
            seq_length=32,
            batch_size=16,
            text_corpus="offline",
            n_permutations=20,
            n_shuffles=3,
            sample_sequences=32,
            spectral_sequences=32,
        ),
        stats_sequences=16,
        ablation_batches=1,
    ),
    "t4": dict(
        REFERENCE_PRESET,
        seeds=[0],
        total_steps=2000,
        budgets=[2000],  # one budget: the sweeps already take the plan to ~1.8x its FLOPs
        eval_every=250,
        eval_batches=20,
        checkpoint_every=250,
        monitor_every=50,
        sweep_arms=["band", "baseline"],  # baseline_wide and the ablation arms: preset LRs
        max_extensions=0,  # 1.76x the FLOPs of the plan before the sweeps (one more: 2.04x)
        max_train_tokens=16_000_000,  # 2,000 x 16 x 256 = 8.2M tokens per arm
        aq=dict(REFERENCE_PRESET["aq"], layers=(2, 5), n_shuffles=10),
    ),
    "a100": dict(REFERENCE_PRESET),
}
# the tiny plan the issue asked for (5x budget, every arm swept, the GPT of the band model's
# width at both budgets): measured 738 CPU-s on 2 shared cores, over CI's budget; study("tiny",
# **FULL_TINY) runs it
FULL_TINY = dict(
    budgets=[200, 1000],
    sweep_arms=list(DEFAULT_ARMS),
    long_arms=list(LONG_ARMS),
    max_extensions=sweep.MAX_EXTENSIONS,
)
SWEEP_KEYS = ("budgets", "lr_multipliers", "max_extensions", "sweep_arms", "long_arms")
STUDY_KEYS = ("arms", "seeds", "aq_seeds", "aq", "stats_sequences", "ablation_batches", *SWEEP_KEYS)
PER_ARM = ("arm", "seed")  # set per arm
# settings a resume may change: train.RESUME_MAY_CHANGE, and the AQ settings (recomputed)
MAY_CHANGE = ("device", "progress", "checkpoint_every", "cpu_threads", "aq")
# AQ settings that do not change its results (left out of its folder's settings digest)
AQ_RUNTIME = ("device", "cpu_threads", "checkpoint_every", "progress")
# TrainConfig intervals that scale with the budget (the schedule keeps its shape)
SCALED = ("warmup_steps", "eval_every", "checkpoint_every", "monitor_every")


def preset(size: str | None) -> dict:
    """A deep-enough copy of the preset for ``size`` (None: :data:`REFERENCE_PRESET`)."""
    if size is not None:
        runtime.check_choice("size", size, runtime.SIZES)
    pre = REFERENCE_PRESET if size is None else PRESETS[size]
    return {k: (type(v)(v) if isinstance(v, (list, dict)) else v) for k, v in pre.items()}


def _check_arm_list(name: str, values) -> list[str]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ValueError(f"{name}={values!r} must be a list of arms from {ARMS}")
    for arm in values:
        runtime.check_choice(name, arm, ARMS)
    runtime.check_distinct(name, values)
    return list(values)


def tag_of(arm: str, steps: int, multiplier: float, seed: int) -> str:
    """The run-folder tag of one training: ``band_lr0.316_b200_s0`` (arm, LR multiplier,
    budget in steps, seed)."""
    return f"{arm}_lr{sweep.tag(multiplier)}_b{int(steps)}_s{int(seed)}"


@dataclass
class Study:
    """One comparison: the shared training settings (``base``, a ``train.TrainConfig`` at the
    first budget), the arms and seeds, the budgets and the LR sweep (see the module docstring),
    the AQ settings (fields of :class:`akira_nb.alignment.aq.AQConfig`; ``layers="all"``: every
    layer, ``"last"``: the last one), the sequences of the per-band statistics and the
    validation batches of each ablation. Build it with :func:`study`."""

    base: Any
    arms: list
    seeds: list
    aq_seeds: list
    aq: dict = field(default_factory=dict)
    stats_sequences: int = 16
    ablation_batches: int = 2
    budgets: list = field(default_factory=list)
    lr_multipliers: list = field(default_factory=lambda: [1.0])
    max_extensions: int = 0
    sweep_arms: list = field(default_factory=list)
    long_arms: list = field(default_factory=list)
    size: str | None = None
    from_preset: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    def validate(self) -> Study:
        """Check every training's config, the seeds, budgets, sweep, AQ settings and device;
        raises ``ValueError`` naming the setting. Nothing is written before this passes. Run
        when the study is built, and again by ``run_experiment`` (a study changed after it was
        built is checked before anything is written)."""
        if not isinstance(self.arms, (list, tuple)) or not self.arms:
            raise ValueError(f"arms={self.arms!r} leaves nothing to train; choose from {ARMS}")
        self.arms = _check_arm_list("arms", self.arms)
        self.seeds = runtime.check_seeds("seeds", self.seeds)
        if not isinstance(self.aq_seeds, (list, tuple)):
            raise ValueError(f"aq_seeds={self.aq_seeds!r} must be a list of two seeds, or []")
        if self.aq_seeds:
            self.aq_seeds = runtime.check_seeds("aq_seeds", self.aq_seeds)
            if len(self.aq_seeds) != 2:
                raise ValueError(
                    f"aq_seeds={self.aq_seeds!r} must name exactly two seeds (the AQ analysis "
                    "compares two trainings of one architecture), or none to skip it"
                )
        self.budgets = sweep.check_budgets(self.budgets or [self.base.total_steps])
        if self.budgets[0] != self.base.total_steps:
            raise ValueError(
                f"budgets={self.budgets} must start at the base total_steps="
                f"{self.base.total_steps} (study() sets both; give one of them)"
            )
        self.lr_multipliers = sweep.check_multipliers(self.lr_multipliers)
        runtime.check_int("max_extensions", self.max_extensions, low=0)
        self.sweep_arms = _check_arm_list("sweep_arms", self.sweep_arms)
        self.long_arms = _check_arm_list("long_arms", self.long_arms)
        runtime.check_int("stats_sequences", self.stats_sequences, low=1)
        runtime.check_int("ablation_batches", self.ablation_batches, low=1)
        runtime.check_device("device", self.base.device)
        self.arm_configs()
        if self.aq_seeds:
            self.aq_config("band")  # checked here, before anything runs
        return self

    @property
    def aq_arms(self) -> list[str]:
        """The architectures the AQ analysis compares (those of :data:`AQ_ARMS` trained)."""
        return [a for a in AQ_ARMS if a in self.arms] if self.aq_seeds else []

    def arms_at(self, steps: int) -> list[str]:
        """The arms trained at budget ``steps``: every arm at the first budget, the
        ``long_arms`` among them at the others."""
        if steps == self.budgets[0]:
            return list(self.arms)
        return [a for a in self.arms if a in self.long_arms]

    def seeds_at(self, arm: str, steps: int) -> list[int]:
        """The seeds ``arm`` trains at budget ``steps``: ``seeds``, plus ``aq_seeds`` for the AQ
        architectures at the first budget (the first seed is the sweep's)."""
        extra = self.aq_seeds if arm in self.aq_arms and steps == self.budgets[0] else []
        return list(self.seeds) + [s for s in extra if s not in self.seeds]

    def seeds_of(self, arm: str) -> list[int]:
        """The seeds ``arm`` trains at the first budget (:meth:`seeds_at`)."""
        return self.seeds_at(arm, self.budgets[0])

    def grid_of(self, arm: str) -> list[float]:
        """The LR multipliers first tried for ``arm``: ``lr_multipliers`` for the
        ``sweep_arms``, else ``[1.0]`` (the preset's LRs)."""
        return list(self.lr_multipliers) if arm in self.sweep_arms else [1.0]

    def budget_config(self, steps: int):
        """``base`` at budget ``steps``: warm-up, evaluation, checkpoint and monitor intervals
        scaled by ``steps / base.total_steps`` (0 stays 0)."""
        b, ratio = self.base, steps / self.base.total_steps
        scaled = {}
        for name in SCALED:
            value = getattr(b, name)
            scaled[name] = 0 if value == 0 else max(1, round(value * ratio))
        scaled["warmup_steps"] = min(round(b.warmup_steps * ratio), steps)
        return replace(b, total_steps=int(steps), **scaled)

    def config(self, arm: str, steps: int, multiplier: float = 1.0, seed: int | None = None):
        """The validated ``TrainConfig`` of one training: ``arm`` at budget ``steps``, its LRs
        (every band LR and the shared LR) x ``multiplier``, ``seed`` (default the first)."""
        cfg = replace(self.budget_config(steps), arm=arm)
        cfg = replace(cfg, seed=int(self.seeds[0] if seed is None else seed))
        if multiplier != 1.0:
            lrs = band_config(self.base)
            over = {
                **dict(cfg.model_overrides or {}),
                "band_lrs": tuple(lr * multiplier for lr in lrs.band_lrs),
                "shared_lr": lrs.shared_lr * multiplier,
            }
            cfg = replace(cfg, model_overrides=over)
        return cfg

    def arm_configs(self) -> list:
        """Every planned training's validated ``TrainConfig``, in training order: each budget,
        each of its arms at its first LR multipliers on the first seed, then its other seeds
        (shown at multiplier 1: they train at the sweep's best, and extensions are decided as
        the losses come in)."""
        out = []
        for steps in self.budgets:
            for arm in self.arms_at(steps):
                out += [self.config(arm, steps, m) for m in self.grid_of(arm)]
                out += [self.config(arm, steps, 1.0, s) for s in self.seeds_at(arm, steps)[1:]]
        return out

    def tokens_at(self, steps: int) -> int:
        """Tokens of one training at budget ``steps``: steps x batch_size x seq_len."""
        b = self.base
        return runtime.training_tokens(int(steps), int(b.batch_size), int(b.seq_len))

    @property
    def tokens_per_arm(self) -> int:
        """The tokens of one training at the longest budget."""
        return self.tokens_at(self.budgets[-1])

    def budget_text(self) -> str:
        """``"200 and 1,000 steps x 16 x 32 tokens per arm (102,400 and 512,000 tokens)"``."""
        b = self.base

        def join(items):
            return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

        steps = join([f"{s:,}" for s in self.budgets])
        tokens = join([f"{self.tokens_at(s):,}" for s in self.budgets])
        return f"{steps} steps x {b.batch_size} x {b.seq_len} tokens per arm ({tokens} tokens)"

    def aq_config(self, arm: str):
        """The :class:`~akira_nb.alignment.aq.AQConfig` comparing ``arm``'s two ``aq_seeds``
        (``layers="all"``: every layer of the model; ``"last"``: its last layer)."""
        from akira_nb.alignment.aq import AQConfig

        settings = dict(self.aq)
        n_layers = band_config(self.base).n_layers
        layers = settings.get("layers", "all")
        if layers == "all":
            settings["layers"] = tuple(range(n_layers))
        elif layers == "last":
            settings["layers"] = (n_layers - 1,)
        bad = [v for v in settings["layers"] if not 0 <= v < n_layers]
        if bad:
            raise ValueError(f"aq layers {bad} do not exist: the models have {n_layers} layers")
        if settings.get("seq_length", 64) > self.base.seq_len:
            raise ValueError(
                f"aq seq_length={settings['seq_length']} is longer than the models' seq_len="
                f"{self.base.seq_len}"
            )
        if self.base.offline:  # the AQ text inputs: the offline corpus for hub text
            settings["text_corpus"] = standins.corpus(settings.get("text_corpus", "wikitext-2"))
        a, b = self.aq_seeds
        settings.setdefault("device", self.base.device)
        settings.setdefault("checkpoint_every", 0)
        settings["cpu_threads"] = self.base.cpu_threads or None
        allowed = {f.name for f in fields(AQConfig)} - {"model_a", "model_b"}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise ValueError(f"aq settings {unknown} are unknown; allowed: {sorted(allowed)}")
        return AQConfig(model_a=f"{arm}:seed{a}", model_b=f"{arm}:seed{b}", **settings)

    def standins(self) -> dict:
        """``{what the run would download: its stand-in}`` (empty unless ``base.offline``):
        the training data and tokenizer, and the AQ analysis's text corpus."""
        out = self.base.standins()
        text = dict(self.aq).get("text_corpus", "wikitext-2")
        if self.base.offline and self.aq_seeds and standins.corpus(text) != text:
            out[f"{text} (Hugging Face, AQ text inputs)"] = (
                f"the kit's {standins.corpus(text)} corpus"
            )
        return out

    def to_dict(self) -> dict:
        """What identifies the run (its config.json)."""
        return {
            "base": asdict(self.base),
            "arms": list(self.arms),
            "seeds": list(self.seeds),
            "aq_seeds": list(self.aq_seeds),
            "aq": dict(self.aq),
            "stats_sequences": self.stats_sequences,
            "ablation_batches": self.ablation_batches,
            **{k: list(getattr(self, k)) for k in SWEEP_KEYS if k != "max_extensions"},
            "max_extensions": self.max_extensions,
            "tokens_per_arm": self.tokens_per_arm,
        }

    def describe(self) -> str:
        """One line: where the settings came from."""
        source = (
            f"preset {self.size!r}" if self.size else "the reference notebook's protocol (no size)"
        )
        filled = ", ".join(f"{k}={_short(v)}" for k, v in self.from_preset.items()) or "nothing"
        return f"settings: {source} filled {filled}"


def _short(value):
    """A list of floats with 3 significant digits (the LR multipliers), anything else as is."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(sweep.tag(v) for v in value) + "]"
    return value


def band_config(base):
    """The band model's :class:`~akira_nb.bandformer.model.BandConfig` of a ``TrainConfig``
    (its model preset with its overrides; no arm-specific change)."""
    over = {k: v for k, v in dict(base.model_overrides or {}).items()}
    return model_preset(base.preset, **over)


def study(size: str | None = None, **overrides) -> Study:
    """The one way to build a comparison (the CLI and the notebook both use it): the preset for
    ``size`` (None: the reference notebook's protocol, :data:`REFERENCE_PRESET`) with
    ``overrides`` on top.

    Override keys: ``arms``, ``seeds``, ``aq_seeds``, ``aq`` (a dict merged into the preset's
    AQ settings), ``stats_sequences``, ``ablation_batches`` and any ``TrainConfig`` field except
    ``arm`` and ``seed`` (set per arm), e.g. ``offline=True`` (local stand-ins of the same shape
    for every download: :mod:`akira_nb.standins`); ``model_overrides`` is merged into the
    preset's. A value of None means "not given". ``budgets`` (steps per arm, ascending) or
    ``total_steps`` (one budget) set the budgets; given without ``warmup_steps``, the warm-up
    keeps the preset's share of the first budget's steps (t4: 5%). The sweep settings
    (``lr_multipliers``, ``max_extensions``, ``sweep_arms``, ``long_arms``): see the module
    docstring."""
    train_fields = {f.name for f in fields(TrainConfig)}
    allowed = set(STUDY_KEYS) | (train_fields - set(PER_ARM))
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"study() got unknown settings {unknown}; allowed: {sorted(allowed)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "budgets" in overrides and "total_steps" in overrides:
        raise ValueError(
            f"budgets={overrides['budgets']!r} and total_steps={overrides['total_steps']!r} "
            "given together; give budgets (several) or total_steps (one budget)"
        )
    if "budgets" in overrides:
        overrides["budgets"] = sweep.check_budgets(overrides["budgets"])
        overrides["total_steps"] = overrides["budgets"][0]
    elif "total_steps" in overrides:
        steps = runtime.check_int("total_steps", overrides["total_steps"], low=1)
        overrides["budgets"] = [steps]
    pre = preset(size)
    settings = {**pre, **overrides}
    if "total_steps" in overrides and "warmup_steps" not in overrides:
        total = runtime.check_int("total_steps", overrides["total_steps"], low=1)
        settings["warmup_steps"] = round(pre["warmup_steps"] * total / pre["total_steps"])
    for key in ("model_overrides", "aq"):
        if key in overrides:
            if not isinstance(overrides[key], dict):
                raise ValueError(f"{key}={overrides[key]!r} must be a dict")
            settings[key] = {**pre.get(key, {}), **overrides[key]}
    plan_keys = {k: settings.pop(k) for k in STUDY_KEYS if k in settings}
    for key, check in (("arms", _check_arm_list), ("seeds", runtime.check_seeds)):
        if plan_keys.get(key):  # checked before the base TrainConfig, so the error names them
            check(key, plan_keys[key])
    seeds = plan_keys.get("seeds") or [0]
    first_arm = (plan_keys.get("arms") or [DEFAULT_ARMS[0]])[0]
    settings.setdefault("cpu_threads", 1)
    base = TrainConfig(arm=first_arm, seed=seeds[0] if isinstance(seeds, list) else 0, **settings)
    from_preset = {k: v for k, v in pre.items() if k not in overrides}
    if "warmup_steps" in from_preset:  # scaled to total_steps when that was given
        from_preset["warmup_steps"] = settings["warmup_steps"]
    return Study(base, size=size, from_preset=from_preset, **plan_keys)
