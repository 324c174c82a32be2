"""Band transformer trainer: learning below the unigram entropy, the LR schedule read back from
the optimiser, clipping, the fixed validation set and batch stream, resume, refused resumes,
validation before anything is written, the entry point."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from akira_nb import text
from akira_nb.bandformer import data, optim
from akira_nb.bandformer import train as train_mod
from akira_nb.bandformer.model import BandTransformer, BaselineTransformer
from akira_nb.bandformer.optim import lr_multiplier
from akira_nb.bandformer.train import (
    ARMS,
    EXPERIMENT,
    TrainConfig,
    build_model,
    main,
    make_data,
    make_optimizer,
    optimizer_step,
    train,
    train_batch,
    validation_blocks,
)
from akira_nb.runs import Run

# A few seconds' CPU run: tiny preset, short blocks, no monitor, no checkpoints.
QUICK = dict(
    seq_len=16,
    batch_size=4,
    total_steps=8,
    warmup_steps=2,
    eval_every=4,
    eval_batches=2,
    monitor_every=0,
    checkpoint_every=0,
    device="cpu",
    progress=False,
)
# The band LRs of the band arm scaled up 10-100x (band 0 at 1e-3 .. band 6 at 1e-2, shared
# 3e-3), so that 100 steps leave the unigram plateau on CPU; the hierarchy stays differential.
FAST_BAND_LRS = dict(shared_lr=3e-3, band_lrs=(1e-3,) * 3 + (3e-3,) * 2 + (1e-2,) * 2)


def quick(**kw) -> TrainConfig:
    return TrainConfig(**{**QUICK, **kw})


class Disconnect(Exception):
    """A lost Colab session."""


class DisconnectAt:
    """The run folder as ``train`` sees it, lost just before saving the checkpoint of step
    ``at`` (the earlier ones are on disk, as after a disconnect)."""

    def __init__(self, run: Run, at: int):
        self.run, self.at = run, at

    def __getattr__(self, name):
        return getattr(self.run, name)

    def save_checkpoint(self, state, step, tag="", keep=2):
        if step >= self.at:
            raise Disconnect
        return self.run.save_checkpoint(state, step, tag=tag, keep=keep)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- learning


def _learning_check(cfg: TrainConfig, margin: float):
    res = train(cfg)
    splits = make_data(cfg)
    val = validation_blocks(cfg, splits.val)
    unigram = text.unigram_cross_entropy(splits.train, val, splits.vocab_size)
    assert res.data["unigram_val_loss"] == pytest.approx(unigram)
    assert res.history["val_loss"][0] < math.log(257)  # uniform over the byte vocabulary
    assert res.final_val_loss < unigram - margin, (res.history["val_loss"], unigram)
    assert res.final_val_ppl == pytest.approx(math.exp(res.final_val_loss))
    assert res.tokens_seen == cfg.total_steps * cfg.tokens_per_step and res.tokens_per_s > 0
    return res


def test_tiny_band_model_learns_well_below_the_unigram_entropy():
    # measured: 2.78 nats after 100 steps of 8 x 32 bytes; unigram 3.19 on this validation set
    cfg = TrainConfig(
        arm="band",
        seq_len=32,
        batch_size=8,
        total_steps=100,
        warmup_steps=10,
        eval_every=50,
        eval_batches=4,
        model_overrides=FAST_BAND_LRS,
        monitor_every=25,
        checkpoint_every=0,
        device="cpu",
        progress=False,
    )
    res = _learning_check(cfg, margin=0.3)
    assert res.config["lr_mode"] == "differential"
    assert res.params["band_fraction"] > 0.9
    # the weight-change monitor logged every band at steps 25, 50, 75, 100
    assert res.weight_change["step"] == [25, 50, 75, 100]
    assert [k for k in res.weight_change if k != "step"] == [f"band_{i}" for i in range(7)] + [
        "shared"
    ]
    assert all(v > 0 for k, vs in res.weight_change.items() if k != "step" for v in vs)


def test_tiny_baseline_learns_well_below_the_unigram_entropy():
    # measured: 2.5-2.7 nats after 500 steps of 8 x 32 bytes at 3e-3; unigram 3.19
    cfg = TrainConfig(
        arm="baseline",
        seq_len=32,
        batch_size=8,
        total_steps=500,
        warmup_steps=10,
        eval_every=250,
        eval_batches=4,
        model_overrides=dict(shared_lr=3e-3),
        monitor_every=0,
        checkpoint_every=0,
        device="cpu",
        progress=False,
    )
    res = _learning_check(cfg, margin=0.3)
    assert res.config["lr_mode"] == "uniform" and res.params["bands"] == []
    assert isinstance(res.model, BaselineTransformer)


# ----------------------------------------------------------------------------- arms, LRs


@pytest.mark.parametrize("arm", ARMS)
def test_each_arm_builds_its_model_and_lr_mode(arm):
    cfg = quick(arm=arm)
    model, band_cfg = build_model(cfg)
    assert band_cfg.vocab_size == 257 and band_cfg.n_ctx == 16
    lrs = optim.base_lrs(make_optimizer(model, cfg, band_cfg).param_groups)
    if arm == "baseline":
        assert isinstance(model, BaselineTransformer) and lrs == {"shared": 3e-4}
        assert band_cfg.layout == "band" and band_cfg.wormhole  # matched to the band arm
        assert model.cfg.d_model < band_cfg.d_model  # matched in parameters, narrower
        return
    if arm == "baseline_wide":  # the band model's width, the matched GPT's depth and heads
        assert isinstance(model, BaselineTransformer) and lrs == {"shared": 3e-4}
        c = model.cfg
        assert (c.d_model, c.d_mlp) == (band_cfg.d_model, band_cfg.mlp_ratio * band_cfg.d_model)
        assert (c.n_layers, c.n_heads) == (band_cfg.n_layers, band_cfg.n_heads)
        matched = BaselineTransformer.matched_config(band_cfg)
        assert c.n_params() > matched.n_params()
        return
    if arm == "baseline_differential":
        # the band LRs over the matched GPT's hidden slices: one hidden group at the top LR
        assert isinstance(model, BaselineTransformer)
        assert lrs == {"hidden": max(band_cfg.band_lrs), "shared": 3e-4}
        opt = make_optimizer(model, cfg, band_cfg)
        assert optim.prescribed_lrs(opt) == {
            **{f"band_{i}": lr for i, lr in enumerate(band_cfg.band_lrs)},
            "shared": 3e-4,
        }
        return
    assert isinstance(model, BandTransformer)
    assert model.cfg.layout == ("reference" if arm == "reference" else "band")
    assert model.cfg.wormhole == (arm not in ("band_no_wormhole", "reference"))
    bands = [lrs[f"band_{i}"] for i in range(7)]
    if arm == "band_uniform":
        assert set(lrs.values()) == {3e-4}
    elif arm == "band_geomean":
        mean = math.exp(np.mean(np.log(band_cfg.band_lrs)))
        assert lrs["shared"] == pytest.approx(mean) and bands == pytest.approx([mean] * 7)
    else:
        assert bands == list(band_cfg.band_lrs) and lrs["shared"] == 3e-4


def test_the_same_seed_builds_the_same_model():
    a, _ = build_model(quick(seed=3))
    b, _ = build_model(quick(seed=3))
    c, _ = build_model(quick(seed=4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.W_E, c.W_E)


def test_each_groups_lr_follows_warmup_and_cosine_from_its_own_base():
    # eval_every=1: the history holds each group's LR as read from the optimiser after every
    # step, i.e. the LR that step s - 1 used: base_lr * lr_multiplier(s - 1, 4, 10, 0.25)
    cfg = quick(total_steps=10, warmup_steps=4, min_lr_ratio=0.25, eval_every=1)
    logged = []
    h = train(cfg, log=logged.append).history
    assert h["step"] == list(range(1, 11))
    base = dict(zip([f"band_{i}" for i in range(7)], (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)))
    base["shared"] = 3e-4
    # known multipliers: warm-up 1/4, 2/4, 3/4, 1; cosine over steps 4..10 from 1 to 0.25
    known = [0.25, 0.5, 0.75, 1.0, 1.0]
    known += [0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(1, 6)]
    assert known[7] == pytest.approx(0.625)  # half-way down the cosine at step 7
    for key, lr in base.items():
        assert h[f"lr/{key}"] == pytest.approx([lr * m for m in known], rel=1e-12), key
    assert [lr_multiplier(s, 4, 10, 0.25) for s in range(10)] == pytest.approx(known)
    # the log callback gets the reference's metric names (its wandb keys) at every evaluation
    assert [m["train/step"] for m in logged] == h["step"]
    assert logged[-1]["eval/loss"] == h["val_loss"][-1] and logged[0]["lr/band_6"] == 2.5e-3
    assert logged[-1]["eval/perplexity"] == pytest.approx(math.exp(h["val_loss"][-1]))
    assert {"train/loss", "train/tokens", "train/grad_norm", "lr/shared"} <= logged[0].keys()


@pytest.mark.parametrize("scaled", [False, True])
def test_optimizer_step_clips_the_gradient_norm(scaled):
    # loss 1e6 * (w . x): gradient 1e6 * x; SGD with lr 1 moves w by exactly the clipped gradient
    # (with a GradScaler, as fp16 on a T4: the gradients are unscaled before they are clipped)
    x = torch.tensor([3.0, 4.0])
    for clip, moved in ((1.0, 1.0), (0.0, 5e6)):
        w = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([w], lr=1.0)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, enabled=scaled)
        norm = optimizer_step(1e6 * (w * x).sum(), opt, scaler, [w], clip)
        assert float(norm) == pytest.approx(5e6)  # the norm before clipping
        assert float(w.detach().norm()) == pytest.approx(moved, rel=1e-6)
        torch.testing.assert_close(w.detach() / w.detach().norm(), -x / 5)


def test_training_logs_the_pre_clip_gradient_norm():
    h = train(quick(grad_clip=1e-3, total_steps=4, eval_every=2)).history
    assert len(h["grad_norm"]) == 2 and all(g > 1e-3 for g in h["grad_norm"])


# ----------------------------------------------------------------------------- data


def test_batches_walk_a_seeded_permutation_per_epoch():
    cfg = quick(batch_size=4, data_seed=5)
    n = 10
    stream = torch.cat([train_batch(cfg, n, s) for s in range(5)]).tolist()  # 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert stream[:10] != stream[10:]
    assert train_batch(cfg, n, 3).tolist() == stream[12:16]  # a function of the step alone
    assert train_batch(replace(cfg, data_seed=6), n, 0).tolist() != stream[:4]
    assert train_batch(replace(cfg, seed=9), n, 0).tolist() == stream[:4]  # data_seed rules


def test_the_validation_set_is_fixed_and_seeded():
    cfg = quick(eval_batches=3, batch_size=4)
    val = make_data(cfg).val
    a, b = validation_blocks(cfg, val), validation_blocks(cfg, val)
    assert a.shape == (12, 16) and torch.equal(a, b)
    assert not torch.equal(a, validation_blocks(replace(cfg, data_seed=1), val))
    assert validation_blocks(cfg, val[:5]).shape == (5, 16)  # all of a small split
    # packed blocks: no padding anywhere (the byte corpus's EOS only between documents)
    assert (a == 256).float().mean() < 0.05


def test_tinystories_is_loaded_joined_with_eos_and_packed(monkeypatch):
    import datasets

    stories = {"train": ["abc", "  ", "de"] * 4, "validation": ["fgh", "ij"] * 2}
    monkeypatch.setattr(text, "gpt2_tokenizer", text.ByteTokenizer)
    monkeypatch.setattr(datasets, "load_dataset", lambda path, split: {"text": stories[split]})
    data._splits.cache_clear()
    try:
        splits = make_data(quick(dataset="tinystories", seq_len=4))
    finally:
        data._splits.cache_clear()
    assert splits.train.reshape(-1)[:8].tolist() == [97, 98, 99, 256, 100, 101, 256, 97]
    assert splits.train.shape == (28 // 4, 4) and splits.val.shape == (14 // 4, 4)
    assert splits.test.shape == (0, 4) and splits.info["corpus"] == "tinystories"


def test_tinystories_offline_raises_corpus_unavailable(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no internet")

    monkeypatch.setattr(text, "gpt2_tokenizer", text.ByteTokenizer)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    data._splits.cache_clear()
    with pytest.raises(text.CorpusUnavailableError, match="tinystories.*dataset='offline'"):
        make_data(quick(dataset="tinystories"))
    data._splits.cache_clear()


# ----------------------------------------------------------------------------- offline


def test_offline_reads_the_offline_corpus_through_the_standin_of_the_real_tokenizer():
    from akira_nb import standins

    online = quick(dataset="wikitext-103")
    assert (online.corpus, online.tokenizer, online.standins()) == ("wikitext-103", "gpt2", {})
    cfg = quick(dataset="wikitext-103", offline=True)
    assert (cfg.corpus, cfg.tokenizer) == ("offline", standins.tokenizer_for("gpt2"))
    assert cfg.standins() == {
        "wikitext-103 (Hugging Face)": "the kit's offline corpus",
        "gpt2 tokenizer": "gpt2-standin",
    }
    assert cfg.band_config().vocab_size == 50257  # the real head's shape
    splits = make_data(cfg)
    assert (splits.vocab_size, splits.eos_id, splits.info["tokenizer"]) == (
        50257,
        50256,
        cfg.tokenizer,
    )
    assert splits.info["corpus"] == "offline" and int(splits.train.max()) == 50256
    # tinystories too; the offline dataset has nothing to replace
    assert quick(dataset="tinystories", offline=True).corpus == "offline"
    assert quick(offline=True).standins() == {}


def test_main_offline_prints_the_banner_first_and_records_the_standins(runs_root, capsys):
    from akira_nb import standins

    args = FLAGS + ["--dataset", "wikitext-2", "--offline", "--name", "off"]
    assert main(args + ["--override", "n_layers=1", "--output_dir", str(runs_root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == standins.BANNER and "wikitext-2 (Hugging Face)" in lines[1]
    (folder,) = (runs_root / EXPERIMENT).iterdir()
    results = json.loads((folder / "results.json").read_text())
    assert results["standins"]["replaced"]["gpt2 tokenizer"] == "gpt2-standin"
    assert results["config"]["offline"] is True and results["data"]["vocab_size"] == 50257


def test_each_training_hands_its_freed_heap_back_to_the_system(monkeypatch):
    """After an arm, the C heap's free pages are returned (glibc malloc_trim): at t4 on a CPU
    1.6 GB of freed activations per arm would otherwise stay resident (measured)."""
    calls = []

    class Libc:
        def __init__(self, name):
            calls.append(name)

        def malloc_trim(self, pad):
            calls.append(pad)

    monkeypatch.setattr(train_mod.ctypes, "CDLL", Libc)
    res = train(quick(total_steps=2, eval_every=2))
    assert calls == ["libc.so.6", 0]
    # the returned model keeps no gradients (at t4 each would hold another 117 MB while the
    # studies keep every arm's model for the analyses)
    assert all(p.grad is None for p in res.model.parameters())

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(train_mod.ctypes, "CDLL", missing)
    train_mod.trim_heap()  # another C library: nothing to do, no error


# ----------------------------------------------------------------------------- resume


def test_resume_ends_with_the_same_losses_as_an_uninterrupted_run(runs_root):
    # dropout on, a checkpoint mid-way through an evaluation interval, the monitor on
    cfg = quick(
        total_steps=12,
        eval_every=4,
        checkpoint_every=6,
        monitor_every=3,
        model_overrides=dict(dropout=0.1),
    )
    run = Run.create(EXPERIMENT, "resume", {})
    full = train(cfg, run=run, tag="full")
    with pytest.raises(Disconnect):  # lost after step 6, before the final checkpoint
        train(cfg, run=DisconnectAt(run, 12), tag="arm0")
    folder = run.checkpoint_dir("arm0")
    assert _names(folder) == ["ckpt_000000006.pt"]
    state = torch.load(folder / "ckpt_000000006.pt", weights_only=True)
    assert state["config"] == cfg.to_dict() and state["step"] == 6 and state["n_sum"] == 2
    assert {"model", "optimizer", "scaler", "history", "weight_change"} <= state.keys()
    assert state["weight_change"]["step"] == [3, 6] and state["history"]["step"] == [4]
    resumed = train(replace(cfg, checkpoint_every=0), run=run, resume=True, tag="arm0")
    assert resumed.final_val_loss == full.final_val_loss
    assert resumed.history == full.history
    assert resumed.weight_change == full.weight_change
    for a, b in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.equal(a, b)
    # a finished run resumes without training and reports the same
    again = train(cfg, run=run, resume=True, tag="arm0")
    assert again.history == full.history and again.final_val_loss == full.final_val_loss
    assert again.train_seconds == pytest.approx(resumed.train_seconds)


def test_a_finished_arm_keeps_only_its_final_weights_and_resumes_without_training(
    runs_root, monkeypatch
):
    """The resume checkpoints (weights + AdamW's two moments: ~3x the weights; at t4 two of
    350-420 MB per arm) are pruned when the arm finishes: its folder keeps one final checkpoint
    with the weights and the record, no optimiser state. A resume of the finished arm reloads
    it and takes no training step."""
    # the monitor's last snapshot (step 6) is off the final step's grid: not kept either
    cfg = quick(total_steps=8, eval_every=4, checkpoint_every=2, monitor_every=3)
    run = Run.create(EXPERIMENT, "prune", {})
    with pytest.raises(Disconnect):
        train(cfg, run=DisconnectAt(run, 8), tag="a")
    folder = run.checkpoint_dir("a")
    assert _names(folder) == ["ckpt_000000004.pt", "ckpt_000000006.pt"]  # the newest two
    resume_size = (folder / "ckpt_000000006.pt").stat().st_size
    full = train(cfg, run=run, resume=True, tag="a")
    assert _names(folder) == ["ckpt_000000008.pt"]  # finished: the resume checkpoints pruned
    final = torch.load(folder / "ckpt_000000008.pt", weights_only=True)
    assert final["optimizer"] is None and final["scaler"] is None and final["step"] == 8
    assert final["config"] == cfg.to_dict() and final["history"] == full.history
    weights = sum(t.numel() * t.element_size() for t in final["model"].values())
    size = (folder / "ckpt_000000008.pt").stat().st_size
    assert size < 1.2 * weights and resume_size > 2.5 * weights
    monkeypatch.setattr(train_mod, "optimizer_step", lambda *a, **k: pytest.fail("retrained"))
    again = train(cfg, run=run, resume=True, tag="a")
    assert again.history == full.history and again.weight_change == full.weight_change
    assert again.step_losses == full.step_losses
    for a, b in zip(again.model.parameters(), full.model.parameters()):
        assert torch.equal(a, b)
    assert _names(folder) == ["ckpt_000000008.pt"]


def test_a_grad_scaler_run_resumes_with_its_scale(runs_root, monkeypatch):
    # the fp16 path of a T4 (a GradScaler), here on the CPU: the power-of-two scale leaves the
    # losses as without it, and its state is checkpointed and restored
    cfg = quick(total_steps=6, eval_every=2, checkpoint_every=3)
    plain = train(cfg)
    monkeypatch.setattr(
        train_mod.runtime, "grad_scaler", lambda device: torch.amp.GradScaler("cpu", 2.0**10)
    )
    run = Run.create(EXPERIMENT, "scaled", {})
    scaled = train(cfg, run=run)
    assert scaled.history["val_loss"] == pytest.approx(plain.history["val_loss"], rel=1e-6)
    with pytest.raises(Disconnect):  # lost after step 3
        train(cfg, run=DisconnectAt(run, 6), tag="lost")
    (ckpt,) = sorted(run.checkpoint_dir("lost").iterdir())
    assert torch.load(ckpt, weights_only=True)["scaler"]["scale"] == 2.0**10
    resumed = train(cfg, run=run, resume=True, tag="lost")
    assert resumed.history == scaled.history


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(lr_mode="uniform"), "lr_mode"),
        (dict(arm="band_uniform"), "arm"),
        (dict(total_steps=16), "total_steps"),
        (dict(model_overrides=dict(n_layers=3)), "model_overrides.n_layers"),
        (dict(seed=1), "seed"),
        (dict(offline=True), "offline"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_the_field(runs_root, change, field):
    cfg = quick(total_steps=2, eval_every=2)
    run = Run.create(EXPERIMENT, "refuse", {})
    train(cfg, run=run)
    with pytest.raises(ValueError, match=rf"resume refused.*{field} saved"):
        # tag: the first run's checkpoint folder, whatever the arm is now
        train(replace(cfg, **change), run=run, resume=True, tag="band")


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(arm="bands"), "arm='bands' is not allowed"),
        (dict(total_steps=0), "total_steps=0"),
        (dict(warmup_steps=9), r"warmup_steps=9 is outside the allowed range \[0, 8\]"),
        (dict(device="tpu"), "device='tpu' is not a device"),
        (dict(dataset="c4"), "dataset='c4'"),
        (dict(lr_mode="fast"), "lr_mode='fast'"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(arm="baseline_differential", lr_mode="geomean"), "does not apply to arm="),
        (dict(model_overrides=dict(n_bands=3)), r"unknown BandConfig fields \['n_bands'\]"),
        (dict(model_overrides=dict(band_dims=(8, 8))), "band_lrs has 7 values for 2 bands"),
        (dict(arm="band_no_wormhole", model_overrides=dict(wormhole=True)), "wormhole.*arm="),
        (dict(model_overrides=dict(vocab_size=300)), "vocab_size.*dataset='offline'"),
        (dict(model_overrides=dict(n_ctx=8)), "n_ctx.*8 is shorter than seq_len=16"),
        (dict(offline="yes"), "offline='yes' must be True or False"),
    ],
)
def test_bad_settings_raise_before_anything_is_written(runs_root, change, match):
    with pytest.raises(ValueError, match=match):
        train(quick(**change), run=None)
    assert not runs_root.exists()


def test_ddp_needs_a_batch_that_splits_over_the_ranks(monkeypatch):
    monkeypatch.setattr(train_mod, "process_group", _fake_group(world=3))
    with pytest.raises(ValueError, match="batch_size=4 must be divisible by the 3 DDP"):
        train(quick())


def _fake_group(world):
    import contextlib

    @contextlib.contextmanager
    def group(device):
        yield 0, world

    return group


# ----------------------------------------------------------------------------- entry point


FLAGS = ["--preset", "tiny", "--seq-len", "16", "--batch-size", "4", "--total-steps", "4"]
FLAGS += ["--warmup_steps", "1", "--eval-every", "2", "--eval-batches", "2", "--device", "cpu"]
FLAGS += ["--monitor-every", "2", "--checkpoint-every", "2", "--no-progress"]


def test_main_writes_one_run_folder_and_resumes_it(runs_root, capsys):
    args = FLAGS + ["--arm", "band_geomean", "--override", "n_layers=1", "--name", "g1"]
    assert main(args + ["--output_dir", str(runs_root)]) == 0
    (folder,) = (runs_root / EXPERIMENT).iterdir()
    assert folder.name.endswith("-g1")
    out = capsys.readouterr().out
    assert "g1: 4 steps x 4 x 16 = 256 tokens, val loss" in out and "(geomean LR)" in out
    results = json.loads((folder / "results.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert config["model_overrides"] == {"n_layers": 1} and config["lr_mode"] == "geomean"
    assert results["history"]["step"] == [2, 4] and results["params"]["d_model"] == 128
    assert (folder / "figures" / "g1_loss.png").is_file()
    assert sorted(p.name for p in (folder / "checkpoints" / "g1").iterdir())[-1].endswith("4.pt")
    # --resume reopens the same folder; a finished run trains nothing and reports the same
    assert main(args + ["--output_dir", str(runs_root), "--resume"]) == 0
    assert len(list((runs_root / EXPERIMENT).iterdir())) == 1
    again = json.loads((folder / "results.json").read_text())
    assert again["history"] == results["history"]
    # another setting with --resume is refused, naming it, and changes nothing
    capsys.readouterr()
    assert main(args + ["--output_dir", str(runs_root), "--resume", "--seed", "2"]) == 2
    assert "resume refused" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--device", "tpu"], "device='tpu'"),
        (["--total-steps", "0"], "total_steps=0"),
        (["--override", "layout"], "must be KEY=VALUE"),
        (["--name", "a/b"], "name='a/b'"),
    ],
)
def test_main_refuses_bad_settings_before_any_folder(runs_root, capsys, flags, match):
    assert main(FLAGS + flags) == 2
    assert match in capsys.readouterr().err
    assert not runs_root.exists()


# ----------------------------------------------------------------------------- 013 additions


def test_resume_from_a_checkpoint_off_the_monitor_grid_matches_an_uninterrupted_run(runs_root):
    # checkpoint every 5, monitor every 3: the checkpoint at step 10 falls between the monitor's
    # snapshots at 9 and 12, so the monitor's snapshot travels in the checkpoint
    cfg = quick(total_steps=12, eval_every=4, checkpoint_every=5, monitor_every=3)
    run = Run.create(EXPERIMENT, "offgrid", {})
    full = train(cfg, run=run, tag="full")
    with pytest.raises(Disconnect):  # lost after step 10
        train(cfg, run=DisconnectAt(run, 12), tag="a")
    folder = run.checkpoint_dir("a")
    state = torch.load(folder / "ckpt_000000010.pt", weights_only=True)
    assert state["monitor"]["last_step"] == 9 and "snapshot" in state["monitor"]
    assert len(state["step_losses"]) == 12 and float(state["step_losses"][10]) == 0.0
    assert _names(folder) == ["ckpt_000000005.pt", "ckpt_000000010.pt"]
    resumed = train(cfg, run=run, resume=True, tag="a")
    assert resumed.weight_change == full.weight_change
    assert resumed.weight_change["step"] == [3, 6, 9, 12]
    assert resumed.history == full.history
    assert resumed.step_losses == full.step_losses and len(full.step_losses) == 12
    # the logged mean train loss of each interval is the mean of its steps' losses
    assert np.mean(full.step_losses[:4]) == pytest.approx(full.history["train_loss"][0], rel=1e-6)
    # a checkpoint on the monitor's grid stores no snapshot (it equals the weights)
    on_grid = torch.load(folder / "ckpt_000000012.pt", weights_only=True)
    assert on_grid["monitor"]["last_step"] == 12 and "snapshot" not in on_grid["monitor"]


def test_the_differential_baseline_arm_trains_resumes_and_is_monitored_per_slice(runs_root):
    cfg = quick(
        arm="baseline_differential",
        total_steps=6,
        eval_every=3,
        monitor_every=2,
        checkpoint_every=3,
    )
    run = Run.create(EXPERIMENT, "slices", {})
    full = train(cfg, run=run, tag="full")
    assert full.config["lr_mode"] == "differential"
    keys = [k for k in full.weight_change if k != "step"]
    assert keys == [f"band_{i}" for i in range(7)] + ["shared"]
    # the fastest slice moves more than the slowest (1e-2 vs 1e-5 for the 026 set)
    assert full.weight_change["band_6"][-1] > 10 * full.weight_change["band_0"][-1]
    with pytest.raises(Disconnect):  # lost after step 3
        train(cfg, run=DisconnectAt(run, 6), tag="b")
    resumed = train(cfg, run=run, resume=True, tag="b")
    assert resumed.history == full.history and resumed.weight_change == full.weight_change
    with pytest.raises(ValueError, match="lr_mode='uniform' does not apply"):
        quick(arm="baseline_differential", lr_mode="uniform").validate()
