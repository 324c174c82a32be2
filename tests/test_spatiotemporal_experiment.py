"""Tables, claims, verdicts and the kit summary of experiment 033 (on hand-built results)."""

import json
from dataclasses import asdict

from akira_nb.spatiotemporal import claims, experiment, presets
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
    assert claims.comparability(res) is None
    verdicts = [c["verdict"] for c in claims.claims(res)]
    assert verdicts == ["holds", "holds", "holds", "not comparable"]  # speed: never judged
    worse = fake_results(spectral=0.05, mlp=0.1)  # 2x, above 0.011
    assert [c["verdict"] for c in claims.claims(worse)][:2] == ["does not hold"] * 2
    for grid, steps in [(16, 500), (32, 60), (16, 60)]:
        res = fake_results(grid=grid, steps=steps)
        assert f"{grid}x{grid}, {steps} online steps" in claims.comparability(res)
        assert {c["verdict"] for c in claims.claims(res)} == {"not comparable"}
    assert claims.comparability(fake_results(pattern="chirp")) is not None
    no_mlp = claims.claims(fake_results(mlp=None))
    assert no_mlp[0]["verdict"] == "not run" and no_mlp[1]["verdict"] == "holds"


def test_claims_table_says_whether_the_numbers_are_comparable():
    res = fake_results(grid=16, steps=60)
    rows = experiment.comparison_rows(res, claims.SEED_CLAIMS)
    table = experiment.claims_rows(rows, res)
    assert table and {r["comparable"] for r in table} == {"NO", "NO (machine)"}
    res = fake_results()
    rows = experiment.comparison_rows(res, claims.SEED_CLAIMS)
    assert {r["comparable"] for r in experiment.claims_rows(rows, res)} == {"yes", "NO (machine)"}


def test_kit_summary_is_plain_json_with_claims_baselines_and_the_run():
    out = {**fake_results(grid=16, steps=60), "size": "tiny"}
    section = claims.kit_summary(out)
    assert json.loads(json.dumps(section)) == section
    assert section["experiment"] == "033_spectral_band_attention" and section["size"] == "tiny"
    assert section["run"] == "/x"
    assert {c["verdict"] for c in section["claims"]} <= VERDICTS
    for c in section["claims"]:  # the kit-summary contract; not comparable at 16x16
        assert set(c) == {
            "claim",
            "rule",
            "claimed",
            "measured",
            "verdict",
            "measured_value",
            "unit",
            "computed_verdict",
        }
    assert any("not comparable" in n and "16x16" in n for n in section["notes"])
    text = " ".join(section["baselines"])
    assert "spectral 0.005 beats copy_last 0.04" in text
    assert "rollout MSE: spectral 0.01, copy_last 0.08, linear_extrap 0.02" in text


def test_rollout_lead_counts_the_leading_steps_below_the_baseline():
    res = fake_results()
    res["models"]["spectral"]["eval"]["rollout_curve"] = [0.001, 0.01, 0.05, 0.02]
    res["models"]["copy_last"]["eval"]["rollout_curve"] = [0.01, 0.02, 0.03, 0.04]
    res["models"]["linear_extrap"]["eval"]["rollout_curve"] = [0.1, 0.2, 0.3, 0.4]
    assert claims.rollout_lead(res, "spectral", "copy_last") == 2  # behind from step 3 on
    assert claims.rollout_lead(res, "spectral", "linear_extrap") == 4
    assert claims.rollout_lead(res, "mlp", "copy_last") is None  # mlp has no curve
    lines = claims.baseline_lines(res)
    assert "spectral's rollout error stays below copy_last for 2, linear_extrap for 4" in "\n".join(
        lines
    )
    assert "ahead of copy_last for 2 of 4 rollout steps" in experiment.arm_lines(res)


def test_study_is_the_one_size_table_for_the_cli_and_the_notebook(monkeypatch):
    from pathlib import Path

    from akira_nb.__main__ import build_parser
    from akira_nb.spatiotemporal import cli

    monkeypatch.delenv("AKIRA_SIZE", raising=False)
    for size in (None, "tiny", "t4", "a100"):
        plan = presets.study(size)
        flags = ["spatiotemporal"] + (["--size", size] if size else [])
        cfg = cli.config_from_args(build_parser().parse_args(flags))[0]
        assert cfg == plan.train, size  # the CLI builds its config through study()
        assert plan.sweep.steps == presets.PRESETS[size]["sweep_steps"]
        assert plan.sweep.rollout_horizon == 0 and plan.preset == "fast"
    notebook = Path(__file__).parents[1] / "notebooks" / "033_spectral_band_attention.py"
    text = notebook.read_text()
    assert "presets.study(SIZE" in text and "TrainConfig(" not in text
    assert "runtime.pick(" not in text  # no second size table


def test_tiny_checkpoints_mid_arm_so_the_notebook_resume_check_continues_one():
    plan = presets.study("tiny")
    for cfg in (plan.train, plan.sweep):
        assert 0 < cfg.checkpoint_every < cfg.steps


def test_study_grid_rule_overrides_and_bad_settings():
    import pytest

    assert presets.study("tiny").train.grid_size == 16  # the size's grid (preset not given)
    assert presets.study("tiny", preset="large").train.grid_size == 64  # the preset's own
    assert presets.study("tiny", preset="large", grid_size=16).train.grid_size == 16
    assert presets.study("tiny", steps=None).train.steps == 60  # None: not given
    plan = presets.study("tiny", steps=7, sweep_steps=5, seed=3)
    assert (plan.train.steps, plan.sweep.steps, plan.sweep.seed) == (7, 5, 3)
    assert "steps" not in plan.from_preset and plan.from_preset["eval_steps"] == 30
    assert presets.study("tiny", preset="turbo").train.eval_warmup == 4  # its time_depth
    with pytest.raises(ValueError, match="colour"):
        presets.study("tiny", colour=1)
    with pytest.raises(ValueError, match="steps"):
        presets.study("tiny", steps=-1)
    with pytest.raises(ValueError, match="wormhole_threshold"):
        presets.study("tiny", overrides={"wormhole_threshold": 2.0})
    with pytest.raises(ValueError, match="preset"):
        presets.study("tiny", preset="huge")


def test_heldout_gap_is_measured_from_the_frames():
    from dataclasses import replace

    from akira_nb.spatiotemporal import patterns as P
    from akira_nb.spatiotemporal.evaluate import evaluation_times
    from akira_nb.spatiotemporal.train import training_times

    cfg = TrainConfig(grid_size=16, steps=300, eval_steps=101, rollout_horizon=20)
    gap = experiment.heldout_gap(cfg)
    train = P.frames("blob", training_times(cfg), 16)
    held = P.frames("blob", evaluation_times(cfg), 16)
    mse = ((held[:, None] - train[None]) ** 2).flatten(2).mean(-1)
    copy_last = ((held[1:] - held[:-1]) ** 2).flatten(1).mean(-1).mean()
    assert abs(gap["nearest_train_mse"] - float(mse.min())) < 1e-9
    assert abs(gap["ratio"] - float(mse.min() / copy_last)) < 1e-6
    assert gap["ratio"] > 0.12
    assert "blob" in experiment.heldout_line(cfg) and f"{gap['ratio']:.2g}" in (
        experiment.heldout_line(cfg)
    )
    replay = experiment.heldout_gap(replace(cfg, eval_start=10000.0))  # blob's period 50
    assert replay["ratio"] < 1e-6


def test_rollout_lines_print_each_models_measured_curve():
    res = fake_results()
    res["train_config"]["rollout_horizon"] = 4
    res["models"]["spectral"]["eval"]["rollout_curve"] = [0.001, 0.01, 0.05, 0.02]
    res["models"]["copy_last"]["eval"]["rollout_curve"] = [0.01, 0.02, 0.03, 0.04]
    res["models"]["linear_extrap"]["eval"]["rollout_curve"] = [0.1, 0.2, 0.3, 0.4]
    text = "\n".join(experiment.rollout_lines(res))
    assert "spectral: step 1 0.001, step 4 0.02, worst 0.05 (step 3)" in text
    assert "copy_last: step 1 0.01, step 4 0.04" in text
    assert "spectral stays below copy_last for 2 of 4 steps" in text
    assert "linear_extrap for 4 of 4" in text


def test_claims_carry_their_measured_value_unit_and_the_rule_on_this_runs_numbers():
    tiny = claims.claims(fake_results(grid=16, steps=60, spectral=0.005, mlp=0.2))
    ratio, mse, imp, speed = tiny
    assert (ratio["measured_value"], ratio["unit"]) == (40.0, "x")
    assert (mse["measured_value"], mse["unit"]) == (0.005, "per-pixel MSE")
    assert (imp["measured_value"], imp["unit"]) == (95.0, "%")
    assert (speed["measured_value"], speed["unit"]) == (12.0, "steps/s")
    assert [c["verdict"] for c in tiny] == ["not comparable"] * 4
    assert [c["computed_verdict"] for c in tiny[:3]] == ["holds"] * 3
    assert speed["computed_verdict"].startswith("not measurable: ")
    worse = claims.claims(fake_results(grid=16, steps=60, spectral=0.05, mlp=0.1))
    assert [c["computed_verdict"] for c in worse[:2]] == ["does not hold"] * 2
    seed = claims.claims(fake_results())  # the seed's protocol: real verdicts only
    assert all("computed_verdict" not in c for c in seed[:3])
    no_mlp = claims.claims(fake_results(mlp=None))[0]
    assert no_mlp["verdict"] == "not run" and no_mlp["measured_value"] is None
