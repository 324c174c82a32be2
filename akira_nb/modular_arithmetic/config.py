"""The grokking configs and the mixer table, torch-free (``cli.py`` imports them for ``--help``).

:class:`ModelConfig` says which model (``p``, ``mixer``, widths); :class:`TrainConfig` adds how
it is trained. Both check themselves when built (``ValueError`` naming the field), so an invalid
config cannot exist; ``dataclasses.replace`` checks the copy again. ``models`` and ``train``
re-export them under their old paths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from akira_nb.modular_arithmetic.data import ModularAddition, check_p, make_dataset
from akira_nb.runtime import check_bool, check_choice, check_int, check_real

MIXERS = ("standard", "fnet", "learned_gate", "phase_shift", "full")


@dataclass
class ModelConfig:
    p: int = 113
    mixer: str = "standard"
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512

    def __post_init__(self):
        self.validate()

    def validate(self) -> ModelConfig:
        """The checks :meth:`__post_init__` runs (again, after a field was assigned)."""
        check_p(self.p)
        check_choice("mixer", self.mixer, MIXERS)
        for name in ("d_model", "n_heads", "d_mlp"):
            check_int(name, getattr(self, name), low=1)
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model} evenly")
        return self

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig(ModelConfig):
    """One training run: the model (the fields of :class:`ModelConfig`: ``p``, ``mixer``,
    ``d_model``, ``n_heads``, ``d_mlp``) and how it is trained. Defaults follow Nanda et al.
    (2023). It extends ModelConfig rather than holding one so that saved configs stay one flat,
    readable dict and every field is one CLI flag."""

    train_frac: float = 0.3
    n_epochs: int = 30_000
    lr: float = 1e-3
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_epochs: int = 10
    float64_loss: bool = True
    grokfast_alpha: float = 0.98
    grokfast_lamb: float = 0.0  # 0 = off; Grokfast-EMA g <- g + lamb * EMA_alpha(g)
    seed: int = 0
    data_seed: int | None = None  # None: same as seed
    eval_every: int = 100
    grok_threshold: float = 0.95
    checkpoint_every: int = 1000
    snapshot_every: int = 0  # 0 = no snapshot frames
    progress_every: int = 500  # weights-only snapshots for restricted/excluded loss; 0 = off
    device: str = "auto"
    cpu_threads: int = 1  # torch threads on a CPU device; 0 leaves torch's setting alone

    def validate(self) -> TrainConfig:
        super().validate()
        check_real("train_frac", self.train_frac, 0.0, 1.0, low_open=True, high_open=True)
        for name in ("n_epochs", "eval_every"):
            check_int(name, getattr(self, name), low=1)
        zero_ok = ("checkpoint_every", "snapshot_every", "progress_every", "warmup_epochs")
        for name in (*zero_ok, "seed", "cpu_threads"):
            check_int(name, getattr(self, name), low=0)
        if self.data_seed is not None:
            check_int("data_seed", self.data_seed, low=0)
        check_bool("float64_loss", self.float64_loss)
        check_real("lr", self.lr, 0.0, None, low_open=True)
        check_real("weight_decay", self.weight_decay, 0.0, None)
        check_real("beta1", self.beta1, 0.0, 1.0, high_open=True)
        check_real("beta2", self.beta2, 0.0, 1.0, high_open=True)
        check_real("grokfast_alpha", self.grokfast_alpha, 0.0, 1.0, high_open=True)
        check_real("grokfast_lamb", self.grokfast_lamb, 0.0, None)
        check_real("grok_threshold", self.grok_threshold, 0.0, 1.0, low_open=True)
        return self

    def dataset(self) -> ModularAddition:
        """The train/test split this arm trains on (``data_seed``, else ``seed``); the one place
        that picks it, for training and for every figure drawn afterwards."""
        split_seed = self.seed if self.data_seed is None else self.data_seed
        return make_dataset(self.p, self.train_frac, split_seed)

    def model_config(self) -> ModelConfig:
        """The model part alone."""
        return ModelConfig(**{f.name: getattr(self, f.name) for f in fields(ModelConfig)})

    @property
    def tag(self) -> str:
        return f"p{self.p}_{self.mixer}_s{self.seed}"
