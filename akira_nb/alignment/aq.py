"""The Action Quanta (AQ) pipeline: which MLP neurons of model A have a counterpart in model B.

:func:`run_aq` streams both models over random tokens and text (:mod:`.aq_inputs`,
:mod:`.aq_stream`), scores every compared layer pair with the seed's basic method, Gurnee et
al.'s max-correlation excess, OT matching and held-out Procrustes (:mod:`.aq_methods`), and
adds the universal overlap against its paired null (:mod:`.aq_chance`) and the spectra of the
AQ neurons (:mod:`.aq_spectra`). Every AQ count is printed beside the count expected by chance
(the token-shuffle null) and every threshold rule is named where its count is printed.
:class:`AQResult` holds it all, with the seed's interpretation of each method's count.

This module also re-exports the pipeline's parts (``aq.AQConfig``, ``aq.PairStream``, ...), so
``from akira_nb.alignment import aq`` is the one import a caller needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from akira_nb.alignment import activations as act
from akira_nb.alignment.aq_chance import (
    FLAGS_NOTHING,
    INTERPRETATION,
    INTERPRETATION_RULE,
    UNIVERSAL_NULL,
    chance_text,
    interpret,
    universal_line,
    universal_overlap,
    universal_word,
)
from akira_nb.alignment.aq_config import (
    STANDIN_SEEDS,
    AQConfig,
    check_offline_model,
    gurnee_all_bytes,
    known_d_mlp,
    known_n_ctx,
    known_n_layers,
    offline_models,
    offline_replacements,
    pair_key,
    pair_layers,
    text_corpus_of,
)
from akira_nb.alignment.aq_inputs import (
    Sample,
    load_texts,
    make_inputs,
    sample_models,
    tokens_fingerprint,
)
from akira_nb.alignment.aq_methods import (
    GURNEE_ALL_ARRAYS,
    METHOD_MODEL,
    METHOD_TEXT,
    MethodResult,
    PairResult,
    analyse_pair,
    basic_method,
    gurnee_all_layers,
    gurnee_method,
    ot_method,
    procrustes_method,
)
from akira_nb.alignment.aq_spectra import (
    SPECTRAL_RULE,
    compare_spectra,
    frequency_agreement,
    spectral_analysis,
    spectral_profile,
)
from akira_nb.alignment.aq_stream import STREAM_MAY_CHANGE, PairStream, stream_config, stream_models
from akira_nb.alignment.choices import INPUT_TYPES, MATCH_METHODS, METHODS, PAIRINGS, TEXT_CORPORA
from akira_nb.alignment.cka import cka_matrix
from akira_nb.alignment.excess import clear_rotations
from akira_nb.alignment.stages import Stages, stage_lines
from akira_nb.alignment.thresholds import (
    CHANCE_RULE,
    MIN_NULL_REPLICATES,
    RULES,
    chance_word,
    too_few_replicates,
)
from akira_nb.runtime import cpu_threads, get_device


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
    from akira_nb.alignment.models import load_model, quiet_hf

    with quiet_hf():
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
    """The whole comparison of ``cfg`` (see :mod:`akira_nb.alignment.aq`); returns an
    :class:`AQResult`.

    Models not given are loaded from ``cfg``. ``run``/``resume``: the streams checkpoint into
    and resume from the run folder. ``log``: called with each printable line as it is ready.
    ``texts``: documents for the text inputs (default: ``cfg.text_corpus``). ``stages``: the
    :class:`Stages` that times the run (default a new one); :attr:`AQResult.stages` holds it."""
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
            streamed = dict(run=run, resume=resume, progress=progress, texts=texts)
            _run_input_type(result, kind, (model_a, model_b), streamed, stage, log)
        clear_rotations()
        with stage("universal + spectra"):
            add_universal(result)
            add_spectral(result)
    result.stages = stage.out
    lines = result.universal_lines() + result.spectral_lines() + result.gurnee_lines()
    for line in lines + result.verdicts():
        log(line)
    return result


def _run_input_type(result: AQResult, kind: str, models, streamed: dict, stage, log) -> None:
    """One input type of :func:`run_aq`: its inputs, the stream, the sample, every layer pair's
    methods and the CKA matrix, into ``result``. ``streamed``: ``run``, ``resume``,
    ``progress`` and ``texts`` as :func:`run_aq` got them."""
    cfg, pairs = result.config, result.layer_pairs
    model_a, model_b = models
    with stage("inputs"):
        inputs = make_inputs(cfg, kind, model_a, streamed["texts"])
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
            model_a,
            model_b,
            inputs,
            pairs,
            cfg,
            streamed["run"],
            streamed["resume"],
            streamed["progress"],
            all_b_layers=all_b,
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
        result.cka_matrix[kind] = cka_matrix(
            rows_a, rows_b, "linear", device=get_device(cfg.device)
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


__all__ = [
    "AQConfig",
    "AQResult",
    "CHANCE_RULE",
    "FLAGS_NOTHING",
    "GURNEE_ALL_ARRAYS",
    "INPUT_TYPES",
    "INTERPRETATION",
    "INTERPRETATION_RULE",
    "MATCH_METHODS",
    "METHODS",
    "METHOD_MODEL",
    "METHOD_TEXT",
    "MIN_NULL_REPLICATES",
    "MethodResult",
    "PAIRINGS",
    "PairResult",
    "PairStream",
    "RULES",
    "SPECTRAL_RULE",
    "STANDIN_SEEDS",
    "STREAM_MAY_CHANGE",
    "Sample",
    "Stages",
    "TEXT_CORPORA",
    "UNIVERSAL_NULL",
    "add_spectral",
    "add_universal",
    "analyse_pair",
    "basic_method",
    "chance_text",
    "check_models",
    "check_offline_model",
    "compare_spectra",
    "frequency_agreement",
    "gurnee_all_bytes",
    "gurnee_all_layers",
    "gurnee_method",
    "interpret",
    "known_d_mlp",
    "known_n_ctx",
    "known_n_layers",
    "load_models",
    "load_texts",
    "make_inputs",
    "offline_models",
    "offline_replacements",
    "ot_method",
    "pair_key",
    "pair_layers",
    "procrustes_method",
    "run_aq",
    "sample_models",
    "spectral_analysis",
    "spectral_profile",
    "stage_lines",
    "stream_config",
    "stream_models",
    "text_corpus_of",
    "tokens_fingerprint",
    "too_few_replicates",
    "universal_line",
    "universal_overlap",
    "universal_word",
]
