"""Paired timing of the kit against a public reference checkout, shared by the benchmarks.

A benchmark given ``--reference-dir PATH`` runs the reference's own script in a subprocess on the
same protocol, threads and machine as the kit, case by case, interleaved (kit, reference,
reference, kit, ...) so that drift on a shared machine hits both alike, and ends with one
``kit/reference <case>: x<ratio>`` line per case (medians, kit over reference). Without it the
benchmark prints the kit's figures alone: no reference figure is ever typed in.

Use from a benchmark script (its folder is on ``sys.path`` when run as a script)::

    import paired

    try:
        ref = paired.reference_dir(args.reference_dir, "path/inside/the/checkout/script.py")
    except ValueError as exc:
        print(exc)
        return 2
    rows = paired.interleave({"kit": run_kit, "reference": run_ref}, rounds=3)
    print(paired.ratio_line("fast32 1 thread", paired.median(rows["kit"], "steps_per_s"),
                            paired.median(rows["reference"], "steps_per_s"), "steps/s"))

and from a test: ``sys.path.insert(0, str(REPO / "benchmarks")); import paired``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["reference_dir", "run_timed", "interleave", "median", "ratio_line"]


def reference_dir(path: str | os.PathLike | None, must_contain: str) -> Path | None:
    """The reference checkout as a resolved ``Path``, or ``None`` when ``path`` is ``None``.

    ``must_contain`` is a path relative to the checkout (the reference script the benchmark
    runs). A missing folder, or one without ``must_contain``, raises ``ValueError`` naming
    ``--reference-dir``, the path given and what was expected; the benchmark prints it on one
    line and exits 2, before anything runs.
    """
    if path is None:
        return None
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(
            f"--reference-dir {str(path)!r} is not a folder; expected a checkout of the public "
            f"reference repository containing {must_contain!r}"
        )
    if not (root / must_contain).is_file():
        raise ValueError(
            f"--reference-dir {str(path)!r} has no file {must_contain!r}; expected a checkout "
            f"of the public reference repository (its root folder), which holds that script"
        )
    return root.resolve()


def run_timed(
    cmd: Sequence[str], cwd: str | os.PathLike, env: Mapping[str, str] | None = None
) -> dict:
    """Run ``cmd`` in ``cwd`` to completion and time it.

    Returns ``{"wall_s", "cpu_s", "user_s", "sys_s", "peak_rss_mb", "stdout", "stderr"}``:
    ``cpu_s`` is the child's own user + system time (``os.wait4`` on its pid, so processes
    started elsewhere by the caller do not count; the child's own children do once it has waited
    for them) and ``peak_rss_mb`` its peak resident set. ``env`` replaces the environment when
    given (pass ``{**os.environ, ...}`` to extend it). A non-zero exit raises ``RuntimeError``
    with the command and the last 2,000 characters of its stderr.
    """
    cmd = [str(c) for c in cmd]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        tic = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=None if env is None else dict(env),
                                stdout=out, stderr=err)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - tic
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} (in {cwd}) exited with {proc.returncode}; stderr ends:\n"
            f"{stderr[-2000:]}"
        )
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "stdout": stdout,
        "stderr": stderr,
    }


def interleave(cases: Mapping[str, Callable[[], dict]], rounds: int) -> dict[str, list[dict]]:
    """Call every case ``rounds`` times, alternating the order from round to round.

    Round 0 runs the cases in the order given (kit, reference), round 1 in reverse (reference,
    kit), and so on, so slow drift of a shared machine hits every case alike. Returns each case's
    results in call order; the caller reports medians (``median``). Each result dict gets
    ``"round"`` (0-based) added.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}")
    if not cases:
        raise ValueError("cases must name at least one case, got none")
    names = list(cases)
    results: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            row = dict(cases[name]())
            row["round"] = r
            results[name].append(row)
    return results


def median(rows: Sequence[Mapping], key: str) -> float:
    """The median of ``row[key]`` over ``rows`` (the figure a paired benchmark reports)."""
    if not rows:
        raise ValueError(f"no rows to take the median of {key!r} from")
    return float(statistics.median(float(r[key]) for r in rows))


def ratio_line(case: str, kit: float, ref: float, unit: str) -> str:
    """``kit/reference <case>: x<kit/ref to 2 decimals>``, e.g. ``kit/reference fast32: x3.10``.

    ``kit`` and ``ref`` are the same figure in ``unit`` (steps/s, epochs/s: higher is faster),
    measured in this run; the benchmark prints both beside it. A reference figure that is not a
    positive number raises ``ValueError`` naming ``unit``.
    """
    if not (ref > 0) or ref != ref:
        raise ValueError(f"reference {unit} for {case!r} must be > 0 to take a ratio, got {ref!r}")
    if kit != kit or kit < 0:
        raise ValueError(f"kit {unit} for {case!r} must be >= 0, got {kit!r}")
    return f"kit/reference {case}: x{kit / ref:.2f}"
