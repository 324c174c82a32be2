"""The grokking study's settings: the seed's protocol, the size presets and :class:`Study`.

A study is the shared training settings (one
:class:`~akira_nb.modular_arithmetic.config.TrainConfig`) and
its arms, every (p, mixer, seed) of ``primes`` x ``mixers`` x ``seeds``. :func:`study` is the one
way to build one (the CLI and the notebook both use it). Torch-free, so ``cli.py`` imports it.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field, fields, replace

from akira_nb import runtime
from akira_nb.modular_arithmetic.config import MIXERS, TrainConfig

EXPERIMENT = "grokking"

# Per-size presets. None (no size given): the seed document's own protocol, SEED_PRESET (the
# seed's p = 53 comparison: all modes, 30k epochs, train_frac 0.3, lr 1e-3, one seed).
# tiny: a setting chosen to learn within seconds on a CPU (p = 23 at train_frac 0.7, lr 3e-3).
# t4: the seed's p = 53 comparison. a100: p = 53 and p = 113, all modes, three seeds (the seed
# ran only standard / fnet / learned_gate at 113; ``--p 113 --wave_modes fnet learned_gate`` on
# the CLI does exactly that).
SEED_PROTOCOL = dict(
    mixers=list(MIXERS),
    n_epochs=30_000,
    train_frac=0.3,
    lr=1e-3,
    eval_every=100,
    checkpoint_every=2000,
    snapshot_every=0,
    progress_every=500,  # 61 weights-only snapshots per arm
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
        progress_every=100,  # 11 snapshots per arm
    ),
    "t4": dict(SEED_PRESET),
    # 30 arms: progress snapshots every 1000 epochs keep the run folder small
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
    (p, mixer, seed) of ``primes`` x ``mixers`` x ``seeds``. Build it with :func:`study`.
    Checked when built (every arm's config, the seeds and the device; ``ValueError`` naming the
    setting), so nothing is written for a study that cannot run."""

    base: TrainConfig
    primes: list
    mixers: list
    seeds: list
    size: str | None = None
    from_preset: dict = field(default_factory=dict)  # settings the preset filled in

    def __post_init__(self):
        self.validate()

    def validate(self) -> Study:
        """The checks :meth:`__post_init__` runs (again, after a field was assigned)."""
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
        """Every arm's config (each checked when built), in training order."""
        return [
            replace(self.base, p=p, mixer=m, seed=int(s))
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
    seed = first["seeds"]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        seed = 0  # refused below by Study, naming "seeds"
    base = TrainConfig(p=first["primes"] or TrainConfig.p, seed=seed or 0, **settings)
    from_preset = {k: v for k, v in pre.items() if k not in overrides}
    return Study(base, size=size, from_preset=from_preset, **arms)
