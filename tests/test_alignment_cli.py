"""``python -m akira_nb action_quanta``: flags and help, a one-line error (exit 2) and no run
folder on bad input, the size line, a tiny run and its resume."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from akira_nb.__main__ import EXPERIMENTS, build_parser
from akira_nb.__main__ import main as kit_main
from akira_nb.action_quanta import claims, cli
from akira_nb.alignment import aq, models, thresholds, transport

REPO = Path(__file__).resolve().parent.parent
TEST_TINY = models.TinyConfig()  # the tiny preset's pair (tests/conftest.py tiny_lm)


@pytest.fixture(scope="session")
def tiny(tiny_lm):
    return tiny_lm  # tests/conftest.py: trained once per test run


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("AKIRA_SIZE", raising=False)


def _untimed(d):
    """``d`` without the solvers' wall times (the only numbers a rerun may change)."""
    if isinstance(d, dict):
        return {k: _untimed(v) for k, v in d.items() if k != "seconds"}
    return [_untimed(v) for v in d] if isinstance(d, list) else d


def _parse(argv):
    return build_parser().parse_args(["action_quanta", *argv])


def _tiny_flags(tiny, out):
    a, b = tiny[0]
    return [
        *("--size", "tiny", "--model-a", str(a), "--model-b", str(b), "--layers", "0", "1"),
        *("--num-samples", "16", "--seq-length", "32", "--batch-size", "8", "--device", "cpu"),
        *("--no-grokking", "--quiet", "--output_dir", str(out)),
    ]


def test_registered_with_help_on_every_flag_and_literal_choices():
    assert EXPERIMENTS["action_quanta"] == "akira_nb.action_quanta"
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help, action.dest
    assert parser.description == cli.__doc__
    assert cli.INPUT_TYPES == aq.INPUT_TYPES and cli.PAIRINGS == aq.PAIRINGS
    assert cli.RULES == thresholds.RULES and cli.MATCH_METHODS == transport.METHODS
    assert cli.TEXT_CORPORA == aq.TEXT_CORPORA
    for flag in (
        "--model-a",
        "--model-b",
        "--layers",
        "--num-samples",
        "--seq-length",
        "--batch-size",
        "--threshold",
        "--threshold-method",
        "--input-type",
        "--seed",
        "--size",
        "--layer-pairing",
        "--output_dir",
        "--resume",
        "--device",
        "--quiet",
    ):
        assert flag in parser._option_string_actions, flag


def test_cli_module_imports_no_torch():
    code = "import sys, akira_nb.action_quanta.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--size", "tiny", "--layers", "7"], "tiny:0"),
        (
            [
                *("--model-a", "EleutherAI/pythia-70m", "--model-b", "EleutherAI/pythia-160m"),
                *("--layers", "3", "5", "7"),
            ],
            "pythia-70m",
        ),
        (
            ["--size", "tiny", "--threshold-method", "percentile", "--threshold-value", "150"],
            "value",
        ),
        (["--size", "tiny", "--num-samples", "1"], "num_samples"),
        (["--size", "tiny", "--device", "cuda:7"], "device"),
        (["--pair", "gpt2/gpt-j"], "pair"),
        (
            ["--size", "tiny", "--offline", "--model-a", "gpt-j", "--model-b", "gpt2"]
            + ["--layers", "1"],
            "model_a='gpt-j' has no offline stand-in",
        ),
    ],
)
def test_bad_input_is_one_error_line_with_exit_2_and_no_run_folder(
    argv, match, tmp_path, capsys, offline
):
    code = kit_main(["action_quanta", *argv, "--output_dir", str(tmp_path)])
    lines = capsys.readouterr().err.strip().splitlines()
    if "--size" not in argv:  # without a GPU the no-GPU warning comes first (the seed's protocol)
        lines = lines[-1:] if not any(x.startswith("error:") for x in lines[:-1]) else lines
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), lines
    assert match in lines[0], lines
    assert not any(tmp_path.iterdir())


def test_argparse_refuses_unknown_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(["--threshold-method", "zscore"])
    assert exc.value.code == 2


def test_the_size_line_comes_first_without_a_banner_online(tiny, tmp_path, capsys, monkeypatch):
    from akira_nb.action_quanta import experiment

    class Started(Exception):
        pass

    def started(*args, **kwargs):
        raise Started

    monkeypatch.setattr(experiment, "run_experiment", started)
    with pytest.raises(Started):
        cli.main(_parse([*_tiny_flags(tiny, tmp_path), "--name", "clitest"]))
    assert capsys.readouterr().out.splitlines()[0].startswith("settings: size 'tiny' filled")


def test_a_tiny_offline_run_prints_the_banner_first_and_resumes_only_unchanged(
    tiny, tmp_path, capsys, offline
):
    """One tiny run (offline: the tiny pair and the offline corpus need no download, so nothing
    is replaced) checked as a run and as a resume."""
    from akira_nb import standins

    flags = [*_tiny_flags(tiny, tmp_path), "--name", "offtest"]
    assert _parse(flags).offline is None and _parse([*flags, "--offline"]).offline is True
    out = cli.main(_parse([*flags, "--offline"]))
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == standins.BANNER and lines.count(standins.BANNER) == 1
    assert lines[1].startswith("settings: size 'tiny' filled") and "offline" in lines[1]
    assert "expected by chance" in text
    sec = claims.kit_summary(out)
    assert sec["claims"] and Path(sec["run"]).is_dir()
    first = json.loads((out["run"].path / "results.json").read_text())
    assert first["standins"] == {"banner": standins.BANNER, "replaced": {}}
    assert first["config"]["aq"]["offline"] is True
    verdicts = {c["verdict"] for c in first["claims"]}
    assert verdicts <= {standins.NOT_COMPARABLE, "not run"} and standins.NOT_COMPARABLE in verdicts
    assert set(first["aq"]["stages"]) >= {"stream", "ot", "procrustes + null"}

    from akira_nb.action_quanta import experiment

    with pytest.MonkeyPatch.context() as mp:  # figures: test_alignment_experiment.py
        mp.setattr(experiment, "save_figures", lambda run, out: {})
        again = cli.main(_parse([*flags, "--offline", "--resume"]))
    assert again["run"].path == out["run"].path  # the same folder, streams reloaded
    second = json.loads((again["run"].path / "results.json").read_text())
    assert _untimed(second["aq"]["pairs"]) == _untimed(first["aq"]["pairs"])
    with pytest.raises(ValueError, match="resume refused"):
        cli.main(_parse([*flags, "--offline", "--resume", "--seed", "3"]))
    with pytest.raises(ValueError, match="resume refused.*aq.offline saved True, now False"):
        cli.main(_parse([*flags, "--resume"]))


def test_the_size_comes_from_akira_size_when_no_flag(monkeypatch):
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    p = cli.study_from_args(_parse(["--no-grokking"]))
    assert p.size == "tiny" and p.aq.model_a == "tiny:0"
    monkeypatch.delenv("AKIRA_SIZE")
    p = cli.study_from_args(_parse(["--no-grokking"]))
    assert p.size is None and p.aq.model_a == "gpt2"
