import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", min(2, os.cpu_count() or 1))))


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    """A private runs root so tests never write into the checkout's runs/."""
    root = tmp_path / "runs"
    monkeypatch.setenv("AKIRA_RUNS_DIR", str(root))
    return root


MAIN_JOB = "main_job"  # xdist group: every test that reads the main job runs on one worker


@pytest.fixture(scope="session")
def main_job(tmp_path_factory):
    """``python -m akira_nb all --size tiny`` run once per test session (the kit's main job):
    ``{"root": its runs root, "out": what it printed}``. The tests that read it carry
    ``@pytest.mark.xdist_group(MAIN_JOB)`` so that, with ``--dist loadgroup``, it runs once."""
    import contextlib
    import io

    from akira_nb.__main__ import main

    root = tmp_path_factory.mktemp("main_job")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["all", "--size", "tiny", "--output_dir", str(root)])
    return {"root": root, "out": buf.getvalue(), "code": code}
