"""The 033 command line: flags, the size rule, validation before any run folder, lazy imports."""

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from akira_nb.__main__ import build_parser
from akira_nb.spatiotemporal import cli
from akira_nb.spatiotemporal.model import build_model
from akira_nb.spatiotemporal.patterns import PATTERNS
from akira_nb.spatiotemporal.presets import MODEL_PRESETS
from akira_nb.spatiotemporal.train import TrainConfig


@pytest.fixture(autouse=True)
def no_size_env(monkeypatch):
    monkeypatch.delenv("AKIRA_SIZE", raising=False)


def _args(*flags):
    return build_parser().parse_args(["spatiotemporal", *flags])


def _cli_config(*flags):
    return cli.config_from_args(_args(*flags))


def test_cli_grid_comes_from_the_flag_then_the_preset_then_the_size():
    assert _cli_config("--config", "large")[0].grid_size == 64
    assert _cli_config("--config", "xlarge", "--size", "tiny")[0].grid_size == 128
    assert _cli_config("--config", "large", "--grid-size", "16")[0].grid_size == 16
    cfg, preset, _, _ = _cli_config("--size", "tiny")
    assert (cfg.grid_size, preset) == (16, "fast")
    assert _cli_config()[0].grid_size == 32


def test_size_comes_from_the_flag_then_akira_size_then_the_reference(monkeypatch):
    cfg = _cli_config()[0]
    assert (cfg.grid_size, cfg.steps, cfg.checkpoint_every) == (32, 300, 0)  # the reference's
    assert cli.size_line(_args()).startswith("no --size or AKIRA_SIZE: the reference's defaults")
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    cfg = _cli_config()[0]
    assert (cfg.grid_size, cfg.steps, cfg.eval_steps) == (16, 60, 30)
    line = cli.size_line(_args("--steps", "7"))
    assert line.startswith("size tiny (AKIRA_SIZE) filled: grid_size 16,")
    assert "steps 60" not in line  # given on the command line
    assert _cli_config("--size", "t4")[0].steps == 500  # the flag wins over the environment
    assert cli.size_line(_args("--size", "t4")).startswith("size t4 (--size) filled")


@pytest.mark.parametrize(
    "flags, name",
    [
        (("--grid-size", "0"), "grid_size"),
        (("--eval-steps", "0"), "eval_steps"),
        (("--steps", "-1"), "steps"),
        (("--batch", "0"), "batch"),
    ],
)
def test_cli_zero_values_fail_instead_of_becoming_defaults(flags, name):
    with pytest.raises(ValueError, match=name):
        _cli_config(*flags)


BAD_FLAGS = [
    (("--device", "tpu"), "device"),
    (("--seed", "-1"), "seed"),
    (("--wormhole-threshold", "1.5"), "wormhole_threshold"),
    (("--wormhole-threshold", "nan"), "wormhole_threshold"),
    (("--max-connections", "0"), "wormhole_max_connections"),
    (("--threads", "-1"), "cpu_threads"),
    (("--grid-size", "2"), "grid_size"),
    (("--viz-interval", "-1"), "viz_interval"),
]
if not torch.cuda.is_available():
    BAD_FLAGS.append((("--device", "cuda"), "device"))


@pytest.mark.parametrize("flags, name", BAD_FLAGS)
def test_bad_flags_fail_before_a_run_folder_is_made(tmp_path, flags, name):
    args = _args("--size", "tiny", "--quiet", "--output_dir", str(tmp_path), *flags)
    with pytest.raises(ValueError, match=name):
        cli.main(args)
    assert list(tmp_path.iterdir()) == []  # nothing a later --resume could reopen


def test_wormhole_flags_reach_the_model():
    cfg, preset, overrides, _ = _cli_config("--wormhole-threshold", "0.5", "--max-connections", "2")
    assert overrides == {"wormhole_threshold": 0.5, "wormhole_max_connections": 2}
    model = build_model("spectral", preset, grid_size=cfg.grid_size, **overrides)
    assert (model.wormhole.threshold, model.wormhole.max_connections) == (0.5, 2)
    assert _cli_config()[2] == {}  # unset: the preset's own values
    assert _cli_config("--threads", "2")[0].cpu_threads == 2


def test_choice_lists_written_out_in_cli_equal_the_real_ones():
    assert cli.PATTERN_CHOICES == PATTERNS
    assert cli.PRESET_CHOICES == tuple(MODEL_PRESETS)


def _sub_parser():
    return build_parser()._subparsers._group_actions[0].choices["spatiotemporal"]


def test_every_flag_has_help_and_the_parser_a_description():
    parser = argparse.ArgumentParser(description=cli.__doc__)
    cli.add_arguments(parser)
    missing = [a.dest for a in parser._actions if not a.help]
    assert missing == []
    sub = build_parser()._subparsers._group_actions[0].choices["spatiotemporal"]
    assert sub.description and "033" in sub.description


def test_cli_module_does_not_import_torch():
    code = "import sys, akira_nb.spatiotemporal.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_resume_reloads_finished_arms(tmp_path, capsys):
    flags = ("--size", "tiny", "--quiet", "--steps", "6", "--eval-steps", "3")
    first = cli.main(_args(*flags, "--output_dir", str(tmp_path)))
    printed = capsys.readouterr().out
    saved = json.loads((Path(first["run"]) / "results.json").read_text())
    assert saved["cpu_seconds"] > 0 and saved["wall_seconds"] > 0  # the run's own cost
    assert f"this run: {saved['cpu_seconds']:.1f} CPU-seconds" in printed
    second = cli.main(_args(*flags, "--output_dir", str(tmp_path), "--resume"))
    assert second["run"] == first["run"]
    assert "spectral: 6 steps" in capsys.readouterr().out.split("(reloaded, not retrained)")[0]
    for name in ("spectral", "copy_last", "linear_extrap"):
        assert second["models"][name]["reloaded"]
        assert second["models"][name]["eval"] == first["models"][name]["eval"]
    with pytest.raises(ValueError, match=r"train\.lr saved 0\.001, now 0\.002"):
        cli.main(_args(*flags, "--output_dir", str(tmp_path), "--resume", "--lr", "2e-3"))


@pytest.mark.parametrize(
    "flags, name",
    [
        (("--log-stats-csv", "{missing}/x.csv"), "log_stats_csv"),
        (("--log-stats-csv", "{file}/x.csv"), "log_stats_csv"),
        (("--log-stats-csv", "{dir}"), "log_stats_csv"),
        (("--viz-interval", "2", "--viz-dir", "{missing}/viz"), "viz_dir"),
        (("--viz-interval", "2", "--viz-dir", "{file}/viz"), "viz_dir"),
        (("--viz-interval", "2", "--viz-dir", "{file}"), "viz_dir"),
    ],
)
def test_bad_output_paths_give_one_error_line_before_any_training(tmp_path, capsys, flags, name):
    from akira_nb.__main__ import main

    root, other = tmp_path / "runs", tmp_path / "other"
    root.mkdir()
    other.mkdir()
    (other / "a_file").write_text("")
    places = {"missing": other / "missing", "file": other / "a_file", "dir": other}
    flags = [f.format(**places) for f in flags]
    argv = ["spatiotemporal", "--size", "tiny", "--quiet", "--steps", "2", "--eval-steps", "1"]
    assert main([*argv, "--output_dir", str(root), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and name in err[0], err
    assert list(root.iterdir()) == []  # no run folder, nothing trained
    assert sorted(p.name for p in other.iterdir()) == ["a_file"]


def test_threads_0_is_torchs_default_and_unset_is_the_experiments_rule(monkeypatch):
    from akira_nb.spatiotemporal.train import threads, train

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    assert _cli_config("--threads", "0")[0].cpu_threads == 0
    assert _cli_config()[0].cpu_threads is None
    help_text = {a.dest: a.help for a in _sub_parser()._actions}["threads"]
    assert "0" in help_text and "torch's default" in help_text and "<= 32" in help_text
    cfg = TrainConfig(grid_size=8, steps=2, progress=False)
    assert threads(cfg) == 1 and threads(replace(cfg, cpu_threads=0)) == 0
    seen, old = [], torch.get_num_threads()
    model = build_model("spectral", "turbo", grid_size=8)
    torch.set_num_threads(3)
    try:
        for n in (0, None, 2):
            seen.clear()
            train(
                model,
                replace(cfg, cpu_threads=n),
                viz=(1, lambda *a: seen.append(torch.get_num_threads())),
            )
            assert set(seen) == {3 if n == 0 else n or 1}, (n, seen)
            assert torch.get_num_threads() == 3  # restored after training
    finally:
        torch.set_num_threads(old)


def test_unset_threads_follow_omp_num_threads(monkeypatch):
    """A user who sets OMP_NUM_THREADS gets that many threads at small grids too; --threads
    still wins; an unusable value falls back to the experiment's rule."""
    from akira_nb.spatiotemporal.train import threads

    cfg = TrainConfig(grid_size=32, steps=2, progress=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads(cfg) == 2 and threads(replace(cfg, cpu_threads=1)) == 1
    assert threads(replace(cfg, grid_size=64)) == 2
    for bad in ("", "0", "two", "-1"):
        monkeypatch.setenv("OMP_NUM_THREADS", bad)
        assert threads(cfg) == 1 and threads(replace(cfg, grid_size=64)) is None


def test_offline_is_accepted_replaces_nothing_and_says_so(tmp_path, capsys):
    import json

    from akira_nb import standins

    flags = ("--size", "tiny", "--quiet", "--steps", "4", "--eval-steps", "3", "--model", "mlp")
    plain = cli.main(_args(*flags, "--output_dir", str(tmp_path / "plain")))
    capsys.readouterr()
    offline = cli.main(_args(*flags, "--output_dir", str(tmp_path / "offline"), "--offline"))
    printed = capsys.readouterr().out
    assert cli.OFFLINE_NOTE in printed and standins.BANNER not in printed
    results = json.loads(open(f"{offline['run']}/results.json").read())
    assert results["standins"] == {"offline": True, "replaced": {}}
    assert offline["models"]["mlp"]["eval"] == plain["models"]["mlp"]["eval"]  # the same run
