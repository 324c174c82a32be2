"""The study builder, validation before any run folder exists, and the kit summary."""

from dataclasses import fields

import pytest

from akira_nb.grokking import experiment
from akira_nb.grokking.models import MIXERS, ModelConfig
from akira_nb.grokking.train import TrainConfig


def test_train_config_is_the_model_config_plus_training_settings():
    model_fields = [f.name for f in fields(ModelConfig)]
    train_fields = [f.name for f in fields(TrainConfig)]
    assert train_fields[: len(model_fields)] == model_fields  # declared once, in ModelConfig
    assert len(set(train_fields)) == len(train_fields)
    cfg = TrainConfig(p=7, mixer="fnet", d_model=32, n_heads=2, d_mlp=64)
    assert cfg.model_config() == ModelConfig(7, "fnet", 32, 2, 64)


def test_study_is_the_preset_with_overrides_on_top():
    plan = experiment.study("tiny", lr=0.01, seeds=[1, 2], mixers=["fnet"])
    assert plan.base.lr == 0.01 and plan.base.train_frac == 0.7
    assert plan.seeds == [1, 2] and plan.mixers == ["fnet"] and plan.primes == [23]
    assert "lr" not in plan.from_preset and plan.from_preset["train_frac"] == 0.7
    arms = plan.arms()
    assert [(c.p, c.mixer, c.seed) for c in arms] == [(23, "fnet", 1), (23, "fnet", 2)]
    seed = experiment.study(None)
    assert (seed.primes, seed.seeds, seed.mixers) == ([53], [0], list(MIXERS))
    assert (seed.base.train_frac, seed.base.lr, seed.base.n_epochs) == (0.3, 1e-3, 30_000)
    assert experiment.study(None, lr=None).base.lr == 1e-3  # None: not given


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(p=13), "unknown settings"),
        (dict(mixer="fnet"), "unknown settings"),
        (dict(mixers="fnet"), "mixers"),
        (dict(mixers=[]), "mixers"),
        (dict(primes=[]), "primes"),
        (dict(primes=[23, 12]), "p=12"),
        (dict(seeds=[-1]), "seeds"),
        (dict(seeds=[0, 0]), "seeds"),
        (dict(lr=float("inf")), "lr"),
    ],
)
def test_bad_study_settings_raise_naming_the_setting(overrides, match):
    with pytest.raises(ValueError, match=match):
        experiment.study("tiny", **overrides)


@pytest.mark.parametrize(
    "arms,match",
    [
        (dict(primes=[7], mixers=["fnet"], seeds=[-1]), "seeds"),
        (dict(primes=[7, 15], mixers=["fnet"], seeds=[0]), "p=15"),
        (dict(primes=[7], mixers=["fnet", "wave"], seeds=[0]), "mixers"),
    ],
)
def test_run_experiment_validates_every_arm_before_making_a_folder(tmp_path, arms, match):
    plan = experiment.Study(TrainConfig(p=7, n_epochs=5), **arms)
    with pytest.raises(ValueError, match=match):
        experiment.run_experiment(plan, root=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())
