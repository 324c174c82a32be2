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
STUB_MODELS = """
def train_test_split(p, train_frac, device, seed=42):
    return (None, None, None), (None, None, None)
class StandardAttentionTransformer:
    def __init__(self, p): pass
    def to(self, device): return self
class WaveTransformer(StandardAttentionTransformer):
    def __init__(self, p, wave_mode): pass
"""
STUB_TRAIN = """
import time
def train_model(model, train_data, test_data, n_epochs, lr, weight_decay, log_every, device,
                desc):
    for _ in range(n_epochs):
        t = time.process_time()
        while time.process_time() - t < 0.05:
            pass
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
    assert ref == pytest.approx(20.0, rel=0.1)  # 0.05 CPU-s per epoch
    ratio = float(re.search(r"^kit/reference p5 fnet: x([\d.]+)$", out, re.M).group(1))
    assert ratio == pytest.approx(kit / ref, rel=0.02)


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
