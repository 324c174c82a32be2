"""Experiment 000's sizes and the one way to build a run: :data:`PRESETS` (tiny / t4 / a100;
None: the seed's protocol, :data:`SEED_PROTOCOL`), :class:`Study` (the AQ config, the grokking
ground truth, where each setting came from) and :func:`study`.

- ``tiny``: the offline tiny pair (two 2-layer GPT-2-style models trained with seeds 0 and 1),
  both layers, 64 x 64 tokens of each input type.
- ``t4``: the seed's protocol: gpt2 vs gpt2-medium, layers 3 / 5 / 7 by index, 500 x 64 random
  tokens and 500 x 64 tokens of wikitext-2.
- ``a100``: every layer of A paired by relative depth, 40,000 x 64 tokens of each input type
  (text from wikitext-103); any pair of :data:`akira_nb.alignment.models.PAIRS`, including the
  known-answer pairs (pythia-160m vs its seed re-trainings, the Stanford CRFM GPT-2 seeds).

Offline (``study(size, offline=True)``; :attr:`~akira_nb.alignment.aq.AQConfig.offline`):
every Hub model becomes a local stand-in of its architecture, wikitext the offline corpus.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from akira_nb import runtime
from akira_nb.action_quanta.ground_truth import GrokConfig
from akira_nb.alignment import aq
from akira_nb.alignment.models import PAIRS, get_pair

EXPERIMENT = "000_action_quanta"
TITLE = "000 Action Quanta: MLP neuron correspondence across language models"
# Gurnee's max over all of B's layers is on by default only when its accumulator fits in this
# (pythia-160m / Stanford GPT-2 small, all 12 layers: 11.8 GB; GPT-2 medium, 24 layers: 78 GB)
GURNEE_ALL_MAX_BYTES = 16e9

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
class Study:
    """What one run compares: the AQ config, the grokking ground truth (None: skipped), the
    size and pair it came from, and what the preset filled in. Build it with :func:`study`
    (both configs check themselves when built)."""

    aq: aq.AQConfig
    grok: GrokConfig | None
    size: str | None = None
    pair: str | None = None
    from_preset: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

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


def _models(pre: dict, pair: str | None, overrides: dict) -> str | None:
    """Fill ``model_a`` / ``model_b`` of ``overrides`` from the pair (``pair``, else the
    preset's) unless both are given; returns the pair's key (None for explicit models)."""
    explicit_models = "model_a" in overrides or "model_b" in overrides
    if pair is not None and explicit_models:
        raise ValueError("give either pair or model_a / model_b, not both")
    if explicit_models:
        if not {"model_a", "model_b"} <= set(overrides):
            raise ValueError("give both model_a and model_b (or a pair)")
        return None
    pair_key = pair if pair is not None else pre["pair"]
    p = get_pair(pair_key)
    overrides.setdefault("model_a", p.model_a)
    overrides.setdefault("model_b", p.model_b)
    return pair_key


def study(size: str | None = None, pair: str | None = None, grokking: bool = True, **overrides):
    """The one way to build a run (the CLI and the notebook both use it): the preset for
    ``size`` (None: the seed's protocol), the ``pair`` (a key of
    :data:`akira_nb.alignment.models.PAIRS`; default the preset's) unless ``model_a`` /
    ``model_b`` are given, and ``overrides`` (fields of :class:`~akira_nb.alignment.aq.AQConfig`;
    None = not given) on top. The preset's layers are adapted to a model that lacks some
    (noted); explicit ``layers`` are checked, never changed. ``grokking=False`` skips the ground
    truth; ``grok`` (a dict of :class:`GrokConfig` fields) overrides its preset."""
    grok_over = overrides.pop("grok", None) or {}
    allowed = {f.name for f in fields(aq.AQConfig)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"study() got unknown settings {unknown}; allowed: {sorted(allowed)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    pre = preset(size)
    notes: list[str] = []
    pair_key = _models(pre, pair, overrides)
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
        base = {**GROK[size or "t4"], **grok_over}
        if "device" in overrides:
            base["device"] = overrides["device"]
        grok = GrokConfig(**base)
    from_preset = {k: v for k, v in pre.items() if k not in overrides and k != "pair"}
    if pair_key is not None and pair is None:
        from_preset = {"pair": pre["pair"], **from_preset}
    return Study(cfg, grok, size, pair_key, from_preset, notes)


__all__ = [
    "EXPERIMENT",
    "GROK",
    "MAY_CHANGE",
    "PRESETS",
    "SEED_PROTOCOL",
    "Study",
    "TITLE",
    "preset",
    "study",
]
