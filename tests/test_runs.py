import json
import os
import pickle

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from akira_nb.runs import Run, atomic_torch_save, atomic_write_json, runs_root, to_jsonable


def test_runs_root_follows_env(runs_root):
    assert runs_root == runs_root.__class__(os.environ["AKIRA_RUNS_DIR"])
    assert Run.create("exp", "a", {}).path.parent == runs_root / "exp"


def test_results_json_round_trip_with_numpy_torch_and_nan(runs_root):
    run = Run.create("exp", "a", {"lr": 1e-3})
    run.write_results({"x": np.float32(0.5), "t": torch.tensor([1, 2]), "bad": float("nan")})
    assert run.read_results() == {"x": 0.5, "t": [1, 2], "bad": None}
    assert run.config == {"lr": 1e-3}


def test_atomic_write_leaves_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp files left


def test_checkpoint_write_that_fails_halfway_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_torch_save({"w": torch.ones(3)}, path)
    # torch.save has written the tensor data before it reaches the unpicklable lambda
    with pytest.raises((pickle.PicklingError, AttributeError)):
        atomic_torch_save({"w": torch.zeros(10_000), "f": lambda: 0}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_checkpoints_keep_the_newest_and_load_weights_only(runs_root):
    run = Run.create("exp", "a", {})
    for step in (10, 20, 30):
        run.save_checkpoint(
            {"step": step, "w": torch.full((2,), float(step))}, step, tag="m", keep=2
        )
    files = sorted(p.name for p in run.checkpoint_dir("m").iterdir())
    assert files == ["ckpt_000000020.pt", "ckpt_000000030.pt"]
    state = run.latest_checkpoint("m")
    assert state["step"] == 30 and torch.equal(state["w"], torch.full((2,), 30.0))
    assert run.latest_checkpoint("other") is None


def test_open_or_create_resumes_the_newest_run_and_refuses_a_different_config(runs_root):
    first = Run.create("exp", "same", {"lr": 1})
    again = Run.open_or_create("exp", "same", {"lr": 1}, resume=True)
    assert again.path == first.path
    assert Run.open_or_create("exp", "same", {"lr": 1}, resume=False).path != first.path
    with pytest.raises(ValueError, match="lr"):
        Run.open_or_create("exp", "same", {"lr": 2}, resume=True)
    assert Run.open_or_create("exp", "new-name", {"lr": 1}, resume=True).path.name.endswith(
        "new-name"
    )


def test_save_figure_writes_png(runs_root):
    run = Run.create("exp", "fig", {})
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = run.save_figure(fig, "line")
    assert path.read_bytes()[:4] == b"\x89PNG"
    plt.close(fig)


@pytest.mark.parametrize("name", ["", "a/b", "../x", " spaced"])
def test_bad_names_raise(runs_root, name):
    with pytest.raises(ValueError, match="name"):
        Run.create("exp", name, {})


def test_to_jsonable_handles_dataclasses():
    from dataclasses import dataclass

    @dataclass
    class C:
        a: float = float("inf")
        b: tuple = (1, 2)

    assert to_jsonable(C()) == {"a": None, "b": [1, 2]}


def test_runs_root_explicit_argument_wins(tmp_path):
    assert runs_root(tmp_path) == tmp_path


def test_check_resume_names_each_differing_field_with_both_values():
    from akira_nb.runs import check_resume

    saved = {"lr": 1e-3, "weight_decay": 1.0, "train": {"steps": 10, "seed": 0}}
    check_resume(saved, dict(saved), "here")  # identical: no error
    with pytest.raises(ValueError) as err:
        check_resume(saved, {**saved, "lr": 3e-3, "weight_decay": 0.5}, "the run X")
    msg = str(err.value)
    assert "the run X" in msg and "lr saved 0.001, now 0.003" in msg
    assert "weight_decay saved 1.0, now 0.5" in msg
    with pytest.raises(ValueError, match=r"train\.seed saved 0, now 1"):
        check_resume(saved, {**saved, "train": {"steps": 10, "seed": 1}}, "x")
    # a field that may change (wherever it stands) is not a difference
    check_resume(saved, {**saved, "train": {"steps": 99, "seed": 0}}, "x", may_change=["steps"])
    with pytest.raises(ValueError, match="stores no config"):
        check_resume(None, saved, "the checkpoint c.pt")


def test_open_or_create_may_change_lets_listed_fields_differ(runs_root):
    first = Run.create("exp", "grow", {"steps": 10, "lr": 1})
    assert (
        Run.open_or_create("exp", "grow", {"steps": 20, "lr": 1}, True, may_change=["steps"]).path
        == first.path
    )
    with pytest.raises(ValueError, match="lr saved 1, now 2"):
        Run.open_or_create("exp", "grow", {"steps": 20, "lr": 2}, True, may_change=["steps"])


def test_latest_checkpoint_skips_a_corrupt_newest_file_and_says_which(runs_root):
    run = Run.create("exp", "corrupt", {})
    run.save_checkpoint({"step": 10, "config": {"lr": 1}}, 10, tag="m")
    newest = run.save_checkpoint({"step": 20, "config": {"lr": 1}}, 20, tag="m")
    newest.write_bytes(newest.read_bytes()[:50])  # a write cut short
    with pytest.warns(RuntimeWarning, match=r"skipped checkpoint .*ckpt_000000020\.pt"):
        state = run.latest_checkpoint("m")
    assert state["step"] == 10
    newest.write_bytes(b"not a checkpoint at all")
    with pytest.warns(RuntimeWarning, match="ckpt_000000020"):
        assert run.latest_checkpoint("m")["step"] == 10


def test_latest_checkpoint_refuses_a_checkpoint_made_with_other_settings(runs_root):
    run = Run.create("exp", "guard", {})
    run.save_checkpoint({"step": 5, "config": {"lr": 1e-3, "eval_every": 10}}, 5, tag="m")
    with pytest.raises(ValueError, match=r"ckpt_000000005\.pt.*lr saved 0\.001, now 0\.003"):
        run.latest_checkpoint("m", config={"lr": 3e-3, "eval_every": 10})
    state = run.latest_checkpoint(
        "m", config={"lr": 1e-3, "eval_every": 50}, may_change=["eval_every"]
    )
    assert state["step"] == 5
    run.save_checkpoint({"step": 6}, 6, tag="old")
    with pytest.raises(ValueError, match="stores no config"):
        run.latest_checkpoint("old", config={"lr": 1})


def test_save_figures_saves_each_figure_skips_none_and_closes_them(runs_root):
    run = Run.create("exp", "figs", {})
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    paths = run.save_figures({"line": fig, "missing": None})
    assert list(paths) == ["line"] and paths["line"].read_bytes()[:4] == b"\x89PNG"
    assert not plt.fignum_exists(fig.number)
