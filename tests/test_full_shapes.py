"""Every experiment's t4 plan, built through its own API as the notebook builds it, run end to
end with ``offline=True`` (local stand-ins of the same shape) for a couple of steps at the real
widths, sequence lengths and vocabularies. Only counts shrink (steps, batches, sequences,
shuffles), never widths."""

import math
from dataclasses import replace

import pytest

pytestmark = pytest.mark.full_shapes

# --- 000 action quanta ---------------------------------------------------------------------
# Built as notebooks/000_action_quanta.py builds it (presets.study(SIZE, ...) then
# run_experiment), at t4 with offline=True: the stand-ins of gpt2 and gpt2-medium (3072 and 4096
# neurons per layer, vocabulary 50257; built once into the stand-in cache, AKIRA_CACHE_DIR or
# ~/.cache/akira_nb), 64 positions, random and text tokens. Counts shrink: the plan's layers are
# 3 / 5 / 7 and the run analyses one of those pairs (5-5: every pair has the same shapes, and each
# costs 4 exact OT solves of 3,072 x 4,096 plus the rotation nulls, about 65 CPU-s), 8 sequences
# per input type (one batch; 504 tokens in the sample), one Procrustes shuffle, one Haar
# rotation, 5 neuron permutations; the grokking ground truth has its own tests.

AQ_COUNTS = dict(
    num_samples=8,
    batch_size=8,
    sample_sequences=8,
    spectral_sequences=8,
    n_shuffles=1,
    n_rotations=1,
    n_permutations=5,
)


def test_000_t4_plan_gpt2_vs_gpt2_medium_offline_at_the_real_widths(tmp_path, capsys, monkeypatch):
    import json

    from akira_nb import standins
    from akira_nb.action_quanta import experiment, presets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plan = presets.study("t4", grokking=False, offline=True, **AQ_COUNTS)  # as the notebook
    c = plan.aq
    assert (c.model_a, c.model_b, c.layers, c.layer_pairing) == (
        "gpt2",
        "gpt2-medium",
        (3, 5, 7),
        "index",
    )
    assert (c.seq_length, c.input_types, c.text_corpus) == (64, ["random", "text"], "wikitext-2")
    plan = replace(plan, aq=replace(c, layers=(5,)))  # one of the plan's layer pairs
    out = experiment.run_experiment(plan, name="full-shapes", root=tmp_path, progress=False)
    _banner_first(capsys)
    res = out["result"]
    assert (res.models["A"]["d_mlp"], res.models["B"]["d_mlp"]) == (3072, 4096)
    assert (res.models["A"]["n_layers"], res.models["B"]["n_layers"]) == (12, 24)
    assert res.models["A"]["vocab_size"] == res.models["B"]["vocab_size"] == 50257
    assert res.inputs["random"]["vocab_size"] == 50257  # random ids over the real vocabulary
    for kind in ("random", "text"):
        assert list(res.pairs[kind]) == ["5-5"]
        n_valid = res.inputs[kind]["n_valid_tokens"]  # BOS (and text's separators) masked
        assert n_valid == 8 * 63 if kind == "random" else 0 < n_valid <= 8 * 63
        for pr in res.pairs[kind].values():
            assert pr.n_tokens == n_valid == pr.cka["n_tokens"]
            for name in ("basic", "gurnee", "ot"):  # A's 3072 neurons, B's 4096 against them
                assert pr.methods[name].scores.shape == (3072,)
            proc = pr.methods["procrustes"]  # B's 4096 neurons, its null beside
            assert proc.scores.shape == (4096,) and proc.nulls["token-shuffle"].shape == (1, 4096)
            assert pr.procrustes["n_train"] + pr.procrustes["n_test"] == n_valid
            assert 0 <= pr.cka["linear"] <= 1 and pr.matching["one_to_one"] is not None
        assert res.cka_matrix[kind][0].shape == (1, 1)
    assert set(res.universal) == {"basic", "gurnee", "ot", "procrustes"}
    results = json.loads((out["run"].path / "results.json").read_text())
    assert results["config"]["aq"]["offline"] is True
    assert results["standins"]["banner"] == standins.BANNER
    assert (
        results["standins"]["replaced"]["wikitext-2 (Hugging Face)"] == "the kit's offline corpus"
    )
    assert results["standins"]["replaced"]["gpt2 tokenizer"] == "gpt2-standin"
    assert set(results["standins"]["replaced"]) >= {
        "gpt2 (Hugging Face, model A)",
        "gpt2-medium (Hugging Face, model B)",
    }
    verdicts = [c["verdict"] for c in results["claims"]]
    assert set(verdicts) <= {standins.NOT_COMPARABLE, "not run"}
    assert verdicts.count(standins.NOT_COMPARABLE) >= 6  # every claim the run measured
    assert {r["comparable"] for r in results["reference"]} == {standins.NOT_COMPARABLE}
    assert {"stream", "rotations (basic + gurnee)", "ot", "cka", "procrustes + null"} <= set(
        results["aq"]["stages"]
    )


# --- 026 band transformer / 013 differential LR ----------------------------------------------
# Built as notebooks/026_band_transformer.py and 013_differential_lr.py build them
# (presets.study(SIZE, ...) then experiment.run_experiment), at t4 with offline=True. Counts
# shrink (1 step for 026, 3 for 013: H3's variance window needs 3; 1 sequence per batch, 1
# evaluation / ablation batch, 2 statistics sequences, a few AQ sequences and one shuffle, one
# seed and one sweep point for 013); the widths, the 6 layers, the 256 positions and the 50257
# ids are the t4 plan's.

BAND_COUNTS = dict(
    total_steps=1,
    batch_size=1,
    eval_batches=1,
    final_eval_predictions=0,  # the final loss on the evaluation batch, not 50,000 predictions
    ablation_batches=1,
    stats_sequences=2,
    monitor_every=1,
    progress=False,
    aq=dict(  # the analyses of 2048 neurons cost ~1 CPU-s per SVD, QR or OT: one layer pair
        layers=(5,),
        num_samples=8,
        batch_size=8,
        sample_sequences=8,
        spectral_sequences=8,
        n_shuffles=1,
        n_permutations=5,
        n_rotations=1,
    ),
)
DLR_COUNTS = dict(
    seeds=[0],
    sweep=[],  # no LR sweep: each arm once, at its prescribed LRs
    total_steps=3,
    final_eval_predictions=0,  # the final losses on the evaluation batch, not 81,600 predictions
    batch_size=1,
    eval_batches=1,
    monitor_every=1,
    progress=False,
)


def _banner_first(capsys) -> list[str]:
    from akira_nb import standins

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == standins.BANNER and lines.count(standins.BANNER) == 1
    return lines


def test_026_t4_plan_every_arm_the_ablation_and_aq_offline_at_the_real_shapes(tmp_path, capsys):
    import json

    from akira_nb import standins
    from akira_nb.band_transformer import experiment, presets
    from akira_nb.bandformer.model import DEFAULT_BAND_DIMS

    plan = presets.study("t4", offline=True, **BAND_COUNTS)  # ARMS, AQ_SEEDS None
    assert plan.arms == list(presets.DEFAULT_ARMS) and plan.aq_seeds == [0, 1]
    assert (plan.base.seq_len, plan.base.dataset) == (256, "wikitext-103")
    out = experiment.run_experiment(plan, name="full-shapes", root=tmp_path, log=None)
    _banner_first(capsys)
    trained = [(r.config["arm"], r.config["seed"]) for r in out["results"]]
    assert trained == [(a, s) for a in plan.arms for s in plan.seeds_of(a)]  # 8 reported
    assert len(out["points"]) == 12  # band and baseline swept at 3 LRs (t4: no extension)
    for t in out["points"]:
        res = t.result
        if res.model is None:  # a sweep point that lost: its numbers kept, its model dropped
            continue
        cfg, model = res.model.cfg, res.model
        assert (cfg.vocab_size, cfg.n_ctx, cfg.n_layers) == (50257, 256, 6)
        assert tuple(model.W_E.shape) == (50257, cfg.d_model)
        if res.config["arm"] == "baseline":  # the matched GPT: within 2% of the band model
            assert abs(res.params["total"] / out["results"][2].params["total"] - 1) < 0.02
        elif res.config["arm"] == "baseline_wide":  # the GPT of the band model's width
            assert cfg.d_model == 512 and res.params["total"] > out["results"][0].params["total"]
        else:
            assert cfg.d_model == 512 and cfg.band_dims == DEFAULT_BAND_DIMS
    # every training keeps at most its final weights (resume checkpoints pruned); a model that
    # is kept (a reported training or a sweep's best point) keeps exactly them
    for t in out["points"]:
        kept = [p.name for p in out["run"].checkpoint_dir(t.tag).glob("*.pt")]
        assert kept == ["ckpt_000000001.pt"] or (t.result.model is None and kept == []), t.tag
    results = json.loads((out["run"].path / "results.json").read_text())
    assert results["data"]["seq_len"] == 256 and results["data"]["vocab_size"] == 50257
    assert results["standins"]["banner"] == standins.BANNER
    assert results["standins"]["replaced"]["gpt2 tokenizer"] == "gpt2-standin"
    assert results["tokens_per_arm"] == 256
    # the band ablation of every band-layout arm, over the 7 bands
    assert set(results["ablations"]) == {"band", "band_uniform", "band_no_wormhole", "reference"}
    assert all(len(ab["increase"][-1]) == 7 for ab in results["ablations"].values())
    # the AQ analysis of the 2048-unit MLPs (t4: layers 2 and 5), random tokens and offline text
    assert set(results["aq"]) == {"band", "baseline"}
    band_aq = out["aq"]["band"]["result"]
    assert band_aq.config.text_corpus == "offline" and band_aq.config.seq_length == 64
    assert set(results["aq"]["band"]["by_kind"]) == {"random", "text"}
    assert results["aq"]["band"]["by_kind"]["random"]["neurons"] == 2048
    assert {c["verdict"] for c in results["claims"]} == {standins.NOT_COMPARABLE}


def test_013_t4_plan_every_arm_offline_at_the_real_shapes(tmp_path, capsys):
    import json

    import torch

    from akira_nb import standins
    from akira_nb.differential_lr import claims, experiment, presets

    plan = presets.study("t4", offline=True, **DLR_COUNTS)  # as the notebook's knobs
    assert plan.arms == list(presets.DEFAULT_ARMS) and plan.lr_preset == "013"
    band = plan.base.band_config()
    assert (band.vocab_size, band.n_ctx, band.n_layers, band.band_dims) == (
        50257,
        256,
        6,
        (64,) * 8,
    )
    out = experiment.run_experiment(plan, name="full-shapes", root=tmp_path, log=None)
    _banner_first(capsys)
    tags = [k["tag"] for k, _ in out["records"]]
    assert tags == [f"{a}_x1_b3_s0" for a in presets.DEFAULT_ARMS]
    for key, rec in out["records"]:
        assert rec["data"]["seq_len"] == 256 and rec["data"]["vocab_size"] == 50257
        assert rec["tokens_seen"] == 3 * 256 and len(rec["step_losses"]) == 3
        folder = out["run"].checkpoint_dir(key["tag"])
        (final,) = folder.iterdir()  # the resume checkpoints pruned
        state = torch.load(final, weights_only=True)
        assert state["optimizer"] is None
        assert tuple(state["model"]["W_E"].shape) == (50257, rec["params"]["d_model"])
        assert len({k.split(".")[1] for k in state["model"] if k.startswith("blocks.")}) == 6
        if key["arm"] != "baseline_differential":
            assert rec["params"]["d_model"] == 512 and len(rec["params"]["bands"]) == 8
    results = json.loads((out["run"].path / "results.json").read_text())
    assert results["standins"]["replaced"] == {
        "wikitext-103 (Hugging Face)": "the kit's offline corpus",
        "gpt2 tokenizer": "gpt2-standin",
    }
    assert {c["verdict"] for c in results["claims"]} == {standins.NOT_COMPARABLE}
    assert {c["verdict"] for c in claims.kit_summary(out)["claims"]} == {standins.NOT_COMPARABLE}


# --- 033 spectral band attention / grokking ---------------------------------------------------


def test_grokking_t4_plan_every_model_at_the_real_shapes(tmp_path):
    from akira_nb.grokking import experiment, presets

    plan = presets.study(
        "t4", n_epochs=4, eval_every=2, checkpoint_every=0, progress_every=0, snapshot_every=0
    )
    assert plan.primes == [53] and len(plan.mixers) == 5  # the seed's p = 53 protocol, 5 models
    out = experiment.run_experiment(plan, name="t4-shapes", root=tmp_path, progress=False)
    results = out["results"]
    assert sorted(r.config["mixer"] for r in results) == sorted(plan.mixers)
    for r in results:
        assert r.config["p"] == 53 and r.config["d_model"] == plan.base.d_model == 128
        assert len(r.history["epoch"]) >= 2 and all(
            math.isfinite(x) for x in r.history["train_loss"]
        )


def test_033_t4_plan_the_comparison_and_a_pattern_at_the_real_grid():
    from akira_nb.spatiotemporal import experiment, presets

    plan = presets.study("t4", steps=4, sweep_steps=2)
    cfg = replace(plan.train, eval_steps=5, rollout_horizon=3, progress=False)
    assert cfg.grid_size == 32  # the seed's comparison grid
    results = experiment.compare(
        cfg, ("spectral", "mlp", "copy_last", "linear_extrap"), plan.preset
    )
    models = results["models"]
    assert set(models) == {"spectral", "mlp", "copy_last", "linear_extrap"}
    for arm in ("spectral", "mlp"):
        assert models[arm]["train"]["steps_run"] == 4 and len(models[arm]["train"]["losses"]) == 4
    for arm, m in models.items():
        assert m["eval"]["eval_steps"] == 5 and math.isfinite(m["eval"]["mse"]), arm
        assert len(m["eval"]["rollout_curve"]) == 3, arm
