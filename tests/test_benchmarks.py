"""benchmarks/paired.py and the --reference-dir path of the benchmarks, against stub references."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import paired  # noqa: E402


def test_ratio_line_format_and_arithmetic():
    assert paired.ratio_line("fast32 1 thread", 30.0, 10.0, "steps/s") == (
        "kit/reference fast32 1 thread: x3.00"
    )
    assert paired.ratio_line("p53 fnet", 1.0, 3.0, "epochs/s") == "kit/reference p53 fnet: x0.33"
    assert paired.ratio_line("c", 2.0, 0.8, "steps/s") == "kit/reference c: x2.50"


@pytest.mark.parametrize("ref", [0.0, -1.0, float("nan")])
def test_ratio_line_refuses_non_positive_reference(ref):
    with pytest.raises(ValueError, match="steps/s"):
        paired.ratio_line("c", 1.0, ref, "steps/s")


def test_median():
    rows = [{"v": 3.0}, {"v": 1.0}, {"v": 2.0}, {"v": 10.0}]
    assert paired.median(rows, "v") == 2.5
    with pytest.raises(ValueError, match="'v'"):
        paired.median([], "v")


def test_interleave_alternates_order_per_round():
    calls = []

    def case(name):
        def run():
            calls.append(name)
            return {"n": len(calls)}

        return run

    out = paired.interleave({"kit": case("kit"), "reference": case("reference")}, rounds=4)
    assert calls == ["kit", "reference", "reference", "kit", "kit", "reference", "reference", "kit"]
    assert [r["round"] for r in out["kit"]] == [0, 1, 2, 3]
    assert [r["n"] for r in out["kit"]] == [1, 4, 5, 8]
    assert [r["n"] for r in out["reference"]] == [2, 3, 6, 7]


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True])
def test_interleave_refuses_bad_rounds(rounds):
    with pytest.raises(ValueError, match="rounds"):
        paired.interleave({"kit": dict}, rounds=rounds)


def test_reference_dir_none_missing_folder_missing_script(tmp_path):
    assert paired.reference_dir(None, "a/b.py") is None
    missing = tmp_path / "nope"
    with pytest.raises(ValueError, match=r"--reference-dir.*nope.*a/b\.py"):
        paired.reference_dir(str(missing), "a/b.py")
    with pytest.raises(ValueError, match=r"--reference-dir.*has no file 'a/b\.py'"):
        paired.reference_dir(str(tmp_path), "a/b.py")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.py").write_text("")
    assert paired.reference_dir(str(tmp_path), "a/b.py") == tmp_path.resolve()


def test_run_timed_measures_a_stub_reference(tmp_path):
    # sleeps 0.3 s (wall, no CPU), then spins ~0.3 s of CPU, then prints a known figure
    stub = tmp_path / "stub.py"
    stub.write_text(
        "import os, sys, time\n"
        "time.sleep(0.3)\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.3:\n"
        "    pass\n"
        "print('speed', os.environ['STUB_FIGURE'], 'steps/s', sys.argv[1])\n"
    )
    out = paired.run_timed(
        [sys.executable, stub, "x"], cwd=tmp_path, env={**os.environ, "STUB_FIGURE": "12.5"}
    )
    assert out["stdout"].strip() == "speed 12.5 steps/s x"
    assert out["wall_s"] >= 0.6
    assert 0.3 <= out["cpu_s"] < out["wall_s"]
    assert out["peak_rss_mb"] > 1


def test_run_timed_raises_with_stderr_tail(tmp_path):
    stub = tmp_path / "bad.py"
    stub.write_text("import sys\nsys.stderr.write('reference broke here')\nsys.exit(3)\n")
    with pytest.raises(RuntimeError, match="exited with 3(.|\n)*reference broke here"):
        paired.run_timed([sys.executable, stub], cwd=tmp_path)
