from dataclasses import replace

import pytest
import torch

from akira_nb.runs import Run
from akira_nb.spatiotemporal import patterns as P
from akira_nb.spatiotemporal.evaluate import evaluate
from akira_nb.spatiotemporal.model import (
    CopyLastFrame,
    LinearExtrapolation,
    MLPPredictor,
    SpectralPredictor,
    build_model,
)
from akira_nb.spatiotemporal.presets import BANDS, MODEL_PRESETS, get_config
from akira_nb.spatiotemporal.train import TrainConfig, train


def small(**kw):
    base = dict(
        base_dim=8,
        attn_dim=8,
        time_depth=4,
        grid_size=8,
        wormhole_skip_steps=1,
        wormhole_chunk_size=64,
    )
    base.update(kw)
    torch.manual_seed(0)
    return SpectralPredictor(get_config("fast", **base))


def run_seq(model, seq):
    model.reset()
    with torch.no_grad():
        return torch.stack([model(f[None])[0][0] for f in seq])


def test_future_frames_never_change_a_prediction():
    model = small()
    seq = P.generate_sequence("counter_rotate", 8, 8)
    preds = run_seq(model, seq)
    changed = seq.clone()
    changed[5] = torch.rand(8, 8)  # prediction i uses frames <= i
    preds2 = run_seq(model, changed)
    torch.testing.assert_close(preds2[:5], preds[:5], rtol=0, atol=0)
    assert not torch.allclose(preds2[5], preds[5])


def test_frame_t_minus_1_can_change_the_wormhole_output():
    model = small(wormhole_threshold=0.0, wormhole_max_connections=64)
    seen = {}
    model.hook_wormhole_out.add_hook(lambda x, hook: seen.__setitem__("out", x.detach().clone()))
    seq = P.generate_sequence("blob", 6, 8)
    run_seq(model, seq)
    a = seen["out"]
    changed = seq.clone()
    changed[4] = torch.rand(8, 8)  # frame t-1 of the last step
    run_seq(model, changed)
    assert not torch.allclose(seen["out"], a)
    model.reset_hooks()


def test_gradient_reaches_every_trainable_parameter():
    for sim in ("patch", "projected"):
        model = small(wormhole_similarity_features=sim, wormhole_threshold=0.0)
        seq = P.generate_sequence("interference", 4, 8)
        loss = 0
        for i in range(3):
            pred, _ = model(seq[i][None])
            loss = loss + ((pred - seq[i + 1]) ** 2).mean()
        loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (sim, name)
    names = dict(model.named_parameters())
    assert "band_proj.low_freq.weight" in names and "band_proj.high_freq.weight" in names


def test_band_routing_is_a_config_choice():
    seq = P.generate_sequence("chirp", 4, 8)
    outs = []
    for band in ("intensity", "high_freq"):
        outs.append(run_seq(small(temporal_query_band=band, temporal_key_band=band), seq))
    assert not torch.allclose(outs[0], outs[1])


def test_skip_steps_cache_and_reset():
    model = small(wormhole_skip_steps=3)
    seq = P.generate_sequence("blob", 3, 8)
    _, st0 = model(seq[0][None])
    _, st1 = model(seq[1][None])
    assert not st0["wormhole"]["skipped"] and st1["wormhole"]["skipped"]
    assert model._wormhole_cache is not None
    model.reset()
    assert model._wormhole_cache is None and model.step == 0 and not model.history.initialized


def test_pooling_is_reachable_from_the_model_config():
    model = small(wormhole_max_spatial_tokens=16, wormhole_pool_size=2)
    _, st = model(P.frames("blob", 0.0, 8)[None])
    assert st["wormhole"]["spatial_pooling_applied"]


def test_hookable_the_transformer_lens_way():
    model = small()
    _, cache = model.run_with_cache(P.frames("blob", 0.0, 8)[None])
    assert cache["temporal.hook_pattern"].shape == (1, 8, 8, 4)
    assert cache["hook_pred"].shape == (1, 8, 8)


def test_baselines_are_exact_on_constructed_sequences():
    ramp = torch.linspace(0.1, 0.3, 64).view(8, 8)
    seq = torch.stack([ramp + 0.05 * t for t in range(6)])  # linear in time, inside [0, 1]
    lin = run_seq(LinearExtrapolation(), seq)
    torch.testing.assert_close(lin[1:-1], seq[2:])
    torch.testing.assert_close(lin[0], seq[0])  # no previous frame: copy
    torch.testing.assert_close(run_seq(CopyLastFrame(), seq), seq)
    mlp = MLPPredictor(8, time_depth=4)
    assert run_seq(mlp, seq).shape == (6, 8, 8)


def test_presets_have_their_own_grids():
    assert [MODEL_PRESETS[p].grid_size for p in ("fast", "large", "xlarge")] == [32, 64, 128]
    assert build_model("spectral", "large").cfg.grid_size == 64


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: get_config("fast", grid_size=3), "grid_size"),
        (lambda: build_model("spectral", grid_size=2), "grid_size"),
        (lambda: TrainConfig(grid_size=3).validate(), "grid_size"),
        (lambda: get_config("fast", wormhole_threshold=1.5), "wormhole_threshold"),
        (lambda: get_config("fast", wormhole_threshold=-0.5), "wormhole_threshold"),
        (lambda: get_config("huge"), "preset"),
        (lambda: TrainConfig(pattern="spiral").validate(), "pattern"),
        (lambda: get_config("fast", wormhole_max_connections=0), "wormhole_max_connections"),
        (lambda: get_config("fast", decay_rate=0.0), "decay_rate"),
        (lambda: get_config("fast", decay_rate=1.0), "decay_rate"),
        (lambda: get_config("fast", temporal_key_band="mid"), "temporal_key_band"),
        (lambda: build_model("transformer"), "model"),
        (lambda: small().set_wormhole(threshold=2.0), "threshold"),
    ],
)
def test_bad_input_gives_value_error_naming_the_parameter(make, name):
    with pytest.raises(ValueError, match=name) as err:
        make()
    assert "allowed" in str(err.value) or "choose" in str(err.value)


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    def fresh():
        torch.manual_seed(0)
        return SpectralPredictor(get_config("turbo", grid_size=8))

    cfg = TrainConfig(grid_size=8, steps=10, progress=False)
    ref = fresh()
    ref_out = train(ref, cfg)
    run = Run.create("t", "resume", root=tmp_path)
    part = fresh()
    train(part, TrainConfig(grid_size=8, steps=6, checkpoint_every=3, progress=False), run=run)
    resumed = fresh()  # a new process: weights come from the checkpoint
    out = train(
        resumed, TrainConfig(grid_size=8, steps=10, checkpoint_every=3, progress=False), run=run
    )
    assert out["resumed_from"] == 6 and out["steps_run"] == 4
    assert out["losses"] == pytest.approx(ref_out["losses"], rel=1e-5, abs=1e-9)
    for (n, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=n)


def test_evaluation_reports_per_pixel_metrics_on_the_same_frames():
    cfg = TrainConfig(grid_size=8, eval_steps=5, rollout_horizon=3, progress=False)
    ev = evaluate(CopyLastFrame(), cfg)
    seq = P.frames("blob", cfg.eval_start - 1 + torch.arange(7.0), 8)  # warm-up 8: t-1 .. t+5
    expect = ((seq[:5] - seq[1:6]) ** 2).mean()
    assert ev["mse"] == pytest.approx(float(expect), rel=1e-5)
    assert ev["mse_frame_sum"] == pytest.approx(ev["mse"] * 64)
    assert len(ev["rollout_curve"]) == 3 and 0 < ev["ssim"] <= 1
    assert ev["mse_low"] > 0 and ev["mse_high"] > 0


def test_resume_puts_the_stream_state_on_the_parameters_device(tmp_path):
    run = Run.create("t", "device", root=tmp_path)
    cfg = TrainConfig(grid_size=8, steps=4, checkpoint_every=2, progress=False)
    torch.manual_seed(0)
    train(SpectralPredictor(get_config("turbo", grid_size=8, wormhole_skip_steps=4)), cfg, run=run)
    seen = []
    load = run.latest_checkpoint
    run.latest_checkpoint = lambda tag, map_location="cpu", **kw: (
        seen.append(map_location) or load(tag, map_location, **kw)
    )
    torch.manual_seed(0)
    model = SpectralPredictor(get_config("turbo", grid_size=8, wormhole_skip_steps=4))
    train(model, replace(cfg, steps=5), run=run)
    device = next(model.parameters()).device
    assert seen == [device]  # loaded straight onto the model's device
    assert model.history.buffer.device == device
    # a checkpoint on another device (here CPU -> meta) follows the parameters
    state = model.stream_state()
    assert state["wormhole_cache"].numel()
    meta = SpectralPredictor(get_config("turbo", grid_size=8)).to("meta")
    meta.load_stream_state(state)
    assert meta.history.buffer.device.type == "meta"
    assert meta._wormhole_cache.device.type == "meta"
    mlp = MLPPredictor(8, time_depth=4)
    mlp(torch.rand(8, 8))
    mlp_state = mlp.stream_state()
    mlp = mlp.to("meta")
    mlp.load_stream_state(mlp_state)
    assert mlp.history.buffer.device.type == "meta"


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: get_config("fast", base_dim=2.5), "base_dim"),
        (lambda: get_config("fast", top_k_temporal=2.5), "top_k_temporal"),
        (lambda: get_config("fast", layer_range=1.5), "layer_range"),
        (lambda: get_config("fast", wormhole_max_connections=True), "wormhole_max_connections"),
        (lambda: get_config("fast", tau="1"), "tau"),
        (lambda: get_config("fast", decay_rate=None), "decay_rate"),
        (lambda: get_config("fast", freq_cutoff=float("nan")), "freq_cutoff"),
        (lambda: get_config("fast", attention_types="temporal"), "attention_types"),
        (lambda: build_model("spectral", grid_size=4.5), "grid_size"),
        (lambda: TrainConfig(steps=1.5).validate(), "steps"),
        (lambda: TrainConfig(lr="fast").validate(), "lr"),
        (lambda: TrainConfig(lr=None).validate(), "lr"),
        (lambda: TrainConfig(eval_start=float("inf")).validate(), "eval_start"),
        (lambda: TrainConfig(eval_start=None).validate(), "eval_start"),
        (lambda: TrainConfig(batch_spacing=0.0).validate(), "batch_spacing"),
        (lambda: TrainConfig(batch_spacing=-3.0).validate(), "batch_spacing"),
        (lambda: TrainConfig(grid_size="32").validate(), "grid_size"),
    ],
)
def test_wrong_types_give_value_error_naming_the_field(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_resume_refuses_a_checkpoint_made_with_another_config(tmp_path):
    run = Run.create("t", "mismatch", root=tmp_path)
    cfg = TrainConfig(grid_size=8, steps=2, checkpoint_every=2, progress=False)
    train(SpectralPredictor(get_config("turbo", grid_size=8)), cfg, run=run)
    with pytest.raises(ValueError, match=r"train\.lr saved 0\.001, now 0\.01"):
        train(SpectralPredictor(get_config("turbo", grid_size=8)), replace(cfg, lr=1e-2), run=run)
    with pytest.raises(ValueError, match=r"model\.tau saved 1\.0, now 2\.0"):
        train(SpectralPredictor(get_config("turbo", grid_size=8, tau=2.0)), cfg, run=run)
    with pytest.raises(ValueError, match=r"model\.kind saved 'spectral', now 'mlp'"):
        train(MLPPredictor(8, time_depth=4), cfg, run=run, tag="spectral")
    with pytest.raises(ValueError, match=r"steps=1 is below the 2 steps"):
        train(SpectralPredictor(get_config("turbo", grid_size=8)), replace(cfg, steps=1), run=run)
    state = run.latest_checkpoint("spectral")
    assert state["config"]["train"]["lr"] == 1e-3 and state["config"]["model"]["tau"] == 1.0
    assert "train_config" not in state and "model_config" not in state  # one config key
    out = train(SpectralPredictor(get_config("turbo", grid_size=8)), replace(cfg, steps=3), run=run)
    assert out["resumed_from"] == 2 and out["steps_run"] == 1  # more steps: a legal resume
    assert out["steps_per_s"] <= out["train_steps_per_s"]  # wall-clock includes frame making


class _Overshoot(CopyLastFrame):
    """Predicts 2.0 everywhere: outside [0, 1], like a drifting model."""

    def forward(self, frame):
        return torch.full_like(frame, 2.0), {}


def test_rollout_scores_the_frames_it_feeds_back_and_shows():
    # the rollout feeds the model its predictions clamped to [0, 1]; its score must be of those
    # same frames (a per-pixel MSE of frames in [0, 1] is at most 1), not of the raw output
    cfg = TrainConfig(grid_size=8, eval_steps=2, rollout_horizon=4, progress=False)
    ev = evaluate(_Overshoot(), cfg, keep_frames=True)
    truth, frames = ev["rollout_truth"], ev["rollout_frames"]
    assert torch.equal(frames, torch.ones_like(frames))
    expect = ((frames - truth) ** 2).flatten(1).mean(1)
    assert ev["rollout_curve"] == pytest.approx(expect.tolist(), rel=1e-6)
    assert max(ev["rollout_curve"]) <= 1.0


def test_one_step_and_rollout_score_the_same_clamped_frames():
    # both conventions: what the model would output as a frame, clamped to [0, 1]
    cfg = TrainConfig(grid_size=8, eval_steps=3, rollout_horizon=4, progress=False)
    ev = evaluate(_Overshoot(), cfg, keep_frames=True)
    preds, targets = ev["preds"], ev["targets"]
    assert torch.equal(preds, torch.ones_like(preds))  # raw 2.0, scored as 1.0
    assert ev["mse"] == pytest.approx(float(((1 - targets) ** 2).mean()), rel=1e-6)
    assert ev["mse"] <= 1.0
    # the first rollout step is the first one-step prediction (same history): same score
    spectral = SpectralPredictor(get_config("turbo", grid_size=8))
    for model in (_Overshoot(), spectral):
        ev = evaluate(model, cfg, keep_frames=True)
        first = float(((ev["preds"][0] - ev["targets"][0]) ** 2).mean())
        assert ev["rollout_curve"][0] == pytest.approx(first, rel=1e-5, abs=1e-12)


def test_losses_and_statistics_read_every_n_steps_equal_reading_every_step(monkeypatch):
    """The loop keeps each step's loss and statistics on the device and reads them in windows of
    train.STATS_EVERY steps (and at the end): the same rows, in order, as reading every step."""
    from akira_nb.spatiotemporal import train as train_mod

    out = {}
    for every in (1, 3):
        monkeypatch.setattr(train_mod, "STATS_EVERY", every)
        torch.manual_seed(0)
        rows = []
        model = build_model("spectral", "turbo", grid_size=8)
        res = train_mod.train(
            model, TrainConfig(grid_size=8, steps=7, progress=False), stats_rows=rows
        )
        out[every] = (res["losses"], rows)
    assert out[1] == out[3]
    losses, rows = out[3]
    assert len(losses) == 7 and [r[0] for r in rows] == list(range(7))
    assert [r[1] for r in rows] == losses and len(rows[0]) == len(train_mod.CSV_COLUMNS)


def test_an_edit_through_hook_embed_reaches_the_neighbour_keys_of_the_current_frame():
    """neighbor_include_current: the current frame's neighbour keys are the (hooked) band
    features ``cur``; an edit through ``hook_embed`` must reach them as it reaches the
    queries, and a hook that edits nothing leaves the prediction of the unhooked model."""
    model = small()
    assert model.cfg.neighbor_include_current
    kb = BANDS.index(model.cfg.neighbor_key_band)
    seq = P.frames("blob", torch.arange(4.0), 8)  # [4, 8, 8]
    plain = run_seq(model, seq)
    model.hook_embed.add_hook(lambda x, hook: x + 0.0)
    torch.testing.assert_close(run_seq(model, seq), plain, rtol=1e-5, atol=1e-6)
    model.reset_hooks()

    seen = {}

    def keys_of_current_frame(module, args):  # the features the neighbour sees for frame t
        frames, affine = args[1], args[2] if len(args) > 2 else None
        last = frames[:, -1]
        seen["keys"] = last if affine is None else last[..., None] * affine[0] + affine[1]

    handle = model.neighbor.register_forward_pre_hook(keys_of_current_frame)
    model.hook_embed.add_hook(lambda x, hook: x * 0.5)
    model.hook_embed.add_hook(lambda x, hook: seen.__setitem__("cur", x.detach()))
    model.reset()
    with torch.no_grad():
        model(seq[0][None])
    handle.remove()
    model.reset_hooks()
    torch.testing.assert_close(seen["keys"], seen["cur"][..., kb, :])


def test_stats_csv_writes_counts_as_ints_and_the_skip_flag_as_a_bool(tmp_path):
    import csv

    from akira_nb.spatiotemporal import train as train_mod

    rows = []
    cfg = TrainConfig(pattern="blob", grid_size=8, steps=4, progress=False)
    train(small(wormhole_skip_steps=2), cfg, stats_rows=rows)
    path = tmp_path / "stats.csv"
    train_mod.write_stats_csv(path, rows)
    with open(path) as fh:
        table = list(csv.DictReader(fh))
    assert [r["step"] for r in table] == ["0", "1", "2", "3"]
    assert [r["wormhole_skipped"] for r in table] == ["False", "True", "False", "True"]
    for r in table:
        assert str(int(r["wormhole_num_connections"])) == r["wormhole_num_connections"]
        assert (
            str(int(r["wormhole_positions_with_connections"]))
            == (r["wormhole_positions_with_connections"])
        )
        assert float(r["train_loss"]) > 0
    nan_row = train_mod.csv_row([float("nan")] * len(train_mod.CSV_COLUMNS))
    assert all(v != v for v in nan_row)  # a missing statistic stays NaN


class _FakeBatch:
    """Records how a frame batch is moved (no GPU needed)."""

    def __init__(self):
        self.calls = []

    def pin_memory(self):
        self.calls.append("pin_memory")
        return self

    def to(self, device, non_blocking=False):
        self.calls.append(("to", str(device), non_blocking))
        return self


def test_frames_go_to_cuda_through_pinned_memory_and_the_train_clock_waits_for_it(monkeypatch):
    from akira_nb.spatiotemporal import train as train_mod

    x = _FakeBatch()
    assert train_mod.to_device(x, torch.device("cuda", 0)) is x
    assert x.calls == ["pin_memory", ("to", "cuda:0", True)]
    y = _FakeBatch()
    train_mod.to_device(y, "cpu")
    assert y.calls == [("to", "cpu", False)]
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    train_mod.sync("cuda")
    train_mod.sync(torch.device("cpu"))
    assert waited == ["cuda"]
