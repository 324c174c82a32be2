"""Experiment 000, Action Quanta: which MLP neurons of two language models correspond.

Without --size, and with AKIRA_SIZE unset, it runs the seed's protocol: gpt2 vs gpt2-medium,
layers 3 / 5 / 7 of A against the same index of B, 500 x 64 random tokens and 500 x 64 tokens of
wikitext-2, the basic method (excess > 0.3, Gurnee's 0.5 beside it) and the aligned method
(CKA, OT matching, held-out Procrustes, mean + 2 std), structural / semantic / universal AQ and
the spectral analysis; then the grokking ground truth (two grokked models' matched neurons and
their key frequencies). --size tiny|t4|a100 (or AKIRA_SIZE) picks a preset instead; every flag
overrides either. The first line printed says which settings the preset filled in. Every AQ
count is printed beside the count expected by chance.

--offline runs on local stand-ins of the same shape (random weights of each Hub model's
architecture, the offline corpus, a tokenizer of the same vocabulary size): the first line
printed says so and every verdict against the seed reads "not comparable".

Example: ``python -m akira_nb action_quanta --model-a EleutherAI/pythia-160m --model-b
EleutherAI/pythia-160m-seed1 --layers 0 3 6 9 11 --num-samples 2000``; offline, at the real
widths: ``python -m akira_nb action_quanta --size t4 --offline --num-samples 16``.
"""

from __future__ import annotations

import argparse

from akira_nb import runtime
from akira_nb.alignment.choices import INPUT_TYPES, MATCH_METHODS, PAIRINGS, RULES, TEXT_CORPORA


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _model_arguments(parser.add_argument)
    _sample_arguments(parser.add_argument)
    _run_arguments(parser.add_argument)


def _model_arguments(a) -> None:
    """--size, the pair or the two models, the layers and their pairing."""
    a(
        "--size",
        default=None,
        choices=list(runtime.SIZES),
        help="size preset (default: AKIRA_SIZE when set, else the seed's protocol)",
    )
    a(
        "--pair",
        default=None,
        help="a model pair of akira_nb.alignment.models.PAIRS, e.g. gpt2/gpt2-medium, "
        "pythia-70m/pythia-160m, pythia-160m/pythia-160m-seed1, tiny (default: the preset's)",
    )
    a("--model-a", "--model_a", dest="model_a", default=None, help="model A (Hub id or folder)")
    a("--model-b", "--model_b", dest="model_b", default=None, help="model B (Hub id or folder)")
    a(
        "--layers",
        type=int,
        nargs="+",
        default=None,
        help="layers of A to compare (seed: 3 5 7); B's follow from --layer-pairing",
    )
    a(
        "--layer-pairing",
        "--layer_pairing",
        dest="layer_pairing",
        default=None,
        choices=PAIRINGS,
        help="index: layer l of B (the seed's); depth: the same relative depth",
    )


def _sample_arguments(a) -> None:
    """How many tokens, and the threshold rules."""
    a(
        "--num-samples",
        "--num_samples",
        dest="num_samples",
        type=int,
        default=None,
        help="sequences per input type (seed: 500)",
    )
    a(
        "--seq-length",
        "--seq_length",
        dest="seq_length",
        type=int,
        default=None,
        help="tokens per sequence (seed: 64)",
    )
    a(
        "--batch-size",
        "--batch_size",
        dest="batch_size",
        type=int,
        default=None,
        help="sequences per forward pass (seed: 16)",
    )
    a(
        "--threshold",
        type=float,
        default=None,
        help="excess-correlation threshold of the basic and Gurnee methods (seed: 0.3; 0.5 is "
        "always shown beside it)",
    )
    a(
        "--threshold-method",
        "--threshold_method",
        dest="threshold_method",
        default=None,
        choices=RULES,
        help="rule of the aligned methods (seed: statistical = mean + 2 std)",
    )
    a(
        "--threshold-value",
        "--threshold_value",
        dest="threshold_value",
        type=float,
        default=None,
        help="the rule's value: k of mean + k std (2; k > 0), the percentile (95; 0 to 100) or "
        "the fixed cut (0.3; -1 to 1)",
    )


def _run_arguments(a) -> None:
    """Inputs, matching, seed, offline, grokking, device and the run folder."""
    a(
        "--input-type",
        "--input_type",
        dest="input_type",
        default=None,
        choices=INPUT_TYPES,
        help="random (structural), text (semantic) or both (then universal AQ; the default)",
    )
    a(
        "--text-corpus",
        "--text_corpus",
        dest="text_corpus",
        default=None,
        choices=TEXT_CORPORA,
        help="text of the semantic test (seed: wikitext-2; offline needs no download)",
    )
    a(
        "--match-method",
        "--match_method",
        dest="match_method",
        default=None,
        choices=MATCH_METHODS,
        help="OT matching: emd (exact, default), hungarian (one-to-one) or sinkhorn",
    )
    a("--seed", type=int, default=None, help="seed of the inputs, rotations and splits (42)")
    a(
        "--offline",
        action="store_true",
        default=None,
        help="run on local stand-ins of the same shape, no download: each Hub model -> random "
        "weights of its architecture (A seed 0, B seed 1) with a tokenizer of the same "
        "vocabulary size (gpt2-standin / pythia-standin), wikitext -> the offline corpus; "
        "random tokens over the real vocabulary; the banner is the first line printed and every "
        "verdict against the seed reads 'not comparable'",
    )
    a(
        "--no-grokking",
        "--no_grokking",
        dest="no_grokking",
        action="store_true",
        help="skip the grokking ground truth",
    )
    a("--device", default=None, help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    runtime.add_run_flags(a, "<size>-<pair>", "streams resume from their checkpoints")


_FLAGS = (
    "model_a",
    "model_b",
    "layers",
    "layer_pairing",
    "num_samples",
    "seq_length",
    "batch_size",
    "threshold",
    "threshold_method",
    "threshold_value",
    "input_type",
    "text_corpus",
    "match_method",
    "seed",
    "device",
    "offline",
)


def study_from_args(args: argparse.Namespace):
    """The :class:`~akira_nb.action_quanta.presets.Study` the flags ask for, built the one way
    (``presets.study``): the size from ``runtime.size_from``, the flags on top."""
    from akira_nb.action_quanta import presets

    size = runtime.size_from(args.size)
    overrides = {k: getattr(args, k) for k in _FLAGS}
    if overrides["layers"] is not None:
        overrides["layers"] = tuple(overrides["layers"])
    return presets.study(size, pair=args.pair, grokking=not args.no_grokking, **overrides)


def main(args: argparse.Namespace) -> dict:
    """Run the comparison; returns what :func:`~akira_nb.action_quanta.claims.kit_summary`
    reads."""
    p = study_from_args(args)  # every setting checked before anything is loaded or written
    from akira_nb.action_quanta import experiment

    record = experiment.standins_record(p)  # offline: the banner is the first line
    print(p.describe(), flush=True)

    import matplotlib

    if not runtime.in_ipython():
        matplotlib.use("Agg")

    out = experiment.run_experiment(
        p,
        name=args.name,
        resume=args.resume,
        root=args.output_dir,
        progress=not args.quiet,
        banner=record is None,  # printed above
    )
    for line in out["lines"].values():
        print(line)
    return out
