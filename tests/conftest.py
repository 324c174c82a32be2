import contextlib
import gc
import io
import os
import shutil
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
# One intra-op thread per test process unless OMP_NUM_THREADS says otherwise: with two pytest
# workers on two cores, a second thread per worker spins waiting for a busy core (one paired run,
# 3 pairs, of `pytest tests/test_bandformer_model.py -n 2 -k learn_well` at OMP_NUM_THREADS=1
# against 2: median CPU-seconds ratio 0.51).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    """A private runs root so tests never write into the checkout's runs/."""
    root = tmp_path / "runs"
    monkeypatch.setenv("AKIRA_RUNS_DIR", str(root))
    return root


# ----------------------------------------------------------------------------- shared models


@pytest.fixture(scope="session")
def tiny_lm():
    """The alignment tests' tiny GPT-2-style pair: the tiny preset's (``models.TinyConfig()``,
    the pair 000 and its notebook use) from the machine's model cache (``runtime.cache_dir()``),
    trained there once when missing: ``(folders, cache root)``. The notebook stage of
    ``tests/run_all.sh`` leaves it there; the pytest workers share it under a file lock."""
    from filelock import FileLock

    from akira_nb import runtime
    from akira_nb.alignment import models

    root = runtime.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / "tiny_lm.lock")):
        return models.tiny_pair(models.TinyConfig(), root=root), root


# ----------------------------------------------------------------------------- the main job

MAIN_JOB = "main_job"  # xdist group: every test that reads the main job runs on one worker

# The smallest runs that exercise ``all``'s wiring: real flags of every sub-command appended
# to what ``all --size tiny`` passes it (a few steps, one or two arms, a handful of samples).
SMALL_FLAGS = {
    "grokking": ["--p", "7", "--n_epochs", "30", "--wave_modes", "fnet", "--seeds", "0"],
    "spatiotemporal": ["--steps", "6", "--eval-steps", "4", "--grid-size", "8"],
    "action_quanta": ["--num-samples", "8", "--no-grokking"],
    "bandformer": [
        *("--arms", "band", "baseline", "--budgets", "4", "8", "--lr_multipliers", "1"),
        *("--aq_samples", "8"),
        *("--eval_batches", "1", "--final_eval_predictions", "64", "--stats_sequences", "2"),
    ],
    "differential_lr": [
        *("--budgets", "4", "--seeds", "0", "--eval-batches", "1", "--sweep", ""),
        *("--final-eval-predictions", "64"),
    ],
}


class _SmallFlags:
    """A parser that appends :data:`SMALL_FLAGS` to each sub-command ``all`` parses."""

    def __init__(self, parser):
        self.parser = parser

    def __getattr__(self, name):
        return getattr(self.parser, name)

    def parse_args(self, argv=None):
        argv = list(argv or [])
        return self.parser.parse_args(argv + SMALL_FLAGS.get(argv[0] if argv else "", []))


@pytest.fixture(scope="session")
def main_job(tmp_path_factory):
    """``python -m akira_nb all --size tiny`` once per test session, every experiment shrunk by
    :data:`SMALL_FLAGS` (the wiring of ``all``: every experiment registered, run through its
    ``cli.main``, its ``kit_summary`` into the summary; the tiny studies themselves are checked
    by the notebooks and :func:`tiny_runs`): ``{"root", "out", "code"}``. The tests that read
    it carry ``@pytest.mark.xdist_group(MAIN_JOB)`` so that, with ``--dist loadgroup`` (or
    ``loadfile``, as ``tests/run_all.sh`` runs them), it runs once."""
    from akira_nb import __main__ as entry

    root = tmp_path_factory.mktemp("main_job")
    buf = io.StringIO()
    build = entry.build_parser
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setattr(entry, "build_parser", lambda: _SmallFlags(build()))
        code = entry.main(["all", "--size", "tiny", "--output_dir", str(root)])
    return {"root": root, "out": buf.getvalue(), "code": code}


# ----------------------------------------------------------------------------- the tiny studies


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """A runs root for the notebooks' tiny studies, which tests reopen with ``resume=True`` under
    the notebook's run name: a copy of ``AKIRA_TINY_RUNS_DIR`` when set (``tests/run_all.sh``
    points it at the notebook stage's runs, so CI trains each tiny study once), else an empty
    folder (the test's resume then trains the study itself, as the notebook would)."""
    root = tmp_path_factory.mktemp("tiny_runs") / "runs"
    source = os.environ.get("AKIRA_TINY_RUNS_DIR")
    if source:
        if not Path(source).is_dir():
            raise ValueError(f"AKIRA_TINY_RUNS_DIR={source!r} is not a folder of runs")
        shutil.copytree(source, root)
    else:
        root.mkdir()
    return root


# ----------------------------------------------------------------------------- progress by file


class _FileProgress:
    """Prints ``done tests/test_x.py (12 tests, 3.4 s)`` as each test file finishes (the seconds
    its tests took, summed), so a long quiet run (``-q``, several workers) shows where it is."""

    def __init__(self, config):
        self.config = config
        self.left: dict[str, int] = {}
        self.failed: set[str] = set()
        self.seconds: dict[str, float] = {}

    def _count(self, nodeids):
        if not self.left:
            for nodeid in nodeids:
                path = nodeid.split("::")[0]
                self.left[path] = self.left.get(path, 0) + 1
        self.total = dict(self.left)

    def pytest_collection_finish(self, session):
        self._count([item.nodeid for item in session.items])

    @pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: absent without it
    def pytest_xdist_node_collection_finished(self, node, ids):
        self._count(ids)

    def pytest_runtest_logreport(self, report):
        path = report.nodeid.split("::")[0]
        self.seconds[path] = self.seconds.get(path, 0.0) + report.duration
        if report.failed:
            self.failed.add(path)
        if report.when != "teardown" or path not in self.left:
            return
        self.left[path] -= 1
        if self.left[path] == 0:
            word = "FAILED" if path in self.failed else "done"
            took = self.seconds[path]  # its tests' set-up, call and tear-down, summed
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"{word} {path} ({self.total[path]} tests, {took:.0f} s)")


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller (or a run without workers)
        config.pluginmanager.register(_FileProgress(config), "akira-file-progress")


def pytest_collection_finish(session):
    """Move everything alive after collection (torch, transformers and every test module:
    hundreds of thousands of objects) out of the garbage collector's sight: objects made by the
    tests are still collected, but a full collection (automatic, or the one after each training,
    ``bandformer.train.trim_heap``) no longer walks the imported libraries each time."""
    gc.freeze()
