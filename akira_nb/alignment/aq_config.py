"""One AQ comparison's settings (:class:`AQConfig`, valid once built), the layer pairing, and
what stands in for the Hub models and corpora offline.

Model sizes are read from :mod:`akira_nb.alignment.models` without loading a model
(:func:`known_n_layers`, :func:`known_d_mlp`), so a config is checked before anything is
downloaded; offline, each Hub model becomes a local stand-in of its architecture
(:mod:`akira_nb.standins`, seeded by :data:`STANDIN_SEEDS`).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from akira_nb.alignment.choices import INPUT_TYPES, MATCH_METHODS, PAIRINGS, TEXT_CORPORA
from akira_nb.alignment.correlation import SEED_N_ROTATIONS, SEED_THRESHOLD
from akira_nb.alignment.thresholds import check_rule
from akira_nb.runtime import check_bool, check_choice, check_device, check_int, check_real


def known_n_layers(name: str) -> int | None:
    """Layers of a named model without loading it (Hub specs, ``tiny:<seed>``), else None."""
    from akira_nb.alignment.models import TinyConfig, model_spec

    if isinstance(name, str) and name.startswith("tiny:"):
        return TinyConfig().n_layers
    spec = model_spec(name)
    return None if spec is None else spec.n_layers


def known_n_ctx(name: str) -> int | None:
    from akira_nb.alignment.models import TinyConfig, model_spec

    if isinstance(name, str) and name.startswith("tiny:"):
        return TinyConfig().n_ctx
    spec = model_spec(name)
    return None if spec is None else spec.n_ctx


def known_d_mlp(name: str) -> int | None:
    """MLP width of a named model without loading it (Hub specs, ``tiny:<seed>``), else None."""
    from akira_nb.alignment.models import TinyConfig, model_spec

    if isinstance(name, str) and name.startswith("tiny:"):
        return TinyConfig().d_mlp
    spec = model_spec(name)
    return None if spec is None else spec.d_mlp


def gurnee_all_bytes(cfg: AQConfig) -> int | None:
    """Bytes of the accumulator :attr:`AQConfig.gurnee_all_layers` adds (A's compared layers
    against every layer of B: the cross-product and B's second moment per layer, float64), or
    None when a model is not a named one."""
    d_a, d_b = known_d_mlp(cfg.model_a), known_d_mlp(cfg.model_b)
    n_b = known_n_layers(cfg.model_b)
    if None in (d_a, d_b, n_b):
        return None
    return 8 * (len(cfg.layers) * d_a * n_b * d_b + n_b * d_b * d_b)


def pair_layers(layers_a, n_a: int, n_b: int, pairing: str = "index") -> list[tuple[int, int]]:
    """``[(layer_a, layer_b)]`` for A's layers: ``index`` keeps the index (refusing a layer B
    lacks), ``depth`` takes the same relative depth, ``round(l (n_b - 1) / (n_a - 1))``."""
    check_choice("layer_pairing", pairing, PAIRINGS)
    n_a, n_b = check_int("n_a", n_a, low=1), check_int("n_b", n_b, low=1)
    out = []
    for la in layers_a:
        la = check_int("layer", la, low=0, high=n_a - 1)
        if pairing == "index":
            if la >= n_b:
                raise ValueError(
                    f"layer_pairing='index': layer {la} of A has no layer {la} in B, which has "
                    f"{n_b} layers (0-{n_b - 1}); use layer_pairing='depth' or other layers"
                )
            lb = la
        else:
            lb = 0 if n_a == 1 else int(math.floor(la * (n_b - 1) / (n_a - 1) + 0.5))
        out.append((la, lb))
    return out


def pair_key(la, lb) -> str:
    """``"3-6"``: the key of layer pair (3, 6) in results."""
    return f"{la}-{lb}"


# The stand-in seed of each model (two stand-ins of one architecture must differ).
STANDIN_SEEDS = {"model_a": 0, "model_b": 1}


def check_offline_model(field: str, name: str) -> str | None:
    """The Hub id a stand-in replaces offline for model ``name`` (None for ``tiny:<seed>`` and
    existing local folders, which need no download); ``ValueError`` naming ``field`` when the
    kit has no stand-in for it (:data:`akira_nb.standins.ARCHITECTURES`)."""
    from akira_nb import standins
    from akira_nb.alignment.models import resolve_name

    if name.startswith("tiny:") or os.path.isdir(os.path.expanduser(name)):
        return None
    hub = resolve_name(name)
    if hub not in standins.ARCHITECTURES:
        raise ValueError(
            f"{field}={name!r} has no offline stand-in (offline=True); choose one of "
            f"{sorted(standins.ARCHITECTURES)}, a tiny:<seed> model or a local folder"
        )
    return hub


def offline_models(cfg: AQConfig, root=None, build: bool = True) -> dict:
    """``{field: (hub id, seed, folder)}`` for each model of ``cfg`` a stand-in replaces
    offline (:func:`akira_nb.standins.model_folder`, seeded by :data:`STANDIN_SEEDS`; built
    on first use unless ``build=False``)."""
    from akira_nb import standins

    out = {}
    for key, seed in STANDIN_SEEDS.items():
        hub = check_offline_model(key, getattr(cfg, key))
        if hub is not None:
            make = standins.model_folder if build else standins.folder_path
            out[key] = (hub, seed, make(hub, root=root, seed=seed))
    return out


def text_corpus_of(cfg: AQConfig) -> str:
    """The corpus the text inputs are read from: offline, the one standing in for
    ``cfg.text_corpus`` (:func:`akira_nb.standins.corpus`)."""
    from akira_nb import standins

    return standins.corpus(cfg.text_corpus) if cfg.offline else cfg.text_corpus


def offline_replacements(cfg: AQConfig, root=None) -> dict:
    """What stands in for what in an offline run of ``cfg``, ``{hub thing: stand-in}`` (for
    :func:`akira_nb.standins.announce`); nothing is built."""
    from akira_nb import standins
    from akira_nb.alignment.models import model_spec

    out, families = {}, set()
    for key, (hub, seed, folder) in offline_models(cfg, root, build=False).items():
        out[f"{hub} (Hugging Face, model {key[-1].upper()})"] = (
            f"random weights of its architecture, seed {seed} ({folder})"
        )
        families.add(model_spec(hub).family)
    if "text" in cfg.input_types and text_corpus_of(cfg) != cfg.text_corpus:
        out[f"{cfg.text_corpus} (Hugging Face)"] = f"the kit's {text_corpus_of(cfg)} corpus"
    for family in sorted(families):
        out[f"{family} tokenizer"] = standins.tokenizer_for(family)
    return out


@dataclass
class AQConfig:
    """One AQ comparison (the seed's knobs plus the kit's), checked when built (``ValueError``
    naming the field; :meth:`validate` checks it again after a change).

    ``layers``: A's layers (B's follow from ``layer_pairing``). ``threshold``: the excess
    threshold of the basic and Gurnee methods (the seed's 0.3; 0.5 is always shown beside it).
    ``threshold_method`` / ``threshold_value``: the rule of the aligned methods (value None:
    the rule's default, mean + 2 std / 95th percentile / 0.3). ``input_type``: ``random``,
    ``text`` or ``both`` (then universal AQ). ``sample_sequences``: sequences kept in memory
    for CKA and Procrustes (all ``num_samples`` are streamed for the correlations);
    ``spectral_sequences`` of them give the spectra. ``checkpoint_every``: save the stream
    every N batches (0: only when it ends). ``cpu_threads``: torch threads on a CPU device.
    ``n_permutations``: neuron permutations of B in the basic method's null (cheap: a gather
    from the correlation matrix each). ``n_shuffles``: token-shuffle fits of the Procrustes null
    (each a full fit: at 3072 x 4096 and 8064 training tokens one 3072 x 4096 SVD, 62 CPU-s in
    float64 on the CPU, in float32 on CUDA, batched; with fewer training tokens than neurons
    an ``n_train^2`` one, :func:`~.procrustes.procrustes_align`). Both are
    the replicates of the universal overlap's paired null (:func:`add_universal`), whose
    p-value cannot go below ``1 / (1 + replicates)``. ``gurnee_all_layers``: on the text
    stream, also accumulate A's compared layers against **every** layer of B, for Gurnee et
    al.'s max over all of B's layers (:func:`gurnee_all_layers`); it costs
    :func:`gurnee_all_bytes` more memory and checkpoint (pythia-160m, all 12 layers: 11.8 GB).
    ``stream_cka``: also keep A's second moment per pair (``8 d_a^2`` bytes: 75 MB at 3072), for
    linear CKA over every streamed token beside the in-memory sample's
    (:func:`~.cka.linear_cka_from_stats`). ``offline``: run on local stand-ins of the same
    shape (:mod:`akira_nb.standins`, :func:`offline_models`): each Hub model becomes randomly
    initialised weights of its architecture (A seeded 0, B seeded 1, so that two models of one
    architecture differ) with a tokenizer of the same vocabulary size, and hub text the kit's
    offline corpus; ``tiny:<seed>`` models and local folders stay as they are. A Hub model
    without a stand-in is refused by :meth:`validate`.
    """

    model_a: str = "gpt2"
    model_b: str = "gpt2-medium"
    layers: tuple = (3, 5, 7)
    layer_pairing: str = "index"
    num_samples: int = 500
    seq_length: int = 64
    batch_size: int = 16
    threshold: float = SEED_THRESHOLD
    threshold_method: str = "statistical"
    threshold_value: float | None = None
    input_type: str = "both"
    text_corpus: str = "wikitext-2"
    seed: int = 42
    device: str = "auto"
    match_method: str = "emd"
    n_rotations: int = SEED_N_ROTATIONS
    n_permutations: int = 100
    n_shuffles: int = 20
    sample_sequences: int = 256
    spectral_sequences: int = 200
    n_bands: int = 7
    train_frac: float = 0.5
    checkpoint_every: int = 10
    cpu_threads: int | None = 1
    gurnee_all_layers: bool = False
    stream_cka: bool = False
    offline: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> AQConfig:
        for name in ("model_a", "model_b"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}={value!r} must be a model name or folder")
        if isinstance(self.layers, (int, str)) or not hasattr(self.layers, "__iter__"):
            raise ValueError(f"layers={self.layers!r} must be a list of layer indices")
        self.layers = tuple(check_int(f"layers[{i}]", v, low=0) for i, v in enumerate(self.layers))
        if not self.layers:
            raise ValueError("layers=[] must name at least one layer")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers={list(self.layers)} repeats a layer")
        check_choice("layer_pairing", self.layer_pairing, PAIRINGS)
        n_a, n_b = known_n_layers(self.model_a), known_n_layers(self.model_b)
        if n_a is not None:
            from akira_nb.alignment.models import check_layers_for

            if self.model_a.startswith("tiny:"):
                bad = [v for v in self.layers if v >= n_a]
                if bad:
                    raise ValueError(
                        f"layer {bad[0]} does not exist in {self.model_a}: it has {n_a} layers "
                        f"(0-{n_a - 1})"
                    )
            else:
                check_layers_for(self.model_a, list(self.layers))
            if n_b is not None:
                pair_layers(self.layers, n_a, n_b, self.layer_pairing)
        check_int("num_samples", self.num_samples, low=2)
        check_int("seq_length", self.seq_length, low=2)
        for name in (self.model_a, self.model_b):
            n_ctx = known_n_ctx(name)
            if n_ctx is not None and self.seq_length > n_ctx:
                raise ValueError(
                    f"seq_length={self.seq_length} is longer than {name}'s context ({n_ctx})"
                )
        check_int("batch_size", self.batch_size, low=1)
        check_real("threshold", self.threshold)
        self._check_threshold_value()
        check_choice("input_type", self.input_type, INPUT_TYPES)
        check_choice("text_corpus", self.text_corpus, TEXT_CORPORA)
        check_int("seed", self.seed, low=0)
        check_device("device", self.device)
        check_choice("match_method", self.match_method, MATCH_METHODS)
        check_int("n_rotations", self.n_rotations, low=1)
        check_int("n_permutations", self.n_permutations, low=1)
        check_int("n_shuffles", self.n_shuffles, low=1)
        check_int("sample_sequences", self.sample_sequences, low=2)
        check_int("spectral_sequences", self.spectral_sequences, low=1)
        check_int("n_bands", self.n_bands, low=1)
        check_real("train_frac", self.train_frac, 0.0, 1.0, low_open=True, high_open=True)
        check_int("checkpoint_every", self.checkpoint_every, low=0)
        if self.cpu_threads is not None:
            check_int("cpu_threads", self.cpu_threads, low=1)
        check_bool("gurnee_all_layers", self.gurnee_all_layers)
        check_bool("stream_cka", self.stream_cka)
        check_bool("offline", self.offline)
        if self.offline:
            for name in ("model_a", "model_b"):
                check_offline_model(name, getattr(self, name))
        return self

    @property
    def input_types(self) -> list[str]:
        return ["random", "text"] if self.input_type == "both" else [self.input_type]

    def _check_threshold_value(self) -> float:
        """``threshold_value`` checked against ``threshold_method``'s range; a fixed threshold
        lies in [-1, 1], as the aligned methods' scores (correlations) do."""
        _, value = check_rule(
            self.threshold_method, self.threshold_value, "threshold_method", "threshold_value"
        )
        if self.threshold_method == "fixed" and not -1.0 <= value <= 1.0:
            raise ValueError(
                f"threshold_value={value!r} is outside the allowed range [-1.0, 1.0] for the "
                "fixed rule: the aligned methods' scores are correlations, so a cut outside "
                "[-1, 1] flags every neuron or none"
            )
        return value

    @property
    def rule_value(self) -> float:
        return self._check_threshold_value()

    @property
    def n_tokens(self) -> int:
        return self.num_samples * self.seq_length

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d


__all__ = [
    "AQConfig",
    "STANDIN_SEEDS",
    "check_offline_model",
    "gurnee_all_bytes",
    "known_d_mlp",
    "known_n_ctx",
    "known_n_layers",
    "offline_models",
    "offline_replacements",
    "pair_key",
    "pair_layers",
    "text_corpus_of",
]
