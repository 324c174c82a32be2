"""``python -m akira_nb``: one-line errors with exit status 2, --debug, a quick --help."""

import subprocess
import sys

import pytest

from akira_nb.__main__ import EXPERIMENTS, main


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "akira_nb", *args], capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize(
    "argv, name",
    [
        (["grokking", "--lr", "inf"], "lr"),
        (["grokking", "--seeds", "-1"], "seeds"),
        (["spatiotemporal", "--steps", "-1"], "steps"),
        (["spatiotemporal", "--seed", "-3"], "seed"),
    ],
)
def test_bad_input_is_one_line_with_exit_status_2_and_no_run_folder(tmp_path, argv, name):
    proc = _cli(*argv, "--output_dir", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.rglob("*")), "bad input left files behind"


def test_debug_keeps_the_traceback(tmp_path):
    proc = _cli("grokking", "--lr", "inf", "--debug", "--output_dir", str(tmp_path))
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ValueError" in proc.stderr


def test_main_returns_2_in_process(tmp_path, capsys):
    assert main(["grokking", "--lr", "nan", "--output_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: lr=")


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


def test_all_takes_its_size_by_the_same_rule_as_every_sub_command(monkeypatch):
    import akira_nb.__main__ as entry

    seen = []
    monkeypatch.setattr(entry, "run_all", lambda parser, size, out: seen.append(size))
    monkeypatch.setenv("AKIRA_SIZE", "t4")
    assert main(["all"]) == 0 and main(["all", "--size", "tiny"]) == 0
    monkeypatch.delenv("AKIRA_SIZE")
    assert main(["all"]) == 0
    assert seen == ["t4", "tiny", None]
