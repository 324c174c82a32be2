"""benchmarks/full_shapes.py: the arithmetic, the counting on known answers, the table, the
host-memory runner (the plans themselves are counted by running the script)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import full_shapes as fs  # noqa: E402


def test_minutes_memory_and_svd_arithmetic():
    assert fs.minutes(20e12 * 0.3 * 60, 20e12, 0.3) == pytest.approx(1.0)
    for rate, util in ((0.0, 0.3), (1e12, 0.0), (1e12, 1.5)):
        with pytest.raises(ValueError, match="utilisation="):
            fs.minutes(1.0, rate, util)
    assert fs.gpu_memory_bytes(1000, 500, train=True) == 16_500  # fp32 + grad + 2 AdamW
    assert fs.gpu_memory_bytes(1000, 500, train=False) == 4_500
    assert fs.svd_flops(10) == 21_000


def test_plan_minutes_add_the_host_svds_at_the_cpu_rate():
    plan = fs.Plan("action_quanta", "a + b", 10, step_flops=1e12, steps=36, activation_bytes=0,
                   train=False, extra_cpu_flops=fs.CPU_FLOPS * 60)  # fmt: skip
    gpu_part = 36e12 / (fs.GPUS["T4"] * 0.5) / 60
    assert plan.minutes("T4", 0.5) == pytest.approx(gpu_part + 1.0)
    assert plan.gpu_bytes == 40
    plan.max_gpu_bytes = 10**9  # another arm needs more: the column shows the most
    assert plan.gpu_bytes == 10**9


def test_human_units():
    assert fs.human(1.5e12, "FLOP") == "1.5 TFLOP"
    assert fs.human(3 * 1024**3, "B") == "3 GiB"
    assert fs.human(512, "B") == "512 B"
    assert fs.human(211_000) == "211 k"


def test_count_on_a_known_answer():
    lin = torch.nn.Linear(4, 8, bias=False)
    x = torch.randn(2, 4)
    step = fs.Step("lin", lin, lambda: lin(x).sum())
    c = fs.count(step)
    # forward x @ W^T: 2*2*4*8; backward only the weight's gradient (x needs none): the same
    assert c["flops"] == 2 * (2 * 2 * 4 * 8)
    assert c["activation_bytes"] == c["activation_bytes_math"] == x.nbytes  # W excluded

    q = torch.randn(1, 5, 3, requires_grad=True)
    scores = fs.Step("attn", torch.nn.Linear(1, 1), lambda: (q @ q.mT).softmax(-1).sum(),
                     attention_len=5)  # fmt: skip
    c = fs.count(scores)
    assert c["activation_bytes_math"] - c["activation_bytes"] == 5 * 5 * 4  # the T x T scores


def test_table_row_and_format():
    plan = fs.Plan("bandformer", "band", 29_000_000, 8e11, 14_000, 2 * 1024**3)
    row = fs.table_row(plan, None, 0.3)
    assert len(row) == len(fs.COLUMNS) and row[0] == "026_band_transformer"
    assert row[3] == "800 GFLOP" and row[4] == "14,000" and row[-1] == "not run"
    assert row[6] == f"{plan.minutes('T4'):.3g}"
    assert fs.table_row(plan, 3 * 1024**2)[-1] == "3 MiB"
    table = fs.format_table([row]).splitlines()
    assert table[0].startswith("| notebook | largest arm |") and len(table) == 3
    assert "T4 20 TFLOP/s" in fs.assumptions() and "utilisation 0.3" in fs.assumptions()


def test_stage_commands_are_the_t4_plan_with_counts_shrunk():
    from akira_nb.__main__ import build_parser

    parser = build_parser()
    for name in fs.EXPERIMENTS:
        cmd = fs.stage_command(name, "/tmp/out")
        assert cmd[3:7] == [name, "--size", "t4", "--offline"] and cmd[1:3] == ["-m", "akira_nb"]
        assert cmd[7 : 7 + len(fs.SHRINK[name])] == fs.SHRINK[name]
        parser.parse_args([name, "--size", "t4", *fs.SHRINK[name]])  # every flag exists
    for name in ("grokking", "spatiotemporal"):  # --offline there too
        parser.parse_args(fs.stage_command(name, "/tmp/out")[3:])


def test_max_rss_reads_the_childs_peak_and_kills_on_timeout():
    grow = "x = bytearray(200 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    res = fs.max_rss([sys.executable, "-c", grow], timeout=60)
    assert res["rc"] == 0 and res["max_rss"] >= 200 * 1024 * 1024
    res = fs.max_rss([sys.executable, "-c", "import sys; sys.exit(3)"], timeout=60)
    assert res["rc"] == 3
    res = fs.max_rss([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert res["rc"] is None and res["seconds"] < 10
