"""``python -m akira_nb``: one-line errors with exit status 2, --debug, a quick --help."""

import subprocess
import sys

import pytest

from akira_nb.__main__ import EXPERIMENTS, main


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "akira_nb", *args], capture_output=True, text=True, env=env
    )


def _check_one_error_line(code, err, name, tmp_path):
    assert code == 2, err
    lines = err.strip().splitlines()
    # without a GPU the no-GPU warning comes first (no --size: the seed's protocol)
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:] and name in errors[0], err
    assert "Traceback" not in err
    assert not any(tmp_path.rglob("*")), "bad input left files behind"


def test_bad_input_is_one_line_with_exit_status_2_and_no_run_folder(tmp_path):
    """The process itself (``python -m akira_nb``) exits with status 2."""
    proc = _cli("grokking", "--lr", "inf", "--output_dir", str(tmp_path))
    _check_one_error_line(proc.returncode, proc.stderr, "lr", tmp_path)


@pytest.mark.parametrize(
    "argv, name",
    [
        (["grokking", "--seeds", "-1"], "seeds"),
        (["spatiotemporal", "--steps", "-1"], "steps"),
        (["spatiotemporal", "--seed", "-3"], "seed"),
    ],
)
def test_bad_input_in_process_is_one_line_with_status_2_and_no_run_folder(
    tmp_path, capsys, argv, name
):
    """``main`` (what ``python -m akira_nb`` exits with), each sub-command's bad values."""
    code = main([*argv, "--output_dir", str(tmp_path)])
    _check_one_error_line(code, capsys.readouterr().err, name, tmp_path)


def test_debug_keeps_the_traceback(tmp_path, monkeypatch, capsys):
    """With --debug (or AKIRA_DEBUG=1) the error propagates (the process prints its traceback
    and exits 1) instead of becoming one line."""
    for argv, env in ((["--debug"], None), ([], "1")):
        if env:
            monkeypatch.setenv("AKIRA_DEBUG", env)
        with pytest.raises(ValueError, match="lr=inf"):
            main(["grokking", "--lr", "inf", *argv, "--output_dir", str(tmp_path)])
        assert "error:" not in capsys.readouterr().err


def test_main_returns_2_in_process(tmp_path, capsys):
    assert main(["grokking", "--lr", "nan", "--output_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: lr=")
    assert main(["grokking", "--lr", "nan", "--size", "tiny", "--output_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: lr=nan is outside the allowed range (0.0, inf]"
    ]


def test_help_imports_no_torch_and_every_flag_has_help():
    code = (
        "import sys\n"
        "from akira_nb.__main__ import build_parser\n"
        "parser = build_parser()\n"
        "subs = parser._subparsers._group_actions[0].choices\n"
        "missing = [f'{n}:{a.dest}' for n, p in subs.items() for a in p._actions\n"
        "           if not a.help and a.dest != 'help']\n"
        "print('torch' in sys.modules, missing)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False []", out.stdout
    proc = _cli("--help")
    assert proc.returncode == 0 and all(name in proc.stdout for name in EXPERIMENTS)


def test_every_sub_command_has_the_shared_run_folder_flags():
    """``--output_dir``, ``--resume`` and ``--quiet`` (and ``--name`` where runs are named)
    come from one definition, ``runtime.add_run_flags``."""
    from akira_nb.__main__ import build_parser

    subs = build_parser()._subparsers._group_actions[0].choices
    for name in EXPERIMENTS:
        flags = subs[name]._option_string_actions
        assert flags["--output-dir"] is flags["--output_dir"], name
        assert flags["--output_dir"].help == "runs root (default: AKIRA_RUNS_DIR or runs/)", name
        assert flags["--resume"].help.startswith("continue the newest run with this name"), name
        assert flags["--quiet"].help == "no progress bars", name
        if name != "spatiotemporal":  # its runs are not named
            assert flags["--name"].help.startswith("run name (default: "), name


def test_all_takes_its_size_by_the_same_rule_as_every_sub_command(monkeypatch):
    import akira_nb.__main__ as entry

    seen = []
    monkeypatch.setattr(entry, "run_all", lambda parser, size, out: seen.append(size))
    monkeypatch.setenv("AKIRA_SIZE", "t4")
    assert main(["all"]) == 0 and main(["all", "--size", "tiny"]) == 0
    monkeypatch.delenv("AKIRA_SIZE")
    assert main(["all"]) == 0
    assert seen == ["t4", "tiny", None]


# ----------------------------------------------------------------------------- no-GPU warning


@pytest.fixture
def no_cuda(monkeypatch):
    """CUDA absent and AKIRA_SIZE unset, whatever this machine has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("AKIRA_SIZE", raising=False)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_sub_command_warns_before_its_run_without_a_gpu(no_cuda, monkeypatch, capsys, name):
    import importlib

    from akira_nb import runtime

    seen = []

    def stub(args):  # the experiment itself: records what was printed before it started
        seen.append((args.size, capsys.readouterr().err))
        return {}

    monkeypatch.setattr(importlib.import_module(f"{EXPERIMENTS[name]}.cli"), "main", stub)
    assert main([name]) == 0
    ((size, err),) = seen
    flat = " ".join(err.split())
    assert size is None and flat.startswith("!!!") and "WARNING: no CUDA device" in flat
    assert f"{name}: {runtime.cpu_cost(name, None)}" in flat  # what it runs, how long on a CPU
    assert "--size tiny" in flat and runtime.cpu_cost(name, "tiny") in flat

    seen.clear()
    assert main([name, "--size", "tiny"]) == 0
    assert seen == [("tiny", "")]  # no warning at tiny
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    assert main([name]) == 0
    assert seen[-1] == (None, "")  # AKIRA_SIZE=tiny: no warning either


def test_all_warns_once_for_every_experiment(no_cuda, monkeypatch, capsys):
    import akira_nb.__main__ as entry

    monkeypatch.setattr(entry, "run_all", lambda parser, size, out: None)
    assert main(["all"]) == 0
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and all(f"  {name}: " in err for name in EXPERIMENTS)
    assert main(["all", "--size", "tiny"]) == 0
    assert capsys.readouterr().err == ""


def test_bandformer_selftest_does_not_warn(no_cuda, monkeypatch, capsys):
    from akira_nb.band_transformer import cli

    monkeypatch.setattr(cli, "main", lambda args: print("model test", file=sys.stderr))
    assert main(["bandformer", "--selftest"]) == 0
    assert capsys.readouterr().err == "model test\n"  # a quick model test: no warning


def test_an_unreachable_hub_is_one_error_line_at_once(tmp_path, monkeypatch, capsys):
    import time

    from akira_nb import runtime

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(runtime, "_can_connect", lambda host, port, timeout: False)
    monkeypatch.setattr(runtime, "_hub_reachable", {})
    start = time.perf_counter()
    argv = ["bandformer", "--size", "tiny", "--dataset", "wikitext-2", "--arms", "baseline"]
    assert main([*argv, "--total_steps", "2", "--output_dir", str(tmp_path), "--quiet"]) == 2
    assert time.perf_counter() - start < 30  # no retries per file
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "needs the Hugging Face Hub" in lines[0] and "--offline" in lines[0]
