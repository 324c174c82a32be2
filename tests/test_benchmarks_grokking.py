"""benchmarks/grokking_speed.py: the --reference-dir path against a stub reference (the ratio
arithmetic and the refusal of a missing folder, not speed) and its FLOP count."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import grokking_speed  # noqa: E402

# A stand-in for the reference's experiments/: the same names the driver imports; train_model
# burns a fixed amount of CPU per epoch so the reference's epochs/s is a known, slow figure.
# Like the reference, it evaluates at epoch 0 (0.1 CPU-s, in compute_fourier_metrics): the
# benchmark must time that evaluation again and take it out of the reference's span.
STUB_MODELS = """
import torch
def train_test_split(p, train_frac, device, seed=42):
    return (None, None, None), (None, None, torch.zeros(1, dtype=torch.long))
class StandardAttentionTransformer:
    def __init__(self, p): pass
    def to(self, device): return self
    def eval(self): return self
    def __call__(self, a, b): return torch.zeros(1, 2)
class WaveTransformer(StandardAttentionTransformer):
    def __init__(self, p, wave_mode): pass
"""
STUB_TRAIN = """
import time
def burn(seconds):
    t = time.process_time()
    while time.process_time() - t < seconds:
        pass
def compute_fourier_metrics(model, device):
    burn(0.1)
def train_model(model, train_data, test_data, n_epochs, lr, weight_decay, log_every, device,
                desc):
    for epoch in range(n_epochs):
        burn(0.05)
        if epoch % log_every == 0:
            compute_fourier_metrics(model, device)
"""


def test_refuses_a_missing_reference_folder(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert grokking_speed.main(["--reference-dir", str(missing)]) == 2
    out = capsys.readouterr().out
    assert "--reference-dir" in out and str(missing) in out


def test_refuses_a_folder_without_the_reference_script(tmp_path, capsys):
    assert grokking_speed.main(["--reference-dir", str(tmp_path)]) == 2
    assert "experiments/train_comparison.py" in capsys.readouterr().out


def test_reference_run_against_a_stub_prints_the_kit_over_reference_ratio(tmp_path, capsys):
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "models.py").write_text(STUB_MODELS)
    (tmp_path / "experiments" / "train_comparison.py").write_text(STUB_TRAIN)
    args = ["--reference-dir", str(tmp_path), "--primes", "5", "--epochs", "4"]
    assert grokking_speed.main([*args, "--mixers", "fnet", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    kit = float(re.search(r"^fnet\s+kit\s+([\d.]+)", out, re.M).group(1))
    ref = float(re.search(r"^fnet\s+reference\s+([\d.]+)", out, re.M).group(1))
    # 0.05 CPU-s per epoch, the epoch-0 evaluation's 0.1 CPU-s taken out (with it: 13.3)
    assert ref == pytest.approx(20.0, rel=0.1)
    assert re.search(
        r"epoch-0 evaluation \(0\.1\d\d CPU-s, [12]\.\d\d epochs' worth\) subtracted", out
    )
    ratio = float(re.search(r"^kit/reference p5 fnet: x([\d.]+)$", out, re.M).group(1))
    assert ratio == pytest.approx(kit / ref, rel=0.02)
    # the printed notes say the kit computes the MLP at '=' only, the reference at all 3
    assert "MLP and unembedding at '=' only" in out and "at all 3 positions" in out


def test_ratio_rows_are_medians_kit_over_reference():
    rows = {
        "kit": [{"v": 10.0}, {"v": 30.0}, {"v": 20.0}],
        "reference": [{"v": 4.0}, {"v": 5.0}, {"v": 6.0}],
    }
    assert grokking_speed.ratio_rows(rows, "v") == (20.0, 5.0, 4.0)


def test_train_flops_count_the_kit_models_matmuls():
    # per example at p = 53: MLP 2 x (2 * 128 * 512) + unembedding 2 * 128 * 53, x3 (forward,
    # input and weight gradients)
    wave = 3 * (2 * 2 * 128 * 512 + 2 * 128 * 53)
    assert grokking_speed.train_flops(53, "learned_gate") == wave
    assert grokking_speed.train_flops(53, "phase_shift") == wave
    assert grokking_speed.train_flops(53, "fnet") == wave + 2 * 2 * 384 * 128
    # + K, V at 3 positions and Q, W_O at '='
    attention = wave + 3 * (3 * 2 * 128 * 256 + 2 * 2 * 128 * 128)
    assert grokking_speed.train_flops(53, "standard") == attention
    assert grokking_speed.train_flops(53, "full") == attention + 2 * 4 * 2 * 128 * 34


def test_matmul_bound_is_measured_per_cpu_second_too(monkeypatch):
    # fake clocks: every reading advances wall time by 1 s and CPU time by 2 s (two busy
    # threads), so a batch of 10 matmuls takes 1 wall-s and 2 CPU-s
    clocks = {"wall": 0.0, "cpu": 0.0}

    def tick(name, step):
        clocks[name] += step
        return clocks[name]

    monkeypatch.setattr(grokking_speed.time, "perf_counter", lambda: tick("wall", 1.0))
    monkeypatch.setattr(grokking_speed.time, "process_time", lambda: tick("cpu", 2.0))
    bound = grokking_speed.matmul_bound(8, d=4, d_mlp=16, threads=1)
    flops = 2 * 8 * 4 * 16
    assert bound["flops_per_s"] == pytest.approx(flops / 0.1)
    assert bound["flops_per_cpu_s"] == pytest.approx(flops / 0.2)


def test_percent_of_bound_uses_cpu_seconds_on_both_sides():
    # 10 epochs per CPU-s x 1 GFLOP per epoch over a bound of 20 GFLOP per CPU-s (40 GFLOP per
    # wall-s on two threads): 50 %, not the 25 % of dividing by the wall-clock bound
    bound = {"flops_per_s": 40e9, "flops_per_cpu_s": 20e9}
    assert grokking_speed.percent_of_bound(10.0, 1e9, bound) == pytest.approx(50.0)
