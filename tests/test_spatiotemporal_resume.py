"""033 arms resume one by one: the comparison, its variants and the pattern sweep."""

from dataclasses import replace

import pytest
import torch

from akira_nb.runs import Run
from akira_nb.spatiotemporal import experiment
from akira_nb.spatiotemporal.train import TrainConfig

CFG = TrainConfig(
    grid_size=8, steps=6, checkpoint_every=3, eval_steps=3, rollout_horizon=2, progress=False
)
PATTERNS = ("blob", "chirp")
MODELS = ("spectral", "copy_last")


def _sweep(run):
    return experiment.pattern_sweep(CFG, PATTERNS, "turbo", models=MODELS, run=run)


def _without_reloaded(table):
    return [{k: v for k, v in row.items() if k != "reloaded"} for row in table]


class Interrupt(Exception):
    pass


def _counting_train(monkeypatch, stop_at_call=None):
    """Wrap experiment.train: record (tag, resumed_from); on call ``stop_at_call`` train half
    the steps (a checkpoint is written) and then stop, as a Colab disconnect would."""
    calls, real = [], experiment.train

    def fake(model, cfg, *args, **kw):
        calls.append(kw.get("tag"))
        if len(calls) == stop_at_call:
            real(model, replace(cfg, steps=cfg.steps // 2), *args, **kw)
            raise Interrupt
        out = real(model, cfg, *args, **kw)
        calls[-1] = (kw.get("tag"), out["resumed_from"])
        return out

    monkeypatch.setattr(experiment, "train", fake)
    return calls


def test_interrupted_sweep_resumes_to_identical_results_without_retraining(tmp_path, monkeypatch):
    reference = _sweep(Run.create("t", "whole", root=tmp_path))
    run = Run.create("t", "cut", root=tmp_path)
    calls = _counting_train(monkeypatch, stop_at_call=2)
    with pytest.raises(Interrupt):  # blob finished, chirp's spectral arm stopped at step 3
        _sweep(run)
    assert sorted(p.name for p in (run.path / "arms/sweep/blob").iterdir()) == [
        "copy_last.json",
        "spectral.json",
    ]
    calls = _counting_train(monkeypatch)
    table = _sweep(run)
    assert calls == [("sweep/chirp/spectral", 3)]  # blob reloaded; chirp continued from step 3
    assert [row["reloaded"] for row in table] == [2, 0]
    assert _without_reloaded(table) == _without_reloaded(reference)
    calls = _counting_train(monkeypatch)
    again = _sweep(run)  # everything finished: nothing trains, nothing changes
    assert calls == [] and [row["reloaded"] for row in again] == [2, 2]
    assert _without_reloaded(again) == _without_reloaded(reference)


def test_reloaded_arms_keep_their_numbers_and_final_weights(tmp_path, monkeypatch):
    run = Run.create("t", "compare", root=tmp_path)
    first = experiment.compare(CFG, ("spectral", "copy_last"), "turbo", run=run)
    experiment.add_variants(first, CFG, experiment.VARIANTS, "turbo", run=run)
    assert (run.path / "arms/spectral.json").is_file()  # the main arms and the variants apart
    assert (run.path / "arms/variants/spectral_linear_base/spectral.json").is_file()
    calls = _counting_train(monkeypatch)
    second = experiment.compare(CFG, ("spectral", "copy_last"), "turbo", run=run)
    experiment.add_variants(second, CFG, experiment.VARIANTS, "turbo", run=run)
    assert calls == []
    a, b = experiment.strip_models(first), experiment.strip_models(second)
    for name in ("spectral", "copy_last", *experiment.VARIANTS):
        assert second["models"][name]["reloaded"]
        assert b["models"][name]["eval"] == a["models"][name]["eval"], name
        if "train" in a["models"][name]:
            assert b["models"][name]["train"]["losses"] == a["models"][name]["train"]["losses"]
        for (k, x), y in zip(
            first["models"][name]["model"].state_dict().items(),
            second["models"][name]["model"].state_dict().values(),
        ):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=f"{name} {k}")
    # other evaluation settings: the arm is evaluated anew from its final checkpoint, no training
    calls = _counting_train(monkeypatch)
    third = experiment.compare(replace(CFG, eval_steps=4), ("spectral",), "turbo", run=run)
    assert calls == [("spectral", 6)] and not third["models"]["spectral"].get("reloaded")
    assert third["models"]["spectral"]["eval"]["eval_steps"] == 4
    # other training settings: refused by the checkpoint guard, naming the field
    with pytest.raises(ValueError, match=r"train\.lr saved 0\.001, now 0\.01"):
        experiment.compare(replace(CFG, lr=1e-2), ("spectral",), "turbo", run=run)
