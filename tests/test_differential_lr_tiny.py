"""013 at the real tiny preset, as the notebook runs it: reopened from the notebook stage's runs
(tests/conftest.py ``tiny_runs``; trained here once when the file runs alone) and checked: every
arm learns at every seed at the longest budget, every sweep spans 10x with its best interior or
says so, the verdicts are judged and agree with the template, the figures and results.json hold
what the notebook prints, and a resume trains nothing."""

import json
import os

import pytest

from akira_nb.bandformer import train as train_mod
from akira_nb.differential_lr import claims as C
from akira_nb.differential_lr import evaluate as ev
from akira_nb.differential_lr import experiment as E
from akira_nb.differential_lr import presets as P
from akira_nb.differential_lr import widgets
from akira_nb.runs import Run

# one worker opens the study (its first open may train it; the tests after it reload it)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tiny_013")]


@pytest.fixture(scope="module")
def tiny(tiny_runs):
    plan = P.study("tiny", progress=False)
    name = f"notebook-tiny-{plan.lr_preset}"  # the notebook's run name
    if not os.environ.get("AKIRA_TINY_RUNS_DIR"):  # alone: train it as the notebook would
        return E.run_experiment(plan, name=name, root=tiny_runs, resume=True, log=None), tiny_runs
    # the notebook stage's run: reopened, never trained again
    assert Run.find_latest(P.EXPERIMENT, name, root=tiny_runs), f"no notebook run {name!r}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "train", _no_training)
        out = E.run_experiment(plan, name=name, root=tiny_runs, resume=True, log=None)
    return out, tiny_runs


def _no_training(*a, **k):
    raise AssertionError("a resumed finished study trained again")


def test_every_arm_learns_at_every_seed_at_the_longest_budget(tiny):
    out, _ = tiny
    plan = out["study"]
    assert plan.arms == list(P.DEFAULT_ARMS) and plan.budgets == [40, 200]
    bar = out["unigram"] - ev.LEARN_MARGIN
    longest = out["tuned"][plan.longest]
    assert set(longest) == set(plan.arms)
    for arm, row in longest.items():
        assert row["seeds"] == plan.seeds and row["learned"], (arm, row["learn_line"])
        losses = [m["final_val_loss"] for m in out["measures"][arm]]
        assert len(losses) == 3 and max(losses) < bar, (arm, losses, bar)
    # so every hypothesis is judged by its rule
    for c in out["claims"]:
        assert c["seed_verdict"] in (ev.SUPPORTED, ev.NOT_SUPPORTED), c["measured"]
        assert c["verdict"] == "not comparable"
        assert c["computed_verdict"] in ("holds", "does not hold")


def test_every_sweep_spans_10x_with_its_best_interior_or_says_so(tiny):
    out, _ = tiny
    plan = out["study"]
    assert len(out["sweep"]) == len(plan.arms) * len(plan.budgets)
    for row in out["sweep"]:
        mults = [p["mult"] for p in row["points"]]
        assert len(mults) >= 3 and max(mults) / min(mults) >= 10 * (1 - 1e-9)
        assert 0 <= row["extensions"] <= 2
        interior = mults[0] < row["best"] < mults[-1]
        assert interior or row["note"].startswith("the optimum may lie beyond"), row
        tuned = out["tuned"][row["budget"]][row["arm"]]
        assert tuned["mult"] == row["best"] and tuned["note"] == row["note"]
    # the sweep's best run is the arm's seed-0 result: no configuration trained twice
    tags = [k["tag"] for k, _ in out["records"]]
    assert len(tags) == len(set(tags))
    for recs in out["tuned_records"].values():
        assert [k["seed"] for k, _ in recs] == plan.seeds


def test_the_text_figures_and_results_agree(tiny):
    out, _ = tiny
    by = {c["key"]: c for c in out["claims"]}
    t = out["tables"]["template"]
    assert f"budget): {by['H1']['measured_value']:.2f}x (H1: {by['H1']['seed_verdict']})" in t
    assert "at 200 steps: differential (band) at x" in t and "fewer steps -" not in t
    assert "paired t-test p = " in by["H2"]["measured"]
    results = json.loads((out["run"].path / "results.json").read_text())
    assert results["cpu_seconds"] > 0 and results["training_cpu_seconds"] > 0
    assert set(results["tuned"]) == {"40", "200"} and results["learn_margin"] == 0.05
    assert results["template"] == t and results["trainings"] == len(out["records"])
    assert set(out["figures"]) == {"curves", "weight_change", "sweep"}
    summary = C.kit_summary(out)
    assert all({"measured_value", "unit", "computed_verdict"} <= set(c) for c in summary["claims"])
    lines, _ = widgets.explore({"013": results}, "013", "band")
    assert any(x.startswith("  at 200 steps: tuned x") and x.endswith("learned") for x in lines)


def test_a_resume_reloads_every_training_and_trains_nothing(tiny, monkeypatch):
    out, root = tiny

    monkeypatch.setattr(train_mod, "train", _no_training)
    again = E.run_experiment(
        P.study("tiny", progress=False),
        name=out["run"].path.name.split("-", 2)[2],  # the notebook's run name
        root=root,
        resume=True,
        log=None,
    )
    assert again["run"].path == out["run"].path
    assert again["claims"] == out["claims"] and again["tuned"] == out["tuned"]


def test_the_trained_band_model_can_be_looked_inside(tiny):
    import matplotlib.pyplot as plt

    from akira_nb.bandformer import look_inside

    out, _ = tiny
    model = E.trained_model(out, "band")
    assert not model.training
    logits, cache = model.run_with_cache(out["val_blocks"][:2])
    assert tuple(logits.shape[:2]) == tuple(out["val_blocks"][:2].shape)
    norms = look_inside.band_norms(cache)
    assert norms.shape == (2, 8) and (norms > 0).all()  # tiny_7p1: 2 blocks, 8 bands
    plt.close(look_inside.plot_band_norms(cache))
    with pytest.raises(ValueError, match=r"seed=9: band trained at seeds \[0, 1, 2\]"):
        E.trained_model(out, "band", seed=9)
