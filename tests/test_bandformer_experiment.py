"""The 026 experiment layer: presets, validation, the analyses on known answers, and one small
real run (kit summary, results.json, figures, resume)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from akira_nb.bandformer import experiment, train
from akira_nb.bandformer.model import BandTransformer, preset

VERDICTS = ("holds", "does not hold", "not comparable", "not run")


# ----------------------------------------------------------------------------- presets


@pytest.mark.parametrize("size", ["tiny", "t4", "a100", None])
def test_every_arm_of_a_preset_trains_the_same_token_budget(size):
    plan = experiment.study(size)
    configs = plan.arm_configs()
    budgets = {c.total_steps * c.tokens_per_step for c in configs}
    assert budgets == {plan.tokens_per_arm}
    assert {c.arm for c in configs} == set(experiment.DEFAULT_ARMS)
    # the band model and the baseline are trained at both AQ seeds
    for arm in experiment.AQ_ARMS:
        assert set(plan.aq_seeds) <= set(plan.seeds_of(arm))
    assert len({c.data_seed for c in configs}) == 1  # one split, batch order, validation set


def test_the_tiny_budget_takes_the_matched_baseline_off_the_unigram_plateau():
    """At tiny the comparison is only worth showing if the baseline learns something: its
    validation loss ends clearly below the unigram cross-entropy (at 60 steps it did not)."""
    plan = experiment.study("tiny")
    (cfg,) = [c for c in plan.arm_configs() if c.arm == "baseline" and c.seed == plan.seeds[0]]
    res = train.train(replace(cfg, checkpoint_every=0, progress=False), log=lambda *a: None)
    assert res.final_val_loss < res.data["unigram_val_loss"] - 0.1


def test_the_reference_protocol_without_a_size_and_at_a100():
    for plan in (experiment.study(None), experiment.study("a100")):
        assert plan.tokens_per_arm == 5000 * 16 * 256
        assert (plan.base.dataset, plan.base.eval_every, plan.base.eval_batches) == (
            "wikitext-103",
            500,
            50,
        )
        assert plan.seeds == [0, 1] and plan.base.preset == "default"
        assert experiment.comparability(plan) is None
    assert "reference notebook's protocol" in experiment.study(None).describe()
    tiny = experiment.study("tiny")
    assert "preset 'tiny'" in tiny.describe() and "total_steps=200" in tiny.describe()
    why = experiment.comparability(tiny)
    assert "offline" in why and "102,400 tokens per arm" in why
    # overrides are not reported as filled by the preset; model_overrides merge into the preset's
    plan = experiment.study("tiny", total_steps=40, model_overrides={"n_layers": 1}, aq={})
    assert "total_steps=" not in plan.describe()
    assert plan.base.model_overrides["n_layers"] == 1 and "band_lrs" in plan.base.model_overrides
    assert plan.aq_config("band").layers == (0,)  # "last": the last layer of the model


@pytest.mark.parametrize(
    "overrides,field",
    [
        (dict(total_steps=0), "total_steps"),
        (dict(arms=["band", "nope"]), "arms"),
        (dict(arms=["band", "band"]), "arms"),
        (dict(arms=[]), "arms"),
        (dict(seeds=[0, 0]), "seeds"),
        (dict(aq_seeds=[3]), "aq_seeds"),
        (dict(aq={"num_samples": 1}), "num_samples"),
        (dict(aq={"layers": (5,)}), "layers"),
        (dict(aq={"bogus": 1}), "bogus"),
        (dict(model_overrides={"band_dims": (32, 24)}), "band_lrs"),
        (dict(lr=1e-3), "unknown settings"),
        (dict(device="cuda:7"), "device"),
    ],
)
def test_bad_settings_raise_naming_the_field_and_write_nothing(runs_root, overrides, field):
    with pytest.raises(ValueError, match=field):
        experiment.study("tiny", **overrides)
    plan = experiment.study("tiny")
    plan.base.total_steps = -1  # broken after study(): run_experiment checks it again
    with pytest.raises(ValueError, match="total_steps"):
        experiment.run_experiment(plan, name="bad", log=None)
    assert not runs_root.exists() or not any(runs_root.rglob("*"))


# ----------------------------------------------------------------------------- analyses


def test_maturity_step_known_answers():
    steps = [10, 20, 30, 40]
    assert experiment.maturity_step(steps, [0.1, 0.95, 0.92, 1.0]) == 20
    assert experiment.maturity_step(steps, [0.95, 0.5, 0.95, 1.0]) == 30  # must stay there
    assert experiment.maturity_step(steps, [1.0, 1.0, 1.0, 1.0]) == 10
    assert experiment.maturity_step(steps, [0.1, 0.2, 0.3, -0.1]) is None  # never helps


def test_band_ablation_equals_zeroing_the_bands_output_weights():
    torch.manual_seed(0)
    cfg = preset("tiny", n_ctx=16)
    model = BandTransformer(cfg).eval()
    blocks = torch.randint(cfg.vocab_size, (6, 16), generator=torch.Generator().manual_seed(1))
    ab = experiment.band_ablation(model, blocks, batch_size=4)
    with torch.no_grad():
        assert ab["loss"] == pytest.approx(float(model.loss(blocks)), rel=1e-5)
    band = 5
    zeroed = BandTransformer(cfg).eval()
    zeroed.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, p in zeroed.named_parameters():
            outs = ("attn.proj.", "wormhole.proj.", "mlp.fc_out.")
            if any(o in name for o in outs) and name.endswith(f".{band}"):
                p.zero_()
        assert ab["loss_ablated"][band] == pytest.approx(float(zeroed.loss(blocks)), rel=1e-5)
    assert ab["increase"][band] == pytest.approx(ab["loss_ablated"][band] - ab["loss"])
    assert len(ab["increase"]) == cfg.n_bands


def test_ablation_and_evaluation_forwards_run_under_the_trainings_autocast(monkeypatch):
    """Every evaluation forward (the band ablation's and training's) enters the autocast that
    training uses (runtime.autocast: fp16 on a T4, bf16 on an A100), here bf16 on the CPU: the
    losses move by bf16 rounding, not more."""
    torch.manual_seed(0)
    cfg = preset("tiny", n_ctx=16)
    model = BandTransformer(cfg).eval()
    blocks = torch.randint(cfg.vocab_size, (6, 16), generator=torch.Generator().manual_seed(1))
    plain = experiment.band_ablation(model, blocks, batch_size=4)
    entered = []

    def bf16(device, enabled=True):
        entered.append(str(device))
        return torch.autocast("cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(train.runtime, "autocast", bf16)
    ab = experiment.band_ablation(model, blocks, batch_size=4)
    assert entered == ["cpu"] * (1 + cfg.n_bands) * 2  # clean + one per band, 2 batches each
    assert ab["loss"] != plain["loss"] and ab["loss"] == pytest.approx(plain["loss"], rel=2e-2)
    entered.clear()
    qcfg = train.TrainConfig(preset="tiny", seq_len=16, batch_size=4, eval_batches=2)
    assert train.evaluate(model, blocks, qcfg, torch.device("cpu")) == ab["loss"]
    assert entered == ["cpu"] * 2


class _Method:
    """A stand-in for alignment.aq.MethodResult: scores, nulls and a main threshold."""

    def __init__(self, scores, nulls, threshold):
        self.scores, self.nulls = np.asarray(scores, float), nulls
        self.main = type("C", (), {"threshold": threshold})()


def test_aq_by_band_counts_each_band_beside_its_chance():
    scores = [0.9, 0.1, 0.8, 0.7, 0.2, 0.1]
    nulls = {
        "token-shuffle": np.array([[0.9, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0] * 6]),
        "other": np.array([[0.0, 0.0, 0.6, 0.6, 0.6, 0.0]]),
    }
    out = experiment.aq_by_band(_Method(scores, nulls, 0.5), [slice(0, 2), slice(2, 6)])
    assert [b["count"] for b in out] == [1, 2]
    assert [b["chance"] for b in out] == [0.5, 3.0]  # the larger null per band
    assert out[0]["pct"] == 50.0 and out[1]["above_pct"] == 0.0
    assert out[0]["above_pct"] == 25.0


def test_band_statistics_of_a_band_model():
    torch.manual_seed(0)
    cfg = preset("tiny", n_ctx=16)
    model = BandTransformer(cfg).eval()
    blocks = torch.randint(cfg.vocab_size, (4, 16), generator=torch.Generator().manual_seed(0))
    s = experiment.band_statistics(model, blocks)
    acts = model.band_activations(blocks)
    assert s["rms"][2] == pytest.approx(float(acts[2][:, 1:].double().pow(2).mean().sqrt()))
    assert len(s["centroid"]) == cfg.n_bands and all(0 < c < 0.5 for c in s["centroid"])
    assert len(s["power"][0]) == len(s["freqs"]) == 7  # (16 - 1) // 2 bins


def _summary(above, bands=None, share=None, cents=None):
    kind = {"pct": above + 1, "chance_pct": 1.0, "above_pct": above}
    if bands is not None:
        kind["bands"] = bands
    uni = {"observed": share, "structural": 100, "share": share, "chance": 2, "chance_share": 2}
    spec = {"aq_centroids_by_band": cents} if cents is not None else None
    return {
        "summary": {
            "method": "procrustes",
            "rule": "mean + 2 std",
            "by_kind": {"random": kind},
            "universal": uni,
            "spectral": spec,
        }
    }


def _out(band_above=9.0, band_share=50.0, low=0.1, maturity=(500, 1000, 4000), ref_loss=1.77):
    cents = [[low, low + 0.01], [low], [low + 0.02], [0.2], [0.3, 0.31], [0.3], [0.32]]
    bands = [{"pct": 5.0, "chance_pct": 1.0, "above_pct": 4.0}] * 7
    return {
        "study": experiment.study("a100"),
        "aq": {
            "band": _summary(band_above, bands, band_share, cents),
            "baseline": _summary(3.0, share=25.0),
        },
        "maturation": {"band": {"steps": [500, 1000, 2000, 4000, 5000], "maturity": maturity}},
        "loss_rows": [
            {"arm": "baseline", "val_loss": 1.72},
            {"arm": "reference", "val_loss": ref_loss},
        ],
    }


def test_the_verdict_rules_at_the_reference_scale_on_known_answers():
    verdicts = [c["verdict"] for c in experiment.claims(_out())]
    assert verdicts == ["holds"] * 5
    # 5.5 is < 2 x 3.0; shares 30 vs 25 < 1.5x; low bands as high as the high bands;
    # maturity within 2x; the baseline worse than the reference layout
    bad = _out(band_above=5.5, band_share=30.0, low=0.4, maturity=(500, 600, 900), ref_loss=1.7)
    assert [c["verdict"] for c in experiment.claims(bad)] == ["does not hold"] * 5
    few = _out(maturity=(None, None, 500))  # one band that helps: no verdict
    assert experiment.claims(few)[3]["verdict"] == "not comparable"
    tiny = dict(_out(), study=experiment.study("tiny"))
    assert {c["verdict"] for c in experiment.claims(tiny)} == {"not comparable"}
    missing = dict(_out(), aq={}, maturation={}, loss_rows=[])
    assert {c["verdict"] for c in experiment.claims(missing)} == {"not run"}


# ----------------------------------------------------------------------------- a real run

SMALL = dict(
    arms=["baseline", "band", "band_uniform"],
    total_steps=6,
    warmup_steps=2,
    batch_size=4,
    seq_len=16,
    eval_every=3,
    eval_batches=2,
    checkpoint_every=2,
    monitor_every=2,
    progress=False,
    aq=dict(num_samples=16, seq_length=16, sample_sequences=16, spectral_sequences=16),
    stats_sequences=4,
)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    plan = experiment.study("tiny", **SMALL)
    return experiment.run_experiment(plan, name="small", root=root, log=None), root


def test_a_small_run_writes_results_figures_and_the_kit_summary(small_run):
    out, _ = small_run
    run = out["run"].path
    results = json.loads((run / "results.json").read_text())
    assert results["tokens_per_arm"] == 6 * 4 * 16
    assert [r["tokens"] for r in results["losses"]] == [384] * 3
    assert {p.stem for p in (run / "figures").glob("*.png")} == set(out["figures"])
    assert {"curves", "parameters", "ablation", "weight_change", "band_statistics"} <= set(
        out["figures"]
    )
    # the band arm's ablation curve: every checkpoint (steps 2, 4, 6) and every band
    ab = results["ablations"]["band"]
    assert ab["steps"] == [2, 4, 6] and len(ab["increase"][0]) == 7
    assert set(results["aq"]) == {"band", "baseline"}
    assert len(results["aq"]["band"]["by_kind"]["random"]["bands"]) == 7
    section = experiment.kit_summary(out)
    assert section["experiment"] == experiment.EXPERIMENT and section["run"] == str(run)
    assert len(section["claims"]) == 5
    for claim in section["claims"]:
        assert claim["rule"] and claim["measured"] and claim["verdict"] in VERDICTS
        assert claim["verdict"] in ("not comparable", "not run")  # tiny: below the scale
    assert "not comparable" in section["notes"][0]
    table = out["tables"]["parameters"]
    assert "band_6" in table and "shared" in table and "in bands" in table


def test_resume_reloads_finished_arms_without_a_training_step(small_run, monkeypatch):
    out, root = small_run

    def no_step(*args, **kwargs):
        raise AssertionError("a finished arm took a training step on resume")

    monkeypatch.setattr(train, "optimizer_step", no_step)
    plan = experiment.study("tiny", **SMALL)
    again = experiment.run_experiment(plan, name="small", root=root, resume=True, log=None)
    assert again["run"].path == out["run"].path
    assert [r.final_val_loss for r in again["results"]] == [
        r.final_val_loss for r in out["results"]
    ]
    assert again["ablations"]["band"]["steps"] == [2, 4, 6]  # reloaded, not recomputed
    assert again["ablations"]["band"] == out["ablations"]["band"]


def test_resume_refuses_to_switch_offline_stand_ins_on_or_off(small_run, capsys):
    out, root = small_run
    plan = experiment.study("tiny", offline=True, **SMALL)
    with pytest.raises(ValueError, match="resume refused.*base.offline saved False, now True"):
        experiment.run_experiment(plan, name="small", root=root, resume=True, log=None)
    assert len(list(out["run"].path.parent.iterdir())) == 1  # no other run folder


def test_resume_with_other_aq_settings_recomputes_the_aq_and_keeps_the_old(small_run, monkeypatch):
    """The AQ settings may change on resume (MAY_CHANGE): the trained arms are reloaded and the
    AQ analysis runs again under the new settings, in its own folder, beside the old one."""
    out, root = small_run
    monkeypatch.setattr(train, "optimizer_step", lambda *a, **k: pytest.fail("trained again"))
    aq = dict(SMALL["aq"], num_samples=24)
    plan = experiment.study("tiny", **dict(SMALL, aq=aq))
    again = experiment.run_experiment(plan, name="small", root=root, resume=True, log=None)
    assert again["run"].path == out["run"].path
    assert again["aq"]["band"]["result"].config.num_samples == 24
    folders = sorted(p.name for p in (out["run"].path / "aq").iterdir())
    assert len([f for f in folders if f.startswith("band-")]) == 2, folders
