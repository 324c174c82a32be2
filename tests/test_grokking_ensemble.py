from dataclasses import replace

import pytest
import torch

from akira_nb.modular_arithmetic.ensemble import train_seeds
from akira_nb.modular_arithmetic.train import TrainConfig, train


def test_vectorised_seeds_match_training_each_seed_alone():
    cfg = TrainConfig(
        p=11,
        mixer="standard",
        n_epochs=25,
        d_model=32,
        n_heads=4,
        d_mlp=64,
        eval_every=25,
        checkpoint_every=0,
        grokfast_lamb=1.0,
    )
    together = train_seeds(cfg, seeds=[0, 1, 2])
    for seed, model, final in zip([0, 1, 2], together["models"], together["final"]):
        alone = train(TrainConfig(**{**cfg.__dict__, "seed": seed}), progress=False)
        for (name, a), b in zip(model.named_parameters(), alone.model.parameters()):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), name
        assert abs(final["test_loss"] - alone.final["test_loss"]) < 1e-4
    # the seeds really differ (different splits and initialisations)
    w = [m.W_E.detach() for m in together["models"]]
    assert not torch.allclose(w[0], w[1])


# Measured on one CPU thread, 20 epochs, Grokfast lambda 2: standard, fnet, learned_gate and
# phase_shift bitwise equal; full 2.6e-5 relative weight difference, 1.2e-6 in test loss (its
# z / sqrt|z| phase scores amplify the float32 rounding of the vmapped spectrum matmul).
BITWISE = ("standard", "fnet", "learned_gate", "phase_shift")


@pytest.mark.parametrize("mixer", [*BITWISE, "full"])
def test_every_mixer_ensemble_matches_sequential_training(mixer):
    cfg = TrainConfig(
        p=11,
        mixer=mixer,
        n_epochs=20,
        d_model=32,
        n_heads=4,
        d_mlp=64,
        eval_every=20,
        checkpoint_every=0,
        progress_every=0,
        grokfast_lamb=2.0,
        lr=3e-3,
        device="cpu",
    )
    together = train_seeds(cfg, seeds=[0, 1])
    for seed, model, final in zip([0, 1], together["models"], together["final"]):
        alone = train(replace(cfg, seed=seed), progress=False)
        for (name, a), b in zip(model.named_parameters(), alone.model.parameters()):
            if mixer in BITWISE:
                assert torch.equal(a, b), name
            else:  # float tolerance: 1e-4 of the tensor's largest weight
                assert (a - b).abs().max() <= 1e-4 * b.abs().max(), name
        loss_tol = 0.0 if mixer in BITWISE else 2e-5
        assert abs(final["test_loss"] - alone.final["test_loss"]) <= loss_tol


def _arms(tmp_seeds=(0, 1), **kw):
    base = dict(
        p=11,
        mixer="learned_gate",
        n_epochs=60,
        d_model=32,
        n_heads=4,
        d_mlp=64,
        eval_every=20,
        checkpoint_every=40,
        progress_every=30,
        grokfast_lamb=0.5,
        train_frac=0.5,
        lr=3e-3,
    )
    return [TrainConfig(**{**base, **kw, "seed": s}) for s in tmp_seeds]


def test_ensemble_path_of_compare_gives_sequential_results_and_files(tmp_path):
    from akira_nb.grokking.experiment import compare
    from akira_nb.runs import Run

    runs = {}
    results = {}
    for name, ensemble in (("seq", False), ("ens", True)):
        runs[name] = Run.open_or_create("grokking", name, {"x": 1}, root=tmp_path)
        results[name] = compare(_arms(), run=runs[name], progress=False, ensemble=ensemble)
    for seq, ens in zip(results["seq"], results["ens"]):
        assert seq.config == ens.config
        for key in ("test_loss", "train_loss", "test_acc", "train_acc"):
            assert abs(seq.final[key] - ens.final[key]) < 1e-5, key
        assert seq.history["epoch"] == ens.history["epoch"] == [20, 40, 60]
        for key in ("test_loss", "train_loss", "weight_norm"):
            assert torch.allclose(
                torch.tensor(seq.history[key]), torch.tensor(ens.history[key]), rtol=1e-4
            ), key
        assert seq.key_freqs == ens.key_freqs
        assert seq.progress["epoch"] == ens.progress["epoch"] == [0, 30, 60]
        assert torch.allclose(
            torch.tensor(seq.progress["restricted_loss"]),
            torch.tensor(ens.progress["restricted_loss"]),
            rtol=1e-4,
        )
        for (name, a), b in zip(seq.model.named_parameters(), ens.model.parameters()):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), name

    # the same run-folder layout, file for file
    def files(run):
        return sorted(str(p.relative_to(run.path)) for p in run.path.rglob("*") if p.is_file())

    assert files(runs["seq"]) == files(runs["ens"])
    assert any(f.startswith("checkpoints/p11_learned_gate_s1/") for f in files(runs["ens"]))
    # an ensemble checkpoint resumes on the one-seed path and ends where it ended
    ckpt = runs["ens"].latest_checkpoint("p11_learned_gate_s1")
    assert ckpt["epoch"] == 60 and set(ckpt["optimizer"]["state"]) == set(
        range(len(list(results["seq"][1].model.parameters())))
    )


def test_ensemble_resume_continues_from_per_seed_checkpoints(tmp_path):
    from akira_nb.grokking.experiment import compare
    from akira_nb.runs import Run

    whole = compare(_arms(), progress=False, ensemble=False)
    run = Run.open_or_create("grokking", "r", {"x": 1}, root=tmp_path)
    compare(_arms(n_epochs=40), run=run, progress=False, ensemble=True)
    again = Run.open_or_create("grokking", "r", {"x": 1}, root=tmp_path, resume=True)
    resumed = compare(_arms(), run=again, resume=True, progress=False, ensemble=True)
    for a, b in zip(whole, resumed):
        assert abs(a.final["test_loss"] - b.final["test_loss"]) < 1e-5
        assert a.history["epoch"] == b.history["epoch"]


def test_ensemble_is_opt_in_on_every_device_and_the_flag_is_checked(monkeypatch):
    # not yet measured faster on a GPU: compare and run_experiment default to False (was None:
    # on for CUDA), and compare trains one seed after another unless asked
    import inspect

    import pytest

    from akira_nb.grokking import experiment
    from akira_nb.modular_arithmetic import ensemble

    assert inspect.signature(experiment.compare).parameters["ensemble"].default is False
    assert inspect.signature(experiment.run_experiment).parameters["ensemble"].default is False
    calls = []
    monkeypatch.setattr(ensemble, "train_arms", lambda *a, **k: calls.append(a) or [])
    arms = _arms(n_epochs=2, eval_every=1, checkpoint_every=0, progress_every=0)
    assert len(experiment.compare(arms, progress=False)) == 2 and calls == []
    experiment.compare(arms, progress=False, ensemble=True)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="ensemble"):
        experiment.compare(arms, progress=False, ensemble="yes")
