"""Fixed-key progress measures: key frequencies from the final model, applied to every
snapshot (Nanda et al.), with known answers on hand-built activations and logits."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from akira_nb.modular_arithmetic import evaluate as ev
from akira_nb.modular_arithmetic import fourier
from akira_nb.modular_arithmetic.data import make_dataset
from akira_nb.modular_arithmetic.models import GrokkingModel
from akira_nb.modular_arithmetic.train import HISTORY_KEYS, TrainConfig, train
from akira_nb.runs import Run


def _ideal_logits(p, freqs, s):
    """logits[a*p+b, c] = s * sum_k cos(2 pi k (a+b-c) / p): exactly the frequencies ``freqs``."""
    a = torch.arange(p, dtype=torch.float64)
    d = a[:, None, None] + a[None, :, None] - a[None, None, :]
    return (s * sum(torch.cos(2 * math.pi * k * d / p) for k in freqs)).reshape(p * p, p)


def test_fixed_key_progress_on_logits_built_from_frequencies_3_and_7():
    p = 23
    data = make_dataset(p, 0.3, 0)
    noise = torch.randn(p * p, p, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    snaps = [noise, _ideal_logits(p, [3, 7], 2.0), _ideal_logits(p, [3, 7], 20.0)]
    prog = ev.fixed_key_progress([0, 100, 200], snaps, [3, 7], data)
    assert prog["epoch"] == [0, 100, 200] and prog["key_freqs"] == [3, 7]
    for i in (1, 2):  # built from exactly the key set: restricting removes nothing
        full = F.cross_entropy(snaps[i], data.labels).item()
        assert prog["restricted_loss"][i] == pytest.approx(full, abs=1e-9)
        assert prog["excluded_loss"][i] == pytest.approx(math.log(p), abs=1e-9)  # chance
        assert prog["train_loss"][i] == pytest.approx(
            F.cross_entropy(snaps[i][data.train_idx], data.labels[data.train_idx]).item()
        )
    assert prog["restricted_loss"][2] < 1e-3
    # a key set that misses the model's frequencies leaves only the class means: chance
    other = ev.fixed_key_progress([200], snaps[2:], [1, 5], data)
    assert other["restricted_loss"][0] == pytest.approx(math.log(p), abs=1e-9)


def test_key_frequencies_from_planted_neurons():
    p = 23
    ab = torch.arange(p * p)
    a, b = (ab // p).double(), (ab % p).double()
    w = lambda k: 2 * math.pi * k / p  # noqa: E731
    neurons = [torch.cos(w(3) * (a + b) + 0.4), torch.sin(w(7) * (a + b)), torch.cos(w(7) * a)]
    mixed = 0.8 * torch.cos(w(4) * (a + b)) + 0.6 * torch.cos(w(9) * (a + b))  # 64 % in k = 4
    dead = torch.full_like(a, 0.5)
    keys, counts = ev.key_frequencies_from_acts(torch.stack([*neurons, mixed, dead], 1), p)
    assert keys == [3, 7] and counts == {3: 1, 7: 2}


def test_progress_uses_the_final_key_set_at_every_snapshot_and_survives_resume(runs_root):
    cfg = TrainConfig(
        p=11, mixer="learned_gate", train_frac=0.7, lr=1e-2, n_epochs=60, eval_every=20,
        progress_every=20, checkpoint_every=20, d_model=32, n_heads=4, d_mlp=64,
    )  # fmt: skip
    run = Run.create("grokking", "progress", {})
    res = train(cfg, run=run, progress=False)
    prog = res.progress
    assert prog["epoch"] == [0, 20, 40, 60]
    data = make_dataset(cfg.p, cfg.train_frac, cfg.seed)
    keys, _ = ev.key_frequencies_of(res.model, data)
    assert prog["key_freqs"] == keys == res.key_freqs
    assert "0.85" in prog["key_rule"]
    # each snapshot on disk, scored again with the FINAL key set, gives the stored values
    model = GrokkingModel(cfg.model_config())
    for i, epoch in enumerate(prog["epoch"]):
        path = run.path / "progress" / cfg.tag / f"epoch_{epoch:09d}.pt"
        model.load_state_dict(torch.load(path, weights_only=True))
        logits = model(data.inputs).double()
        assert prog["restricted_loss"][i] == pytest.approx(
            fourier.restricted_loss(logits, keys, cfg.p), rel=1e-9
        )
        assert prog["excluded_loss"][i] == pytest.approx(
            fourier.excluded_loss(logits, keys, cfg.p, data.train_idx), rel=1e-9
        )
    assert res.final["restricted_loss"] == pytest.approx(prog["restricted_loss"][-1], rel=1e-9)
    # no moving-key variant is logged any more
    assert not {"restricted_loss", "excluded_loss", "n_key_freqs"} & set(HISTORY_KEYS)
    # an interrupted and resumed run keeps the snapshots from before the interruption
    part = Run.create("grokking", "progress-part", {})
    train(replace(cfg, n_epochs=50), run=part, progress=False)  # its final snapshot: 50
    resumed = train(cfg, run=part, resume=True, progress=False)
    assert resumed.progress["epoch"] == prog["epoch"]  # 50 is not on the grid of 60
    assert resumed.progress["restricted_loss"] == pytest.approx(prog["restricted_loss"], rel=1e-9)


def test_progress_in_memory_without_a_run():
    cfg = TrainConfig(
        p=7, mixer="fnet", n_epochs=30, eval_every=10, progress_every=10, checkpoint_every=0,
        d_model=32, n_heads=4, d_mlp=64,
    )  # fmt: skip
    res = train(cfg, progress=False)
    assert res.progress["epoch"] == [0, 10, 20, 30]
    assert len(res.progress["restricted_loss"]) == 4
    assert train(replace(cfg, progress_every=0), progress=False).progress == {}
