import pytest
import torch

from akira_nb.spatiotemporal import patterns as P
from akira_nb.spatiotemporal.evaluate import evaluation_times
from akira_nb.spatiotemporal.train import TrainConfig, training_times


def test_eleven_reference_patterns_plus_moving_digits():
    assert len(P.PATTERNS) == 12 and "concentric" in P.PATTERNS and "moving_digits" in P.PATTERNS


@pytest.mark.parametrize("name", P.PATTERNS)
def test_shape_range_purity_and_phases(name):
    t = torch.tensor([[0.0, 1.0, 2.5], [40.0, 41.0, 42.5]])
    f = P.frames(name, t, 12)
    assert f.shape == (2, 3, 12, 12) and f.dtype == torch.float32
    assert torch.isfinite(f).all() and f.min() >= 0 and f.max() <= 1
    assert f.max() > 0.5  # not blank
    torch.testing.assert_close(P.frames(name, t[1], 12), f[1])  # pure function of t
    assert not torch.equal(f[0, 0], f[0, 1])  # it moves


def test_sequence_batch_and_seeds():
    seq = P.sequence_batch("blob", [0, 10], 5, 16)
    assert seq.shape == (2, 5, 16, 16)
    torch.testing.assert_close(seq[1, 0], P.frames("blob", 10.0, 16))
    a = P.frames("noisy_motion", torch.tensor([3.0, 3.0]), 16, seed=[0, 1])
    assert not torch.allclose(a[0], a[1])
    d = P.frames("moving_digits", torch.zeros(2, 1), 16, seed=[1, 2])
    assert d.shape == (2, 1, 16, 16) and not torch.allclose(d[0], d[1])


def test_pattern_constants_are_parameters():
    slow = P.frames("blob", 5.0, 16, speed=0.0)
    torch.testing.assert_close(slow, P.frames("blob", 0.0, 16))
    assert not torch.allclose(P.frames("blob", 5.0, 16), slow)
    # the switching blob / interference and the bifurcation base blob are parameters too
    t = torch.tensor([5.0, 150.0])  # blob block, then interference block
    for name, key, value in [
        ("switching", "radius", 0.1),
        ("switching", "sigma", 0.2),
        ("switching", "k", 4.0),
        ("switching", "y_phase_ratio", 0.2),
        ("bifurcation", "radius", 0.1),
        ("bifurcation", "sigma", 0.2),
    ]:
        assert not torch.allclose(P.frames(name, t, 16), P.frames(name, t, 16, **{key: value}))
    with pytest.raises(ValueError, match="wobble"):
        P.frames("blob", 0.0, 16, wobble=1)


@pytest.mark.parametrize("name", P.PATTERNS)
def test_held_out_frames_differ_from_every_training_frame(name):
    cfg = TrainConfig(pattern=name, grid_size=16, steps=300, eval_steps=101, rollout_horizon=20)
    train = P.frames(name, training_times(cfg), 16)
    held = P.frames(name, evaluation_times(cfg), 16)
    dist = (held[:, None] - train[None]).abs().flatten(2).amax(-1)  # [n_eval, n_train]
    assert dist.min() > 1e-5


def test_held_out_blob_frames_are_far_from_every_training_frame():
    # "far" relative to the step-to-step change: the nearest training frame must be a sizeable
    # fraction of copy-last-frame's error away (0.16 at eval_start = 10000.4; 0.06 at 10000.25)
    cfg = TrainConfig(grid_size=16, steps=300, eval_steps=101, rollout_horizon=20)
    train = P.frames("blob", training_times(cfg), 16)
    held = P.frames("blob", evaluation_times(cfg), 16)
    mse = ((held[:, None] - train[None]) ** 2).flatten(2).mean(-1)  # [n_eval, n_train]
    copy_last = ((held[1:] - held[:-1]) ** 2).flatten(1).mean(-1).mean()
    assert mse.min() > 0.12 * copy_last


def test_reference_window_replays_training_frames_for_blob():
    # the reason eval_start is fractional: at t = 10000 blob (period 50) repeats t = 0
    torch.testing.assert_close(P.frames("blob", 10000.0, 16), P.frames("blob", 0.0, 16))


def test_bad_pattern_inputs():
    with pytest.raises(ValueError, match="pattern"):
        P.frames("spiral", 0.0, 16)
    with pytest.raises(ValueError, match="grid"):
        P.frames("blob", 0.0, 3)
