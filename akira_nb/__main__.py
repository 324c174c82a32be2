"""Headless runs: ``python -m akira_nb <experiment> [flags]``.

``python -m akira_nb all --size tiny`` runs every experiment at the given size (the kit's main
job), then writes the kit summary (``summary.md`` + ``summary.json`` beside the runs: every
seed claim beside the measured number, each verdict with its rule) and prints it.

Each experiment is a package named in ``EXPERIMENTS`` with the same shape: ``<pkg>.cli`` provides
``add_arguments(parser)`` and ``main(args) -> dict``, and ``<pkg>.claims`` provides
``kit_summary(out) -> akira_nb.claims.Section`` (its section of the summary, from what ``main``
returned). The cli modules import torch only inside ``main``, so ``--help`` is quick.

Without a CUDA device, a run at the seed's protocol (no ``--size`` or ``AKIRA_SIZE``) or at
``t4`` / ``a100`` first prints the notebooks' no-GPU warning: what it would run, roughly how long
that takes on a CPU and what ``--size tiny`` runs instead (``runtime.CPU_COST``).

A bad input prints ``error: <message>`` on one line and exits with status 2 (a flag argparse
refuses adds ``; see python -m akira_nb <experiment> --help``); ``--debug`` (or
``AKIRA_DEBUG=1``) shows the traceback instead. The runs root (``--output_dir``) is checked
before any experiment starts, and ``--resume`` with no run of that name to resume is refused.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from akira_nb.runtime import ArgumentParser

EXPERIMENTS = {
    "grokking": "akira_nb.grokking",
    "spatiotemporal": "akira_nb.spatiotemporal",
    "action_quanta": "akira_nb.action_quanta",
    "bandformer": "akira_nb.band_transformer",
    "differential_lr": "akira_nb.differential_lr",
}


def _load(name: str, part: str = "cli"):
    return importlib.import_module(f"{EXPERIMENTS[name]}.{part}")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m akira_nb",
        description="Run an AKIRA experiment headless, or every experiment at one size (all).",
    )
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name in EXPERIMENTS:
        module = _load(name)
        doc = (module.__doc__ or name).strip()
        p = sub.add_parser(
            name,
            help=doc.splitlines()[0],
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
    p_all = sub.add_parser(
        "all",
        help="run every experiment at one size, then write and print the kit summary",
        description="The kit's main job: every experiment at one size; then summary.md and "
        "summary.json beside the runs.",
    )
    p_all.add_argument(
        "--size",
        default=None,
        choices=["tiny", "t4", "a100"],
        help="size preset for every experiment (default: AKIRA_SIZE, else each seed's own "
        "protocol, as in every sub-command); the main job is --size tiny",
    )
    p_all.add_argument(
        "--output_dir",
        "--output-dir",
        dest="output_dir",
        default=None,
        help="runs root (default: AKIRA_RUNS_DIR or runs/); the summary is written there",
    )
    for p in list(sub.choices.values()):
        p.add_argument(
            "--debug",
            action="store_true",
            help="show the full traceback of an error (also AKIRA_DEBUG=1)",
        )
    return parser


def run_all(parser: argparse.ArgumentParser, size: str | None, output_dir: str | None) -> dict:
    """Every experiment at ``size`` (None: each seed's own protocol); then the kit summary
    (written even when one fails, with the sections of those that finished)."""
    from akira_nb.claims import write_summary

    sections, written = [], {}
    try:
        for name in EXPERIMENTS:
            start = time.perf_counter()
            print(f"=== {name} (size {size or 'of the seed protocol'}) ===", flush=True)
            sub_args = [name] + (["--size", size] if size else [])
            if output_dir:
                sub_args += ["--output_dir", output_dir]
            out = _load(name).main(parser.parse_args(sub_args))
            sections.append(_load(name, "claims").kit_summary(out))
            print(f"=== {name} done in {time.perf_counter() - start:.1f} s ===", flush=True)
    finally:
        if sections:
            written = write_summary(sections, output_dir)
            print(f"\n{written['text']}\nkit summary: {written['md']} and {written['json']}")
    return {"sections": sections, **written}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, with a flag the sub-command does not know refused by the
    sub-command's parser (its ``--help`` is the one to read)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser._subparsers._group_actions[0].choices[args.experiment].error(
            f"unrecognized arguments: {' '.join(extra)}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    debug = args.debug or os.environ.get("AKIRA_DEBUG", "") not in ("", "0")
    try:
        from akira_nb.runs import check_runs_root, resume_must_exist
        from akira_nb.runtime import size_from, warn_if_no_gpu

        size = size_from(getattr(args, "size", None))
        check_runs_root(args.output_dir)  # before any experiment starts
        if args.experiment == "all":
            warn_if_no_gpu(size, list(EXPERIMENTS))
            run_all(parser, size, args.output_dir)
        else:
            if not getattr(args, "selftest", False):  # bandformer --selftest: a quick model test
                warn_if_no_gpu(size, args.experiment)
            with resume_must_exist(getattr(args, "resume", False)):  # --resume: a run to resume
                _load(args.experiment).main(args)
    except ValueError as exc:
        if debug:
            raise
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
