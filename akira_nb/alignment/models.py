"""The models the alignment library compares, and one loader for all of them.

:data:`MODELS` holds the architecture facts of every named model (from their Hugging Face
configs; :func:`resolve_name` maps short names to Hub ids). :data:`SEED_PAIRS` are what the seed
compares (gpt2 vs gpt2-medium, pythia-70m vs pythia-160m: no ground truth);
:data:`KNOWN_ANSWER_PAIRS` share one architecture and differ in training seed (pythia-160m and
its re-trainings, the Stanford CRFM GPT-2 seeds), where Gurnee et al. 2024 found a few percent
of universal neurons. :func:`tiny_pair` trains two small GPT-2-style models with different seeds
on the offline corpus and caches them (``AKIRA_CACHE_DIR``, else ``~/.cache/akira_nb``, keyed by
a hash of every setting and the corpus). :func:`load_model` boots a Hub id or a local folder
with ``TransformerBridge.boot_transformers`` (the tiny models take a real gpt2's code path).
Offline (``HF_HUB_OFFLINE=1``) a Hub id fails with :class:`ModelUnavailableError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from akira_nb import runtime
from akira_nb.runtime import check_choice, check_int, check_real, check_seeds, require_hub

if TYPE_CHECKING:
    import torch

# ----------------------------------------------------------------------------- named models


@dataclass(frozen=True)
class ModelSpec:
    """Architecture facts of a Hub model (from its Hugging Face ``config.json``)."""

    name: str  # the Hub id booted by TransformerBridge.boot_transformers
    family: str  # tokenizer family: models of one family share a tokenizer
    n_layers: int
    d_model: int
    d_mlp: int
    n_ctx: int
    n_params_m: float  # parameters, millions
    note: str = ""

    @property
    def n_neurons(self) -> int:
        return self.n_layers * self.d_mlp


def _gpt2(name, n_layers, d_model, params, note=""):
    return ModelSpec(name, "gpt2", n_layers, d_model, 4 * d_model, 1024, params, note)


def _pythia(name, n_layers, d_model, params, note=""):
    return ModelSpec(name, "pythia", n_layers, d_model, 4 * d_model, 2048, params, note)


_STANFORD = {  # TransformerLens alias -> Hub id (checked with TL 4.3's resolve_model_alias)
    "a": ("alias-gpt2-small-x21", "arwen-gpt2-medium-x21"),
    "b": ("battlestar-gpt2-small-x49", "beren-gpt2-medium-x49"),
    "c": ("caprica-gpt2-small-x81", "celebrimbor-gpt2-medium-x81"),
    "d": ("darkmatter-gpt2-small-x343", "durin-gpt2-medium-x343"),
    "e": ("expanse-gpt2-small-x777", "eowyn-gpt2-medium-x777"),
}

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        _gpt2("gpt2", 12, 768, 124.4, "OpenAI GPT-2 small"),
        _gpt2("gpt2-medium", 24, 1024, 354.8, "OpenAI GPT-2 medium"),
        _pythia("EleutherAI/pythia-70m", 6, 512, 70.4, "6 layers: layer 7 does not exist"),
        _pythia("EleutherAI/pythia-160m", 12, 768, 162.3),
        *[
            _pythia(f"EleutherAI/pythia-160m-seed{k}", 12, 768, 162.3, f"pythia-160m, seed {k}")
            for k in (1, 2, 3)
        ],
        *[
            _gpt2(f"stanford-crfm/{small}", 12, 768, 124.4, f"Stanford CRFM GPT-2 small, seed {s}")
            for s, (small, _) in _STANFORD.items()
        ],
        *[
            _gpt2(f"stanford-crfm/{med}", 24, 1024, 354.8, f"Stanford CRFM GPT-2 medium, seed {s}")
            for s, (_, med) in _STANFORD.items()
        ],
    ]
}

ALIASES: dict[str, str] = {
    "pythia-70m": "EleutherAI/pythia-70m",
    "pythia-160m": "EleutherAI/pythia-160m",
    **{f"pythia-160m-seed{k}": f"EleutherAI/pythia-160m-seed{k}" for k in (1, 2, 3)},
    **{f"stanford-gpt2-small-{s}": f"stanford-crfm/{v[0]}" for s, v in _STANFORD.items()},
    **{f"stanford-gpt2-medium-{s}": f"stanford-crfm/{v[1]}" for s, v in _STANFORD.items()},
}


def resolve_name(name: str) -> str:
    """A Hub id for a short name (``pythia-70m`` -> ``EleutherAI/pythia-70m``); other names and
    local paths are returned unchanged."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model name {name!r} must be a non-empty string")
    return ALIASES.get(name, name)


def model_spec(name: str) -> ModelSpec | None:
    """The :class:`ModelSpec` of a named model, or None (a local folder, an unlisted model)."""
    return MODELS.get(resolve_name(name))


def check_layers_for(name: str, layers) -> list[int]:
    """Validate layer indices against a *named* model's spec without loading it (the loaded
    model is checked again by :func:`akira_nb.alignment.activations.check_layers`)."""
    spec = model_spec(name)
    layers = [layers] if isinstance(layers, int) and not isinstance(layers, bool) else layers
    if spec is None:
        return [check_int(f"layers[{i}]", v, low=0) for i, v in enumerate(layers)]
    out = []
    for i, v in enumerate(layers):
        check_int(f"layers[{i}]", v)
        if not 0 <= v < spec.n_layers:
            raise ValueError(
                f"layer {v} does not exist in {spec.name}: it has {spec.n_layers} layers "
                f"(0-{spec.n_layers - 1})"
            )
        out.append(int(v))
    return out


# ----------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class ModelPair:
    """Two models compared neuron by neuron. ``kind``: 'seed' (the seed document's pairs),
    'known-answer' (same architecture, different training seeds) or 'tiny' (offline)."""

    key: str
    model_a: str
    model_b: str
    kind: str
    description: str

    def specs(self) -> tuple[ModelSpec | None, ModelSpec | None]:
        return model_spec(self.model_a), model_spec(self.model_b)


SEED_PAIRS: dict[str, ModelPair] = {
    p.key: p
    for p in [
        ModelPair(
            "gpt2/gpt2-medium",
            "gpt2",
            "gpt2-medium",
            "seed",
            "the seed's pair: 12 vs 24 layers, 3072 vs 4096 neurons per layer, GPT-2 tokenizer",
        ),
        ModelPair(
            "pythia-70m/pythia-160m",
            "EleutherAI/pythia-70m",
            "EleutherAI/pythia-160m",
            "seed",
            "the seed's alternative: 6 vs 12 layers, 2048 vs 3072 neurons, Pythia tokenizer",
        ),
    ]
}

_GURNEE = "Gurnee et al. 2024: 1-5% universal neurons (excess > 0.5), most in early/late layers"
KNOWN_ANSWER_PAIRS: dict[str, ModelPair] = {
    p.key: p
    for p in [
        *[
            ModelPair(
                f"pythia-160m/pythia-160m-seed{k}",
                "EleutherAI/pythia-160m",
                f"EleutherAI/pythia-160m-seed{k}",
                "known-answer",
                f"pythia-160m vs its seed-{k} re-training (same data order); {_GURNEE} "
                "(pythia-160m: 1.26%)",
            )
            for k in (1, 2, 3)
        ],
        *[
            ModelPair(
                f"stanford-gpt2-small-a/{s}",
                f"stanford-crfm/{_STANFORD['a'][0]}",
                f"stanford-crfm/{_STANFORD[s][0]}",
                "known-answer",
                f"Stanford CRFM GPT-2 small, seeds a vs {s}; {_GURNEE} (small-a: 4.16%)",
            )
            for s in "bcde"
        ],
        *[
            ModelPair(
                f"stanford-gpt2-medium-a/{s}",
                f"stanford-crfm/{_STANFORD['a'][1]}",
                f"stanford-crfm/{_STANFORD[s][1]}",
                "known-answer",
                f"Stanford CRFM GPT-2 medium, seeds a vs {s}; {_GURNEE} (medium-a: 1.23%)",
            )
            for s in "bcde"
        ],
    ]
}

TINY_PAIR = ModelPair(
    "tiny",
    "tiny:0",
    "tiny:1",
    "tiny",
    "two small GPT-2-style models trained offline with seeds 0 and 1 (same architecture, "
    "same data, different initialisation and batch order)",
)

PAIRS: dict[str, ModelPair] = {**SEED_PAIRS, **KNOWN_ANSWER_PAIRS, "tiny": TINY_PAIR}

# The seed's table (its code README, "Model Options by GPU Memory"), as stated there.
GPU_MEMORY_TABLE: tuple[dict, ...] = (
    {
        "gpu": "Colab T4",
        "vram_gb": 16,
        "models": "gpt2 + gpt2-medium, pythia-70m to pythia-410m",
    },
    {"gpu": "Colab A100", "vram_gb": 40, "models": "gpt2-large + gpt-j, pythia up to 1.4b"},
    {"gpu": "Local 8GB", "vram_gb": 8, "models": "pythia-70m + pythia-160m only"},
)


def get_pair(key: str) -> ModelPair:
    """The :class:`ModelPair` for a key of :data:`PAIRS`."""
    return PAIRS[check_choice("pair", key, list(PAIRS))]


def weights_gb(name: str, bytes_per_param: int = 4) -> float | None:
    """Memory of a named model's weights in GB (fp32 by default); None when not listed."""
    spec = model_spec(name)
    return None if spec is None else spec.n_params_m * 1e6 * bytes_per_param / 1e9


# ----------------------------------------------------------------------------- loading


class ModelUnavailableError(ValueError):
    """A model could not be loaded here (offline, unknown id, missing folder). A ``ValueError``
    so that the CLI prints it as one line; the message says what to use instead."""


def load_model(
    name_or_path: str | os.PathLike,
    device: str | None = "auto",
    dtype: torch.dtype | None = None,
    tiny_config: TinyConfig | None = None,
):
    """Boot a model through ``TransformerBridge.boot_transformers`` and return it in eval mode.

    ``name_or_path``: a Hub id or short name (:data:`ALIASES`), a local Hugging Face folder
    (``config.json`` + weights + tokenizer, as :func:`tiny_pair` saves), or ``tiny:<seed>`` for
    one model of the tiny pair (trained on first use, ``tiny_config`` or the default). ``device``:
    'auto' (CUDA when present), 'cpu', 'cuda', ...; ``dtype`` defaults to float32."""
    import torch

    from akira_nb.runtime import get_device

    dev = get_device(device)
    dtype = torch.float32 if dtype is None else dtype
    target = _local_target(name_or_path, tiny_config)
    name = str(target) if target is not None else resolve_name(str(name_or_path))
    if target is None:  # a Hub id: one line at once when the Hub cannot be reached
        require_hub(f"model {name!r}")
    from transformer_lens import TransformerBridge

    try:
        bridge = TransformerBridge.boot_transformers(name, device=str(dev), dtype=dtype)
    except Exception as exc:
        where = "the local folder" if target is not None else "the Hugging Face Hub"
        raise ModelUnavailableError(
            f"could not load model {str(name_or_path)!r} from {where} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}); offline, use the tiny pair (pair='tiny', "
            "size 'tiny') or a local Hugging Face folder"
        ) from exc
    return bridge.eval()


def _local_target(name_or_path, tiny_config) -> Path | None:
    text = str(name_or_path)
    if text.startswith("tiny:"):
        try:
            seed = int(text.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"model {text!r}: write tiny:<seed>, e.g. tiny:0") from None
        cfg = tiny_config or TinyConfig()
        if seed not in cfg.seeds:
            cfg = TinyConfig(**{**asdict(cfg), "seeds": (seed,)})
        return tiny_pair(cfg)[cfg.seeds.index(seed)]
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is a folder but holds no config.json: not a model folder")
        return path
    if text.startswith((".", "/", "~")) or ("/" in text and not _looks_like_hub_id(text)):
        raise ValueError(f"model folder {text!r} does not exist")
    return None


def _looks_like_hub_id(text: str) -> bool:
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not text.startswith((".", "/", "~"))


def load_pair(pair: str | ModelPair, device: str | None = "auto", **kwargs):
    """Boot both models of a pair (a :data:`PAIRS` key or a :class:`ModelPair`); returns
    ``(bridge_a, bridge_b)``. Checks that they share a tokenizer."""
    from akira_nb.alignment.activations import check_same_tokenizer

    pair = get_pair(pair) if isinstance(pair, str) else pair
    a = load_model(pair.model_a, device, **kwargs)
    b = load_model(pair.model_b, device, **kwargs)
    check_same_tokenizer(a, b)
    return a, b


# ----------------------------------------------------------------------------- tiny pair


@dataclass
class TinyConfig:
    """The tiny offline pair: architecture, training and data (see the module docstring).

    Trained with AdamW (betas 0.9 / 0.95, no weight decay), linear warm-up then cosine decay of
    the learning rate, gradient clipping at 1, batches of ``batch_size`` random train blocks of
    ``n_ctx`` byte ids, next-token cross-entropy; no dropout. Each model's seed sets its
    initialisation and its batch order; the data split (``text_seed``) is shared."""

    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    n_ctx: int = 64
    steps: int = 200
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 20
    seeds: tuple[int, ...] = (0, 1)
    text_seed: int = 0
    cpu_threads: int | None = 1
    eval_blocks: int = 512  # validation blocks for the held-out loss

    # fields that change the trained weights (the cache key); cpu_threads does not
    KEY_FIELDS = (
        *("n_layers", "d_model", "n_heads", "d_mlp", "n_ctx", "steps", "batch_size", "lr"),
        *("warmup", "text_seed", "eval_blocks"),
    )

    def __post_init__(self):
        self.validate()

    def validate(self) -> TinyConfig:
        for name in ("n_layers", "d_model", "n_heads", "d_mlp", "steps", "batch_size"):
            check_int(name, getattr(self, name), low=1)
        check_int("n_ctx", self.n_ctx, low=2)
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        check_real("lr", self.lr, 0.0, 1.0, low_open=True)
        check_int("warmup", self.warmup, low=0, high=self.steps)
        self.seeds = tuple(check_seeds("seeds", self.seeds))
        check_int("text_seed", self.text_seed, low=0)
        check_int("eval_blocks", self.eval_blocks, low=1)
        if self.cpu_threads is not None:
            check_int("cpu_threads", self.cpu_threads, low=1)
        return self

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.KEY_FIELDS}

    def key(self, corpus_sha256: str) -> str:
        """Hash of the settings that change the weights, the corpus and the library versions."""
        import torch
        import transformers

        payload = {
            **self.to_dict(),
            "corpus": corpus_sha256,
            "torch": torch.__version__.split("+")[0],
            "transformers": transformers.__version__,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


RECORD = "akira_tiny.json"


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """Where trained tiny models are kept: ``root``, else ``AKIRA_CACHE_DIR``, else
    ``~/.cache/akira_nb``."""
    return Path(root) if root is not None else runtime.cache_dir()


def _hf_config(cfg: TinyConfig, vocab_size: int, eos_id: int):
    from transformers import GPT2Config

    return GPT2Config(
        n_layer=cfg.n_layers,
        n_embd=cfg.d_model,
        n_head=cfg.n_heads,
        n_inner=cfg.d_mlp,
        n_positions=cfg.n_ctx,
        vocab_size=vocab_size,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )


def _lm_loss(model, blocks) -> torch.Tensor:
    import torch.nn.functional as F

    logits = model(blocks).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), blocks[:, 1:].reshape(-1))


def evaluate_loss(model, blocks, batch_size: int = 256) -> float:
    """Mean next-token cross-entropy (nats per predicted token) of an HF causal LM on blocks."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, blocks.shape[0], batch_size):
            b = blocks[start : start + batch_size]
            n = b.shape[0] * (b.shape[1] - 1)
            total += float(_lm_loss(model, b)) * n
            count += n
    model.train(was_training)
    return total / count


def train_tiny_model(cfg: TinyConfig, seed: int, splits=None):
    """Train one tiny GPT-2-style model on the CPU; returns ``(model, record)``.

    ``record`` holds the loss history (every 10 steps), the held-out loss on ``eval_blocks``
    validation blocks, its baselines (uniform ``log(vocab)`` and the train unigram
    distribution's cross-entropy on the same blocks) and the training time. The caller's global
    RNG state is left unchanged."""
    import torch
    from transformers import GPT2LMHeadModel

    from akira_nb import runtime, text

    check_int("seed", seed, low=0)
    if splits is None:
        splits = text.make_splits(text.TextConfig(seq_len=cfg.n_ctx, seed=cfg.text_seed))
    train, val = splits.train, splits.val[: cfg.eval_blocks]
    with runtime.cpu_threads(cfg.cpu_threads, "cpu"), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(_hf_config(cfg, splits.vocab_size, splits.eos_id))
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0)
        gen = torch.Generator().manual_seed(seed)
        history = {"step": [], "loss": []}
        start = time.perf_counter()
        initial_val = evaluate_loss(model, val)
        for step in range(cfg.steps):
            warm = (step + 1) / cfg.warmup if step < cfg.warmup else 1.0
            decay = 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(warm, 1.0) * decay
            idx = torch.randint(train.shape[0], (cfg.batch_size,), generator=gen)
            loss = _lm_loss(model, train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step % 10 == 0 or step == cfg.steps - 1:
                history["step"].append(step)
                history["loss"].append(loss.item())
        train_seconds = time.perf_counter() - start
        val_loss = evaluate_loss(model, val)
    model.eval()
    record = {
        "seed": seed,
        "config": cfg.to_dict(),
        "history": history,
        "initial_val_loss": initial_val,
        "val_loss": val_loss,
        "uniform_loss": math.log(splits.vocab_size),
        "unigram_val_loss": text.unigram_cross_entropy(train, val[:, 1:], splits.vocab_size),
        "train_seconds": train_seconds,
        "val_tokens": int(val[:, 1:].numel()),
        "corpus": splits.info,
        "versions": _versions(),
    }
    return model, record


def _versions() -> dict:
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


@contextlib.contextmanager
def quiet_hf():
    """Silence transformers' progress bars and info logs inside the block (restored after)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _save(model, record: dict, folder: Path, replace: bool = False) -> None:
    from akira_nb.runs import atomic_write_json
    from akira_nb.text import ByteTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with quiet_hf():
            model.save_pretrained(str(tmp))
            ByteTokenizer().save_pretrained(tmp)
        atomic_write_json(tmp / RECORD, record)  # written last: marks the folder complete
        if (folder / RECORD).is_file() and not replace:
            return  # another process finished the same model meanwhile: keep its folder
        if folder.exists():  # an incomplete folder left by an interrupted run, or a retrain
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def tiny_pair(
    cfg: TinyConfig | None = None,
    root: str | os.PathLike | None = None,
    retrain: bool = False,
    verbose: bool = False,
) -> list[Path]:
    """The folders of the tiny models (one per ``cfg.seeds``), training those not cached yet.

    Each folder holds the Hugging Face model, its tokenizer and ``akira_tiny.json`` (the record
    of :func:`train_tiny_model`); read it with :func:`tiny_record`. Boot one with
    :func:`load_model`."""
    from akira_nb import text

    cfg = cfg or TinyConfig()
    info = text.offline_corpus_info()
    base = cache_root(root) / "tiny_lm" / cfg.key(info["sha256"])
    folders = [base / f"seed{seed}" for seed in cfg.seeds]
    splits = None
    for seed, folder in zip(cfg.seeds, folders):
        if not retrain and (folder / RECORD).is_file():
            continue
        if splits is None:
            splits = text.make_splits(text.TextConfig(seq_len=cfg.n_ctx, seed=cfg.text_seed))
        model, record = train_tiny_model(cfg, seed, splits)
        _save(model, record, folder, replace=retrain)
        if verbose:
            print(
                f"tiny model seed {seed}: val loss {record['val_loss']:.3f} nats/byte "
                f"(unigram {record['unigram_val_loss']:.3f}, uniform {record['uniform_loss']:.3f})"
                f", {record['train_seconds']:.1f} s -> {folder}"
            )
    return folders


def tiny_record(folder: str | os.PathLike) -> dict[str, Any]:
    """The training record saved beside a tiny model."""
    path = Path(folder) / RECORD
    if not path.is_file():
        raise ValueError(f"{folder} holds no {RECORD}: not a tiny model folder (or incomplete)")
    from akira_nb.runs import read_json

    return read_json(path)


__all__ = [
    "ALIASES",
    "GPU_MEMORY_TABLE",
    "KNOWN_ANSWER_PAIRS",
    "MODELS",
    "PAIRS",
    "SEED_PAIRS",
    "TINY_PAIR",
    "ModelPair",
    "ModelSpec",
    "ModelUnavailableError",
    "TinyConfig",
    "cache_root",
    "check_layers_for",
    "evaluate_loss",
    "get_pair",
    "load_model",
    "load_pair",
    "model_spec",
    "resolve_name",
    "tiny_pair",
    "tiny_record",
    "train_tiny_model",
    "weights_gb",
]
