"""Tables, claims, verdicts and the kit summary of experiment 033 (on hand-built results)."""

import json
from dataclasses import asdict

from akira_nb.spatiotemporal import experiment
from akira_nb.spatiotemporal.train import TrainConfig

VERDICTS = {"holds", "does not hold", "not comparable", "not run"}


def fake_results(grid=32, steps=500, spectral=0.005, mlp=0.2, pattern="blob"):
    def entry(mse, trained=True):
        e = {"params": 10, "eval": {"mse": mse, "ssim": 0.9, "mse_low": 0, "mse_high": 0}}
        if trained:
            e["train"] = {"final": 0.01, "improvement_pct": 95.0, "steps_per_s": 12.0}
        e["eval"]["rollout_mse"] = 2 * mse
        return e

    cfg = TrainConfig(pattern=pattern, grid_size=grid, steps=steps)
    models = {"spectral": entry(spectral), "copy_last": entry(0.04, False)}
    models["linear_extrap"] = entry(0.01, False)
    if mlp is not None:
        models["mlp"] = entry(mlp)
    return {"train_config": asdict(cfg), "preset": "fast", "models": models, "run": "/x"}


def test_seed_protocol_gets_verdicts_and_other_protocols_are_not_comparable():
    res = fake_results()
    assert experiment.comparability(res) is None
    verdicts = [c["verdict"] for c in experiment.claims(res)]
    assert verdicts == ["holds", "holds", "holds", "not comparable"]  # speed: never judged
    worse = fake_results(spectral=0.05, mlp=0.1)  # 2x, above 0.011
    assert [c["verdict"] for c in experiment.claims(worse)][:2] == ["does not hold"] * 2
    for grid, steps in [(16, 500), (32, 60), (16, 60)]:
        res = fake_results(grid=grid, steps=steps)
        assert f"{grid}x{grid}, {steps} online steps" in experiment.comparability(res)
        assert {c["verdict"] for c in experiment.claims(res)} == {"not comparable"}
    assert experiment.comparability(fake_results(pattern="chirp")) is not None
    no_mlp = experiment.claims(fake_results(mlp=None))
    assert no_mlp[0]["verdict"] == "not run" and no_mlp[1]["verdict"] == "holds"


def test_claims_table_says_whether_the_numbers_are_comparable():
    res = fake_results(grid=16, steps=60)
    rows = experiment.comparison_rows(res, experiment.CLAIMED)
    table = experiment.claims_rows(rows, res)
    assert table and {r["comparable"] for r in table} == {"NO", "NO (machine)"}
    res = fake_results()
    rows = experiment.comparison_rows(res, experiment.CLAIMED)
    assert {r["comparable"] for r in experiment.claims_rows(rows, res)} == {"yes", "NO (machine)"}


def test_kit_summary_is_plain_json_with_claims_baselines_and_the_run():
    out = {**fake_results(grid=16, steps=60), "size": "tiny"}
    section = experiment.kit_summary(out)
    assert json.loads(json.dumps(section)) == section
    assert section["experiment"] == "033_spectral_band_attention" and section["size"] == "tiny"
    assert section["run"] == "/x"
    assert {c["verdict"] for c in section["claims"]} <= VERDICTS
    for c in section["claims"]:
        assert set(c) == {"claim", "rule", "claimed", "measured", "verdict"}
    assert any("not comparable" in n and "16x16" in n for n in section["notes"])
    text = " ".join(section["baselines"])
    assert "spectral 0.005 beats copy_last 0.04" in text
    assert "rollout MSE: spectral 0.01, copy_last 0.08, linear_extrap 0.02" in text


def test_rollout_lead_counts_the_leading_steps_below_the_baseline():
    res = fake_results()
    res["models"]["spectral"]["eval"]["rollout_curve"] = [0.001, 0.01, 0.05, 0.02]
    res["models"]["copy_last"]["eval"]["rollout_curve"] = [0.01, 0.02, 0.03, 0.04]
    res["models"]["linear_extrap"]["eval"]["rollout_curve"] = [0.1, 0.2, 0.3, 0.4]
    assert experiment.rollout_lead(res, "spectral", "copy_last") == 2  # behind from step 3 on
    assert experiment.rollout_lead(res, "spectral", "linear_extrap") == 4
    assert experiment.rollout_lead(res, "mlp", "copy_last") is None  # mlp has no curve
    lines = experiment.baseline_lines(res)
    assert "spectral's rollout error stays below copy_last for 2, linear_extrap for 4" in "\n".join(
        lines
    )
    assert "ahead of copy_last for 2 of 4 rollout steps" in experiment.arm_lines(res)
