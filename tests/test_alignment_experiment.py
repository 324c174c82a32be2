"""akira_nb.action_quanta: presets and studies, the run folder (results.json, figures), the
reference's numbers beside the measured ones, claims with verdicts, the kit-summary section and
the grokking ground truth."""

import json
import os
from dataclasses import asdict

import pytest

from akira_nb.action_quanta import claims, experiment, ground_truth, presets
from akira_nb.alignment import aq, models

TEST_TINY = models.TinyConfig()  # the tiny preset's pair (tests/conftest.py tiny_lm)


@pytest.fixture(scope="session")
def tiny(tiny_lm):
    return tiny_lm  # tests/conftest.py: trained once per test run


@pytest.fixture(scope="module")
def bridges(tiny):
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield [models.load_model(folder, "cpu") for folder in tiny[0]]
    mp.undo()


def _plan(tiny, grokking=False, **kw):
    a, b = tiny[0]
    base = dict(
        model_a=str(a),
        model_b=str(b),
        layers=(0, 1),
        num_samples=24,
        seq_length=32,
        batch_size=8,
        sample_sequences=24,
        spectral_sequences=24,
        device="cpu",
    )
    base.update(kw)
    return presets.study("tiny", grokking=grokking, **base)


def test_presets_and_the_one_plan_builder():
    p = presets.study("tiny")
    assert (p.aq.model_a, p.aq.model_b, p.pair) == ("tiny:0", "tiny:1", "tiny")
    assert p.aq.layers == (0, 1) and p.aq.text_corpus == "offline" and p.grok.p == 23
    assert p.describe().startswith("settings: size 'tiny' filled pair=tiny")
    seed = presets.study(None, grokking=False)
    assert (seed.aq.model_a, seed.aq.model_b, seed.aq.layers) == ("gpt2", "gpt2-medium", (3, 5, 7))
    assert (seed.aq.num_samples, seed.aq.seq_length, seed.aq.threshold) == (500, 64, 0.3)
    assert seed.grok is None and "seed's protocol" in seed.describe()
    assert claims.comparability(seed) is None
    assert claims.comparability(presets.study("t4")) is None
    assert "tiny:0" in claims.comparability(p)
    big = presets.study("a100", pair="pythia-160m/pythia-160m-seed1")
    assert big.aq.layers == tuple(range(12)) and big.aq.layer_pairing == "depth"
    assert big.aq.n_tokens > 2_000_000
    pythia = presets.study("t4", pair="pythia-70m/pythia-160m")
    assert pythia.aq.layers == (3, 5) and "6 layers" in pythia.notes[0]
    assert presets.study("t4", layers=(1, 2)).aq.layers == (1, 2)


def test_an_offline_plan_is_the_t4_plan_on_standins_and_never_comparable(tmp_path):
    from akira_nb import standins

    p = presets.study("t4", offline=True)  # the notebook's call with OFFLINE = True
    real = presets.study("t4")
    assert p.aq.offline and not real.aq.offline
    assert p.to_dict()["aq"] == {**real.to_dict()["aq"], "offline": True}
    assert p.describe().endswith("; offline: local stand-ins of the same shape")
    assert claims.comparability(p).startswith("offline stand-ins")
    assert experiment.run_name(p) == "t4-gpt2+gpt2-medium-offline" != experiment.run_name(real)
    assert experiment.standins_record(real) is None
    record = experiment.standins_record(p, banner=False)
    assert record["banner"] == standins.BANNER and len(record["replaced"]) == 4
    # a model without a stand-in: refused by name before any model is built or folder written
    with pytest.raises(ValueError, match="model_b='EleutherAI/gpt-j-6b' has no offline stand"):
        presets.study("t4", offline=True, model_a="gpt2", model_b="EleutherAI/gpt-j-6b")
    bad = presets.study("t4", offline=True)
    bad.aq.model_a = "EleutherAI/gpt-j-6b"
    with pytest.raises(ValueError, match="model_a='EleutherAI/gpt-j-6b' has no offline stand"):
        experiment.run_experiment(bad, root=tmp_path, log=None)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(pair="pythia-70m/pythia-160m", layers=(3, 5, 7)), "pythia-70m"),
        (dict(pair="gpt2/gpt3"), "pair"),
        (dict(pair="tiny", model_a="x", model_b="y"), "not both"),
        (dict(model_a="gpt2"), "both model_a and model_b"),
        (dict(num_sample=3), "unknown settings"),
        (dict(threshold_method="zscore"), "rule"),
        (dict(grok=dict(seeds=(0,))), "two seeds"),
        (dict(grok=dict(p=24)), "prime"),
    ],
)
def test_bad_plans_raise_value_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        presets.study("t4", **kw)


def test_run_experiment_writes_results_figures_and_a_kit_section(tiny, bridges, tmp_path):
    p = _plan(tiny, grokking=True, grok=dict(n_epochs=60, d_mlp=128))
    lines = []
    out = experiment.run_experiment(
        p, root=tmp_path, progress=False, log=lines.append, models=bridges
    )
    run = out["run"]
    results = json.loads((run.path / "results.json").read_text())
    assert results["experiment"] == presets.EXPERIMENT and results["size"] == "tiny"
    assert set(results["aq"]["pairs"]) == {"random", "text"}
    assert results["grokking"]["models"][0]["grokked"] is False  # 60 epochs: no grokking
    names = {f.stem for f in (run.path / "figures").glob("*.png")}
    assert {"basic_random_L0-0", "ot_text_L1-1", "cka_random", "universality", "grokking"} <= names
    spectra = [n.split("_") for n in names if n.startswith("spectra_")]
    assert spectra  # one figure per method and pair with AQ to compare
    for _, method, key in spectra:
        assert out["result"].spectral[method][key[1:]]["n_aq"] >= 2
    assert any("checkpoints/stream_random" in str(c) for c in run.path.rglob("ckpt_*.pt"))
    # the reference's numbers beside the measured ones, not comparable at tiny
    table = experiment.reference_table(out["reference"])
    assert "reference: 15 / 13 / 10 (L3 / L5 / L7)" in table and "measured:  L0-0" in table
    assert all(r["comparable"] == "not comparable" for r in out["reference"])
    assert any(line.startswith("the reference's numbers beside this run's") for line in lines)
    sec = claims.kit_summary(out)
    assert sec["experiment"] == "000_action_quanta" and sec["run"] == str(run.path)
    assert sec["baselines"] and any("chance" in b for b in sec["baselines"])
    assert sec["notes"][0].startswith("not comparable with the reference's numbers")
    verdicts = {c["claim"]: c["verdict"] for c in sec["claims"]}
    for c in sec["claims"]:
        assert c["rule"] and c["measured"] not in ("", None)
        assert c["verdict"] in ("holds", "does not hold", "not comparable", "not run")
        assert isinstance(c["unit"], str) and "measured_value" in c
        assert c["measured_value"] is None or isinstance(c["measured_value"], float), c
        if c["verdict"] == "not run":
            assert c["measured_value"] is None
        if c["verdict"] == "not comparable":  # what the rule gives on this run's own numbers
            assert c["computed_verdict"] in ("holds", "does not hold") or c[
                "computed_verdict"
            ].startswith("not measurable: "), c
        else:
            assert "computed_verdict" not in c
    basic = next(c for c in sec["claims"] if c["claim"].startswith("basic method, random"))
    res = out["result"]
    assert basic["unit"] == "neurons" and basic["measured_value"] == sum(
        pr.methods["basic"].main.count for pr in res.pairs["random"].values()
    )
    assert results["cpu_seconds"] > 0 and results["wall_seconds"] > 0
    assert any(line.startswith("this run: ") and "CPU-seconds" in line for line in lines)
    grok_claim = next(v for k, v in verdicts.items() if k.startswith("beyond the seed"))
    assert grok_claim == "not comparable"  # a model that did not grok is no ground truth
    assert sum(v == "not comparable" for v in verdicts.values()) >= 8
    assert "NOTE: a model did not grok" in "\n".join(ground_truth.grokking_lines(out["grok"]))
    assert set(out["lines"]) >= {"random/basic", "text/ot", "universal/ot", "grokking"}


def test_a_bad_layer_leaves_no_run_folder(tiny, bridges, tmp_path):
    p = _plan(tiny, layers=(5,))  # the tiny models have 2 layers; a folder is checked on load
    with pytest.raises(ValueError, match="does not exist"):
        experiment.run_experiment(p, root=tmp_path, progress=False, log=None, models=bridges)
    assert not any(tmp_path.iterdir())


def test_a_resume_with_other_settings_is_refused_before_the_models_load(tmp_path, monkeypatch):
    """The resume guard runs before the pair is loaded (minutes for the real models), and the
    refused resume writes nothing."""
    from akira_nb.alignment import aq as aq_mod
    from akira_nb.runs import Run

    saved = presets.study("tiny", grokking=False)
    run = Run.create(presets.EXPERIMENT, experiment.run_name(saved), saved.to_dict(), root=tmp_path)
    before = sorted(p.name for p in run.path.rglob("*"))

    def no_load(*a, **k):
        raise AssertionError("the models were loaded before the resume was refused")

    monkeypatch.setattr(aq_mod, "load_models", no_load)
    other = presets.study("tiny", grokking=False, seed=3)
    with pytest.raises(ValueError, match="resume refused.*seed"):
        experiment.run_experiment(other, resume=True, root=tmp_path, log=None, banner=False)
    assert sorted(p.name for p in run.path.rglob("*")) == before


def _tiny_grokking(tiny_runs) -> dict:
    """The ground truth at the tiny setting: the notebook stage's (tests/conftest.py
    ``tiny_runs``: read from its run's results.json, its settings checked to be the preset's),
    or, when this file runs alone, trained here."""
    g = ground_truth.GrokConfig(**presets.GROK["tiny"], device="cpu")
    if not os.environ.get("AKIRA_TINY_RUNS_DIR"):
        return ground_truth.run_grokking(g)
    name = f"notebook-{experiment.run_name(presets.study('tiny'))}"  # the notebook's run
    found = sorted(tiny_runs.glob(f"{presets.EXPERIMENT}/*-{name}/results.json"))
    assert found, f"no notebook run {name!r} in {tiny_runs}"
    gk = json.loads(found[-1].read_text())["grokking"]
    want = json.loads(json.dumps(asdict(g)))
    assert {**gk["config"], "device": "cpu"} == want, (gk["config"], want)
    return gk


def test_grokking_ground_truth_when_both_models_grok(tiny_runs):
    # the tiny setting: p = 23, fnet, 600 epochs; measured to grok within 500 epochs
    gk = _tiny_grokking(tiny_runs)
    assert gk["grokked"], gk["models"]
    well, index = gk["agreement"]["well_explained"], gk["agreement"]["index_matched"]
    assert well["rate"] > 3 * well["chance"] and well["p_value"] < 1e-6
    assert abs(index["rate"] - index["chance"]) < 0.05  # index matching pairs at chance
    assert gk["agreement"]["aq"]["rate"] > 0.8
    assert gk["null_agreement_rate"] < 0.2
    assert gk["aq_count"]["count"] > 50 and gk["aq_count"]["null_count"] == 0
    assert gk["matching"]["one_to_one"]


def test_interpretation_of_a_result_uses_the_largest_null(tiny, bridges):
    cfg = _plan(tiny, input_type="random").aq
    res = aq.run_aq(cfg, *bridges)
    raw = res.method_pct("random", "basic", above_null=False)
    net = res.method_pct("random", "basic", above_null=True)
    b = res.pairs["random"]["0-0"].methods["basic"]
    assert b.main_chance == max(c.null_count for c in b.counts("fixed", 0.3).values())
    assert net <= raw
    lines = res.verdicts()
    assert lines[0].startswith("rule: the seed's table")
    assert any(line.startswith("random / basic (fixed 0.3)") for line in lines)


def test_claims_give_real_verdicts_under_the_reference_protocol():
    """A result laid out as the reference's (gpt2 vs gpt2-medium, layers 3 / 5 / 7 by index,
    500 x 64 tokens) gets holds / does not hold, never 'not comparable' (Gurnee's known-answer
    claim is not run: it needs a known-answer pair)."""
    import numpy as np
    import torch

    p = presets.study("t4", grokking=False)
    assert claims.comparability(p) is None
    g = torch.Generator().manual_seed(0)
    pairs = {}
    for kind in ("random", "text"):
        by = {}
        for layer in (3, 5, 7):
            a = torch.randn(600, 32, generator=g, dtype=torch.float64)
            b = torch.randn(600, 40, generator=g, dtype=torch.float64)
            b[:, :8] = a[:, :8] + 0.1 * torch.randn(600, 8, generator=g, dtype=torch.float64)
            stream = aq.PairStream([(layer, layer)], 32, 40, "cpu")
            stream.update({layer: a}, {layer: b})
            pr = aq.analyse_pair(
                stream.stats[(layer, layer)],
                stream.null[(layer, layer)],
                p.aq,
                a,
                b,
                torch.arange(600) // 30,
                kind,
                (layer, layer),
            )
            by[pr.key] = pr
        pairs[kind] = by
    res = aq.AQResult(p.aq, [(3, 3), (5, 5), (7, 7)], pairs)
    aq.add_universal(res)
    rows = claims.claims({"study": p, "result": res, "grok": None})
    verdicts = {r["claim"].split(":")[0]: r["verdict"] for r in rows}
    assert all(
        v in ("holds", "does not hold", "not run")
        for k, v in verdicts.items()
        if not k.startswith("same architecture")
    ), verdicts
    cka = next(r for r in rows if r["claim"].startswith("aligned method, random tokens: linear"))
    measured = [pairs["random"][k].cka["linear"] for k in ("3-3", "5-5", "7-7")]
    reported = list(claims.SEED_CLAIMS["cka"]["random"].values())
    expected = all(abs(m - r) <= claims.CKA_TOLERANCE for m, r in zip(measured, reported))
    assert cka["verdict"] == ("holds" if expected else "does not hold")
    spectral = next(r for r in rows if r["claim"].startswith("AQ neurons live"))
    assert spectral["verdict"] == "not run"  # no spectra in this synthetic result
    universal = next(r for r in rows if r["claim"].startswith("universal AQ"))
    ps = [u["p_value"] for u in res.universal["procrustes"].values()]
    assert universal["verdict"] == ("holds" if all(v < 0.05 for v in ps) else "does not hold")
    assert np.isfinite(res.method_pct("random", "basic"))
    gurnee = next(r for r in rows if r["claim"].startswith("same architecture"))
    assert gurnee["verdict"] == "not run"  # no max over all of B's layers for gpt2/gpt2-medium
    assert all("computed_verdict" not in r for r in rows)  # comparable: real verdicts only
    # a paired null of 5 replicates cannot reach p < 0.05: it judges nothing
    for u in res.universal["procrustes"].values():
        u["n_null"] = 5
    rows = claims.claims({"study": p, "result": res, "grok": None})
    universal = next(r for r in rows if r["claim"].startswith("universal AQ"))
    assert universal["verdict"] == "not measurable: null of 5 replicates (needs >= 19)"
    assert "from 5 replicates, no p-value: not measurable" in universal["measured"]


def test_t4_checkpoints_at_most_twice_in_its_32_batch_stream():
    """Each save holds every pair's sums (about 1 GB at gpt2 x gpt2-medium, 3 pairs)."""
    pre = presets.PRESETS["t4"]
    total = -(-pre["num_samples"] // pre["batch_size"])
    every = pre["checkpoint_every"]
    saves = len([b for b in range(1, total) if b % every == 0]) + 1  # + the save at the end
    assert total == 32 and saves <= 2
    # the size per save as the docstring states it: 3 pairs of (real: cross + B^T B; null: cross)
    per_pair = 8 * (3072 * 4096 + 4096 * 4096 + 3072 * 4096)
    assert 0.95e9 < 3 * per_pair < 1.05e9


def test_gurnee_over_all_layers_is_on_where_its_claim_can_be_judged():
    assert presets.study("tiny", grokking=False).aq.gurnee_all_layers is True
    assert presets.study("t4", grokking=False).aq.gurnee_all_layers is False  # gpt2/medium
    known = presets.study("a100", pair="pythia-160m/pythia-160m-seed1", grokking=False)
    assert known.aq.gurnee_all_layers is True
    big = presets.study("a100", pair="stanford-gpt2-medium-a/b", grokking=False)
    assert big.aq.gurnee_all_layers is False and any("gurnee" in n.lower() for n in big.notes)
    forced = presets.study("t4", grokking=False, gurnee_all_layers=True)
    assert forced.aq.gurnee_all_layers is True


def test_gurnee_claim_uses_text_and_the_max_over_all_of_bs_layers():
    p = presets.study("tiny", grokking=False)
    res = aq.AQResult(p.aq, [(0, 0), (1, 1)], {})
    res.gurnee_all = {
        "text": {
            "0": {"count": 8, "n_neurons": 256, "pct": 3.125, "threshold": 0.5},
            "1": {"count": 0, "n_neurons": 256, "pct": 0.0, "threshold": 0.5},
        }
    }
    row = next(
        r
        for r in claims.claims({"study": p, "result": res, "grok": None})
        if r["claim"].startswith("same architecture")
    )
    assert "text" in row["rule"] and "every layer of B" in row["rule"]
    assert "L0 8 of 256, L1 0 of 256" in row["measured"] and "1.6%" in row["measured"]
    assert row["verdict"] == "not comparable"  # the tiny pair is no known-answer pair
    res.gurnee_all = {}
    row = next(
        r
        for r in claims.claims({"study": p, "result": res, "grok": None})
        if r["claim"].startswith("same architecture")
    )
    assert row["verdict"] == "not run"


def test_streamed_cka_is_on_where_the_stream_outgrows_the_sample():
    assert presets.study("tiny", grokking=False).aq.stream_cka is True
    assert presets.study("a100", grokking=False).aq.stream_cka is True
    assert presets.study("t4", grokking=False).aq.stream_cka is False


def test_summary_lines_and_claims_never_read_a_total_below_chance_as_above_it():
    """The tiny run's shape (hand-made): L0 85 against 81.1, L1 64 against 76.2, 149 of 512
    against 157.3 in all: every line and the basic-method claims read 'at chance' with a
    negative excess, and the table claim's computed verdict is the raw % on this run."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_alignment_aq import BELOW_IN_TOTAL, _hand_result

    res = _hand_result(BELOW_IN_TOTAL)
    p = presets.study("tiny", grokking=False)
    out = {"study": p, "result": res, "grok": None}
    line = experiment.summary_lines(out)["random/basic"]
    assert "149 of 512 against 157.3 expected by chance: -8.3 (-1.6% of neurons)" in line, line
    assert "-> at chance" in line and "75 of 512 above fixed 0.5 (chance 84.3: at chance)" in line
    rows = {r["claim"]: r for r in claims.claims(out)}
    table = rows["verdict of the basic method on random tokens (the seed's interpretation table)"]
    assert "-8.3 (-1.6% of neurons), at chance" in table["measured"], table
    assert table["verdict"] == "not comparable" and table["computed_verdict"] == "does not hold"
    assert table["measured_value"] == pytest.approx(100 * 149 / 512)
    assert table["unit"] == "% of neurons"
    basic = rows["basic method, random tokens: AQ (excess > 0.3) at layers 3 / 5 / 7"]
    assert basic["measured_value"] == 149 and basic["computed_verdict"] == "does not hold"
    assert "at chance" in basic["measured"]
    # a universal overlap against a null of one replicate judges nothing, wherever it is printed
    u = dict(observed=0, n_a=0, n_b=3, n_total=256, rule="fixed 0.3", null="token-shuffle",
             n_null=1, chance=0.0, p_value=1.0, null_overlaps=[0], independent_expected=0.0,
             independent_p_value=1.0, model="A")  # fmt: skip
    res.universal = {"ot": {"0-0": u}, "procrustes": {"0-0": u}}
    few = "not measurable: null of 1 replicate (needs >= 19)"
    assert few in experiment.summary_lines(out)["universal/ot"]
    row = next(r for r in claims.claims(out) if r["claim"].startswith("universal AQ"))
    assert row["verdict"] == "not comparable" and row["computed_verdict"] == few
    res.pairs = {}  # the baselines of the universal overlaps alone
    (line,) = [b for b in claims.baseline_lines(out) if b.startswith("universal ot")]
    assert few in line and "p = " not in line, line
