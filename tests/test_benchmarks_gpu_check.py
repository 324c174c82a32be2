"""benchmarks/gpu_check.py on a CPU: the refusal, the expected AMP path, the cost-table rows and
the exit status (the checks themselves need a GPU)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check as gc  # noqa: E402


def test_without_cuda_it_says_so_and_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(gc, "cuda_available", lambda: False)
    assert gc.main([]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA device" in err and "python benchmarks/gpu_check.py" in err


@pytest.mark.parametrize(
    "major, expected", [(7, ("float16", True)), (8, ("bfloat16", False)), (9, ("bfloat16", False))]
)
def test_expected_amp_path(major, expected):
    assert gc.expected_amp(major) == expected  # T4 is 7.5, A100 8.0, H100 9.0


def test_cost_rows_say_which_gpu_and_what_was_measured():
    runs = {
        "grokking": {"rc": 0, "seconds": 42.4},
        "bandformer": {"rc": 1, "seconds": 3.0},
    }
    heading, rows = gc.cost_rows("Tesla T4", {"grokking": 0.002}, {"grokking": 150_000}, runs)
    assert "Tesla T4" in heading and "not a T4" not in heading
    assert rows[0] == [
        "grokking_attention_vs_waves",
        "2.0 ms",
        "150,000",
        "5.0 min (150,000 x 2.0 ms)",
        "42 s",
    ]
    assert rows[1] == ["026_band_transformer", "not run", "not run", "not run",
                       "failed (rc 1) after 3 s"]  # fmt: skip
    assert len(rows) == 2  # experiments neither timed nor run are left out
    heading, _ = gc.cost_rows("NVIDIA A100-SXM4-40GB", {}, {}, runs)
    assert "not T4 minutes" in heading


def test_a_check_that_raises_is_a_failure_naming_the_error():
    def broken():
        raise RuntimeError("NCCL error: unhandled system error")

    check = gc._guard("ddp", broken)
    assert not check.ok and check.line().startswith("FAIL ddp: RuntimeError: NCCL error")


@pytest.mark.parametrize("failing", [None, "ddp"])
def test_exit_status_is_1_on_any_failed_check(monkeypatch, capsys, failing):
    import torch

    monkeypatch.setattr(gc, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    for name in ("amp", "fused_adamw", "ensemble"):
        monkeypatch.setattr(gc, f"check_{name}", lambda device, name=name: gc.Check(name, True, ""))
    monkeypatch.setattr(gc, "check_ddp", lambda: gc.Check("ddp", failing != "ddp", "stub"))
    monkeypatch.setattr(gc, "time_step", lambda name, device: (0.004, 1000))
    monkeypatch.setattr(gc, "run_plan", lambda name, timeout: {
        "rc": 0, "seconds": 12.0, "tail": "", "results": True, "standins": True})  # fmt: skip
    assert gc.main(["--experiments", "grokking", "spatiotemporal"]) == (1 if failing else 0)
    out = capsys.readouterr().out
    assert (
        "| grokking_attention_vs_waves | 4.0 ms | 1,000 | 0.1 min (1,000 x 4.0 ms) | 12 s |" in out
    )
    assert ("FAILED: ddp" in out) == bool(failing)
    assert f"{7 if failing else 8} of 8 checks passed" in out
