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
