"""Issue 17, the shared-depth bad inputs: a runs root that is a file or cannot be made, ``--resume``
with nothing to resume, orphan temp files of a killed write, corrupt run files and checkpoints,
and argparse errors, each one line (``error: ...``, exit status 2) before anything is written.

No training: the sub-commands are called with inputs refused before it, and
``Run.create`` fails the test if a run would start."""

import importlib
import re
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from akira_nb import runs
from akira_nb.__main__ import EXPERIMENTS, main
from akira_nb.runs import Run

SUB_COMMANDS = [*EXPERIMENTS, "all"]


@pytest.fixture
def no_run(monkeypatch):
    """Every experiment's ``main`` replaced by a stub that records the call: a refused input
    never reaches it."""
    called = []
    for name in EXPERIMENTS:
        cli = importlib.import_module(f"{EXPERIMENTS[name]}.cli")
        monkeypatch.setattr(cli, "main", lambda args, n=name: called.append(n) or {})
    return called


@pytest.fixture
def no_new_run(monkeypatch):
    """``Run.create`` fails the test: nothing may start a new run folder (or train)."""

    def refuse(cls, *args, **kwargs):
        raise AssertionError("a new run folder was started")

    monkeypatch.setattr(Run, "create", classmethod(refuse))


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


# ------------------------------------------------------------- item 1: a runs root that cannot be


def _bad_roots(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """{case: (the --output_dir value, what the error says)}."""
    afile = tmp_path / "README.md"
    afile.write_text("not a folder\n")
    return {
        "a file": (str(afile), "is a file"),
        "under a file": (str(afile / "runs"), "is a file"),
        "cannot be made": ("/proc/akira_runs", "cannot be made"),
    }


@pytest.mark.parametrize("case", ["a file", "under a file", "cannot be made"])
@pytest.mark.parametrize("name", SUB_COMMANDS)
def test_a_runs_root_that_cannot_be_is_one_line_before_any_experiment(
    name, case, tmp_path, capsys, no_run
):
    root, says = _bad_roots(tmp_path)[case]
    before = [(p, p.read_bytes()) for p in _files(tmp_path)]
    assert main([name, "--size", "tiny", "--output_dir", root]) == 2
    line = _one_error_line(capsys)
    assert "output_dir" in line and repr(root) in line and says in line, line
    assert no_run == []  # refused before the experiment started
    assert [(p, p.read_bytes()) for p in _files(tmp_path)] == before  # nothing created
    assert not Path("/proc/akira_runs").exists()


def test_check_runs_root_names_the_setting_it_came_from(tmp_path, monkeypatch):
    afile = tmp_path / "f.txt"
    afile.write_text("x")
    with pytest.raises(ValueError, match=r"^output_dir='.*f\.txt' is a file"):
        runs.check_runs_root(afile)
    monkeypatch.setenv("AKIRA_RUNS_DIR", str(afile))
    with pytest.raises(ValueError, match=r"^AKIRA_RUNS_DIR='.*f\.txt' is a file"):
        runs.check_runs_root(None)
    # a root that does not exist yet is fine, and checking it creates nothing
    fresh = tmp_path / "new" / "runs"
    assert runs.check_runs_root(fresh) == fresh and _files(tmp_path) == [afile]


def test_the_python_api_refuses_a_bad_runs_root_too(tmp_path):
    afile = tmp_path / "f.txt"
    afile.write_text("x")
    for call in (
        lambda: Run.create("exp", "a", {}, root=afile),
        lambda: Run.open_or_create("exp", "a", {}, root=afile),
        lambda: Run.open_or_create("exp", "a", {}, resume=True, root=afile),
        lambda: Run.create("exp", "a", {}, root="/proc/akira_runs"),
    ):
        with pytest.raises(ValueError, match="output_dir=.*(is a file|cannot be made)"):
            call()
    assert _files(tmp_path) == [afile]


# ------------------------------------------------- item 5: --resume with nothing to resume


@pytest.mark.parametrize(
    "name, argv, run_name",
    [
        ("grokking", ["--name", "never_ran"], "never_ran"),
        ("bandformer", ["--name", "never_ran", "--offline", "--arms", "band"], "never_ran"),
        ("differential_lr", ["--name", "never_ran", "--offline"], "never_ran"),
        ("action_quanta", ["--name", "never_ran", "--offline", "--no-grokking"], "never_ran"),
        ("spatiotemporal", [], "blob-compare-fast-g16-s60-seed0"),  # no --name: the flags' name
        ("grokking", [], "comparison-tiny"),  # the default name, asked to resume, never ran
    ],
)
def test_cli_resume_with_nothing_to_resume_refuses_naming_the_name_and_folder(
    name, argv, run_name, tmp_path, capsys, no_new_run
):
    code = main([name, "--size", "tiny", *argv, "--resume", "--output_dir", str(tmp_path)])
    line = _one_error_line(capsys)
    assert code == 2 and "nothing to resume" in line and f"'{run_name}" in line, line
    assert str(tmp_path) in line, line  # the folder it looked in
    assert _files(tmp_path) == []


def test_the_one_arm_trainer_cli_refuses_resume_with_nothing_to_resume(tmp_path, capsys):
    from akira_nb.bandformer import train

    argv = ["--preset", "tiny", "--dataset", "offline", "--total-steps", "2", "--warmup-steps", "1"]
    code = train.main([*argv, "--name", "never_ran", "--resume", "--output-dir", str(tmp_path)])
    line = _one_error_line(capsys)
    assert code == 2 and "nothing to resume" in line and "'never_ran'" in line, line
    assert _files(tmp_path) == []
    # an output folder that is a file: refused before the data loads
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert train.main([*argv, "--output-dir", str(afile)]) == 2
    assert "output_dir" in _one_error_line(capsys)


def test_the_notebooks_default_resume_still_starts_a_first_run(tmp_path):
    # resume=True from Python (a notebook's RESUME above tiny on a fresh Colab): start one
    first = Run.open_or_create("exp", "fresh", {"a": 1}, resume=True, root=tmp_path)
    assert first.path.parent == tmp_path / "exp"
    again = Run.open_or_create("exp", "fresh", {"a": 1}, resume=True, root=tmp_path)
    assert again.path == first.path
    # the CLI's explicit --resume, in Python: must_exist=True
    with pytest.raises(ValueError, match=r"nothing to resume: no run called 'other' in .*exp"):
        Run.open_or_create("exp", "other", {"a": 1}, resume=True, root=tmp_path, must_exist=True)
    with runs.resume_must_exist():
        with pytest.raises(ValueError, match="nothing to resume"):
            Run.open_or_create("exp", "other", {"a": 1}, resume=True, root=tmp_path)
        again = Run.open_or_create("exp", "fresh", {"a": 1}, resume=True, root=tmp_path)
        assert again.path == first.path
    assert len(list((tmp_path / "exp").iterdir())) == 1


# --------------------------------------------------------- item 10: orphan temp files of a kill


def test_orphan_temp_files_of_a_killed_write_are_removed_when_a_run_is_reopened(tmp_path):
    run = Run.create("exp", "killed", {"a": 1}, root=tmp_path)
    run.write_results({"x": 1})
    run.save_checkpoint({"step": 1}, 1, tag="arm")
    orphans = [
        run.path / ".results.json.k2x9_q1z.tmp",  # _atomic_write's temp file, cut by a kill
        run.checkpoint_dir("arm") / ".ckpt_000000002.pt.ab12cd34.tmp",
        run.path / "figures" / ".loss.png.tmp.png",  # save_figure's
    ]
    keep = [run.path / "arms" / "notes.tmp", run.path / ".keep"]  # not the kit's temp names
    for path in orphans + keep:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    again = Run.open_or_create("exp", "killed", {"a": 1}, resume=True, root=tmp_path)
    assert again.path == run.path
    assert [p for p in orphans if p.exists()] == []
    assert all(p.exists() for p in keep)
    assert again.read_results() == {"x": 1} and again.latest_checkpoint("arm") == {"step": 1}


# ------------------------------------------------------------ item 11: corrupt files, named


def test_read_json_names_a_corrupt_file_in_one_line(tmp_path):
    path = tmp_path / "arms" / "band_s0.json"
    path.parent.mkdir()
    path.write_text("{\n")
    with pytest.raises(ValueError) as exc:
        runs.read_json(path)
    text = str(exc.value)
    assert "\n" not in text and str(path) in text and "corrupt JSON" in text
    assert "start a new run" in text
    path.write_text('{"a": [1, 2]}')
    assert runs.read_json(path) == {"a": [1, 2]}


def test_run_files_read_on_resume_name_the_corrupt_file(tmp_path):
    run = Run.create("exp", "c", {"a": 1}, root=tmp_path)
    (run.path / "results.json").write_text("")
    with pytest.raises(ValueError, match=r"results\.json: corrupt JSON"):
        run.read_results()
    (run.path / "config.json").write_text("{")
    with pytest.raises(ValueError, match=r"config\.json: corrupt JSON"):
        Run.open_or_create("exp", "c", {"a": 1}, resume=True, root=tmp_path)


def test_the_experiments_read_run_json_through_the_one_reader(tmp_path):
    from akira_nb.alignment.models import RECORD, tiny_record
    from akira_nb.band_transformer.ablation import AblationRun
    from akira_nb.differential_lr import experiment as dlr
    from akira_nb.differential_lr.widgets import load_results
    from akira_nb.grokking.widgets import load_run
    from akira_nb.spatiotemporal.experiment import _reload_arm

    run = Run.create("exp", "c", {}, root=tmp_path)
    bad = run.file("arms/band_s0.json")
    bad.write_text("{")
    (run.path / "results.json").write_text("[")
    calls = {
        "bandformer": lambda: AblationRun(run, None, "band_s0", None, resume=True),
        "spatiotemporal": lambda: _reload_arm(run, "band_s0", None, None, {}, "cpu"),
        "grokking": lambda: load_run(run.path),
        "differential_lr": lambda: load_results(tmp_path),
        "action_quanta": lambda: tiny_record(run.path),
    }
    dlr_run = tmp_path / dlr.EXPERIMENT / "20260101-000000-study"
    dlr_run.mkdir(parents=True)
    (dlr_run / "results.json").write_text("{")
    (run.path / RECORD).write_text("{")
    # AblationRun reads arms/<tag>_ablation.json
    run.file("arms/band_s0_ablation.json").write_text("{")
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"\.json: corrupt JSON") as exc:
            call()
        assert str(tmp_path) in str(exc.value), name
    # nowhere else in the kit reads JSON past it
    pkg = Path(runs.__file__).parent
    readers = [
        f"{p.relative_to(pkg)}:{i}"
        for p in sorted(pkg.rglob("*.py"))
        if p.name != "runs.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"json\.loads?\(", line)
    ]
    assert readers == []


def _two_checkpoints(tmp_path, newest: bytes | None):
    run = Run.create("exp", "ck", {}, root=tmp_path)
    run.save_checkpoint({"step": 1}, 1, tag="m")
    path = run.save_checkpoint({"step": 2}, 2, tag="m")
    if newest is not None:
        path.write_bytes(newest)
    return run, path


def _warning_lines(run, tag="m"):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        state = run.latest_checkpoint(tag)
    return state, [str(w.message) for w in seen if w.category is RuntimeWarning]


@pytest.mark.parametrize("newest", ["a disallowed global", "garbage", "cut short"])
def test_the_corrupt_checkpoint_warning_is_one_line_without_pytorchs_advice(tmp_path, newest):
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"f": Fraction(1, 2)}, unsafe)
    data = {"a disallowed global": unsafe.read_bytes(), "garbage": b"garbage"}
    run, path = _two_checkpoints(tmp_path, data.get(newest))
    if newest == "cut short":
        path.write_bytes(path.read_bytes()[:50])
    state, (message,) = _warning_lines(run)
    assert state == {"step": 1}
    assert "\n" not in message and "\x1b" not in message and str(path) in message
    assert "weights_only" not in message and "trust" not in message, message
    assert message.endswith("trying the previous one"), message
    if newest == "a disallowed global":
        assert "fractions.Fraction" in message


def test_the_last_corrupt_checkpoint_says_the_training_restarts_from_step_0(tmp_path):
    run = Run.create("exp", "one", {}, root=tmp_path)
    run.save_checkpoint({"step": 1}, 1, tag="m").write_bytes(b"garbage")
    state, (message,) = _warning_lines(run)
    assert state is None
    assert "trying the previous one" not in message
    assert "no older checkpoint" in message and "restarts from step 0" in message, message


# ------------------------------------------------------------- item 12: argparse, one line


@pytest.mark.parametrize(
    "argv, hint",
    [
        ([], "python -m akira_nb --help"),
        (["nonsense"], "python -m akira_nb --help"),
        (["grokking", "--lr"], "python -m akira_nb grokking --help"),
        (["grokking", "--no_such_flag"], "python -m akira_nb grokking --help"),
        (["bandformer", "--arms", "nonsense"], "python -m akira_nb bandformer --help"),
        (["spatiotemporal", "--steps", "x"], "python -m akira_nb spatiotemporal --help"),
        (["action_quanta", "--threshold-method", "z"], "python -m akira_nb action_quanta --help"),
        (["differential_lr", "--size", "huge"], "python -m akira_nb differential_lr --help"),
        (["all", "--size", "huge"], "python -m akira_nb all --help"),
    ],
)
def test_argparse_errors_are_one_line_with_the_help_hint(argv, hint, capsys, no_run):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = _one_error_line(capsys)
    assert line.endswith(f"; see {hint}"), line
    assert capsys.readouterr().out == "" and no_run == []


def test_the_standalone_train_cli_errors_in_one_line_too(capsys):
    from akira_nb.bandformer.train import main as train_main

    with pytest.raises(SystemExit) as exc:
        train_main(["--arm", "nonsense"])
    assert exc.value.code == 2
    line = _one_error_line(capsys)
    assert "--arm" in line and line.endswith("; see python -m akira_nb.bandformer.train --help")


def test_a_real_process_prints_one_line_and_exits_2():
    proc = subprocess.run(
        [sys.executable, "-m", "akira_nb", "grokking", "--lr"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: argument --lr: expected one argument; see python -m akira_nb grokking --help"
    ]
