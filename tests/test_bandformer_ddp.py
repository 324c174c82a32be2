"""The band transformer trainer under torchrun: 2 CPU processes (gloo) give the loss curve and
weights of one process on the same global batch, and only rank 0 writes a run folder."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from akira_nb.bandformer.train import EXPERIMENT, TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
# each rank reads 2 of the 4 rows of every global batch; dropout 0 (the tiny preset)
CFG = dict(
    arm="band",
    seq_len=16,
    batch_size=4,
    total_steps=6,
    warmup_steps=1,
    eval_every=1,
    eval_batches=3,  # 3 batches: rank 0 evaluates two of them, rank 1 one
    monitor_every=2,
    checkpoint_every=2,
    device="cpu",
    progress=False,
)
FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in CFG.items() if k != "progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 17-25 s on 2 busy cores: two fresh processes import torch and build the corpus
def test_two_processes_match_one_on_the_same_global_batch(tmp_path):
    single = train(TrainConfig(**CFG))

    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    cmd += ["-m", "akira_nb.bandformer.train", *FLAGS, "--no-progress", "--output_dir", str(out)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "AKIRA_RUNS_DIR": str(tmp_path / "elsewhere"),  # --output_dir must win
    }
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # rank 0 alone wrote one run folder (and printed the summary once)
    (folder,) = (out / EXPERIMENT).iterdir()
    assert not (tmp_path / "elsewhere").exists()
    assert proc.stdout.count("band: 6 steps x 4 x 16 = 384 tokens") == 1
    assert "on cpu x 2" in proc.stdout
    res = json.loads((folder / "results.json").read_text())
    assert res["world_size"] == 2 and res["config"]["batch_size"] == 4

    # the same curve: DDP averages the two half-batch gradients into the full-batch gradient,
    # equal up to the order of float sums
    h, ref = res["history"], single.history
    assert h["step"] == ref["step"] == [1, 2, 3, 4, 5, 6]
    for key in ("train_loss", "val_loss", "grad_norm", "lr/band_0", "lr/shared"):
        assert h[key] == pytest.approx(ref[key], rel=1e-4), key
    assert h["train_loss"][-1] < h["train_loss"][0]
    for key, values in single.weight_change.items():
        assert res["weight_change"][key] == pytest.approx(values, rel=1e-3), key
    # and the same weights at the end (rank 0's final checkpoint)
    ckpts = sorted((folder / "checkpoints" / "band").iterdir())
    state = torch.load(ckpts[-1], weights_only=True)
    assert state["step"] == 6
    for name, p in single.model.state_dict().items():
        # Adam turns float-order noise in a near-zero gradient into up to ~1e-6 of a weight
        torch.testing.assert_close(state["model"][name], p, rtol=1e-4, atol=1e-5, msg=name)
