"""Headless runs: ``python -m akira_nb <experiment> [flags]``.

``python -m akira_nb all --size tiny`` runs every experiment at the given size (the kit's main
job). Each experiment module named in ``EXPERIMENTS`` provides ``add_arguments(parser)`` and
``main(args) -> dict`` (the results it wrote).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

EXPERIMENTS = {
    "grokking": "akira_nb.grokking.cli",
    "spatiotemporal": "akira_nb.spatiotemporal.cli",
}


def _load(name: str):
    return importlib.import_module(EXPERIMENTS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m akira_nb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="experiment", required=True)
    for name in EXPERIMENTS:
        module = _load(name)
        p = sub.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0])
        module.add_arguments(p)
    p_all = sub.add_parser("all", help="run every experiment at one size (the main job)")
    p_all.add_argument("--size", default="tiny", choices=["tiny", "t4", "a100"])
    p_all.add_argument("--output_dir", "--output-dir", dest="output_dir", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.experiment != "all":
        _load(args.experiment).main(args)
        return 0
    for name in EXPERIMENTS:
        start = time.perf_counter()
        print(f"=== {name} (size {args.size}) ===", flush=True)
        sub_args = [name, "--size", args.size]
        if args.output_dir:
            sub_args += ["--output_dir", args.output_dir]
        _load(name).main(parser.parse_args(sub_args))
        print(f"=== {name} done in {time.perf_counter() - start:.1f} s ===", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
