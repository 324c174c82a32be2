import torch

from akira_nb.grokking.ensemble import train_seeds
from akira_nb.grokking.train import TrainConfig, train


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
