"""Action Quanta (AQ) pipelines: which MLP neurons of model A have a counterpart in model B.

Built on the lower layers of :mod:`akira_nb.alignment` (activations, correlation, cka,
transport, procrustes, thresholds). Every AQ count is printed beside the count expected by
chance (the token-shuffle null), and every threshold rule is named where its count is printed.

What is computed, per compared layer pair ``(layer_a, layer_b)`` and per input type
-----------------------------------------------------------------------------------
- Statistics: Pearson correlation over tokens of **every** neuron of A's layer against **every**
  neuron of B's layer (full widths: gpt2's 3072 against all 4096 of gpt2-medium, nothing
  truncated), streamed batch by batch into a :class:`~.correlation.StreamingCorrelation`
  (float64 sums), and the same for the token-shuffle null (B's token rows permuted within each
  batch, :class:`~.thresholds.ShuffledStream`). :class:`PairStream` holds both for every pair;
  its state is saved in the run folder every ``checkpoint_every`` batches, so a disconnect
  mid-stream resumes where it stopped (guarded by :func:`akira_nb.runs.check_resume` through the
  checkpoint's ``"config"``: other models, layers, tokens or batch size refuse to resume).
- ``basic`` (the seed's method): index-matched correlation ``corr(A_i, B_i)`` minus its mean
  over ``n_rotations`` Haar rotations of B's whole neuron basis
  (:func:`~.correlation.basic_excess`), for ``i < min(d_a, d_b)``; AQ = excess above
  ``threshold`` (the seed's 0.3), with Gurnee et al.'s 0.5 beside it. Index matching has no
  meaning across two models (neuron ``i`` of gpt2 and neuron ``i`` of gpt2-medium are
  unrelated): it is kept because it is the seed's method. Its second null, the
  *neuron-permutation* null (A's neuron ``i`` against a random B neuron, minus the same
  baseline), says what it finds between unrelated neurons: the rotated baseline of one neuron
  has a large spread (a Haar-rotated neuron mixes every neuron of B), so ``actual - baseline``
  exceeds 0.3 for many unrelated pairs (the reference's "AQ with baseline -0.77").
- ``gurnee`` (Gurnee et al. 2024): per A neuron, its max correlation over the paired B layer's
  neurons minus the same max under a rotated B basis (:func:`~.correlation.gurnee_excess`),
  thresholds 0.3 and 0.5. Gurnee took the max over **all** layers of B, on text: with
  ``gurnee_all_layers`` the text stream also accumulates A's layers against every layer of B
  (:func:`gurnee_all_layers`), which is what the known-answer claim reads.
- ``aligned`` (the seed's aligned method, done with held-out scoring): linear and debiased
  linear CKA of the pair on the in-memory sample (``sample_sequences``; with the CKA of a
  token-shuffled pair beside it) and, with ``stream_cka``, linear CKA over every streamed
  token from the sums; the OT matching of
  each A neuron to one B neuron with cost ``1 - |corr|`` (``emd`` by default, ``hungarian`` for
  a one-to-one match, ``sinkhorn``) scored by the matched ``|corr|`` (method ``ot``); and an
  orthogonal Procrustes map fitted on half of the sample's sequences and scored on the other
  half (method ``procrustes``: the held-out correlation of each **B** neuron with its
  prediction from A; on the in-memory sample, whose token counts every line and result
  states). AQ = scores above ``threshold_method`` with ``threshold_value``
  (:data:`~.thresholds.RULES`; the share the statistical rule flags is set by the shape of
  the scores: about 2.3 % of a Gaussian, anything from 0 % to about 5 %, which its null shows).
- Input types: ``random`` (uniform token ids after a BOS: the seed's structural test), ``text``
  (packed real text after a BOS: the semantic test) and, with both,
  ``universal`` = the intersection of the two AQ sets of the same method and pair (in the same
  model's index space). Its chance level comes from a **paired null**
  (:func:`universal_overlap`): the same null applied to both input types (the basic method's
  ``n_permutations`` neuron permutations of B, identical in both; the token shuffles of the
  other methods), each replicate thresholded by the method's rule, their overlaps giving the
  mean and the permutation p-value. The same neurons are scored in both input types, so
  per-neuron properties carry over and two sets each at chance overlap more than independent
  sets do; the hypergeometric number (:func:`~.thresholds.overlap_null`) is printed beside it
  only as the *independence bound*. BOS is masked in both input types (the first position of
  GPT-2 and Pythia is an attention sink with outlier activations, whatever its token; the seed
  counted a random token there), and so are text's document separators.
- Layer pairing (:func:`pair_layers`): ``index`` (layer ``l`` of A with layer ``l`` of B, the
  seed's) or ``depth`` (the same relative depth: ``round(l (n_b - 1) / (n_a - 1))``, so first
  meets first and last meets last; gpt2 layer 3 meets gpt2-medium layer 6).
- Spectral analysis (:func:`spectral_analysis`): per neuron, the power spectrum along the
  sequence (FFT over positions of each sequence, bins ``k = 0 .. T//2 - 1`` at ``k / T``
  cycles per token, as the reference; power averaged over sequences; only the positions after
  BOS, and only sequences without a document separator, :meth:`Sample.spectral`), its spectral
  centroid
  with the DC bin and without it (the DC bin dominates non-zero-mean GELU outputs), and the
  share of power in each of ``n_bands`` (7) equal-width bands of ``(0, 0.5)`` cycles per token.
  AQ vs non-AQ neurons are compared with a two-sided Mann-Whitney U test (SciPy). The AQ indices
  of a method refer to one model (:attr:`MethodResult.model`): ``basic``, ``gurnee`` and ``ot``
  to A's neurons, ``procrustes`` to B's; the spectra are taken from **that** model's
  activations (the reference took A's spectra for B's indices).
- Verdicts (:func:`interpret`, :meth:`AQResult.verdict`): the seed's interpretation table
  applied to the AQ % of neurons: > 20 % very strong, 10-20 % strong, 5-10 % moderate, < 5 %
  weak. It is applied to the % above chance (the count over every compared layer pair minus
  the count expected by chance over the same pairs, :meth:`AQResult.chance_summary`; never a
  sum of the pairs' positive parts, so it is negative when the whole set is below chance) and,
  as the seed did, to the raw %. A count within 2 sd of its chance count reads "at chance"
  (:data:`~.thresholds.CHANCE_RULE`), and a universal overlap whose paired null has fewer than
  19 replicates is "not measurable" (its p-value cannot reach 0.05). Where a
  rule derived from the scores' shape (statistical, percentile) flags nothing in the data nor
  the null (the statistical rule on bounded, left-skewed scores puts its threshold above every
  score) the verdict is :data:`FLAGS_NOTHING`, not "weak" (a fixed threshold no score reaches
  is a property of the data: its count of 0 reads "at chance" beside a null of 0); the
  fixed-0.5 count is printed beside every verdict.

Entry points: :func:`run_aq` (two models, a config; loads what it is not given) and, for
activations already in memory (tests, the grokking models), :class:`PairStream` +
:func:`analyse_pair`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..runtime import (
    check_bool,
    check_choice,
    check_device,
    check_int,
    check_real,
    get_device,
)
from . import activations as act
from .cka import cka_matrix, cka_scores, linear_cka_from_stats
from .correlation import (
    GURNEE_THRESHOLD,
    SEED_N_ROTATIONS,
    SEED_THRESHOLD,
    SharedMarginalsCorrelation,
    StreamingCorrelation,
    basic_excess,
    clear_rotations,
    gurnee_excess,
)
from .procrustes import procrustes_align
from .thresholds import (
    AT_CHANCE_SDS,
    CHANCE_RULE,
    MIN_NULL_REPLICATES,
    RULES,
    AQCount,
    ShuffledStream,
    chance_word,
    check_rule,
    count_with_null,
    null_count_variance,
    overlap_null,
    paired_null_overlap,
    too_few_replicates,
)
from .transport import METHODS as MATCH_METHODS
from .transport import match_neurons

INPUT_TYPES = ("random", "text", "both")
PAIRINGS = ("index", "depth")
METHODS = ("basic", "gurnee", "ot", "procrustes")
METHOD_MODEL = {"basic": "A", "gurnee": "A", "ot": "A", "procrustes": "B"}
METHOD_TEXT = {
    "basic": "index-matched excess correlation (the seed's basic method)",
    "gurnee": "max-correlation excess (Gurnee et al.)",
    "ot": "OT-matched |corr| (aligned)",
    "procrustes": "held-out Procrustes aligned corr (aligned)",
}
TEXT_CORPORA = ("offline", "wikitext-2", "wikitext-103")
# The null whose replicates give the universal overlap's chance level, per method: the basic
# method's neuron permutations of B (the same permutations in both input types); the others'
# token shuffles (1 streamed replicate for gurnee and ot, ``n_shuffles`` Procrustes fits).
UNIVERSAL_NULL = {
    "basic": "neuron-permutation",
    "gurnee": "token-shuffle",
    "ot": "token-shuffle",
    "procrustes": "token-shuffle",
}
STREAM_MAY_CHANGE = ("checkpoint_every", "device")

# The seed's interpretation table ("Interpreting Results"), as (lower bound %, word, meaning).
INTERPRETATION = (
    (20.0, "very strong", "Action Quanta likely exist as discrete units"),
    (10.0, "strong", "AQ candidates worth investigating further"),
    (5.0, "moderate", "may need a lower threshold or different models"),
    (-math.inf, "weak", "AQ may be emergent (not discrete)"),
)
INTERPRETATION_RULE = (
    "the seed's table on the AQ % of neurons: > 20% very strong, 10-20% strong, 5-10% moderate, "
    "< 5% weak; applied, as the seed did, to the raw %, and to the % above chance: the count "
    "over every compared layer pair minus the count expected by chance over the same pairs "
    "(per pair the largest mean count of the method's nulls above the same threshold), "
    f"negative when the count is below chance; {CHANCE_RULE}; a count at or below chance "
    "reads so, not a word of the table; where a rule derived from the scores' shape (mean + k "
    "std, percentile) flags nothing in the data nor the null (its threshold above every score) "
    "no verdict is read from it"
)
FLAGS_NOTHING = "the rule flags nothing here (threshold above every score)"
SPECTRAL_RULE = (
    "AQ neurons lower-frequency than the other neurons: median spectral centroid (DC bin "
    "excluded) lower, two-sided Mann-Whitney U p < 0.05; spectra from the model whose neurons "
    "the AQ indices name"
)


def interpret(pct: float) -> str:
    """The seed's interpretation word for an AQ percentage (see :data:`INTERPRETATION`)."""
    pct = check_real("pct", pct)
    for low, word, _ in INTERPRETATION:
        if pct > low:
            return word
    return "weak"


# ----------------------------------------------------------------------------- configuration


def known_n_layers(name: str) -> int | None:
    """Layers of a named model without loading it (Hub specs, ``tiny:<seed>``), else None."""
    from .models import TinyConfig, model_spec

    if isinstance(name, str) and name.startswith("tiny:"):
        return TinyConfig().n_layers
    spec = model_spec(name)
    return None if spec is None else spec.n_layers


def known_n_ctx(name: str) -> int | None:
    from .models import TinyConfig, model_spec

    if isinstance(name, str) and name.startswith("tiny:"):
        return TinyConfig().n_ctx
    spec = model_spec(name)
    return None if spec is None else spec.n_ctx


def known_d_mlp(name: str) -> int | None:
    """MLP width of a named model without loading it (Hub specs, ``tiny:<seed>``), else None."""
    from .models import TinyConfig, model_spec

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


# ----------------------------------------------------------------------------- stages


def _host_peak_bytes() -> int | None:
    """The process's peak resident memory since it started (Linux ``VmHWM``, else
    ``ru_maxrss``), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return None


def _host_rss_bytes() -> int | None:
    """The process's resident memory now (Linux ``/proc/self/statm``), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Stages:
    """Wall seconds, CPU seconds (every thread of the process) and peak memory of each stage of
    a run, summed over its repeats (layer pairs, input types): ``with stages("ot"): ...``.

    Peak host memory of a stage: the process's resident peak (``VmHWM``) when the stage raised
    it (exact), else the largest resident size sampled every 10 ms during the stage (nothing
    is reset, so ``/usr/bin/time`` still reads the whole run's peak). Peak device memory:
    ``torch.cuda.max_memory_allocated`` within the stage. :attr:`out` goes to results.json."""

    def __init__(self, device=None):
        self.device = None if device is None else get_device(device)
        self.out: dict[str, dict] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        import threading

        cuda = self.device is not None and self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        before, sampled, done = _host_peak_bytes(), [_host_rss_bytes() or 0], threading.Event()

        def sample():
            while not done.wait(0.01):
                sampled[0] = max(sampled[0], _host_rss_bytes() or 0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
            seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
            done.set()
            sampler.join()
            rec = self.out.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0, "repeats": 0})
            rec["seconds"] += seconds
            rec["cpu_seconds"] += cpu_seconds
            rec["repeats"] += 1
            after = _host_peak_bytes()
            peak = after if after is not None and after != before else sampled[0]
            if peak:
                rec["peak_host_gb"] = max(rec.get("peak_host_gb", 0.0), peak / 1e9)
            if cuda:
                dev = torch.cuda.max_memory_allocated(self.device) / 1e9
                rec["peak_device_gb"] = max(rec.get("peak_device_gb", 0.0), dev)

    def lines(self) -> list[str]:
        return stage_lines(self.out)


def stage_lines(stages: dict) -> list[str]:
    """One line per stage of :attr:`Stages.out`."""
    out = []
    for name, r in stages.items():
        mem = f", peak host {r['peak_host_gb']:.2f} GB" if "peak_host_gb" in r else ""
        if "peak_device_gb" in r:
            mem += f", peak device {r['peak_device_gb']:.2f} GB"
        out.append(
            f"stage {name}: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} CPU-s "
            f"({r['repeats']}x){mem}"
        )
    return out


# ----------------------------------------------------------------------------- offline

# The stand-in seed of each model (two stand-ins of one architecture must differ).
STANDIN_SEEDS = {"model_a": 0, "model_b": 1}


def check_offline_model(field: str, name: str) -> str | None:
    """The Hub id a stand-in replaces offline for model ``name`` (None for ``tiny:<seed>`` and
    existing local folders, which need no download); ``ValueError`` naming ``field`` when the
    kit has no stand-in for it (:data:`akira_nb.standins.ARCHITECTURES`)."""
    from .. import standins
    from .models import resolve_name

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
    from .. import standins

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
    from .. import standins

    return standins.corpus(cfg.text_corpus) if cfg.offline else cfg.text_corpus


def offline_replacements(cfg: AQConfig, root=None) -> dict:
    """What stands in for what in an offline run of ``cfg``, ``{hub thing: stand-in}`` (for
    :func:`akira_nb.standins.announce`); nothing is built."""
    from .. import standins
    from .models import model_spec

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
    """One AQ comparison (the seed's knobs plus the kit's). Validate with :meth:`validate`.

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
            from .models import check_layers_for

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


# ----------------------------------------------------------------------------- streaming


class PairStream:
    """Running correlation statistics of every layer pair, real and token-shuffled.

    ``update(acts_a, acts_b)`` takes one batch as dicts ``{layer: [n_tokens, width]}`` (the same
    token rows in both). The null of pair ``(la, lb)`` sees B's rows permuted within each batch
    (:class:`~.thresholds.ShuffledStream`, seeded by ``seed`` and the batch number, so a resumed
    stream draws the permutations an uninterrupted one would have); it keeps only its own
    cross-product and shares every other sum with the real accumulator
    (:class:`~.correlation.SharedMarginalsCorrelation`: the permutation leaves them unchanged).
    ``all_b_layers``: also one accumulator of A's layers against all these layers of B
    concatenated (``all_b``), for Gurnee et al.'s max over every layer of B
    (:func:`gurnee_all_layers`; no null: the rotation baseline is its chance correction).
    ``stream_cka``: the real accumulators also keep A's second moment, for linear CKA over
    every streamed token (:func:`~.cka.linear_cka_from_stats`).
    """

    def __init__(
        self,
        pairs,
        d_a: int,
        d_b: int,
        device=None,
        seed: int = 0,
        all_b_layers=None,
        stream_cka: bool = False,
    ):
        self.pairs = [(int(la), int(lb)) for la, lb in pairs]
        if not self.pairs:
            raise ValueError("pairs=[] must name at least one layer pair")
        self.d_a, self.d_b = check_int("d_a", d_a, low=1), check_int("d_b", d_b, low=1)
        self.device = get_device(device)
        self.seed = check_int("seed", seed, low=0)
        self.stream_cka = check_bool("stream_cka", stream_cka)
        self.stats = {
            p: StreamingCorrelation(d_a, d_b, self.device, track_a_cov=self.stream_cka)
            for p in self.pairs
        }
        self.null = {p: SharedMarginalsCorrelation(self.stats[p]) for p in self.pairs}
        self._shuffle = {p: ShuffledStream(self.null[p], self.seed) for p in self.pairs}
        self.all_b_layers, self.all_b = None, None
        if all_b_layers is not None:
            self.all_b_layers = [check_int("all_b_layers[]", v, low=0) for v in all_b_layers]
            if not self.all_b_layers:
                raise ValueError("all_b_layers=[] must name at least one layer of B")
            self.all_b = StreamingCorrelation(
                {la: d_a for la in self.layers_a},
                {lb: d_b for lb in self.all_b_layers},
                self.device,
            )
        self.n_batches = 0

    @property
    def layers_a(self) -> list[int]:
        return sorted({la for la, _ in self.pairs})

    @property
    def layers_b(self) -> list[int]:
        return sorted({lb for _, lb in self.pairs})

    @property
    def layers_b_needed(self) -> list[int]:
        """B's layers every batch must bring: the paired ones and ``all_b_layers``."""
        return sorted(set(self.layers_b) | set(self.all_b_layers or []))

    @property
    def n_tokens(self) -> int:
        return self.stats[self.pairs[0]].n

    @property
    def nbytes(self) -> int:
        """Bytes of every accumulator (what a checkpoint holds): per pair, the real one's
        ``cross`` and ``B^T B`` and the null's ``cross`` (``8 * (2 d_a d_b + d_b^2)``: 336 MB at
        gpt2 x gpt2-medium, about 1.0 GB for the seed's 3 pairs)."""
        pairs = sum(self.stats[p].nbytes + self.null[p].nbytes for p in self.pairs)
        return pairs + (self.all_b.nbytes if self.all_b is not None else 0)

    def update(self, acts_a, acts_b) -> PairStream:
        for p in self.pairs:
            xa, xb = acts_a[p[0]], acts_b[p[1]]
            self.stats[p].update(xa, xb)
            self._shuffle[p].update(xa, xb)
        if self.all_b is not None:
            self.all_b.update(
                {la: acts_a[la] for la in self.layers_a},
                {lb: acts_b[lb] for lb in self.all_b_layers},
            )
        self.n_batches += 1
        return self

    def state_dict(self, copy: bool = True) -> dict:
        """Every accumulator's state (``copy=False``: see
        :meth:`~.correlation.StreamingCorrelation.state_dict`)."""
        return {
            "pairs": [list(p) for p in self.pairs],
            "d_a": self.d_a,
            "d_b": self.d_b,
            "seed": self.seed,
            "n_batches": self.n_batches,
            "stats": {pair_key(*p): self.stats[p].state_dict(copy) for p in self.pairs},
            "null": {pair_key(*p): self.null[p].state_dict(copy) for p in self.pairs},
            "all_b_layers": self.all_b_layers,
            "all_b": self.all_b.state_dict(copy) if self.all_b is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        pairs = [tuple(p) for p in state["pairs"]]
        if pairs != self.pairs or (state["d_a"], state["d_b"]) != (self.d_a, self.d_b):
            raise ValueError(
                f"saved stream has pairs {pairs} and widths {state['d_a']} x {state['d_b']}; "
                f"this one {self.pairs} and {self.d_a} x {self.d_b}"
            )
        saved = state.get("all_b_layers")
        if saved != self.all_b_layers:
            raise ValueError(f"saved stream has all_b_layers={saved}, this one {self.all_b_layers}")
        if self.all_b is not None:
            self.all_b.load_state_dict(state["all_b"])
        for p in self.pairs:
            self.stats[p].load_state_dict(state["stats"][pair_key(*p)])
            self.null[p].load_state_dict(state["null"][pair_key(*p)])
            self.null[p]._in_step()  # the null and its real accumulator saw the same batches
        self.n_batches = int(state["n_batches"])


def tokens_fingerprint(inputs: act.TokenInputs) -> str:
    """SHA-256 (16 hex digits) of the token ids and mask: what a resumed stream must match."""
    h = hashlib.sha256(inputs.tokens.to(torch.int64).contiguous().numpy().tobytes())
    h.update(inputs.mask.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def stream_config(
    cfg: AQConfig, inputs: act.TokenInputs, pairs, d_a: int, d_b: int, all_b_layers=None
) -> dict:
    """What a stream's checkpoint stores under ``"config"`` (checked on resume)."""
    return {
        "all_b_layers": None if all_b_layers is None else list(all_b_layers),
        "stream_cka": cfg.stream_cka,
        "model_a": cfg.model_a,
        "model_b": cfg.model_b,
        "pairs": [list(p) for p in pairs],
        "d_a": d_a,
        "d_b": d_b,
        "kind": inputs.kind,
        "n_sequences": inputs.n_sequences,
        "seq_len": inputs.seq_len,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "tokens": tokens_fingerprint(inputs),
        "checkpoint_every": cfg.checkpoint_every,
        "device": str(cfg.device),
        "offline": cfg.offline,
    }


def stream_models(
    model_a,
    model_b,
    inputs: act.TokenInputs,
    pairs,
    cfg: AQConfig,
    run=None,
    resume: bool = False,
    progress: bool = False,
    max_batches: int | None = None,
    all_b_layers=None,
) -> PairStream:
    """Stream both models over ``inputs`` in batches of ``cfg.batch_size`` sequences into a
    :class:`PairStream`. With ``run``: the state is saved as the checkpoint
    ``checkpoints/stream_<kind>/`` every ``cfg.checkpoint_every`` batches and when the stream
    ends; ``resume=True`` continues from the newest one (refused, naming the fields, when it was
    made with other models, layers, tokens or batch size). ``max_batches``: stop after that many
    batches in all (a time-boxed run; a later resume continues). ``all_b_layers``: see
    :class:`PairStream`."""
    d_a, d_b = act.d_mlp(model_a), act.d_mlp(model_b)
    device = get_device(cfg.device)
    stream = PairStream(pairs, d_a, d_b, device, cfg.seed, all_b_layers, cfg.stream_cka)
    config = stream_config(cfg, inputs, stream.pairs, d_a, d_b, all_b_layers)
    tag = f"stream_{inputs.kind}"
    bs = cfg.batch_size
    total = math.ceil(inputs.n_sequences / bs)
    if run is not None and resume:
        state = run.latest_checkpoint(tag, config=config, may_change=STREAM_MAY_CHANGE)
        if state is not None:
            stream.load_state_dict(state["stream"])
    stop = total if max_batches is None else min(total, check_int("max_batches", max_batches, 0))

    def save():
        if run is not None:
            # written at once: no copy of the accumulators (1 GB at t4)
            state = {"config": config, "stream": stream.state_dict(copy=False), "total": total}
            run.save_checkpoint(state, stream.n_batches, tag=tag, keep=1)

    start = stream.n_batches
    if start < stop:
        rest = act.TokenInputs(
            inputs.tokens[start * bs : stop * bs],
            inputs.mask[start * bs : stop * bs],
            inputs.kind,
            inputs.info,
        )
        pairs_iter = act.iter_paired_activations(
            model_a, model_b, rest, stream.layers_a, stream.layers_b_needed, bs, device=device
        )
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=stop, initial=start, desc=f"stream {inputs.kind}", leave=False)
        for xa, xb in pairs_iter:
            stream.update(xa, xb)
            if bar is not None:
                bar.update(1)
            every = cfg.checkpoint_every
            if every and stream.n_batches % every == 0 and stream.n_batches < total:
                save()
        if bar is not None:
            bar.close()
        if stream.n_batches == total or max_batches is not None:
            save()
    return stream


# ----------------------------------------------------------------------------- inputs


def make_inputs(cfg: AQConfig, kind: str, model, texts=None) -> act.TokenInputs:
    """The ``kind`` ('random' or 'text') inputs of ``cfg`` for ``model``'s tokenizer.

    random: ``num_samples`` rows of BOS then ``seq_length - 1`` ids drawn uniformly (seeded)
    from ``[1000, vocab - 1000)`` as the seed did when the vocabulary is larger than 4000 (gpt2,
    pythia), else from the whole vocabulary; special ids never drawn. BOS (position 0) is masked,
    as in the text rows: in GPT-2 and Pythia the first position is an attention sink with
    outlier activations whatever its token, so it is never counted (the seed drew position 0
    as a random token and counted it). A model without a BOS id gets no BOS, and its position 0
    is masked all the same. text: the documents of ``cfg.text_corpus`` (``texts`` when given;
    :func:`load_texts`), packed into rows led by BOS (BOS and document separators excluded),
    tokenized with the model's tokenizer."""
    check_choice("kind", kind, ("random", "text"))
    tok = act.tokenizer_of(model)
    if kind == "random":
        vocab = act.vocab_size(model)
        low, high = (1000, vocab - 1000) if vocab > 4000 else (0, vocab)
        bos = getattr(tok, "bos_token_id", None)
        inputs = act.random_tokens(
            vocab,
            cfg.num_samples,
            cfg.seq_length,
            seed=cfg.seed,
            low=low,
            high=high,
            exclude_ids=act.special_ids(tok),
            bos_id=bos,
        )
        if bos is None:  # no BOS to prepend: the first position is still the sink
            inputs.mask[:, 0] = False
        inputs.info["first_position"] = "BOS, masked" if bos is not None else "masked"
        return inputs
    if tok is None:
        raise ValueError(f"{act.model_name(model)} has no tokenizer: text inputs need one")
    if texts is None:
        texts = load_texts(text_corpus_of(cfg), cfg.seed)
    needed = cfg.num_samples * cfg.seq_length * 8  # characters: ample for any tokenizer
    cut, total = len(texts), 0
    for i, t in enumerate(texts):
        total += len(t)
        if total >= needed:
            cut = i + 1
            break
    try:
        return act.text_tokens(texts[:cut], tok, cfg.num_samples, cfg.seq_length, pack=True)
    except ValueError:
        if cut == len(texts):
            raise
        return act.text_tokens(texts, tok, cfg.num_samples, cfg.seq_length, pack=True)


def load_texts(corpus: str, seed: int = 0) -> list[str]:
    """Documents for the semantic test: the offline corpus in a seeded order, or the articles
    of wikitext's train split (its own order; :func:`akira_nb.text.wikitext_articles`)."""
    from .. import text

    docs = text.load_documents(corpus, "train")
    if corpus == "offline":
        order = np.random.default_rng(seed).permutation(len(docs))
        docs = [docs[i] for i in order]
    return docs


# ----------------------------------------------------------------------------- samples


@dataclass
class Sample:
    """Activations of the first ``n`` sequences with their position axis: ``seq_a[layer]``
    ``[n, T, d_a]`` and ``seq_b[layer]`` ``[n, T, d_b]`` (CPU float32), ``mask [n, T]``."""

    seq_a: dict
    seq_b: dict
    mask: torch.Tensor
    kind: str = "random"

    def rows_a(self, layer) -> torch.Tensor:
        return self.seq_a[layer][self.mask]

    def rows_b(self, layer) -> torch.Tensor:
        return self.seq_b[layer][self.mask]

    @property
    def groups(self) -> torch.Tensor:
        """The sequence of each kept row (Procrustes splits by sequence)."""
        n, t = self.mask.shape
        return torch.arange(n)[:, None].expand(n, t)[self.mask]

    def spectral_rows(self) -> tuple[torch.Tensor, int]:
        """``(rows, start)``: the sequences whose every position from ``start`` on is counted,
        ``start`` being 1 when position 0 is masked in every row (BOS), else 0."""
        start = 0 if bool(self.mask[:, 0].any()) else 1
        rows = torch.nonzero(self.mask[:, start:].all(1)).flatten()
        return rows, start

    def spectral(self, model: str, layer, n: int | None = None) -> torch.Tensor:
        """``[n', T', d]`` for the spectra: the first ``n`` sequences with no masked position
        after the first, from position 1 on when position 0 is BOS (random and text alike).
        Sequences holding a document separator (or padding) are skipped, so that no separator,
        and no jump to another document's context, enters the FFT along the sequence."""
        rows, start = self.spectral_rows()
        if rows.numel() == 0:
            raise ValueError(
                f"no {self.kind} sequence is free of separators and padding after position "
                f"{start}: the spectra need whole rows (use longer documents or shorter rows)"
            )
        seq = (self.seq_a if model == "A" else self.seq_b)[layer]
        return seq[rows[:n], start:]


def sample_models(model_a, model_b, inputs: act.TokenInputs, pairs, n: int, batch_size: int):
    """:class:`Sample` of the first ``n`` sequences of ``inputs`` for both models."""
    n = min(n, inputs.n_sequences)
    la = sorted({p[0] for p in pairs})
    lb = sorted({p[1] for p in pairs})
    tokens = inputs.tokens[:n]
    seq_a = act.sequence_activations(model_a, tokens, la, batch_size, device="cpu")
    seq_b = act.sequence_activations(model_b, tokens, lb, batch_size, device="cpu")
    return Sample(seq_a, seq_b, inputs.mask[:n].clone(), inputs.kind)


# ----------------------------------------------------------------------------- methods


@dataclass
class MethodResult:
    """One method's per-neuron scores for one layer pair, with its nulls and threshold rules.

    ``model``: whose neurons the scores (and AQ indices) are, ``"A"`` or ``"B"``. ``scores
    [n]``; ``nulls``: ``{name: [n_null, n]}``, the same scores when nothing corresponds (the
    ``token-shuffle`` null for every method; the basic method adds the ``neuron-permutation``
    null, index matching against randomly re-ordered B neurons, which is the one that says what
    comparing neurons by index finds between unrelated neurons). ``rules``: the printed
    ``(rule, value)`` pairs, the first being the main one. ``partner [n]``: the matched neuron in
    the other model (None for ``procrustes``). ``extra``: per-method arrays and scalars.
    """

    name: str
    model: str
    scores: np.ndarray
    nulls: dict
    rules: list
    partner: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def count(self, rule: str, value: float | None = None, null: str | None = None) -> AQCount:
        """The AQ count under ``rule``/``value`` beside ``null`` (default: the first null)."""
        null = null or next(iter(self.nulls))
        return count_with_null(
            self.scores, self.nulls[check_choice("null", null, list(self.nulls))], rule, value
        )

    def counts(self, rule: str, value: float | None = None) -> dict:
        """``{null name: AQCount}`` under one rule (the count is the same; the nulls differ)."""
        return {name: self.count(rule, value, name) for name in self.nulls}

    def flags_nothing(self, rule: str, value: float | None = None) -> bool:
        """``rule`` flags nothing in the scores nor in any null (above the same threshold), its
        threshold lying at or above every score: it says nothing about this data."""
        return all(
            c.flags_nothing and c.threshold_above_every_score
            for c in self.counts(rule, value).values()
        )

    def chance(self, rule: str, value: float | None = None) -> float:
        """The largest count expected by chance under ``rule`` over this method's nulls."""
        return max(c.null_count or 0.0 for c in self.counts(rule, value).values())

    def chance_null(self, rule: str, value: float | None = None) -> tuple[str, AQCount]:
        """``(name, count)`` of the null that sets :meth:`chance` (the largest mean count)."""
        counts = self.counts(rule, value)
        name = max(counts, key=lambda k: counts[k].null_count or 0.0)
        return name, counts[name]

    def chance_variance(self, rule: str, value: float | None = None) -> float:
        """The variance of ``count - chance`` under that null
        (:func:`~.thresholds.null_count_variance`)."""
        _, c = self.chance_null(rule, value)
        return null_count_variance(c.null_counts or [0], c.total)

    @property
    def main(self) -> AQCount:
        return self.count(*self.rules[0])

    @property
    def main_chance(self) -> float:
        return self.chance(*self.rules[0])

    @property
    def aq_indices(self) -> np.ndarray:
        return np.flatnonzero(self.main.mask)

    def line(self, rule: str, value: float | None = None) -> str:
        counts = self.counts(rule, value)
        c = next(iter(counts.values()))
        nulls = ", ".join(
            f"{name} null {x.null_count:.1f} ({_reps(len(x.null_counts))})"
            for name, x in counts.items()
        )
        word = chance_word(
            c.count - self.chance(rule, value), self.chance_variance(rule, value) ** 0.5
        )
        out = (
            f"{self.name} [{self.model}'s neurons]: AQ {c.count}/{c.total} "
            f"({100 * c.fraction:.1f}%) above {c.threshold:.4g} ({c.rule_text}); expected by "
            f"chance: {nulls}: {word}"
        )
        if c.rule != "fixed":
            same = ", ".join(f"{np.mean(x.null_counts_same_rule):.1f}" for x in counts.values())
            out += f" ({same} if the rule is re-applied to the null)"
        if c.threshold_above_every_score:
            out += f"; threshold above every score (max {c.max_score:.4g}): the rule flags nothing"
        return out

    def lines(self) -> list[str]:
        return [self.line(rule, value) for rule, value in self.rules]

    def to_dict(self) -> dict:
        counts = []
        for rule, value in self.rules:
            by = self.counts(rule, value)
            c = next(iter(by.values())).to_dict()
            for k in ("null_count", "null_counts", "null_counts_same_rule", "flags_nothing"):
                c.pop(k)
            c["flags_nothing"] = self.flags_nothing(rule, value)
            c["nulls"] = {
                name: {
                    "null_count": x.null_count,
                    "null_counts": [int(v) for v in x.null_counts],
                    "null_counts_same_rule": [int(v) for v in x.null_counts_same_rule],
                }
                for name, x in by.items()
            }
            c["chance"] = self.chance(rule, value)
            counts.append(c)
        return {
            "name": self.name,
            "model": self.model,
            "counts": counts,
            "score_mean": float(self.scores.mean()),
            "score_max": float(self.scores.max()),
            "null_score_mean": {k: float(v.mean()) for k, v in self.nulls.items()},
            "null_score_max": {k: float(v.max()) for k, v in self.nulls.items()},
        }


def _reps(n: int) -> str:
    return f"{n} replicate" + ("" if n == 1 else "s")


def _np(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)


def _fixed_rules(threshold: float) -> list:
    extra = [] if threshold == GURNEE_THRESHOLD else [("fixed", GURNEE_THRESHOLD)]
    return [("fixed", float(threshold))] + extra


def basic_method(stats, null, cfg: AQConfig) -> MethodResult:
    """The seed's basic method on one pair's statistics (see the module docstring), with two
    nulls: the token-shuffled pair, and ``cfg.n_permutations`` neuron permutations of B (neuron
    ``i`` of A against a random B neuron, minus the same rotation baseline). The permutations
    are drawn from ``cfg.seed`` alone, so every input type and layer pair of the same widths
    gets the same ones (``extra["null_perm"]``): the paired null of the universal overlap."""
    real = basic_excess(stats, n_rotations=cfg.n_rotations, seed=cfg.seed)
    fake = basic_excess(null, n_rotations=cfg.n_rotations, seed=cfg.seed)
    m = real.actual.numel()
    corr = stats.corr().cpu()
    g = torch.Generator().manual_seed(cfg.seed + 7)
    perms = torch.stack(
        [torch.randperm(corr.shape[1], generator=g)[:m] for _ in range(cfg.n_permutations)]
    )
    neuron_null = corr[:m].gather(1, perms.T).T - real.baseline[None]  # corr[i, perm_k(i)]
    scores = _np(real.excess)
    return MethodResult(
        "basic",
        "A",
        scores,
        {"token-shuffle": _np(fake.excess)[None], "neuron-permutation": _np(neuron_null)},
        _fixed_rules(cfg.threshold),
        partner=np.arange(m),
        extra={
            "actual": _np(real.actual),
            "baseline": _np(real.baseline),
            "baseline_spread": float(real.baselines.std()),
            "null_perm": perms.numpy(),
            "summary": real.summary(cfg.threshold),
        },
    )


def gurnee_method(stats, null, cfg: AQConfig) -> MethodResult:
    """Gurnee et al.'s max-correlation excess on one pair's statistics."""
    real = gurnee_excess(stats, n_rotations=1, seed=cfg.seed)
    fake = gurnee_excess(null, n_rotations=1, seed=cfg.seed)
    return MethodResult(
        "gurnee",
        "A",
        _np(real.excess),
        {"token-shuffle": _np(fake.excess)[None]},
        _fixed_rules(cfg.threshold),
        partner=real.best_b.numpy(),
        extra={"max_corr": _np(real.actual), "baseline": _np(real.baseline)},
    )


def gurnee_all_layers(stream: PairStream, cfg: AQConfig, threshold: float = GURNEE_THRESHOLD):
    """Gurnee et al.'s universality as they defined it, per compared layer ``la`` of A: each A
    neuron's max correlation over **every** neuron of every layer in ``stream.all_b_layers``
    minus the same max with each B layer Haar-rotated (:func:`~.correlation.gurnee_excess`
    with ``layer_b=None``); universal when above ``threshold`` (their 0.5). Returns
    ``{str(la): {...}}`` with the count and % of A's neurons, their indices, the B layer each
    universal neuron's max lies in, and the arrays ``excess`` and ``best_layer_b``."""
    from collections import Counter

    sc = stream.all_b
    if sc is None:
        raise ValueError("the stream has no accumulator over all of B's layers (all_b_layers)")
    threshold = check_real("threshold", threshold)
    out = {}
    for la in stream.layers_a:
        ex = gurnee_excess(sc, layer_a=la, layer_b=None, n_rotations=1, seed=cfg.seed)
        excess = _np(ex.excess)
        pos, _ = sc.split_b(ex.best_b)
        best_layer = np.asarray(stream.all_b_layers)[pos.numpy()]
        idx = np.flatnonzero(excess > threshold)
        per_layer = Counter(int(v) for v in best_layer[idx])
        out[str(la)] = {
            "layer_a": int(la),
            "layers_b": list(stream.all_b_layers),
            "threshold": float(threshold),
            "n_neurons": int(excess.size),
            "count": int(idx.size),
            "pct": 100.0 * idx.size / excess.size,
            "count_seed_threshold": int((excess > cfg.threshold).sum()),
            "indices": idx.tolist(),
            "best_layer_b_of_aq": {str(k): per_layer[k] for k in sorted(per_layer)},
            "n_tokens": sc.n,
            "excess": excess,
            "best_layer_b": best_layer,
        }
    return out


GURNEE_ALL_ARRAYS = ("excess", "best_layer_b")


def _aligned_rules(cfg: AQConfig, with_half: bool) -> list:
    rules = [(cfg.threshold_method, cfg.rule_value)]
    if with_half and rules[0] != ("fixed", 0.5):
        rules.append(("fixed", 0.5))
    return rules


def ot_method(stats, null, cfg: AQConfig):
    """OT matching of every A neuron to one B neuron; ``(MethodResult, matching, null)``. The
    fixed 0.5 rule printed beside the configured one is the reference's '|corr| > 0.5' count."""
    m = match_neurons(stats.corr(), cfg.match_method)
    m0 = match_neurons(null.corr(), cfg.match_method)
    res = MethodResult(
        "ot",
        "A",
        m.abs_corr,
        {"token-shuffle": m0.abs_corr[None]},
        _aligned_rules(cfg, True),
        partner=m.b_idx,
        extra={"corr": m.corr},
    )
    return res, m, m0


def procrustes_method(xa, xb, groups, cfg: AQConfig):
    """Held-out orthogonal Procrustes on ``cfg.device`` (float32 on CUDA, float64 on the CPU:
    :func:`~.procrustes.procrustes_align`; on the CPU for any other device, which lacks
    ``torch.linalg.svd``); ``(MethodResult over B's neurons, ProcrustesResult)``."""
    device = get_device(cfg.device)
    pr = procrustes_align(
        xa,
        xb,
        train_frac=cfg.train_frac,
        seed=cfg.seed,
        groups=groups,
        n_shuffles=cfg.n_shuffles,
        device=device if device.type == "cuda" else "cpu",
    )
    res = MethodResult(
        "procrustes",
        "B",
        pr.aligned_corr,
        {"token-shuffle": pr.null_aligned_corr},
        _aligned_rules(cfg, True),
    )
    return res, pr


@dataclass
class PairResult:
    """Every method for one layer pair and one input type."""

    input_type: str
    layer_a: int
    layer_b: int
    n_tokens: int
    methods: dict
    cka: dict = field(default_factory=dict)
    matching: dict = field(default_factory=dict)
    procrustes: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return pair_key(self.layer_a, self.layer_b)

    def lines(self) -> list[str]:
        head = (
            f"{self.input_type} tokens, layer {self.layer_a} of A vs layer {self.layer_b} of B "
            f"({self.n_tokens} tokens)"
        )
        out = [head]
        c = self.cka
        if "linear_all_tokens" in c:
            out.append(
                f"  CKA linear {c['linear_all_tokens']:.3f} over all {c['n_tokens_all']} streamed "
                f"tokens (token-shuffled pair: {c['linear_all_tokens_null']:.3f})"
            )
        if "linear" in c:
            out.append(
                f"  CKA linear {c['linear']:.3f}, debiased {c['debiased']:.3f} (token-shuffled "
                f"pair: {c['linear_null']:.3f} / {c['debiased_null']:.3f}; in-memory sample of "
                f"{c['n_tokens']} tokens)"
            )
        if self.matching:
            m = self.matching
            out.append(
                f"  OT ({m['method']}): mean matched |corr| {m['mean_abs_corr']:.3f} (null "
                f"{m['null_mean_abs_corr']:.3f}), cost {m['total_cost']:.3f}, one-to-one "
                f"{m['one_to_one']}"
            )
        if self.procrustes:
            p = self.procrustes
            out.append(
                f"  Procrustes: held-out error {p['test_error']:.3f} (train {p['train_error']:.3f},"
                f" token-shuffle null {p['null_error']:.3f}; 0 perfect, 1 = predicting 0; "
                f"in-memory sample: {p['n_train']} train / {p['n_test']} held-out tokens)"
            )
        for m in self.methods.values():
            out += [f"  {line}" for line in m.lines()]
        return out

    def aligned_lines(self) -> list[str]:
        """:meth:`lines` of the aligned method only: CKA, OT, Procrustes and their counts."""
        skip = [
            f"  {line}"
            for name in ("basic", "gurnee")
            if name in self.methods
            for line in self.methods[name].lines()
        ]
        return [line for line in self.lines() if line not in skip]

    def to_dict(self) -> dict:
        return {
            "input_type": self.input_type,
            "layer_a": self.layer_a,
            "layer_b": self.layer_b,
            "n_tokens": self.n_tokens,
            "cka": self.cka,
            "matching": self.matching,
            "procrustes": self.procrustes,
            "methods": {k: m.to_dict() for k, m in self.methods.items()},
        }


def analyse_pair(
    stats: StreamingCorrelation,
    null: StreamingCorrelation,
    cfg: AQConfig,
    xa=None,
    xb=None,
    groups=None,
    input_type: str = "random",
    layers: tuple = (0, 0),
    stages: Stages | None = None,
) -> PairResult:
    """Every method on one layer pair: basic, gurnee and ot from the streamed statistics; CKA and
    procrustes from the in-memory sample ``xa [n, d_a]``, ``xb [n, d_b]`` (skipped when None).
    ``stages``: a :class:`Stages` that times each method."""
    stage = stages or Stages(None)
    with stage("rotations (basic + gurnee)"):
        methods = {"basic": basic_method(stats, null, cfg)}
        methods["gurnee"] = gurnee_method(stats, null, cfg)
    with stage("ot"):
        ot_res, m, m0 = ot_method(stats, null, cfg)
    methods["ot"] = ot_res
    matching = {
        **m.summary(),
        "null_mean_abs_corr": float(m0.abs_corr.mean()),
        "null_total_cost": m0.total_cost,
    }
    cka, proc = {}, {}
    if stats.track_a_cov:  # linear CKA over every streamed token, from the sums
        cka.update(
            linear_all_tokens=linear_cka_from_stats(stats),
            linear_all_tokens_null=linear_cka_from_stats(null),
            n_tokens_all=int(stats.n),
        )
    if xa is not None and xb is not None:
        xa, xb = torch.as_tensor(xa), torch.as_tensor(xb)
        g = torch.Generator().manual_seed(cfg.seed)
        with stage("cka"):  # B's rows shuffled as permute_rows(xb, g) shuffles them
            perm = torch.randperm(len(xb), generator=g)
            cka |= cka_scores(xa, xb, perm, device=get_device(cfg.device))
            cka["n_tokens"] = int(xa.shape[0])
        with stage("procrustes + null"):
            methods["procrustes"], pr = procrustes_method(xa, xb, groups, cfg)
        proc = pr.summary()
        proc["null_errors"] = list(pr.null_errors)
    return PairResult(
        input_type, int(layers[0]), int(layers[1]), stats.n, methods, cka, matching, proc
    )


# ----------------------------------------------------------------------------- spectra


def spectral_profile(seq_acts, n_bands: int = 7) -> dict:
    """Per-neuron spectra along the sequence of ``seq_acts [n_seq, T, d]``.

    Returns ``freqs [K]`` (``k / T``, ``k = 0 .. T//2 - 1``), ``power [K, d]`` (``|FFT|^2``
    averaged over sequences), ``centroid_dc`` and ``centroid`` ``[d]`` (with and without the DC
    bin; cycles per token; 0 for a neuron without power), ``band_share [n_bands, d]`` (share of
    the non-DC power in each equal-width band of (0, 0.5)), ``band [d]`` (the band of the
    no-DC centroid) and ``band_edges``."""
    x = torch.as_tensor(seq_acts, dtype=torch.float64)
    if x.ndim != 3 or x.shape[1] < 4:
        raise ValueError(f"seq_acts has shape {tuple(x.shape)}; expected [n_seq, T >= 4, d]")
    n_bands = check_int("n_bands", n_bands, low=1)
    t = x.shape[1]
    k = t // 2
    power = torch.fft.fft(x, dim=1)[:, :k].abs().pow(2).mean(0)  # [K, d]
    freqs = torch.arange(k, dtype=torch.float64) / t
    tot_dc = power.sum(0)
    tot = power[1:].sum(0)
    safe = lambda v: torch.where(v > 0, v, torch.ones_like(v))
    centroid_dc = torch.where(tot_dc > 0, (freqs[:, None] * power).sum(0) / safe(tot_dc), 0.0)
    centroid = torch.where(tot > 0, (freqs[1:, None] * power[1:]).sum(0) / safe(tot), 0.0)
    edges = torch.linspace(0.0, 0.5, n_bands + 1, dtype=torch.float64)
    band_of_bin = (torch.bucketize(freqs[1:], edges[1:-1], right=True)).clamp(max=n_bands - 1)
    onehot = torch.nn.functional.one_hot(band_of_bin, n_bands).to(torch.float64)  # [K-1, B]
    band_power = onehot.T @ power[1:]  # [B, d]
    band_share = torch.where(tot > 0, band_power / safe(tot), 0.0)
    band = torch.bucketize(centroid, edges[1:-1], right=True).clamp(max=n_bands - 1)
    return {
        "freqs": freqs.numpy(),
        "power": power.numpy(),
        "centroid_dc": centroid_dc.numpy(),
        "centroid": centroid.numpy(),
        "band_share": band_share.numpy(),
        "band": band.numpy(),
        "band_edges": edges.numpy(),
        "n_sequences": int(x.shape[0]),
        "seq_len": t,
    }


def compare_spectra(profile: dict, aq_indices, n_bands: int | None = None) -> dict:
    """AQ vs non-AQ neurons of one profile: medians, means, Mann-Whitney U p-values of the
    centroids with and without DC and of the low-band share (the lowest 3 of 7 bands), band
    counts, and whether the AQ neurons are lower-frequency (:data:`SPECTRAL_RULE`)."""
    from scipy.stats import mannwhitneyu

    d = len(profile["centroid"])
    idx = np.asarray(aq_indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= d):
        raise ValueError(f"AQ indices must lie in [0, {d}) (the profiled model's neurons)")
    is_aq = np.zeros(d, dtype=bool)
    is_aq[idx] = True
    n_bands = n_bands or profile["band_share"].shape[0]
    low = max(1, round(3 * n_bands / 7))
    out = {"n_aq": int(is_aq.sum()), "n_other": int((~is_aq).sum()), "n_neurons": d}
    out["aq_indices"] = np.flatnonzero(is_aq).tolist()
    low_share = profile["band_share"][:low].sum(0)
    for key, values in (
        ("centroid", profile["centroid"]),
        ("centroid_dc", profile["centroid_dc"]),
        ("low_band_share", low_share),
    ):
        a, b = values[is_aq], values[~is_aq]
        entry = {
            "aq_median": float(np.median(a)) if a.size else None,
            "other_median": float(np.median(b)) if b.size else None,
            "aq_mean": float(a.mean()) if a.size else None,
            "other_mean": float(b.mean()) if b.size else None,
            "p_value": None,
        }
        if a.size >= 2 and b.size >= 2:
            entry["p_value"] = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        out[key] = entry
    share = profile["band_share"]
    out["band_share_aq"] = share[:, is_aq].mean(1).tolist() if is_aq.any() else None
    out["band_share_other"] = share[:, ~is_aq].mean(1).tolist() if (~is_aq).any() else None
    bands = profile["band"]
    out["band_counts_aq"] = np.bincount(bands[is_aq], minlength=n_bands).tolist()
    out["band_counts_other"] = np.bincount(bands[~is_aq], minlength=n_bands).tolist()
    c = out["centroid"]
    if c["p_value"] is None:
        out["lower_frequency"] = None
        out["verdict"] = f"not enough AQ neurons ({out['n_aq']}) for a test"
    else:
        lower = c["aq_median"] < c["other_median"] and c["p_value"] < 0.05
        out["lower_frequency"] = bool(lower)
        direction = "lower" if c["aq_median"] < c["other_median"] else "higher"
        out["verdict"] = (
            f"AQ median centroid {c['aq_median']:.4f} vs {c['other_median']:.4f} "
            f"({direction}, p = {c['p_value']:.2g}): "
            + ("lower-frequency" if lower else "not lower-frequency")
        )
    return out


def spectral_analysis(seq_acts: dict, method: MethodResult, n_bands: int = 7) -> dict:
    """The spectra of the neurons ``method``'s AQ indices name, from **that** model's
    activations: ``seq_acts = {"A": [n, T, d_a], "B": [n, T, d_b]}``."""
    model = check_choice("method.model", method.model, ("A", "B"))
    if model not in seq_acts:
        raise ValueError(
            f"{method.name}'s AQ indices are {model}'s neurons: pass seq_acts[{model!r}]"
        )
    profile = spectral_profile(seq_acts[model], n_bands)
    if profile["centroid"].shape[0] != len(method.scores):
        raise ValueError(
            f"{method.name} scores {len(method.scores)} neurons of {model}; its activations "
            f"have {profile['centroid'].shape[0]}"
        )
    out = compare_spectra(profile, method.aq_indices, n_bands)
    out.update(
        method=method.name,
        model=model,
        profile=profile,
        n_sequences=profile["n_sequences"],
        seq_len=profile["seq_len"],
    )
    return out


# ----------------------------------------------------------------------------- whole pipeline


@dataclass
class AQResult:
    """Everything :func:`run_aq` measured. ``pairs[input_type][pair_key]``: :class:`PairResult`;
    ``cka_matrix[input_type]``: ``(matrix, layers_a, layers_b)``; ``universal[method][key]``:
    the overlap with its chance level; ``spectral[method][key]``: :func:`spectral_analysis`;
    ``gurnee_all[input_type][layer_a]``: :func:`gurnee_all_layers` (text only)."""

    config: AQConfig
    layer_pairs: list
    pairs: dict
    cka_matrix: dict = field(default_factory=dict)
    universal: dict = field(default_factory=dict)
    spectral: dict = field(default_factory=dict)
    gurnee_all: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)

    def method_pct(self, input_type: str, method: str, above_null: bool = True) -> float | None:
        """The main AQ count as a % of the neurons over every compared layer pair; with
        ``above_null``, the count minus the count expected by chance over the same pairs
        (:meth:`chance_summary`: negative when the whole set is below chance)."""
        s = self.chance_summary(input_type, method)
        if s is None:
            return None
        return s["excess_pct"] if above_null else s["pct"]

    def _methods(self, kind: str, method: str) -> list:
        return [p.methods[method] for p in self.pairs.get(kind, {}).values() if method in p.methods]

    def chance_summary(
        self, kind: str, method: str, rule: str | None = None, value: float | None = None
    ) -> dict | None:
        """A method's count beside chance over every compared layer pair, under ``rule`` (None:
        the method's main rule): the count, neurons, chance (per pair the largest null mean,
        :meth:`MethodResult.chance`, summed), ``excess = count - chance`` and its % of the
        neurons, the sd of the excess under the null, the word (:data:`CHANCE_RULE`: at /
        above / below chance) and the fewest null replicates. None when not run."""
        ms = self._methods(kind, method)
        if not ms:
            return None
        if rule is None:
            rule, value = ms[0].rules[0]
        counts = [m.count(rule, value) for m in ms]
        count, total = sum(c.count for c in counts), sum(c.total for c in counts)
        chance = float(sum(m.chance(rule, value) for m in ms))
        sd = math.sqrt(sum(m.chance_variance(rule, value) for m in ms))
        return {
            "rule": counts[0].rule_text,
            "count": count,
            "total": total,
            "pct": 100.0 * count / total,
            "chance": chance,
            "excess": count - chance,
            "excess_pct": 100.0 * (count - chance) / total,
            "sd": sd,
            "word": chance_word(count - chance, sd),
            "n_null": min(len(m.chance_null(rule, value)[1].null_counts) for m in ms),
        }

    def verdict(self, kind: str, method: str) -> str | None:
        """The seed's word for the % above chance (:meth:`chance_summary`) when the count is
        above chance, else ``"at chance"`` or ``"below chance"``; :data:`FLAGS_NOTHING` where
        the main rule is one derived from the scores' shape (statistical, percentile) and flags
        nothing in the data nor in the null at every layer pair (its threshold above every
        score), so that a rule artefact is not read as a finding. None when not run."""
        ms = self._methods(kind, method)
        if not ms:
            return None
        if all(m.rules[0][0] != "fixed" and m.flags_nothing(*m.rules[0]) for m in ms):
            return FLAGS_NOTHING
        s = self.chance_summary(kind, method)
        return interpret(s["excess_pct"]) if s["word"] == "above chance" else s["word"]

    def other_rule_counts(self, kind: str, method: str) -> str:
        """``"240 of 512 above fixed 0.5 (chance 0.0: above chance)"`` for every rule beside
        the main one, summed over the layer pairs."""
        ms = self._methods(kind, method)
        parts = []
        for rule, value in ms[0].rules[1:] if ms else []:
            s = self.chance_summary(kind, method, rule, value)
            parts.append(
                f"{s['count']} of {s['total']} above {s['rule']} (chance {s['chance']:.1f}: "
                f"{s['word']})"
            )
        return "; ".join(parts)

    def verdicts(self) -> list[str]:
        """One line per input type and method: the seed's interpretation of the AQ %, with the
        counts under the other rules beside it."""
        lines = [f"rule: {INTERPRETATION_RULE}"]
        for kind in self.pairs:
            for method in METHODS:
                raw = self.method_pct(kind, method, above_null=False)
                if raw is None:
                    continue
                rule = self.rule_of(kind, method)
                word = self.verdict(kind, method)
                if word == FLAGS_NOTHING:
                    line = f"{kind} / {method} ({rule}): {word}: no verdict from this rule"
                else:
                    line = (
                        f"{kind} / {method} ({rule}): {raw:.1f}% AQ ({interpret(raw)} as the seed "
                        f"reads it); {chance_text(self.chance_summary(kind, method))} -> {word}"
                    )
                others = self.other_rule_counts(kind, method)
                lines.append(line + (f"; {others}" if others else ""))
        return lines

    def rule_of(self, kind: str, method: str) -> str:
        first = next(iter(self.pairs[kind].values()))
        return first.methods[method].main.rule_text

    def lines(self) -> list[str]:
        out = []
        for by in self.pairs.values():
            for p in by.values():
                out += p.lines()
        out += self.universal_lines()
        out += self.spectral_lines()
        out += self.gurnee_lines()
        return out

    def gurnee_lines(self) -> list[str]:
        out = []
        for kind, by in self.gurnee_all.items():
            for la, g in by.items():
                where = ", ".join(f"L{k} {v}" for k, v in g["best_layer_b_of_aq"].items())
                out.append(
                    f"gurnee over all of B's layers ({kind} tokens): layer {la} of A vs B's "
                    f"layers {g['layers_b'][0]}-{g['layers_b'][-1]}: {g['count']}/"
                    f"{g['n_neurons']} ({g['pct']:.2f}%) with excess > {g['threshold']:g}"
                    + (f" (their max in B's {where})" if where else "")
                    + f"; {g['count_seed_threshold']} above {self.config.threshold:g}"
                )
        return out

    def universal_lines(self) -> list[str]:
        return [
            universal_line(method, key, u)
            for method, by in self.universal.items()
            for key, u in by.items()
        ]

    def spectral_lines(self) -> list[str]:
        out = []
        for method, by in self.spectral.items():
            for key, s in by.items():
                out.append(
                    f"spectra {method} [{s['model']}'s neurons on {s['model']}'s activations, "
                    f"{s['input_type']} tokens, {s['n_sequences']} sequences of {s['seq_len']} "
                    f"positions without BOS or separators] layers {key}: {s['n_aq']} AQ; "
                    f"{s['verdict']}"
                )
        return out

    def to_dict(self) -> dict:
        spectral = {
            m: {k: {kk: v for kk, v in s.items() if kk != "profile"} for k, s in by.items()}
            for m, by in self.spectral.items()
        }
        return {
            "config": self.config.to_dict(),
            "layer_pairs": [list(p) for p in self.layer_pairs],
            "pairs": {k: {kk: p.to_dict() for kk, p in by.items()} for k, by in self.pairs.items()},
            "cka_matrix": {
                k: {"matrix": m.tolist(), "layers_a": la, "layers_b": lb}
                for k, (m, la, lb) in self.cka_matrix.items()
            },
            "universal": self.universal,
            "spectral": spectral,
            "gurnee_all": {
                k: {
                    la: {kk: v for kk, v in g.items() if kk not in GURNEE_ALL_ARRAYS}
                    for la, g in by.items()
                }
                for k, by in self.gurnee_all.items()
            },
            "models": self.models,
            "inputs": self.inputs,
            "verdicts": self.verdicts(),
            "chance": {
                kind: {
                    m: [self.chance_summary(kind, m, r, v) for r, v in ms[0].rules]
                    for m in METHODS
                    if (ms := self._methods(kind, m))
                }
                for kind in self.pairs
            },
            "stages": self.stages,
        }


def check_models(cfg: AQConfig, model_a, model_b) -> list[tuple[int, int]]:
    """The layer pairs for two loaded models (their layers checked; same tokenizer)."""
    act.check_layers(model_a, list(cfg.layers))
    act.check_same_tokenizer(model_a, model_b)
    pairs = pair_layers(cfg.layers, act.n_layers(model_a), act.n_layers(model_b), cfg.layer_pairing)
    act.check_layers(model_b, sorted({lb for _, lb in pairs}))
    for m in (model_a, model_b):
        n_ctx = getattr(getattr(m, "cfg", None), "n_ctx", None)
        if isinstance(n_ctx, int) and cfg.seq_length > n_ctx:
            raise ValueError(f"seq_length={cfg.seq_length} is over {act.model_name(m)}'s {n_ctx}")
    return pairs


def load_models(cfg: AQConfig):
    """Boot ``cfg.model_a`` and ``cfg.model_b`` (Hub ids, local folders or ``tiny:<seed>``;
    offline, the stand-ins of the Hub ones, :func:`offline_models`)."""
    from .models import _quiet_hf, load_model

    with _quiet_hf():
        names = {"model_a": cfg.model_a, "model_b": cfg.model_b}
        if cfg.offline:
            names.update({k: str(v[2]) for k, v in offline_models(cfg).items()})
        return load_model(names["model_a"], cfg.device), load_model(names["model_b"], cfg.device)


def run_aq(
    cfg: AQConfig,
    model_a=None,
    model_b=None,
    run=None,
    resume: bool = False,
    progress: bool = False,
    log=None,
    texts=None,
    stages: Stages | None = None,
) -> AQResult:
    """The whole comparison of ``cfg`` (see the module docstring); returns an :class:`AQResult`.

    Models not given are loaded from ``cfg``. ``run``/``resume``: the streams checkpoint into
    and resume from the run folder. ``log``: called with each printable line as it is ready.
    ``texts``: documents for the text inputs (default: ``cfg.text_corpus``). ``stages``: the
    :class:`Stages` that times the run (default a new one); :attr:`AQResult.stages` holds it."""
    from ..runtime import cpu_threads

    cfg.validate()
    device = get_device(cfg.device)
    stage = stages if stages is not None else Stages(device)
    if model_a is None or model_b is None:
        with stage("load models"):
            model_a, model_b = load_models(cfg)
    pairs = check_models(cfg, model_a, model_b)
    log = log or (lambda line: None)
    result = AQResult(cfg, pairs, {})
    result.models = {"A": act.describe(model_a), "B": act.describe(model_b)}
    with cpu_threads(cfg.cpu_threads, device):
        for kind in cfg.input_types:
            with stage("inputs"):
                inputs = make_inputs(cfg, kind, model_a, texts)
            result.inputs[kind] = {
                **inputs.info,
                "n_valid_tokens": inputs.n_valid,
                "fingerprint": tokens_fingerprint(inputs),
            }
            all_b = None
            if cfg.gurnee_all_layers and kind == "text":  # Gurnee et al. measured on text
                all_b = list(range(act.n_layers(model_b)))
            with stage("stream"):
                stream = stream_models(
                    model_a, model_b, inputs, pairs, cfg, run, resume, progress, all_b_layers=all_b
                )
            if stream.all_b is not None:
                with stage("gurnee over all of B's layers"):
                    result.gurnee_all[kind] = gurnee_all_layers(stream, cfg)
            with stage("sample"):
                sample = sample_models(
                    model_a, model_b, inputs, pairs, cfg.sample_sequences, cfg.batch_size
                )
            result.samples[kind] = sample
            by = {}
            for la, lb in pairs:
                pr = analyse_pair(
                    stream.stats[(la, lb)],
                    stream.null[(la, lb)],
                    cfg,
                    sample.rows_a(la),
                    sample.rows_b(lb),
                    sample.groups,
                    kind,
                    (la, lb),
                    stage,
                )
                by[pr.key] = pr
                for line in pr.lines():
                    log(line)
            del stream  # the next input type's accumulators replace these (1 GB at t4)
            result.pairs[kind] = by
            rows_a = {la: sample.rows_a(la) for la in sorted({p[0] for p in pairs})}
            rows_b = {lb: sample.rows_b(lb) for lb in sorted({p[1] for p in pairs})}
            with stage("cka"):
                result.cka_matrix[kind] = cka_matrix(rows_a, rows_b, "linear", device=device)
        clear_rotations()
        with stage("universal + spectra"):
            add_universal(result)
            add_spectral(result)
    result.stages = stage.out
    lines = result.universal_lines() + result.spectral_lines() + result.gurnee_lines()
    for line in lines + result.verdicts():
        log(line)
    return result


def universal_overlap(a: MethodResult, b: MethodResult) -> dict:
    """The universal AQ of one method and layer pair: the random-token AQ set ``a`` ∩ the text AQ
    set ``b`` (the same model's neurons), beside its chance level from the paired null
    (:data:`UNIVERSAL_NULL`, :func:`~.thresholds.paired_null_overlap`: replicate ``i`` of
    both input types made by the same null, each thresholded by the method's main rule) and,
    labelled as such, the independence bound (hypergeometric, :func:`~.thresholds.overlap_null`),
    which ignores that per-neuron properties carry over between input types."""
    name = UNIVERSAL_NULL[a.name]
    if a.name == "basic" and not np.array_equal(a.extra["null_perm"], b.extra["null_perm"]):
        raise ValueError("the basic method's neuron permutations differ between the input types")
    rule, value = a.rules[0]
    indices = sorted(set(a.aq_indices.tolist()) & set(b.aq_indices.tolist()))
    paired = paired_null_overlap(a.nulls[name], b.nulls[name], len(indices), rule, value)
    independent = overlap_null(len(a.scores), a.aq_indices, b.aq_indices)
    out = {
        "observed": len(indices),
        "n_a": independent["n_a"],
        "n_b": independent["n_b"],
        "n_total": independent["n_total"],
        "rule": a.main.rule_text,
        "null": name,
        "n_null": paired["n_null"],
        "chance": paired["expected"],
        "p_value": paired["p_value"],
        "null_overlaps": paired["null_overlaps"],
        "independent_expected": independent["expected"],
        "independent_p_value": independent["p_value"],
        "indices": indices,
        "model": a.model,
    }
    out["verdict"] = universal_word(out)
    return out


def chance_text(s: dict) -> str:
    """``"149 of 512 against 155.9 expected by chance: -6.9 (-1.3% of neurons), at chance (2
    sd = 21.0)"``: one :meth:`AQResult.chance_summary`."""
    return (
        f"{s['count']} of {s['total']} against {s['chance']:.1f} expected by chance: "
        f"{s['excess']:+.1f} ({s['excess_pct']:+.1f}% of neurons), {s['word']} "
        f"({AT_CHANCE_SDS:g} sd = {AT_CHANCE_SDS * s['sd']:.1f})"
    )


def universal_word(u: dict) -> str:
    """The universal overlap against its paired null: ``"not measurable: null of N
    replicates (needs >= 19)"`` below :data:`~.thresholds.MIN_NULL_REPLICATES` replicates
    (its p-value cannot reach 0.05); else ``"above chance"`` when p < 0.05, ``"below chance"``
    when the overlap lies more than 2 sd of the null overlaps below their mean, else
    ``"at chance"``."""
    few = too_few_replicates(u["n_null"])
    if few:
        return few
    if u["p_value"] < 0.05:
        return "above chance"
    sd = math.sqrt(null_count_variance(u["null_overlaps"], u["n_total"]))
    return "below chance" if u["observed"] < u["chance"] - AT_CHANCE_SDS * sd else "at chance"


def universal_line(method: str, key: str, u: dict) -> str:
    """One printable line of :func:`universal_overlap`'s result."""
    word = universal_word(u)
    reps = _reps(u["n_null"])
    null = (
        f"({reps}): {word}, no p-value"
        if word.startswith("not measurable")
        else (f"({reps}, p = {u['p_value']:.2g}): {word}")
    )
    return (
        f"universal {method} [{u['model']}'s neurons] layers {key}: {u['observed']} in both "
        f"(random {u['n_a']}, text {u['n_b']} of {u['n_total']}; {u['rule']}); chance "
        f"{u['chance']:.1f} from the paired {u['null']} null {null}; independence bound "
        f"(hypergeometric, ignores per-neuron properties): {u['independent_expected']:.1f}, "
        f"p = {u['independent_p_value']:.2g}"
    )


def add_universal(result: AQResult) -> None:
    """Structural (random) ∩ semantic (text) AQ per method and pair, with the chance overlap
    (:func:`universal_overlap`)."""
    if not {"random", "text"} <= set(result.pairs):
        return
    for method in METHODS:
        by = {}
        for key, pr in result.pairs["random"].items():
            other = result.pairs["text"][key]
            if method not in pr.methods or method not in other.methods:
                continue
            by[key] = universal_overlap(pr.methods[method], other.methods[method])
        if by:
            result.universal[method] = by


def add_spectral(result: AQResult) -> None:
    """Spectral analysis of every method's structural AQ (random tokens; the text sample when
    only text was run), each on the activations of the model its indices name."""
    cfg = result.config
    kind = "random" if "random" in result.samples else "text"
    sample = result.samples[kind]
    for method in METHODS:
        by = {}
        for (la, lb), (key, pr) in zip(result.layer_pairs, result.pairs[kind].items()):
            if method not in pr.methods:
                continue
            seq = {
                "A": sample.spectral("A", la, cfg.spectral_sequences),
                "B": sample.spectral("B", lb, cfg.spectral_sequences),
            }
            s = spectral_analysis(seq, pr.methods[method], cfg.n_bands)
            s["input_type"] = kind
            by[key] = s
        result.spectral[method] = by


# ----------------------------------------------------------------------------- ground truth


def frequency_agreement(freq_a, freq_b, partner, mask=None) -> dict:
    """How often matched neurons share their key frequency, against chance.

    ``freq_a [d_a]``, ``freq_b [d_b]``: each neuron's dominant frequency (e.g.
    :func:`akira_nb.grokking.fourier.neuron_frequencies`); ``partner [d_a]``: A neuron ``i``'s
    matched B neuron; ``mask [d_a]``: which A neurons to count (default all). Chance: two
    neurons drawn independently from the two models' frequency distributions (of the counted A
    neurons and of all B neurons) share one with probability ``sum_k P_A(k) P_B(k)``; the
    one-sided binomial p-value says whether the observed rate is above it."""
    from scipy.stats import binomtest

    fa, fb = np.asarray(freq_a), np.asarray(freq_b)
    partner = np.asarray(partner, dtype=np.int64)
    mask = np.ones(len(fa), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    same = fa[mask] == fb[partner[mask]]
    k = int(same.sum())
    top = int(max(fa.max(initial=0), fb.max(initial=0))) + 1
    pa = np.bincount(fa[mask], minlength=top) / max(n, 1)
    pb = np.bincount(fb, minlength=top) / len(fb)
    chance = float((pa * pb).sum())
    p = float(binomtest(k, n, chance, alternative="greater").pvalue) if n and chance < 1 else None
    return {"n": n, "same": k, "rate": k / n if n else None, "chance": chance, "p_value": p}


__all__ = [
    "STANDIN_SEEDS",
    "Stages",
    "check_offline_model",
    "offline_models",
    "offline_replacements",
    "stage_lines",
    "text_corpus_of",
    "AQConfig",
    "AQResult",
    "CHANCE_RULE",
    "FLAGS_NOTHING",
    "MIN_NULL_REPLICATES",
    "INPUT_TYPES",
    "INTERPRETATION",
    "INTERPRETATION_RULE",
    "METHODS",
    "METHOD_MODEL",
    "MethodResult",
    "PAIRINGS",
    "PairResult",
    "PairStream",
    "RULES",
    "SPECTRAL_RULE",
    "Sample",
    "UNIVERSAL_NULL",
    "analyse_pair",
    "basic_method",
    "chance_text",
    "check_models",
    "compare_spectra",
    "frequency_agreement",
    "gurnee_all_bytes",
    "gurnee_all_layers",
    "gurnee_method",
    "interpret",
    "load_models",
    "make_inputs",
    "ot_method",
    "pair_key",
    "pair_layers",
    "procrustes_method",
    "run_aq",
    "sample_models",
    "spectral_analysis",
    "spectral_profile",
    "stream_models",
    "tokens_fingerprint",
    "universal_line",
    "universal_overlap",
    "universal_word",
]
