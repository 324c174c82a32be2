"""Experiment 000 (Action Quanta) in one call: size presets, the comparison of a model pair
(:func:`akira_nb.alignment.aq.run_aq`), the grokking ground truth, the reference's reported
numbers beside the measured ones, claims with verdicts, results.json and figures.

Used by the notebook ``notebooks/000_action_quanta.py`` and by
``python -m akira_nb action_quanta``.

Sizes (:data:`PRESETS`; None = the seed's protocol, :data:`SEED_PROTOCOL`)
---------------------------------------------------------------------------
- ``tiny``: the offline tiny pair (two 2-layer GPT-2-style models trained with seeds 0 and 1,
  :func:`akira_nb.alignment.models.tiny_pair`), both layers, 64 x 64 tokens of each input type.
- ``t4``: the seed's protocol: gpt2 vs gpt2-medium (or pythia-70m vs pythia-160m, at the seed's
  layers that exist in pythia-70m: 3 and 5), layers 3 / 5 / 7 by index, 500 x 64 random tokens
  and 500 x 64 tokens of wikitext-2. The stream of each input type (32 batches of 16) is saved
  every 16 batches and at its end: 2 saves of about 1.0 GB each (per pair: the real
  accumulator's cross-product and B's second moment, ``8 (3072 x 4096 + 4096^2)`` bytes, and
  the null's cross-product, ``8 x 3072 x 4096``: 336 MB; :attr:`~.aq.PairStream.nbytes`).
- ``a100``: a larger protocol: every layer of A paired by relative depth, 40,000 x 64 tokens
  (2.56 M) of each input type (text from wikitext-103); any pair of
  :data:`akira_nb.alignment.models.PAIRS`, including the known-answer pairs (pythia-160m vs its
  seed re-trainings, the Stanford CRFM GPT-2 seeds), where Gurnee et al. found 1-5 % universal
  neurons. Its checkpoints (every 200 of 625 batches, and at the end) hold about 4.9 GB each at
  gpt2 x gpt2-medium (12 pairs of 336 MB, plus A's second moment for the streamed CKA, 75 MB
  per pair); with Gurnee's max over all of B's layers (known-answer pairs of 12 layers) the
  text stream's hold 11.8 GB more.

Offline (``plan(size, offline=True)``, ``--offline``; :attr:`~.aq.AQConfig.offline`): every
Hub model becomes randomly initialised weights of its architecture (model A seeded 0, B seeded
1; :mod:`akira_nb.standins`) with a tokenizer of the same vocabulary size, and wikitext the
kit's offline corpus: the t4 plan runs at its real widths (3072 x 4096 neurons), 64 positions
and 50257 ids with no download. The run prints :data:`akira_nb.standins.BANNER` first
(:func:`standins_record`), records ``"standins"`` in results.json, and every verdict against
the seed reads :data:`akira_nb.standins.NOT_COMPARABLE`; offline is part of the run's config,
so a resume cannot change it. ``results.json`` ``aq.stages`` holds each stage's wall and CPU
seconds and peak memory (:class:`~.aq.Stages`), offline or not.

Beyond the seed (:class:`GrokConfig`, :func:`run_grokking`): two grokking models (a + b mod p,
:mod:`akira_nb.grokking`) trained with different seeds. Their MLP neurons have known key
frequencies (:func:`akira_nb.grokking.fourier.neuron_frequencies`), so whether OT-matched
neurons share their key frequency, against the rate expected by chance, is a ground truth that
no language model offers.

Claims (:func:`claims`): the reference's reported numbers (inventory section 3.6: basic method,
aligned method, universal overlap, spectra) and Gurnee et al.'s known answer, each with its rule
and a verdict: "holds", "does not hold", "not comparable" (another pair or protocol than the
claim's: :func:`comparability` says why; ``computed_verdict`` beside it gives the rule on this
run's own numbers), "not measurable: <why>" (e.g. a paired null of fewer than 19 replicates) or
"not run"; each with its ``measured_value`` and ``unit``. Every count is read against the
count expected by chance over the whole set of compared layer pairs
(:meth:`~.aq.AQResult.chance_summary`). ``results.json`` and the last log line give the run's
CPU-seconds (``time.process_time``) beside its wall seconds.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .. import runtime, standins
from ..claims import claim_lines
from ..runtime import cost, cost_line  # noqa: F401  (re-exported for the notebook)
from . import aq
from .models import PAIRS, get_pair

EXPERIMENT = "000_action_quanta"
TITLE = "000 Action Quanta: MLP neuron correspondence across language models"

# ----------------------------------------------------------------------------- the reference

# The reference's reported numbers (inventory section 3.6; gpt2 vs gpt2-medium, layer L of A vs
# layer L of B, 500 x 64 tokens, neurons truncated to 3072, seed 42). Printed beside what this
# kit measures; never used as a result.
REFERENCE = {
    "basic": {  # excess > 0.3 (count, %)
        "random": {3: (15, 0.5), 5: (13, 0.4), 7: (10, 0.3)},
        "text": {3: (2, 0.1), 5: (7, 0.2), 7: (5, 0.2)},
    },
    "basic_excess": {  # random tokens: mean, std, max, min of the excess (read from its PNGs)
        3: (0.0102, 0.0750, 0.7966, -0.5016),
        5: (0.0069, 0.0671, 0.7557, -0.8505),
        7: (0.0135, 0.0559, 0.6094, -0.2205),
    },
    "cka": {
        "random": {3: 0.7179, 5: 0.6853, 7: 0.5287},
        "text": {3: 0.4560, 5: 0.8036, 7: 0.7491},
    },
    "ot_above_half": {  # of the 100 highest-variance neurons of each model
        "random": {3: 17, 5: 12, 7: 3},
        "text": {3: 41, 5: 23, 7: 13},
    },
    "procrustes_error_random": {3: 0.8941, 5: 1.0027, 7: 1.0228},  # fitted and scored in-sample
    "procrustes_aq": {  # aligned corr > mean + 2 std (B's neurons 0..3071)
        "random": {3: 138, 5: 111, 7: 106},
        "text": {3: 118, 5: 103, 7: 93},
    },
    "procrustes_threshold": {
        "random": {3: 0.6322, 5: 0.6488, 7: 0.6030},
        "text": {3: 0.7985, 5: 0.7582, 7: 0.7275},
    },
    "universal": {3: 28, 5: 31, 7: 19},  # random AQ ∩ text AQ (Procrustes)
    "universal_chance": {3: 5.3, 5: 3.7, 7: 3.2},  # independent sets (inventory's calculation)
}
REFERENCE_PROTOCOL = {
    "model_a": "gpt2",
    "model_b": "gpt2-medium",
    "layers": [3, 5, 7],
    "layer_pairing": "index",
    "num_samples": 500,
    "seq_length": 64,
}
REFERENCE_DEFECTS = (
    "the reference truncated gpt2-medium to its first 3072 neurons (the kit keeps all 4096)",
    "the reference fitted and scored Procrustes on the same tokens (the kit scores held-out "
    "sequences)",
    "the reference counted pad tokens of its text inputs (the kit excludes BOS, pad and "
    "document separators)",
    "the reference took the spectra of A's neurons for indices of B's neurons (the kit takes "
    "each method's spectra from the model its indices name)",
    "the reference read its mean + 2 std counts as findings; the share that rule flags is set by "
    "the shape of the scores (about 2.3% of a Gaussian, 0% of bounded scores piled up near 1, "
    "up to about 5%), so the kit prints the token-shuffle null beside every count and the "
    "fixed-0.5 count beside it",
)
COUNT_FACTOR = 2.0  # a reported count "holds" within this factor either way
CKA_TOLERANCE = 0.1  # a reported CKA holds within +- this
GURNEE_RANGE = (1.0, 5.0)  # % universal neurons, Gurnee et al.
MIN_NULL_REPLICATES = aq.MIN_NULL_REPLICATES  # fewer: a permutation p-value cannot reach 0.05
GURNEE_MIN_TOKENS = 1_000_000
# Gurnee's max over all of B's layers is on by default only when its accumulator fits in this
# (pythia-160m / Stanford GPT-2 small, all 12 layers: 11.8 GB; GPT-2 medium, 24 layers: 78 GB)
GURNEE_ALL_MAX_BYTES = 16e9  # fewer tokens than this are not comparable (Gurnee: 100M)

# ----------------------------------------------------------------------------- presets


@dataclass
class GrokConfig:
    """The grokking ground truth: two models on a + b mod ``p`` (one per seed), the same
    architecture and data split, trained full-batch (:func:`akira_nb.grokking.train.train`).
    ``match_method``: OT method matching their MLP neurons; ``threshold``: matched |corr| that
    counts as an AQ; ``explained``: share of a neuron's variance its key frequency must explain
    for the neuron to count as well explained."""

    p: int = 23
    mixer: str = "fnet"
    seeds: tuple = (0, 1)
    n_epochs: int = 600
    train_frac: float = 0.8
    lr: float = 3e-3
    weight_decay: float = 1.0
    d_mlp: int = 512
    match_method: str = "hungarian"
    threshold: float = 0.5
    explained: float = 0.85
    n_null: int = 5
    device: str = "auto"
    cpu_threads: int = 1

    def train_config(self, seed: int):
        from ..grokking.train import TrainConfig

        return TrainConfig(
            p=self.p,
            mixer=self.mixer,
            seed=int(seed),
            data_seed=0,
            n_epochs=self.n_epochs,
            train_frac=self.train_frac,
            lr=self.lr,
            weight_decay=self.weight_decay,
            d_mlp=self.d_mlp,
            eval_every=max(self.n_epochs // 20, 1),
            checkpoint_every=0,
            progress_every=0,
            device=self.device,
            cpu_threads=self.cpu_threads,
        )

    def validate(self) -> GrokConfig:
        seeds = runtime.check_seeds("grok.seeds", self.seeds)
        if len(seeds) != 2:
            raise ValueError(f"grok.seeds={self.seeds!r} must name exactly two seeds")
        self.seeds = tuple(seeds)
        for s in seeds:
            self.train_config(s).validate()
        runtime.check_choice("grok.match_method", self.match_method, aq.MATCH_METHODS)
        runtime.check_real("grok.threshold", self.threshold, 0.0, 1.0)
        runtime.check_real("grok.explained", self.explained, 0.0, 1.0)
        runtime.check_int("grok.n_null", self.n_null, low=1)
        return self


GROK = {
    # measured on 2 CPU cores: both seeds grok within 500 epochs, 3 s each
    "tiny": dict(p=23, mixer="fnet", n_epochs=600, train_frac=0.8),
    "t4": dict(p=23, mixer="fnet", n_epochs=1500, train_frac=0.8),
    "a100": dict(p=53, mixer="fnet", n_epochs=6000, train_frac=0.5),
}

SEED_PROTOCOL = dict(
    pair="gpt2/gpt2-medium",
    layers=(3, 5, 7),
    layer_pairing="index",
    num_samples=500,
    seq_length=64,
    batch_size=16,
    threshold=0.3,
    threshold_method="statistical",
    input_type="both",
    text_corpus="wikitext-2",
    seed=42,
    sample_sequences=256,
    spectral_sequences=200,
    checkpoint_every=16,  # of 32 batches: saves at 16 and at the end, about 1.0 GB each
)
PRESETS = {
    "tiny": dict(
        SEED_PROTOCOL,
        pair="tiny",
        layers="all",
        num_samples=64,
        seq_length=64,
        text_corpus="offline",
        sample_sequences=64,
        spectral_sequences=64,
        checkpoint_every=2,
        stream_cka=True,
    ),
    "t4": dict(SEED_PROTOCOL),
    "a100": dict(
        SEED_PROTOCOL,
        layers="all",
        layer_pairing="depth",
        num_samples=40_000,
        batch_size=64,
        text_corpus="wikitext-103",
        stream_cka=True,  # CKA over the 2.56M streamed tokens, not only the 16k-token sample
        checkpoint_every=200,  # of 625 batches: 4 saves of every pair's sums, ~4.9 GB each (gpt2)
    ),
}
PLAN_KEYS = ("pair",)
MAY_CHANGE = ("checkpoint_every", "device", "cpu_threads")


def preset(size: str | None) -> dict:
    """A copy of the preset for ``size`` (None: :data:`SEED_PROTOCOL`)."""
    if size is not None:
        runtime.check_choice("size", size, runtime.SIZES)
    return dict(SEED_PROTOCOL if size is None else PRESETS[size])


@dataclass
class Plan:
    """What one run compares: the AQ config, the grokking ground truth (None: skipped), the
    size and pair it came from, and what the preset filled in. Build it with :func:`plan`."""

    aq: aq.AQConfig
    grok: GrokConfig | None
    size: str | None = None
    pair: str | None = None
    from_preset: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def validate(self) -> Plan:
        self.aq.validate()
        if self.grok is not None:
            self.grok.validate()
        return self

    def to_dict(self) -> dict:
        return {
            "aq": self.aq.to_dict(),
            "grok": asdict(self.grok) if self.grok is not None else None,
            "size": self.size,
            "pair": self.pair,
        }

    def describe(self) -> str:
        """One line: which preset filled the settings not given."""
        source = f"size {self.size!r}" if self.size else "the seed's protocol (no size given)"
        filled = ", ".join(f"{k}={v}" for k, v in self.from_preset.items()) or "nothing"
        offline = "; offline: local stand-ins of the same shape" if self.aq.offline else ""
        return f"settings: {source} filled {filled}{offline}"


def _layers_for(name: str, layers, notes: list) -> tuple:
    n = aq.known_n_layers(name)
    if layers == "all":
        if n is None:
            raise ValueError(f"layers='all' needs a named model; {name!r} is not one: pass layers")
        return tuple(range(n))
    layers = tuple(layers)
    if n is not None and any(v >= n for v in layers):
        kept = tuple(v for v in layers if v < n)
        if not kept:
            kept = tuple(sorted({n // 4, n // 2, (3 * n) // 4}))
        notes.append(
            f"{name} has {n} layers: the preset's layers {list(layers)} became {list(kept)}"
        )
        return kept
    return layers


def _gurnee_all_default(size, pair_key, settings: dict, notes: list) -> bool:
    """Gurnee's max over all of B's layers is on where its claim can be judged (a known-answer
    pair) and at tiny (to exercise it), when its accumulator fits in
    :data:`GURNEE_ALL_MAX_BYTES`."""
    kind = PAIRS[pair_key].kind if pair_key in PAIRS else None
    if size != "tiny" and kind != "known-answer":
        return False
    nbytes = aq.gurnee_all_bytes(aq.AQConfig(**settings))
    if nbytes is None or nbytes > GURNEE_ALL_MAX_BYTES:
        size_text = "unknown" if nbytes is None else f"{nbytes / 1e9:.0f} GB"
        notes.append(
            f"Gurnee's max over all of B's layers is off: its accumulator would hold {size_text} "
            f"(limit {GURNEE_ALL_MAX_BYTES / 1e9:.0f} GB); pass gurnee_all_layers=True to force it"
        )
        return False
    return True


def plan(size: str | None = None, pair: str | None = None, grokking: bool = True, **overrides):
    """The one way to build a run (the CLI and the notebook both use it): the preset for
    ``size`` (None: the seed's protocol), the ``pair`` (a key of
    :data:`akira_nb.alignment.models.PAIRS`; default the preset's) unless ``model_a`` /
    ``model_b`` are given, and ``overrides`` (fields of :class:`~.aq.AQConfig`; None = not
    given) on top. The preset's layers are adapted to a model that lacks some (noted);
    explicit ``layers`` are checked, never changed. ``grokking=False`` skips the ground truth;
    ``grok`` (a dict of :class:`GrokConfig` fields) overrides its preset."""
    grok_over = overrides.pop("grok", None) or {}
    allowed = {f.name for f in fields(aq.AQConfig)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"plan() got unknown settings {unknown}; allowed: {sorted(allowed)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    pre = preset(size)
    notes: list[str] = []
    explicit_models = "model_a" in overrides or "model_b" in overrides
    if pair is not None and explicit_models:
        raise ValueError("give either pair or model_a / model_b, not both")
    if explicit_models:
        if not {"model_a", "model_b"} <= set(overrides):
            raise ValueError("give both model_a and model_b (or a pair)")
        pair_key = None
    else:
        pair_key = pair if pair is not None else pre["pair"]
        p = get_pair(pair_key)
        overrides.setdefault("model_a", p.model_a)
        overrides.setdefault("model_b", p.model_b)
    settings = {**{k: v for k, v in pre.items() if k != "pair"}, **overrides}
    if "layers" not in overrides:
        settings["layers"] = _layers_for(settings["model_a"], settings["layers"], notes)
    elif settings["layers"] == "all":
        settings["layers"] = _layers_for(settings["model_a"], "all", notes)
    if "gurnee_all_layers" not in overrides:
        settings["gurnee_all_layers"] = _gurnee_all_default(size, pair_key, settings, notes)
    cfg = aq.AQConfig(**settings)
    grok = None
    if grokking:
        base = dict(GROK[size or "t4"])
        base.update(grok_over)
        grok = GrokConfig(**base)
        if "device" in overrides:
            grok.device = overrides["device"]
    from_preset = {k: v for k, v in pre.items() if k not in overrides and k != "pair"}
    if not explicit_models and pair is None:
        from_preset = {"pair": pre["pair"], **from_preset}
    return Plan(cfg, grok, size, pair_key, from_preset, notes).validate()


# ----------------------------------------------------------------------------- grokking


def run_grokking(g: GrokConfig, run=None, resume: bool = False, progress: bool = False) -> dict:
    """Train the two grokking models and compare their MLP neurons (see the module docstring).

    Activations: ``blocks.0.mlp.hook_post`` at ``=`` over all ``p^2`` pairs. Returns the models'
    summaries (grok epoch, test accuracy, key frequencies), the OT matching of A's neurons to
    B's, the key-frequency agreement of matched pairs (alive neurons; well-explained ones; the
    matched |corr| above ``threshold``; index-matched pairs as the seed's method would pair
    them) against chance and against a token-shuffle null, and arrays for the figures."""
    import torch

    from ..grokking.data import make_dataset
    from ..grokking.fourier import neuron_frequencies
    from ..grokking.train import train
    from . import activations as act
    from .correlation import correlation_of
    from .thresholds import count_with_null, permute_rows
    from .transport import match_neurons

    g.validate()
    start = time.perf_counter()
    trained = [train(g.train_config(s), run=run, resume=resume, progress=progress) for s in g.seeds]
    data = make_dataset(g.p, g.train_frac, 0)
    acts, freqs, frac = [], [], []
    for res in trained:
        a = act.collect_activations(res.model, data.inputs, [0], batch_size=g.p * g.p, device="cpu")
        a = a[0].double()
        f, e = neuron_frequencies(a, g.p)
        acts.append(a)
        freqs.append(f.numpy())
        frac.append(e.numpy())
    corr = correlation_of(acts[0], acts[1], device="cpu").corr()
    m = match_neurons(corr, g.match_method)
    gen = torch.Generator().manual_seed(g.seeds[0])
    null_m = [
        match_neurons(acts[0], permute_rows(acts[1], gen), g.match_method) for _ in range(g.n_null)
    ]
    fa, fb = freqs
    alive = (fa > 0) & (fb[m.b_idx] > 0)
    well = alive & (frac[0] > g.explained) & (frac[1][m.b_idx] > g.explained)
    high = alive & (m.abs_corr > g.threshold)
    d = len(fa)
    agreement = {
        "alive": aq.frequency_agreement(fa, fb, m.b_idx, alive),
        "well_explained": aq.frequency_agreement(fa, fb, m.b_idx, well),
        "aq": aq.frequency_agreement(fa, fb, m.b_idx, high),
        "index_matched": aq.frequency_agreement(fa, fb, np.arange(d), (fa > 0) & (fb > 0)),
    }
    null_rates = []
    for nm in null_m:
        mask = (fa > 0) & (fb[nm.b_idx] > 0)
        null_rates.append(aq.frequency_agreement(fa, fb, nm.b_idx, mask)["rate"])
    count = count_with_null(
        m.abs_corr, np.stack([nm.abs_corr for nm in null_m]), "fixed", g.threshold
    )
    models = [
        {
            "seed": s,
            "grok_epoch": r.grok_epoch,
            "grokked": r.grok_epoch is not None,
            "test_acc": r.final["test_acc"],
            "train_acc": r.final["train_acc"],
            "key_freqs": list(r.key_freqs),
            "well_explained_neurons": int((fr > g.explained).sum()),
            "dead_neurons": int((f == 0).sum()),
        }
        for s, r, f, fr in zip(g.seeds, trained, freqs, frac)
    ]
    return {
        "config": asdict(g),
        "models": models,
        "grokked": all(x["grokked"] for x in models),
        "shared_key_freqs": sorted(set(models[0]["key_freqs"]) & set(models[1]["key_freqs"])),
        "matching": m.summary(g.threshold),
        "aq_count": count.to_dict(),
        "aq_line": count.line(),
        "agreement": agreement,
        "null_agreement_rate": float(np.mean(null_rates)),
        "seconds": time.perf_counter() - start,
        "arrays": {
            "abs_corr": m.abs_corr,
            "partner": m.b_idx,
            "freq_a": fa,
            "freq_b": fb,
            "frac_a": frac[0],
            "frac_b": frac[1],
            "null_abs_corr": null_m[0].abs_corr,
        },
    }


def grokking_lines(gk: dict) -> list[str]:
    """Printable lines of :func:`run_grokking`'s result."""
    out = []
    for x in gk["models"]:
        grok = f"grokked at epoch {x['grok_epoch']}" if x["grokked"] else "did NOT grok"
        out.append(
            f"grokking seed {x['seed']}: {grok}, test acc {x['test_acc']:.3f}, key freqs "
            f"{x['key_freqs']}, {x['well_explained_neurons']} well-explained neurons"
        )
    out.append(f"shared key frequencies: {gk['shared_key_freqs'] or 'none'}")
    out.append(f"matched |corr| (OT, {gk['matching']['method']}): {gk['aq_line']}")
    for key, label in (
        ("alive", "OT-matched pairs (alive neurons)"),
        ("well_explained", "OT-matched pairs, both well explained"),
        ("aq", "OT-matched pairs above the |corr| threshold"),
        ("index_matched", "index-matched pairs (the seed's basic pairing)"),
    ):
        a = gk["agreement"][key]
        rate = "-" if a["rate"] is None else f"{a['rate']:.3f}"
        p = "-" if a["p_value"] is None else f"{a['p_value']:.2g}"
        out.append(
            f"same key frequency, {label}: {a['same']}/{a['n']} = {rate} (chance "
            f"{a['chance']:.3f}, binomial p = {p})"
        )
    out.append(f"same key frequency under the token-shuffle null: {gk['null_agreement_rate']:.3f}")
    if not gk["grokked"]:
        out.append("NOTE: a model did not grok, so its key frequencies are not a ground truth")
    return out


# ----------------------------------------------------------------------------- the reference


def comparability(p: Plan) -> str | None:
    """None when ``p`` follows the reference's protocol (:data:`REFERENCE_PROTOCOL`), else why
    its numbers cannot be set beside the reference's."""
    c = p.aq
    why = ["offline stand-ins (random weights and the offline corpus)"] if c.offline else []
    if (c.model_a, c.model_b) != ("gpt2", "gpt2-medium"):
        why.append(f"models {c.model_a} vs {c.model_b} (the reference: gpt2 vs gpt2-medium)")
    missing = [v for v in REFERENCE_PROTOCOL["layers"] if v not in c.layers]
    if missing:
        why.append(f"layers {list(c.layers)} lack {missing}")
    if c.layer_pairing != "index":
        why.append(f"layer pairing {c.layer_pairing!r} (the reference: same index)")
    if (c.num_samples, c.seq_length) != (500, 64):
        why.append(f"{c.num_samples} x {c.seq_length} tokens (the reference: 500 x 64)")
    return "; ".join(why) or None


def _pair(result, kind: str, layer: int):
    for (la, _), pr in zip(result.layer_pairs, result.pairs.get(kind, {}).values()):
        if la == layer:
            return pr
    return None


def _per_pair(result, kind: str, fn) -> str:
    """``"L0-0 x, L1-1 y"`` over the compared pairs of ``kind`` (``fn(pair) -> str | None``)."""
    parts = []
    for pr in result.pairs.get(kind, {}).values():
        value = fn(pr)
        if value is not None:
            parts.append(f"L{pr.key} {value}")
    return ", ".join(parts) or "not run"


def _cka_text(pr) -> str:
    """``"0.860 (sample of 4032 tokens; all 4032 streamed: 0.861)"``."""
    c = pr.cka
    out = f"{c['linear']:.3f} (sample of {c['n_tokens']} tokens"
    if "linear_all_tokens" in c:
        out += f"; all {c['n_tokens_all']} streamed: {c['linear_all_tokens']:.3f}"
    return out + ")"


def _count_short(m, rule, value) -> str:
    return f"{m.count(rule, value).count} (chance {m.chance(rule, value):.1f})"


def reference_rows(result: aq.AQResult, p: Plan) -> list[dict]:
    """One row per reported quantity: the reference's values at its layers 3 / 5 / 7, the
    measured values at every compared layer pair (with their chance levels), whether the two
    are comparable (:func:`comparability`) and how the measurement differs."""
    comparable = "yes" if comparability(p) is None else "not comparable"
    if p.aq.offline:
        comparable = standins.NOT_COMPARABLE
    ref = REFERENCE
    rows = []

    def add(quantity, reported, measured, note=""):
        rows.append(
            dict(
                quantity=quantity,
                reported=reported,
                measured=measured,
                comparable=comparable,
                note=note,
            )
        )

    def layers(values, fmt="{}"):
        return " / ".join(fmt.format(v) for v in values.values()) + " (L3 / L5 / L7)"

    def method(name, rule, value):
        return lambda pr: (
            _count_short(pr.methods[name], rule, value) if name in pr.methods else None
        )

    for kind in ("random", "text"):
        add(
            f"basic AQ (excess > 0.3), {kind}",
            layers({k: c for k, (c, _) in ref["basic"][kind].items()}),
            _per_pair(result, kind, method("basic", "fixed", 0.3)),
            "the reference truncated B to 3072 neurons",
        )
        add(
            f"linear CKA, {kind}",
            layers(ref["cka"][kind], "{:.3f}"),
            _per_pair(result, kind, lambda pr: _cka_text(pr) if "linear" in pr.cka else None),
            "the reference's on 5,000 tokens; the kit's on its in-memory sample (all streamed "
            "tokens in brackets when stream_cka)",
        )
        add(
            f"OT |corr| > 0.5, {kind}",
            layers(ref["ot_above_half"][kind], "{}/100"),
            _per_pair(result, kind, method("ot", "fixed", 0.5)),
            "the reference matched only the 100 highest-variance neurons; the kit all of them",
        )
        add(
            f"Procrustes AQ (mean + 2 std), {kind}",
            layers(ref["procrustes_aq"][kind]),
            _per_pair(result, kind, method("procrustes", "statistical", 2.0)),
            "held-out here, in-sample in the reference",
        )
    add(
        "Procrustes error, random",
        layers(ref["procrustes_error_random"], "{:.3f}"),
        _per_pair(
            result,
            "random",
            lambda pr: (
                f"{pr.procrustes['test_error']:.3f} (train {pr.procrustes['train_error']:.3f})"
                if pr.procrustes
                else None
            ),
        ),
        "held-out here (train in brackets), in-sample in the reference",
    )
    uni = result.universal.get("procrustes", {})
    add(
        "universal AQ (Procrustes, random ∩ text)",
        " / ".join(
            f"{ref['universal'][v]} (chance {ref['universal_chance'][v]})" for v in (3, 5, 7)
        )
        + " (L3 / L5 / L7)",
        ", ".join(
            f"L{k} {u['observed']} (chance {u['chance']:.1f}; independence bound "
            f"{u['independent_expected']:.1f})"
            for k, u in uni.items()
        )
        or "not run",
        "the reference's chance is the independence bound (hypergeometric); the kit's chance "
        "comes from the paired token-shuffle null",
    )
    return rows


def reference_table(rows: list[dict]) -> str:
    """:func:`reference_rows` as text: one block per quantity."""
    lines = []
    for r in rows:
        lines.append(f"{r['quantity']} [{r['comparable']}]")
        lines.append(f"    reference: {r['reported']}")
        lines.append(f"    measured:  {r['measured']}")
        if r["note"]:
            lines.append(f"    ({r['note']})")
    return "\n".join(lines)


def measured_summary(result: aq.AQResult, kind: str, method: str, rule, value) -> str:
    """``"L0-0 82, L1-1 70 (152 of 512 = 29.7%); 152 of 512 against 146.4 expected by chance:
    ..."`` over every compared pair (:meth:`~.aq.AQResult.chance_summary`)."""
    by = result.pairs.get(kind, {})
    if not by or any(method not in pr.methods for pr in by.values()):
        return "not run"
    parts = [
        f"L{pr.layer_a}-{pr.layer_b} {pr.methods[method].count(rule, value).count}"
        for pr in by.values()
    ]
    s = result.chance_summary(kind, method, rule, value)
    return (
        f"{', '.join(parts)} ({s['count']} of {s['total']} = {s['pct']:.1f}%); {aq.chance_text(s)}"
    )


def _claim(claim, rule, claimed, measured, holds, why_not, value, unit, own) -> dict:
    """One claim row (the kit-summary contract): ``holds`` judged under the reference's
    protocol (None: not judged), ``own`` what the rule gives on this run's own numbers
    ("holds", "does not hold" or "not measurable: <why>"), shown as ``computed_verdict``
    beside "not comparable" (``why_not``: why the run is not the reference's protocol)."""
    row = dict(claim=claim, rule=rule, claimed=claimed, measured=measured, unit=unit)
    if measured in (None, "not run"):
        return {**row, "measured": "not run", "verdict": "not run", "measured_value": None}
    row["measured_value"] = None if value is None else float(value)
    if why_not:
        return {**row, "verdict": "not comparable", "computed_verdict": own}
    if holds is None:
        verdict = own if own.startswith("not measurable") else "not comparable"
        return {
            **row,
            "verdict": verdict,
            **({"computed_verdict": own} if verdict == "not comparable" else {}),
        }
    return {**row, "verdict": "holds" if holds else "does not hold"}


def _word(holds) -> str:
    return "holds" if holds else "does not hold"


def _seed_total(result, kind, method, rule, value):
    """The count summed at the reference's layers 3 / 5 / 7 (None when one is missing)."""
    got = [_pair(result, kind, v) for v in REFERENCE_PROTOCOL["layers"]]
    if any(g is None or method not in g.methods for g in got):
        return None
    return sum(g.methods[method].count(rule, value).count for g in got)


def _within(measured, claimed) -> bool:
    return claimed / COUNT_FACTOR <= measured <= claimed * COUNT_FACTOR


COUNT_RULE = (
    f"holds if the total at layers 3, 5, 7 is within {COUNT_FACTOR:g}x of the reported total "
    "(gpt2 vs gpt2-medium, 500 x 64 tokens; on another run's own numbers: the total over its "
    "compared layer pairs); the count expected by chance is printed beside"
)


def _count_claim(result, kind, method, rule, value, claim, extra_rule, reported, why_not):
    """A reported AQ count at layers 3 / 5 / 7 beside this run's (:data:`COUNT_RULE`)."""
    total = sum(reported.values())
    seed = _seed_total(result, kind, method, rule, value)
    s = result.chance_summary(kind, method, rule, value)
    own = _word(_within(s["count"], total)) if s else "not measurable: not run"
    return _claim(
        claim,
        COUNT_RULE + extra_rule,
        f"{' / '.join(map(str, reported.values()))} ({total})",
        measured_summary(result, kind, method, rule, value),
        None if seed is None else _within(seed, total),
        why_not,
        seed if seed is not None else (s["count"] if s else None),
        "neurons",
        own,
    )


def _cka_claim(result, kind, why_not):
    reported = REFERENCE["cka"][kind]
    got = [_pair(result, kind, v) for v in reported]
    holds, own = None, None
    if all(g is not None and g.cka for g in got):
        holds = all(abs(g.cka["linear"] - reported[g.layer_a]) <= CKA_TOLERANCE for g in got)
        own = _word(holds)
    by = {k: pr for k, pr in result.pairs.get(kind, {}).items() if "linear" in pr.cka}
    if own is None:
        have = [pr.layer_a for pr in by.values()]
        own = f"not measurable: layers {have} of A, not the reported 3 / 5 / 7"
    measured, value = "not run", None
    if by:
        measured = (
            ", ".join(f"L{pr.layer_a}-{pr.layer_b} {_cka_text(pr)}" for pr in by.values())
            + " (token-shuffled pair: "
            + ", ".join(f"{pr.cka['linear_null']:.3f}" for pr in by.values())
            + ")"
        )
        value = float(np.mean([pr.cka["linear"] for pr in by.values()]))
    return _claim(
        f"aligned method, {kind} tokens: linear CKA at layers 3 / 5 / 7",
        f"holds if every layer is within +-{CKA_TOLERANCE:g} of the reported CKA (measured "
        "value: the mean over the compared layer pairs)",
        " / ".join(f"{v:.3f}" for v in reported.values()),
        measured,
        holds,
        why_not,
        value,
        "",
        own,
    )


def _universal_claim(result, why_not):
    uni = result.universal.get("procrustes", {})
    holds, own = None, "not measurable: not run"
    if uni:
        few = aq.too_few_replicates(min(u["n_null"] for u in uni.values()))
        own = few or _word(all(u["p_value"] < 0.05 for u in uni.values()))
        holds = None if few else own == "holds"
    return _claim(
        "universal AQ (random ∩ text, Procrustes) exceed the overlap expected by chance",
        "holds if the overlap's p-value under the paired token-shuffle null is < 0.05 at every "
        "compared layer (the same shuffle procedure applied to both input types, each replicate "
        "thresholded by the same rule; p = (1 + #null overlaps >= observed) / (1 + replicates)); "
        f"not measurable with fewer than {aq.MIN_NULL_REPLICATES} replicates (p cannot reach "
        "0.05); the hypergeometric number beside it is the independence bound, not the chance "
        "level; measured value: the overlap summed over the compared layers",
        "28 / 31 / 19 at layers 3 / 5 / 7 (chance 5.3 / 3.7 / 3.2, independent sets)",
        ", ".join(
            f"L{k} {u['observed']} (chance {u['chance']:.1f} from {u['n_null']} replicates, "
            + (f"p {u['p_value']:.2g}" if u["n_null"] >= aq.MIN_NULL_REPLICATES else "no p-value")
            + f": {aq.universal_word(u)}; independence bound {u['independent_expected']:.1f})"
            for k, u in uni.items()
        )
        or "not run",
        holds,
        why_not,
        sum(u["observed"] for u in uni.values()) if uni else None,
        "neurons",
        own,
    )


def _spectral_claim(result, why_not):
    spec = result.spectral.get("procrustes", {})
    tested = [s for s in spec.values() if s["lower_frequency"] is not None]
    lower = sum(bool(s["lower_frequency"]) for s in tested)
    holds = lower > len(tested) / 2 if tested else None
    own = _word(holds) if tested else "not measurable: no layer pair has 2 AQ neurons to test"
    return _claim(
        "AQ neurons live in low-frequency bands (7 of 11 layers confirm)",
        f"{aq.SPECTRAL_RULE}; Procrustes AQ (B's neurons, B's activations); holds if more than "
        "half of the tested layer pairs confirm (measured value: the layer pairs that confirm)",
        "7 of 11 layers (universal AQ; differences -0.0025 to -0.0145, no test)",
        f"{lower} of {len(tested)} tested layer pairs ({len(spec) - len(tested)} with too few AQ)"
        if spec
        else "not run",
        holds,
        why_not,
        lower if spec else None,
        "layer pairs",
        own,
    )


def _table_claim(result, why_not):
    s = result.chance_summary("random", "basic")
    measured, raw, holds = "not run", None, None
    if s is not None:
        raw = s["pct"]
        measured = f"{raw:.1f}% ({aq.interpret(raw)} on the seed's table); {aq.chance_text(s)}"
        if s["word"] == "above chance":
            measured += f": {aq.interpret(s['excess_pct'])} on the seed's table"
        holds = aq.interpret(raw) == "weak"
    return _claim(
        "verdict of the basic method on random tokens (the seed's interpretation table)",
        aq.INTERPRETATION_RULE + "; holds if the raw % reads 'weak', as the reference's did",
        "WEAK (0.4% on average)",
        measured,
        holds,
        why_not,
        raw,
        "% of neurons",
        _word(holds) if holds is not None else "not measurable: not run",
    )


def _gurnee_claim(result, p):
    kind_of_pair = PAIRS[p.pair].kind if p.pair in PAIRS else "custom"
    gall = result.gurnee_all.get("text", {})
    n_text = min((g.get("n_tokens", p.aq.n_tokens) for g in gall.values()), default=0)
    why = None
    if p.aq.offline:
        why = standins.NOT_COMPARABLE
    elif kind_of_pair != "known-answer":
        why = f"the pair is {kind_of_pair}, not a known-answer pair"
    elif n_text < GURNEE_MIN_TOKENS:
        why = f"{n_text} text tokens (Gurnee et al.: 100M)"
    gpct, measured = None, "not run"
    if gall:
        gpct = float(np.mean([g["pct"] for g in gall.values()]))
        measured = (
            ", ".join(f"L{la} {g['count']} of {g['n_neurons']}" for la, g in gall.items())
            + f" ({gpct:.1f}% of A's neurons, averaged over the compared layers of A)"
        )
        if "text" in result.pairs:
            measured += "; paired layer only, with its token-shuffle null: " + measured_summary(
                result, "text", "gurnee", "fixed", 0.5
            )
    holds = GURNEE_RANGE[0] <= gpct <= GURNEE_RANGE[1] if gpct is not None else None
    return _claim(
        "same architecture, different seeds: 1-5% of neurons are universal (Gurnee et al.)",
        "Gurnee et al.'s definition on text tokens (they measured on the Pile): per A neuron, its "
        "max correlation over every neuron of every layer of B minus the same max with each B "
        "layer Haar-rotated (the rotation baseline is the chance correction), universal above "
        "0.5; % of A's neurons averaged over the compared layers of A; holds within "
        f"{GURNEE_RANGE[0]:g}-{GURNEE_RANGE[1]:g}% (a known-answer pair, >= 1M text tokens); "
        "needs gurnee_all_layers",
        "1.26% (pythia-160m), 4.16% (GPT-2 small), 1.23% (GPT-2 medium)",
        measured,
        holds,
        why,
        gpct,
        "% of neurons",
        _word(holds) if holds is not None else "not measurable: not run",
    )


def _grokking_claim(gk):
    claim = (
        "beyond the seed: OT-matched neurons of two grokked models share their key frequency "
        "more often than chance"
    )
    if gk is None:
        return _claim(
            claim,
            "one-sided binomial p < 0.05 against chance",
            "(no seed claim)",
            "not run",
            None,
            None,
            None,
            "",
            "not measurable: not run",
        )
    a = gk["agreement"]["well_explained"]
    ok = a["p_value"] is not None and a["p_value"] < 0.05 and a["rate"] > a["chance"]
    why = None if gk["grokked"] else "a model did not grok"
    return _claim(
        claim,
        "among matched pairs whose key frequency explains > "
        f"{gk['config']['explained']:g} of both neurons' variance: one-sided binomial "
        "p < 0.05 against sum_k P_A(k) P_B(k); not comparable when a model did not grok "
        "(measured value: the share of those pairs that share their key frequency)",
        "(no seed claim: the expected answer of a ground truth)",
        f"{a['same']}/{a['n']} = {a['rate'] if a['rate'] is not None else float('nan'):.3f} "
        f"(chance {a['chance']:.3f}, p {a['p_value'] if a['p_value'] is not None else 1:.2g})",
        ok,
        why,
        a["rate"],
        "",
        "not measurable: a model did not grok (its key frequencies are no ground truth)"
        if why
        else _word(ok),
    )


def claims(out: dict) -> list[dict]:
    """The reference's claims and Gurnee et al.'s known answer beside this run's numbers, each
    with its rule, verdict, ``measured_value`` and ``unit``, and ``computed_verdict`` (the rule
    on this run's own numbers) where the verdict is "not comparable" (see the module
    docstring)."""
    p, result, gk = out["plan"], out["result"], out.get("grok")
    why_not = comparability(p)
    rows = [
        _count_claim(
            result,
            kind,
            "basic",
            "fixed",
            0.3,
            f"basic method, {kind} tokens: AQ (excess > 0.3) at layers 3 / 5 / 7",
            "",
            {k: c for k, (c, _) in REFERENCE["basic"][kind].items()},
            why_not,
        )
        for kind in ("random", "text")
    ]
    rows += [_cka_claim(result, kind, why_not) for kind in ("random", "text")]
    rows.append(
        _count_claim(
            result,
            "random",
            "procrustes",
            "statistical",
            2.0,
            "aligned method, random tokens: Procrustes AQ (mean + 2 std) at layers 3 / 5 / 7",
            "; the share mean + 2 std flags is set by the shape of the scores (about 2.3% of a "
            "Gaussian, anything from 0% to about 5%), whether or not anything corresponds",
            REFERENCE["procrustes_aq"]["random"],
            why_not,
        )
    )
    rows.append(_universal_claim(result, why_not))
    rows.append(_spectral_claim(result, why_not))
    rows.append(_table_claim(result, why_not))
    rows.append(_gurnee_claim(result, p))
    rows.append(_grokking_claim(gk))
    if p.aq.offline:  # stand-ins measure the code path, never the models
        for row in rows:  # the grokking ground truth uses no stand-in: it keeps its verdict
            if row["verdict"] != "not run" and not row["claim"].startswith("beyond the seed"):
                row.setdefault("computed_verdict", row["verdict"])
                row["verdict"] = standins.NOT_COMPARABLE
    return rows


def baseline_lines(out: dict) -> list[str]:
    """The baselines beside every AQ count: the rotation baseline, the nulls, the chance
    overlap, the CKA of a token-shuffled pair."""
    result = out["result"]
    lines = []
    for kind, by in result.pairs.items():
        for pr in by.values():
            b = pr.methods["basic"]
            lines.append(
                f"{kind} L{pr.key}: rotation baseline of the index-matched corr: mean "
                f"{b.extra['baseline'].mean():+.3f}, spread {b.extra['baseline_spread']:.3f} over "
                f"{result.config.n_rotations} Haar rotations; basic AQ {b.main.count}, chance "
                f"{b.main_chance:.1f} (token-shuffle and neuron-permutation nulls); OT AQ "
                f"{pr.methods['ot'].main.count} vs token-shuffle {pr.methods['ot'].main_chance:.1f}"
                f"; CKA {pr.cka.get('linear', float('nan')):.3f} vs token-shuffled "
                f"{pr.cka.get('linear_null', float('nan')):.3f}"
            )
    for method, by in result.universal.items():
        for key, u in by.items():
            p = (
                f", p = {u['p_value']:.2g}"
                if u["n_null"] >= aq.MIN_NULL_REPLICATES
                else ", no p-value"
            )
            lines.append(
                f"universal {method} L{key}: overlap {u['observed']} vs {u['chance']:.1f} "
                f"expected by chance (paired {u['null']} null of {u['n_null']} replicates{p}: "
                f"{aq.universal_word(u)}; independence bound {u['independent_expected']:.1f})"
            )
    gk = out.get("grok")
    if gk is not None:
        a = gk["agreement"]["well_explained"]
        lines.append(
            f"grokking: same key frequency {a['rate'] if a['rate'] is not None else 0:.3f} vs "
            f"chance {a['chance']:.3f} and token-shuffle null {gk['null_agreement_rate']:.3f}"
        )
    return lines


def summary_lines(out: dict) -> dict:
    """One line per analysis (for the notebook and logs)."""
    result, gk = out["result"], out.get("grok")
    lines = {}
    for kind in result.pairs:
        for method in aq.METHODS:
            s = result.chance_summary(kind, method)
            if s is None:
                continue
            word = result.verdict(kind, method)
            line = f"{kind} tokens, {aq.METHOD_TEXT[method]}: " + (
                f"{word} ({s['rule']})"
                if word == aq.FLAGS_NOTHING
                else f"{s['pct']:.1f}% AQ ({s['rule']}); {aq.chance_text(s)} -> {word}"
            )
            others = result.other_rule_counts(kind, method)
            lines[f"{kind}/{method}"] = line + (f"; {others}" if others else "")
        prs = [pr for pr in result.pairs[kind].values() if "linear" in pr.cka]
        if prs:
            ckas = [pr.cka["linear"] for pr in prs]
            line = (
                f"{kind} tokens: linear CKA {min(ckas):.3f}-{max(ckas):.3f} over the compared "
                f"layer pairs (in-memory sample of {prs[0].cka['n_tokens']} tokens)"
            )
            if all("linear_all_tokens" in pr.cka for pr in prs):
                alls = [pr.cka["linear_all_tokens"] for pr in prs]
                line += (
                    f"; {min(alls):.3f}-{max(alls):.3f} over all {prs[0].cka['n_tokens_all']} "
                    "streamed tokens"
                )
            lines[f"{kind}/cka"] = line
    for method, by in result.universal.items():
        obs = sum(u["observed"] for u in by.values())
        exp = sum(u["chance"] for u in by.values())
        ind = sum(u["independent_expected"] for u in by.values())
        words = {aq.universal_word(u) for u in by.values()}
        word = (
            words.pop() + " at every layer pair"
            if len(words) == 1
            else "; ".join(f"L{k} {aq.universal_word(u)}" for k, u in by.items())
        )
        first, n_null = next(iter(by.values())), min(u["n_null"] for u in by.values())
        null = f"paired {first['null']} null"
        if aq.too_few_replicates(n_null) is None:
            null += f" of {n_null} replicates"
        lines[f"universal/{method}"] = (
            f"universal AQ ({method}): {obs} in both input types vs {exp:.1f} expected by chance "
            f"({null}: {word}; independence bound {ind:.1f})"
        )
    for method, by in result.spectral.items():
        tested = [s for s in by.values() if s["lower_frequency"] is not None]
        low = sum(bool(s["lower_frequency"]) for s in tested)
        lines[f"spectral/{method}"] = (
            f"spectra ({method}, {METHOD_MODEL_TEXT[method]}): AQ lower-frequency in {low} of "
            f"{len(tested)} tested layer pairs"
        )
    if gk is not None:
        a = gk["agreement"]["well_explained"]
        lines["grokking"] = (
            f"grokking (p={gk['config']['p']}, {'both grokked' if gk['grokked'] else 'NOT grokked'}"
            f"): matched well-explained neurons share their key frequency "
            f"{a['same']}/{a['n']} vs chance {a['chance']:.3f}"
        )
    return lines


METHOD_MODEL_TEXT = {
    m: f"{aq.METHOD_MODEL[m]}'s neurons on {aq.METHOD_MODEL[m]}'s activations" for m in aq.METHODS
}


# ----------------------------------------------------------------------------- run


def run_name(p: Plan) -> str:
    pair = (p.pair or f"{p.aq.model_a}+{p.aq.model_b}").replace("/", "+").replace(":", "=")
    safe = "".join(ch if ch.isalnum() or ch in "_.=+-" else "-" for ch in pair)
    # offline runs get their own name: a resume never mixes stand-ins and the real models
    return f"{p.size or 'seed'}-{safe}" + ("-offline" if p.aq.offline else "")


def run_experiment(
    p: Plan,
    name: str | None = None,
    resume: bool = False,
    root=None,
    progress: bool = True,
    log=print,
    models=None,
    banner: bool = True,
) -> dict:
    """Run the comparison of ``p`` (and the grokking ground truth), write ``results.json`` and
    every figure into a run folder, and return ``{"run", "plan", "result", "grok", "claims",
    "reference", "lines"}``. Everything is validated, the text corpus and both models loaded
    and checked, before the run folder exists. ``models``: ``(model_a, model_b)`` already
    loaded. Offline (``p.aq.offline``) the stand-ins banner is printed first (``banner=False``:
    the caller printed it, :func:`standins_record`), results.json records ``"standins"`` and
    every verdict against the seed reads :data:`akira_nb.standins.NOT_COMPARABLE`."""
    from ..runs import Run

    start, cpu = time.perf_counter(), time.process_time()
    p.validate()
    runtime.check_device("device", p.aq.device)
    record = standins_record(p, banner)  # the banner first, when offline
    log = log or (lambda line: None)
    stage = aq.Stages(p.aq.device)
    texts = None
    if "text" in p.aq.input_types:  # a corpus that cannot load fails before the run folder
        with stage("inputs"):
            texts = aq.load_texts(aq.text_corpus_of(p.aq), p.aq.seed)
    if models is None:
        with stage("load models"):
            models = aq.load_models(p.aq)
    model_a, model_b = models
    aq.check_models(p.aq, model_a, model_b)
    run = Run.open_or_create(
        EXPERIMENT,
        name or run_name(p),
        p.to_dict(),
        resume=resume,
        root=root,
        may_change=MAY_CHANGE,
    )
    for note in p.notes:
        log(f"note: {note}")
    result = aq.run_aq(
        p.aq,
        model_a,
        model_b,
        run=run,
        resume=resume,
        progress=progress,
        log=log,
        texts=texts,
        stages=stage,
    )
    gk = None
    if p.grok is not None:
        with stage("grokking"):
            gk = run_grokking(p.grok, run=run, resume=resume, progress=progress)
        for line in grokking_lines(gk):
            log(line)
    for line in aq.stage_lines(result.stages):
        log(line)
    out = {"run": run, "plan": p, "result": result, "grok": gk}
    out["reference"] = reference_rows(result, p)
    out["claims"] = claims(out)
    out["lines"] = summary_lines(out)
    why_not = comparability(p)
    log(
        "the reference's numbers beside this run's"
        + (f" (not comparable: {why_not})" if why_not else "")
    )
    log(reference_table(out["reference"]))
    for line in claim_lines(out["claims"]):
        log(line)
    results = {
        "experiment": EXPERIMENT,
        "size": p.size,
        "pair": p.pair,
        "config": p.to_dict(),
        "notes": p.notes,
        "environment": runtime.environment_info(p.aq.device),
        "aq": result.to_dict(),
        "grokking": {k: v for k, v in gk.items() if k != "arrays"} if gk else None,
        "reference": out["reference"],
        "reference_defects": list(REFERENCE_DEFECTS),
        "claims": out["claims"],
        "summary": out["lines"],
        "standins": record,
    }
    run.write_results({**results, **cost(start, cpu)})  # kept should a figure fail
    out["figures"] = save_figures(run, out)
    out["cost"] = cost(start, cpu)
    run.write_results({**results, **out["cost"]})
    log(cost_line(out["cost"]))
    log(f"results and figures: {run.path}")
    return out


def standins_record(p: Plan, banner: bool = True) -> dict | None:
    """Offline: the ``"standins"`` record of ``results.json`` (``{"banner", "replaced"}``,
    :func:`akira_nb.alignment.aq.offline_replacements`), printing the banner first unless
    ``banner=False``; None for a run on the real models."""
    if not p.aq.offline:
        return None
    replaced = aq.offline_replacements(p.aq)
    if banner:
        return standins.announce(replaced)
    return {"banner": standins.BANNER, "replaced": replaced}


def save_figures(run, out: dict) -> dict:
    """Every figure of the run into ``figures/``; returns ``{name: path}``."""
    from . import plots

    result, paths = out["result"], {}

    def save(name, fig):
        paths.update(run.save_figures({name: fig}))

    for kind, by in result.pairs.items():
        for key, pr in by.items():
            save(f"basic_{kind}_L{key}", plots.seed_figure(pr))
            save(f"ot_{kind}_L{key}", plots.ot_matches(pr))
        save(f"cka_{kind}", plots.cka_heatmap(*result.cka_matrix[kind], title=f"{kind} tokens"))
    save("universality", plots.universality(result))
    for method in ("basic", "ot", "procrustes"):
        for key, s in result.spectral.get(method, {}).items():
            if s["n_aq"] >= 2:  # a figure of AQ vs the rest needs AQ
                save(f"spectra_{method}_L{key}", plots.spectral_figure(s))
    if out.get("grok") is not None:
        save("grokking", plots.grokking_figure(out["grok"]))
    return paths


def kit_summary(out: dict) -> dict:
    """This experiment's section of the kit summary (``out``: what ``cli.main`` returns)."""
    p = out["plan"]
    why_not = comparability(p)
    notes = [
        f"models {p.aq.model_a} vs {p.aq.model_b}, layer pairs {out['result'].layer_pairs} "
        f"({p.aq.layer_pairing}), {p.aq.num_samples} x {p.aq.seq_length} tokens per input type; "
        "full widths (no truncation)",
        *REFERENCE_DEFECTS,
        *p.notes,
    ]
    if why_not:
        notes.insert(0, f"not comparable with the reference's numbers: {why_not}")
    gk = out.get("grok")
    if gk is not None and not gk["grokked"]:
        notes.append("a grokking model did not grok: its key frequencies are no ground truth")
    return {
        "experiment": EXPERIMENT,
        "title": TITLE,
        "size": p.size,
        "run": str(out["run"].path),
        "claims": out["claims"],
        "baselines": baseline_lines(out),
        "notes": notes,
    }


__all__ = [
    "EXPERIMENT",
    "GROK",
    "GrokConfig",
    "PRESETS",
    "Plan",
    "REFERENCE",
    "SEED_PROTOCOL",
    "baseline_lines",
    "claims",
    "comparability",
    "cost",
    "cost_line",
    "grokking_lines",
    "kit_summary",
    "plan",
    "preset",
    "reference_rows",
    "reference_table",
    "run_experiment",
    "run_grokking",
    "save_figures",
    "standins_record",
    "summary_lines",
]
