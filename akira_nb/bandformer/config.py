"""The band model's and its trainer's settings, torch-free (``--help`` and the CLIs read them).

- the arm tables: ``ARMS`` (what one training can be), each arm's model settings and LR mode,
  the datasets and their tokenizers;
- :class:`BandConfig` (the band transformer) with its ``PRESETS`` / :func:`preset`, and
  :class:`GPTConfig` (the standard GPT baseline);
- :class:`TrainConfig`: one training of one arm.

Every config checks itself when built (``ValueError`` naming the field); ``validate()`` runs
the same checks again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple, Sequence

from akira_nb import runtime, standins
from akira_nb.runtime import check_bool, check_choice, check_int, check_real

LAYOUTS = ("band", "reference")
DEFAULT_BAND_DIMS = (128, 96, 80, 64, 64, 48, 32)
DEFAULT_BAND_LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
LR_MODES = ("differential", "geomean", "uniform")  # how an arm's groups get their LRs (optim)

# ----------------------------------------------------------------------------- arms

ARMS = (
    "baseline",
    "band",
    "band_uniform",
    "band_geomean",
    "band_no_wormhole",
    "reference",
    "baseline_differential",
    "baseline_wide",
)
# the GPTs, no bands: matched in parameters (the first two) or in width (baseline_wide)
BASELINE_ARMS = ("baseline", "baseline_differential", "baseline_wide")
# What each arm sets in the band config (model_overrides may not contradict it) ...
ARM_MODEL: dict[str, dict[str, Any]] = {
    "baseline": dict(layout="band", wormhole=True),  # the band config it is matched to
    "band": dict(layout="band", wormhole=True),
    "band_uniform": dict(layout="band", wormhole=True),
    "band_geomean": dict(layout="band", wormhole=True),
    "band_no_wormhole": dict(layout="band", wormhole=False),
    "reference": dict(layout="reference", wormhole=False),  # as the reference's reported runs
    "baseline_differential": dict(layout="band", wormhole=True),  # as baseline
    "baseline_wide": dict(layout="band", wormhole=True),  # as baseline
}
# ... and its LR mode (TrainConfig.lr_mode=None picks this one).
ARM_LR_MODE = {
    "baseline": "uniform",
    "band": "differential",
    "band_uniform": "uniform",
    "band_geomean": "geomean",
    "band_no_wormhole": "differential",
    "reference": "differential",
    "baseline_differential": "differential",  # the band LRs over the GPT's hidden slices
    "baseline_wide": "uniform",
}
DATASETS = ("offline", "wikitext-2", "wikitext-103", "tinystories")
TOKENIZER = {"offline": "byte", "wikitext-2": "gpt2", "wikitext-103": "gpt2", "tinystories": "gpt2"}
VOCAB_SIZE = {"byte": 257, "gpt2": 50257, "gpt2-standin": 50257}
TINYSTORIES = "roneneldan/TinyStories"
# Settings a resume may change: none alters the computation (another device or thread count
# may round differently in the last bits). total_steps is not among them (it sets the cosine
# schedule), nor any interval that sets the history's grid.
RESUME_MAY_CHANGE = ("device", "progress", "checkpoint_every", "cpu_threads")


# ----------------------------------------------------------------------------- model configs


@dataclass
class BandConfig:
    """Band transformer settings. ``d_model`` is ``sum(band_dims)``; ``hidden_dim``, when set,
    is only a check that they sum to it. ``d_head`` sets the band heads (band i has
    ``band_dims[i] // d_head``; it must divide every band dim); ``n_heads`` is the head count of
    the shared full-width attention of ``layout="reference"`` (it must divide ``d_model``)."""

    vocab_size: int = 50257
    n_ctx: int = 256
    n_layers: int = 6
    band_dims: tuple[int, ...] = DEFAULT_BAND_DIMS
    band_lrs: tuple[float, ...] = DEFAULT_BAND_LRS
    shared_lr: float = 3e-4
    d_head: int = 16
    n_heads: int = 8
    mlp_ratio: int = 4
    wormhole: bool = True
    d_wormhole: int = 16
    wormhole_gate_init: float = 0.1
    layout: str = "band"
    tie_embeddings: bool = True
    dropout: float = 0.1
    hidden_dim: int | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> BandConfig:
        """Check every field (``ValueError`` naming it); run when the config is built."""
        check_int("vocab_size", self.vocab_size, low=2)
        check_int("n_ctx", self.n_ctx, low=1)
        check_int("n_layers", self.n_layers, low=1)
        check_choice("layout", self.layout, LAYOUTS)
        self.band_dims = _check_tuple("band_dims", self.band_dims)
        if len(self.band_dims) < 2:
            raise ValueError(f"band_dims={self.band_dims} must list at least 2 bands")
        for i, d in enumerate(self.band_dims):
            check_int(f"band_dims[{i}]", d, low=1)
        self.band_lrs = _check_tuple("band_lrs", self.band_lrs)
        if len(self.band_lrs) != len(self.band_dims):
            raise ValueError(
                f"band_lrs has {len(self.band_lrs)} values for {len(self.band_dims)} bands; "
                "give one learning rate per band"
            )
        for i, lr in enumerate(self.band_lrs):
            check_real(f"band_lrs[{i}]", lr, low=0.0, low_open=True)
        check_real("shared_lr", self.shared_lr, low=0.0, low_open=True)
        if self.hidden_dim is not None:
            check_int("hidden_dim", self.hidden_dim, low=1)
            if self.d_model != self.hidden_dim:
                raise ValueError(
                    f"band_dims={self.band_dims} sum to {self.d_model}, but hidden_dim="
                    f"{self.hidden_dim}; the band dims must sum to the hidden size"
                )
        check_int("d_head", self.d_head, low=1)
        if self.layout == "band":
            bad = [d for d in self.band_dims if d % self.d_head]
            if bad:
                raise ValueError(
                    f"d_head={self.d_head} must divide every band dim; band_dims="
                    f"{self.band_dims} has {bad} (choose a common divisor)"
                )
        check_int("n_heads", self.n_heads, low=1)
        if self.layout == "reference" and self.d_model % self.n_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must divide d_model={self.d_model} (layout='reference')"
            )
        check_int("mlp_ratio", self.mlp_ratio, low=1)
        check_bool("wormhole", self.wormhole)
        check_int("d_wormhole", self.d_wormhole, low=1)
        check_real("wormhole_gate_init", self.wormhole_gate_init, low=0.0)
        check_bool("tie_embeddings", self.tie_embeddings)
        check_real("dropout", self.dropout, 0.0, 1.0, high_open=True)
        return self

    @property
    def d_model(self) -> int:
        return sum(self.band_dims)

    @property
    def d_vocab(self) -> int:
        return self.vocab_size

    @property
    def n_bands(self) -> int:
        return len(self.band_dims)

    @property
    def d_mlp(self) -> int:
        """MLP hidden units per layer, all bands together (the width of ``mlp.hook_post``)."""
        return self.mlp_ratio * self.d_model

    @property
    def band_slices(self) -> list[slice]:
        """Band i's slice of the ``d_model`` axis."""
        return _slices(self.band_dims)

    @property
    def mlp_band_slices(self) -> list[slice]:
        """Band i's slice of the ``d_mlp`` axis of ``mlp.hook_post``."""
        return _slices([self.mlp_ratio * d for d in self.band_dims])

    @property
    def heads_per_band(self) -> tuple[int, ...]:
        return tuple(d // self.d_head for d in self.band_dims)

    @property
    def head_bands(self) -> list[int]:
        """The band of each head of ``attn.hook_pattern`` (band layout)."""
        return [i for i, h in enumerate(self.heads_per_band) for _ in range(h)]

    @property
    def band_pairs(self) -> list[tuple[int, int]]:
        """The wormhole's ordered (receiver, sender) pairs, receiver-major: the heads of
        ``wormhole.hook_pattern``."""
        n = self.n_bands
        return [(i, j) for i in range(n) for j in range(n) if j != i]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BandConfig:
        """The config of :meth:`to_dict` (or a JSON round trip of it: lists become tuples)."""
        return _from_dict(cls, data)


@dataclass
class GPTConfig:
    """Standard pre-LN GPT settings (the baseline). ``lr`` is its single learning rate."""

    vocab_size: int = 50257
    n_ctx: int = 256
    n_layers: int = 6
    d_model: int = 512
    n_heads: int = 8
    d_mlp: int = 2048
    lr: float = 3e-4
    tie_embeddings: bool = True
    dropout: float = 0.1

    def __post_init__(self):
        self.validate()

    def validate(self) -> GPTConfig:
        """Check every field (``ValueError`` naming it); run when the config is built."""
        for name in ("vocab_size", "n_ctx", "n_layers", "d_model", "n_heads", "d_mlp"):
            check_int(name, getattr(self, name), low=2 if name == "vocab_size" else 1)
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        check_real("lr", self.lr, low=0.0, low_open=True)
        check_bool("tie_embeddings", self.tie_embeddings)
        check_real("dropout", self.dropout, 0.0, 1.0, high_open=True)
        return self

    @property
    def d_vocab(self) -> int:
        return self.vocab_size

    def n_params(self) -> int:
        """Parameter count, computed from the shapes (equals the built model's)."""
        return gpt_param_count(
            self.vocab_size,
            self.n_ctx,
            self.n_layers,
            self.d_model,
            self.d_mlp,
            self.tie_embeddings,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GPTConfig:
        return _from_dict(cls, data)


def gpt_param_count(
    vocab_size: int, n_ctx: int, n_layers: int, d_model: int, d_mlp: int, tie_embeddings: bool
) -> int:
    """Parameters of a :class:`GPTConfig` of these shapes (``d_mlp`` may be 0 here: the count
    without MLP hidden units, which :meth:`BaselineTransformer.matched_config` solves from)."""
    d, m = d_model, d_mlp
    per_layer = 4 * d  # two LayerNorms
    per_layer += 3 * d * d + 3 * d + d * d + d  # attention qkv + out projection
    per_layer += d * m + m + m * d + d  # MLP
    total = vocab_size * d + n_ctx * d + n_layers * per_layer + 2 * d
    return total + (0 if tie_embeddings else d * vocab_size)


def _from_dict(cls, data: dict):
    """``cls(**data)``, refusing keys that are not fields of ``cls`` (naming them)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}; allowed: {sorted(known)}")
    return cls(**data)


def _check_tuple(name: str, value) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise ValueError(f"{name}={value!r} must be a tuple (or list) with one value per band")
    return tuple(value)


def _slices(dims: Sequence[int]) -> list[slice]:
    ends = [sum(dims[: i + 1]) for i in range(len(dims))]
    return [slice(e - d, e) for d, e in zip(dims, ends)]


# The repository's canonical 7+1 set (CANONICAL_PARAMETERS.md, Spec A): 8 equal bands of
# 512 / 8 = 64 (THE_SEVEN_PLUS_ONE_ARCHITECTURE.md), LRs 1e-5 .. 3e-2 over the 7 spectral
# bands and 1e-3 for band 7, the temporal band. Here band 7 computes like the others: its causal
# self-attention is its temporal processing, and it reads the spectral bands through the
# wormhole (the reference v2 fed it a projection of all 7 bands). ``sbm_7p1`` is the reference
# v2 "Spectral Belief Machine" set (026 v2: 3e-5 .. 3e-3, band 7 at 3e-4).
_TINY = dict(vocab_size=257, n_ctx=64, n_layers=2, d_head=4, n_heads=4, d_wormhole=8, dropout=0.0)
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "canonical_7p1": dict(
        band_dims=(64,) * 8, band_lrs=(1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-3)
    ),
    "sbm_7p1": dict(band_dims=(64,) * 8, band_lrs=(3e-5, 5e-5, 1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 3e-4)),
    "reference": dict(layout="reference", wormhole=False, tie_embeddings=False),
    "tiny": dict(_TINY, band_dims=(32, 24, 20, 16, 16, 12, 8)),
    "tiny_7p1": dict(
        _TINY,
        band_dims=(16,) * 8,
        band_lrs=(1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-3),
    ),
}


def preset(name: str, **overrides: Any) -> BandConfig:
    """A validated :class:`BandConfig` from ``PRESETS[name]`` with ``overrides`` applied.

    ``default``: the 026 v1 bands (128, ..., 32) and LRs; ``canonical_7p1`` / ``sbm_7p1``: the
    7+1 sets (8 x 64); ``reference``: the reference v1 model as trained (shared attention,
    untied head, no wormhole); ``tiny`` / ``tiny_7p1``: CPU sizes (byte vocabulary 257, 64
    positions, 2 layers, the default and the 7+1 band shapes at 1/4 width)."""
    check_choice("preset", name, PRESETS)
    return BandConfig(**{**PRESETS[name], **overrides})


# ----------------------------------------------------------------------------- training config


@dataclass
class TrainConfig:
    """One arm's training run. ``lr_mode=None`` means the arm's (``ARM_LR_MODE``);
    ``data_seed=None`` means ``seed`` (the split and the batch order; ``seed`` sets the
    initialisation and dropout). ``checkpoint_every=0`` keeps only the final checkpoint,
    ``monitor_every=0`` turns the weight-change monitor off, ``grad_clip=0`` clipping off,
    ``max_train_tokens`` caps the train split (None: all of it), ``cpu_threads=0`` leaves
    torch's thread count alone. ``final_eval_predictions=N`` evaluates the final model on at
    least ``N`` predictions of the validation split (all of it when it holds fewer; 0: the
    ``eval_batches`` set, as every evaluation during training). ``offline=True`` replaces each
    download with its stand-in of the same shape (:mod:`akira_nb.standins`): a Hub ``dataset``
    is read from the offline corpus, tokenized by the stand-in of its tokenizer
    (``gpt2-standin``: vocabulary 50257), so the model has the real shapes; a resume never
    changes it."""

    arm: str = "band"
    preset: str = "tiny"
    model_overrides: dict = field(default_factory=dict)
    dataset: str = "offline"
    seq_len: int = 64
    batch_size: int = 16
    total_steps: int = 500
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    lr_mode: str | None = None
    eval_every: int = 100
    eval_batches: int = 8
    final_eval_predictions: int = 0
    seed: int = 0
    data_seed: int | None = None
    max_train_tokens: int | None = None
    device: str = "auto"
    checkpoint_every: int = 500
    monitor_every: int = 100
    cpu_threads: int = 1
    progress: bool = True
    offline: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> TrainConfig:
        """Check every field (``ValueError`` naming it) and that the model config builds; run
        when the config is built."""
        runtime.check_choice("arm", self.arm, ARMS)
        runtime.check_choice("preset", self.preset, PRESETS)
        runtime.check_choice("dataset", self.dataset, DATASETS)
        runtime.check_int("seq_len", self.seq_len, low=2)
        runtime.check_int("batch_size", self.batch_size, low=1)
        runtime.check_int("total_steps", self.total_steps, low=1)
        runtime.check_int("warmup_steps", self.warmup_steps, low=0, high=self.total_steps)
        runtime.check_real("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        runtime.check_real("weight_decay", self.weight_decay, low=0.0)
        runtime.check_real("grad_clip", self.grad_clip, low=0.0)
        if self.lr_mode is not None:
            runtime.check_choice("lr_mode", self.lr_mode, LR_MODES)
        runtime.check_int("eval_every", self.eval_every, low=1)
        runtime.check_int("eval_batches", self.eval_batches, low=1)
        runtime.check_int("final_eval_predictions", self.final_eval_predictions, low=0)
        runtime.check_int("seed", self.seed, low=0)
        if self.data_seed is not None:
            runtime.check_int("data_seed", self.data_seed, low=0)
        if self.max_train_tokens is not None:
            runtime.check_int("max_train_tokens", self.max_train_tokens, low=self.seq_len)
        runtime.check_device("device", self.device)
        for name in ("checkpoint_every", "monitor_every", "cpu_threads"):
            runtime.check_int(name, getattr(self, name), low=0)
        if self.arm == "baseline_differential" and self.resolved_lr_mode() != "differential":
            raise ValueError(
                f"lr_mode={self.lr_mode!r} does not apply to arm='baseline_differential' (the "
                "band LRs over the baseline's hidden slices): leave lr_mode None, or use "
                "arm='baseline' for one LR"
            )
        runtime.check_bool("progress", self.progress)
        runtime.check_bool("offline", self.offline)
        self.band_config()  # the model settings, checked by BandConfig.validate
        return self

    @property
    def tokens_per_step(self) -> int:
        """Tokens of one global batch: ``batch_size * seq_len``."""
        return self.batch_size * self.seq_len

    @property
    def tokenizer(self) -> str:
        """The dataset's tokenizer; offline, its stand-in (``gpt2`` -> ``gpt2-standin``)."""
        name = TOKENIZER[self.dataset]
        return standins.tokenizer_for(name) if self.offline else name

    @property
    def corpus(self) -> str:
        """The corpus read: ``dataset``; offline, its stand-in (the offline corpus)."""
        return standins.corpus(self.dataset) if self.offline else self.dataset

    def standins(self) -> dict:
        """``{what a run would download: its stand-in}`` (empty unless ``offline``)."""
        if not self.offline:
            return {}
        out = {}
        if self.corpus != self.dataset:
            out[f"{self.dataset} (Hugging Face)"] = f"the kit's {self.corpus} corpus"
        if self.tokenizer != TOKENIZER[self.dataset]:
            out[f"{TOKENIZER[self.dataset]} tokenizer"] = self.tokenizer
        return out

    @property
    def split_seed(self) -> int:
        """The data split's and batch order's seed: ``data_seed``, else ``seed``."""
        return self.seed if self.data_seed is None else self.data_seed

    def resolved_lr_mode(self) -> str:
        """``lr_mode``, else the arm's."""
        return ARM_LR_MODE[self.arm] if self.lr_mode is None else self.lr_mode

    def band_config(self) -> BandConfig:
        """The validated band config: the preset, ``model_overrides``, the arm's settings,
        the tokenizer's vocabulary and ``n_ctx = seq_len`` (unless overridden, then >= it).
        For ``baseline`` it is the band config the baseline is matched to."""
        if not isinstance(self.model_overrides, dict):
            raise ValueError(f"model_overrides={self.model_overrides!r} must be a dict")
        known = {f.name for f in fields(BandConfig)}
        unknown = sorted(set(self.model_overrides) - known)
        if unknown:
            raise ValueError(
                f"model_overrides has unknown BandConfig fields {unknown}; allowed: {sorted(known)}"
            )
        vocab = VOCAB_SIZE[self.tokenizer]
        fixed = {**ARM_MODEL[self.arm], "vocab_size": vocab}
        for key, value in fixed.items():
            if key in self.model_overrides and self.model_overrides[key] != value:
                why = f"arm={self.arm!r}" if key != "vocab_size" else f"dataset={self.dataset!r}"
                raise ValueError(
                    f"model_overrides[{key!r}]={self.model_overrides[key]!r} contradicts "
                    f"{why}, which sets {key}={value!r}; drop the override or pick another "
                    f"{'arm' if key != 'vocab_size' else 'dataset'}"
                )
        overrides = {"n_ctx": self.seq_len, **self.model_overrides, **fixed}
        cfg = preset(self.preset, **overrides)
        if cfg.n_ctx < self.seq_len:
            raise ValueError(
                f"model_overrides['n_ctx']={cfg.n_ctx} is shorter than seq_len={self.seq_len}; "
                "the model must read whole blocks"
            )
        return cfg

    def to_dict(self) -> dict:
        """The fields with ``lr_mode`` resolved (what checkpoints and results store)."""
        return {**asdict(self), "lr_mode": self.resolved_lr_mode()}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return _from_dict(cls, data)


# -- the reference repository's LR sets (torch-free, so a cli can offer their names) -----


class LRPreset(NamedTuple):
    """One set of learning rates from the reference repository."""

    band_lrs: tuple[float, ...]
    shared_lr: float
    source: str


# The repository's LR sets disagree with each other (inventory section 4.3): 026 v1 is the
# canonical set shifted down one band and capped at 1e-2, with shared at 3e-4 instead of 5e-4.
LR_PRESETS: dict[str, LRPreset] = {
    "026_v1": LRPreset(
        (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
        3e-4,
        "026 code/models/akira_band_transformer.py AKIRAConfig.band_learning_rates; shared group "
        "at band_lrs[3] = 3e-4 (inventory 2.1)",
    ),
    "canonical_7p1": LRPreset(
        (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-3),
        5e-4,
        "CANONICAL_PARAMETERS.md Spec A, bands 0-6 + temporal band 7; shared = the example "
        "optimiser's wormhole LR 5e-4 (inventory 4.2, 4.3); the set 013 quotes (ratio 3000x)",
    ),
    "canonical_7": LRPreset(
        (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
        5e-4,
        "CANONICAL_PARAMETERS.md Spec A bands 0-6 only (no temporal band), shared 5e-4",
    ),
    "spec_b_warmstart": LRPreset(
        (1e-5, 2e-5, 4e-5, 6e-5, 8e-5, 1e-4, 1.2e-4, 6e-5),
        1e-4,
        "CANONICAL_PARAMETERS.md Spec B: lr_base 1e-4 x [0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 0.6] "
        "for bands 0..7 (ratio 12x); shared = lr_base (inventory 4.2)",
    ),
    "sbm_7p1": LRPreset(
        (3e-5, 5e-5, 1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 3e-4),
        3e-4,
        "026 colab_train_akira_v2_spectral_*.py SpectralConfig.band_learning_rates (band 7 "
        "temporal 3e-4, ratio 100x), shared 3e-4 (inventory 2.5)",
    ),
    "013": LRPreset(
        (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-3),
        5e-4,
        "013_EXP_DIFFERENTIAL_LR_VALIDATION.md (band 0 1e-5, band 6 3e-2, temporal band 7 1e-3, "
        "'see CANONICAL_PARAMETERS.md'): the canonical 7+1 set, shared 5e-4 (inventory 4.1)",
    ),
    "026_uniform": LRPreset(
        (3e-4,) * 7,
        3e-4,
        "026 original band notebook.ipynb uniform-LR ablation: every band at 3e-4 (inventory 2.6)",
    ),
}


CUSTOM = "custom"


# ----------------------------------------------------------------------------- LR sets, checked


def lr_preset(name: str, band_lrs=None, shared_lr=None) -> LRPreset:
    """``LR_PRESETS[name]``, or for ``name="custom"`` the given ``band_lrs`` (at least 2) and
    ``shared_lr`` (default: their geometric mean). ``band_lrs`` / ``shared_lr`` with a named
    preset raise ``ValueError`` (pick ``custom``)."""
    runtime.check_choice("lr_preset", name, (*LR_PRESETS, CUSTOM))
    if name != CUSTOM:
        if band_lrs is not None or shared_lr is not None:
            raise ValueError(
                f"band_lrs / shared_lr given with lr_preset={name!r}; pass lr_preset='custom' "
                "to set your own learning rates"
            )
        return LR_PRESETS[name]
    if band_lrs is None:
        raise ValueError("lr_preset='custom' needs band_lrs (one learning rate per band)")
    lrs = check_lrs("band_lrs", band_lrs)
    if len(lrs) < 2:
        raise ValueError(f"band_lrs={lrs!r} must list at least 2 bands")
    shared = geometric_mean(lrs) if shared_lr is None else shared_lr
    return LRPreset(lrs, runtime.check_real("shared_lr", shared, low=0, low_open=True), CUSTOM)


def check_lrs(name: str, lrs, length: int | None = None) -> tuple[float, ...]:
    """A tuple of finite positive learning rates (of ``length`` entries when given), else
    ``ValueError`` naming ``name``."""
    if isinstance(lrs, (str, bytes)) or not hasattr(lrs, "__len__"):
        raise ValueError(f"{name}={lrs!r} must be a sequence of learning rates")
    if length is not None and len(lrs) != length:
        raise ValueError(
            f"{name}={tuple(lrs)!r} has {len(lrs)} learning rates; the model has {length} bands"
        )
    return tuple(
        runtime.check_real(f"{name}[{i}]", lr, low=0, low_open=True) for i, lr in enumerate(lrs)
    )


def geometric_mean(lrs) -> float:
    """exp(mean(log lr)), i.e. 10 ** mean(log10 lr): 013's "same total learning budget" LR."""
    lrs = check_lrs("lrs", lrs)
    if not lrs:
        raise ValueError("lrs=() is empty; the geometric mean needs at least one learning rate")
    return math.exp(math.fsum(math.log(lr) for lr in lrs) / len(lrs))
