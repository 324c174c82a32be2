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


# --- benchmarks/spatiotemporal_speed.py --reference-dir, against a stub reference checkout ---

import spatiotemporal_speed as st_speed  # noqa: E402


def _stub_reference(root: Path, total_s: float) -> Path:
    script = root / st_speed.REFERENCE_SCRIPT
    script.parent.mkdir(parents=True)
    script.write_text(
        "import os, sys\n"
        "with open(os.path.join(os.path.dirname(__file__), 'calls.txt'), 'a') as fh:\n"
        "    fh.write(os.environ['OMP_NUM_THREADS'] + ' ' + ' '.join(sys.argv[1:]) + '\\n')\n"
        "print('RESULTS:')\n"
        f"print('  Total time: {total_s:.2f}s')\n"
        "print('  Steps/sec: 0.0')\n"  # a rounded figure the benchmark must not use
        "print('  Final loss: 0.002000')\n"
        "print('  Eval mean loss: 0.010000')\n"
    )
    return script.parent / "calls.txt"


def test_spatiotemporal_reference_dir_ratio_against_a_stub(tmp_path, monkeypatch, capsys):
    calls = _stub_reference(tmp_path, total_s=2.0)  # 300 steps / 2 s = 150 steps/s
    kit_calls = []

    def fake_kit(name, steps, device, threads):
        kit_calls.append((name, steps, threads))
        # per thread count: 60, 40, 60, whose median is 60
        speed = 60.0 if sum(c[2] == threads for c in kit_calls) % 2 else 40.0
        return {"steps_per_s": speed, "train_steps_per_s": 70.0, "process_steps_per_s": 30.0,
                "wall_s": 10.0, "cpu_s": 9.0, "peak_rss_mb": 100.0, "threads": threads}  # fmt: skip

    monkeypatch.setattr(st_speed, "run_kit", fake_kit)
    monkeypatch.setattr(st_speed, "matmul_gflops", lambda threads, device: 100.0)
    rc = st_speed.main(["--reference-dir", str(tmp_path), "--rounds", "3", "--threads", "1", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    assert out[-2:] == ["kit/reference fast32 1t: x0.40", "kit/reference fast32 2t: x0.40"]
    ref_lines = [line for line in out if line.strip().startswith("reference")]
    assert len(ref_lines) == 2 and "training  150.00 steps/s" in ref_lines[0]
    assert kit_calls == [("fast32", 300, 1)] * 3 + [("fast32", 300, 2)] * 3
    runs = calls.read_text().splitlines()
    assert len(runs) == 6 and [r.split()[0] for r in runs] == ["1"] * 3 + ["2"] * 3
    assert "--config fast --grid-size 32 --steps 300 --pattern-train blob" in runs[0]
    assert "--eval-steps 101" in runs[0]
    # the floor: 2 * 1024 * 8192 * 9 FLOPs at 100 GFLOP/s = 1.51 ms a search; beside it both
    # sides' whole training loop (kit median 60 steps/s, reference 150), like with like
    floor = [line for line in out if "FLOP floor" in line]
    assert len(floor) == 2 and "= 1.51 ms a search" in floor[0]
    assert "peak square-matmul rate measured here (100 GFLOP/s" in floor[0]
    assert "kit step 16.7 ms (whole training loop; fwd+bwd+step alone 14.3 ms)" in floor[0]
    assert "its step 6.7 ms (whole training loop)" in floor[0]


def test_spatiotemporal_projected_case_is_like_for_like_with_its_ratio(
    tmp_path, monkeypatch, capsys
):
    from akira_nb.spatiotemporal.presets import get_config

    for name in ("fast32_projected", "large64_projected"):
        preset, grid, _, _, overrides, has_ref = st_speed.CASES[name]
        cfg = get_config(preset, **overrides)
        assert has_ref and cfg.wormhole_similarity_features == "projected"
        assert cfg.base_dim == st_speed.PROJECTED_SIM_DIMS == st_speed.REFERENCE_SIM_DIMS
        assert st_speed.sim_dims(name) == 32 and st_speed.sim_dims(name[:-10]) == 9
    assert (
        get_config("large", **st_speed.CASES["large64_projected"][4]).wormhole_max_spatial_tokens
        >= 64 * 64
    )
    calls = _stub_reference(tmp_path, total_s=3.0)  # 300 / 3 s = 100 steps/s
    kit_calls = []

    def fake_kit(name, steps, device, threads):
        kit_calls.append(name)
        return {"steps_per_s": 50.0, "train_steps_per_s": 70.0, "process_steps_per_s": 30.0,
                "wall_s": 10.0, "cpu_s": 9.0, "peak_rss_mb": 100.0, "threads": threads}  # fmt: skip

    monkeypatch.setattr(st_speed, "run_kit", fake_kit)
    monkeypatch.setattr(st_speed, "matmul_gflops", lambda threads, device: 100.0)
    argv = ["--reference-dir", str(tmp_path), "--rounds", "1", "--threads", "1"]
    assert st_speed.main(argv + ["--cases", "fast32_projected"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert kit_calls == ["fast32_projected"]
    assert "--config fast --grid-size 32 --steps 300" in calls.read_text()
    assert out[-1] == "kit/reference fast32_projected 1t: x0.50"
    assert any("projected 32-dim similarity features as the reference" in line for line in out)
    # 2 * 1024 * 8192 * 32 FLOPs at 100 GFLOP/s = 5.37 ms, the reference's figure too
    floor = next(line for line in out if "FLOP floor" in line)
    assert "x 32 dims = 5.37 ms a search" in floor and "reference x 32 dims = 5.37 ms" in floor


def test_spatiotemporal_refuses_a_missing_reference(tmp_path, capsys):
    assert st_speed.main(["--reference-dir", str(tmp_path / "none")]) == 2
    msg = capsys.readouterr().out.strip().splitlines()
    assert len(msg) == 1 and "--reference-dir" in msg[0] and "none" in msg[0]
    assert st_speed.main(["--reference-dir", str(tmp_path)]) == 2  # a folder without the script
    msg = capsys.readouterr().out.strip()
    assert "--reference-dir" in msg and "synthetic_2d.py" in msg


def test_spatiotemporal_parses_the_reference_output_and_refuses_other_output():
    row = st_speed.parse_reference("  Total time: 24.00s\n  Steps/sec: 12.5\n", 300)
    assert row["steps_per_s"] == 12.5 and row["loop_s"] == 24.0
    with pytest.raises(RuntimeError, match="Total time"):
        st_speed.parse_reference("nothing useful\n", 300)
