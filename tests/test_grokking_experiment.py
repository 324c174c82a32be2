"""The study builder, validation before any run folder exists, and the kit summary."""

import argparse
import json
from dataclasses import fields
from pathlib import Path

import pytest

from akira_nb.grokking import claims as kit_claims
from akira_nb.grokking import cli, experiment, presets
from akira_nb.modular_arithmetic.models import MIXERS, ModelConfig
from akira_nb.modular_arithmetic.train import TrainConfig


def test_train_config_is_the_model_config_plus_training_settings():
    model_fields = [f.name for f in fields(ModelConfig)]
    train_fields = [f.name for f in fields(TrainConfig)]
    assert train_fields[: len(model_fields)] == model_fields  # declared once, in ModelConfig
    assert len(set(train_fields)) == len(train_fields)
    cfg = TrainConfig(p=7, mixer="fnet", d_model=32, n_heads=2, d_mlp=64)
    assert cfg.model_config() == ModelConfig(7, "fnet", 32, 2, 64)


def test_study_is_the_preset_with_overrides_on_top():
    plan = presets.study("tiny", lr=0.01, seeds=[1, 2], mixers=["fnet"])
    assert plan.base.lr == 0.01 and plan.base.train_frac == 0.7
    assert plan.seeds == [1, 2] and plan.mixers == ["fnet"] and plan.primes == [23]
    assert "lr" not in plan.from_preset and plan.from_preset["train_frac"] == 0.7
    arms = plan.arms()
    assert [(c.p, c.mixer, c.seed) for c in arms] == [(23, "fnet", 1), (23, "fnet", 2)]
    seed = presets.study(None)
    assert (seed.primes, seed.seeds, seed.mixers) == ([53], [0], list(MIXERS))
    assert (seed.base.train_frac, seed.base.lr, seed.base.n_epochs) == (0.3, 1e-3, 30_000)
    assert presets.study(None, lr=None).base.lr == 1e-3  # None: not given


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(p=13), "unknown settings"),
        (dict(mixer="fnet"), "unknown settings"),
        (dict(mixers="fnet"), "mixers"),
        (dict(mixers=[]), "mixers"),
        (dict(primes=[]), "primes"),
        (dict(primes=[23, 12]), "p=12"),
        (dict(seeds=[-1]), "seeds"),
        (dict(seeds=[0, 0]), "seeds"),
        (dict(primes=[23, 23]), r"primes=\[23, 23\] repeats 23"),
        (dict(mixers=["fnet", "fnet"]), r"mixers=\['fnet', 'fnet'\] repeats 'fnet'"),
        (dict(lr=float("inf")), "lr"),
    ],
)
def test_bad_study_settings_raise_naming_the_setting(overrides, match):
    with pytest.raises(ValueError, match=match):
        presets.study("tiny", **overrides)


@pytest.mark.parametrize(
    "arms,match",
    [
        (dict(primes=[7], mixers=["fnet"], seeds=[-1]), "seeds"),
        (dict(primes=[7, 15], mixers=["fnet"], seeds=[0]), "p=15"),
        (dict(primes=[7], mixers=["fnet", "wave"], seeds=[0]), "mixers"),
    ],
)
def test_run_experiment_validates_every_arm_before_making_a_folder(tmp_path, arms, match):
    with pytest.raises(ValueError, match=match):  # a Study is checked when built
        plan = presets.Study(TrainConfig(p=7, n_epochs=5), **arms)
        experiment.run_experiment(plan, root=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


RESULTS = Path(__file__).resolve().parent.parent / "results" / "grokking_p53_30k_cpu"


def _measured_p53_rows():
    return json.loads((RESULTS / "results.json").read_text())["table"]


def test_claims_at_the_seed_protocol_have_verdicts_by_their_rules():
    plan = presets.study(None)
    assert kit_claims.comparability(plan) is None
    by = {c["claim"]: c for c in kit_claims.claims(_measured_p53_rows(), plan)}
    std_acc = by["p=53 standard: final test accuracy"]
    assert std_acc["claimed"] == "0.022" and std_acc["measured"].startswith("0.987")
    assert std_acc["verdict"] == "does not hold"  # 0.987 vs 0.022
    assert by["p=53 fnet: final test accuracy"]["verdict"] == "holds"  # 1.000 vs 0.994
    assert by["p=53 standard: grok epoch (test acc >= 0.95 to the end)"]["verdict"] == (
        "does not hold"  # claimed never, grokked at 9,800
    )
    # full: 16,100 vs 23,300 is within 2x
    assert by["p=53 full: grok epoch (test acc >= 0.95 to the end)"]["verdict"] == "holds"
    gate = by["p=53: learned_gate groks ~10x sooner than the other wave modes"]
    # fnet / phase_shift at 10,200
    assert gate["measured"].startswith("learned_gate groks 2.0x sooner than fnet (learned_gate")
    assert gate["verdict"] == "does not hold"
    fft = by["p=53: FFT mixing trains 2.5x faster than attention"]
    # sequential arm timings on a shared CPU (2.1x here, 1.4-1.55x paired) decide nothing
    assert fft["measured"].startswith("2.10x") and "not paired" in fft["measured"]
    # the kit's one verdict rule: a rule with nothing to judge is "not measurable: <why>"
    assert fft["verdict"].startswith("not measurable: ") and "paired" in fft["rule"]
    for c in by.values():
        assert c["rule"] and c["verdict"].split(":")[0] in (
            "holds",
            "does not hold",
            "not measurable",
        )


def test_same_logged_grok_epoch_is_said_and_tiny_is_not_comparable():
    rows = _measured_p53_rows()
    for r in rows:
        r["grok_epoch_mean"] = 100.0
    plan = presets.study(None)
    gate = [c for c in kit_claims.claims(rows, plan) if "learned_gate groks" in c["claim"]][0]
    assert gate["measured"].startswith("learned_gate and fnet grok at the same logged epoch")
    assert "evaluation every 100 epochs" in gate["measured"]
    tiny = presets.study("tiny")
    reason = kit_claims.comparability(tiny)
    assert "'tiny' preset" in reason and "p = 23" in reason
    for r in rows:
        r["p"] = 23
    assert {c["verdict"] for c in kit_claims.claims(rows, tiny)} == {"not comparable"}


def test_kit_summary_from_what_the_cli_returns(tmp_path):
    argv = ["--size", "tiny", "--p", 7, "--n_epochs", 20, "--eval_every", 10, "--d_model", 32,
            "--d_mlp", 64, "--output_dir", tmp_path, "--quiet"]  # fmt: skip
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = cli.main(parser.parse_args([str(a) for a in argv]))
    sec = kit_claims.kit_summary(out)
    assert json.loads(json.dumps(sec)) == sec  # plain JSON
    assert sec["experiment"] == "grokking" and sec["size"] == "tiny"
    assert sec["run"] == str(out["run"].path) and (out["run"].path / "results.json").is_file()
    assert len(sec["claims"]) == 13  # 5 accuracies, 5 grok epochs, gate, speed, FFT-beats
    assert {c["verdict"] for c in sec["claims"]} == {"not comparable"}
    for c in sec["claims"]:  # the kit-summary contract
        assert c["claim"].startswith("p=7") and isinstance(c["unit"], str)
        assert c["measured_value"] is None or isinstance(c["measured_value"], float)
        assert c["computed_verdict"] in ("holds", "does not hold") or c[
            "computed_verdict"
        ].startswith("not measurable: ")
    saved = out["run"].read_results()
    assert saved["cpu_seconds"] > 0 and saved["wall_seconds"] > 0
    assert saved["cpu_seconds"] == out["cost"]["cpu_seconds"] and saved["claims"]
    assert sec["baselines"] == ["chance accuracy at p=7: 1/p = 0.143"]
    assert sec["notes"][0].startswith("not comparable with the seed's claims")
    assert any("sqrt(d_head)" in n for n in sec["notes"])
    assert "* full: the kit divides" in out["table"]


def _row(mixer, acc=1.0, grok=None, p=53, seeds=1):
    """A hand-built row of ``summarize``: ``grok`` None means no seed grokked."""
    nan = float("nan")
    return dict(p=p, mixer=mixer, seeds=seeds, test_acc_mean=acc, test_acc_std=0.0,
                train_acc_mean=1.0, grokked=0 if grok is None else seeds,
                grok_epoch_mean=nan if grok is None else float(grok), grok_epoch_std=0.0,
                epochs_per_s_mean=50.0, epochs_per_s_std=0.0, params=1000, mixing_params=0,
                chance_acc=1 / p)  # fmt: skip


def _claim_of(rows, text, plan=None):
    plan = plan or presets.study(None)
    (c,) = [c for c in kit_claims.claims(rows, plan) if text in c["claim"]]
    return c


GATE = "learned_gate groks ~10x sooner"
FFT_BEATS = "FFT beats attention"


def test_the_seed_documents_own_numbers_satisfy_both_rules():
    rows = [
        _row(m, c["test_acc"], c["grok_epoch"])
        for (p, m), c in kit_claims.SEED_CLAIMS.items()
        if p == 53
    ]
    assert _claim_of(rows, GATE)["verdict"] == "holds"  # 23,300 / 2,600 = 9.0x
    assert _claim_of(rows, FFT_BEATS)["verdict"] == "holds"  # 0.022 vs 0.934-1.000


@pytest.mark.parametrize(
    "groks,verdict,said",
    [
        # learned_gate never groks, another wave mode does: the claim is refuted
        (dict(fnet=10_000), "does not hold", "learned_gate never grokked within 30000 epochs"),
        (dict(), "does not hold", "learned_gate never grokked within 30000 epochs"),
        # learned_gate groks, no other wave mode does: supported
        (dict(learned_gate=2_600), "holds", "never grokked within 30000 epochs"),
        (
            dict(learned_gate=1_000, fnet=10_000, full=12_000),
            "holds",
            "10.0x sooner than fnet (learned_gate at epoch 1000, fnet at 10000)",
        ),
        (
            dict(learned_gate=5_000, phase_shift=10_000),
            "does not hold",
            "2.0x sooner than phase_shift (learned_gate at epoch 5000, phase_shift at 10000)",
        ),
    ],
)
def test_learned_gate_sooner_verdicts_on_hand_built_rows(groks, verdict, said):
    waves = ("fnet", "learned_gate", "phase_shift", "full")
    rows = [_row("standard", 0.02)] + [_row(m, 1.0, groks.get(m)) for m in waves]
    gate = _claim_of(rows, GATE)
    assert gate["verdict"] == verdict, gate
    assert said in gate["measured"]
    if "learned_gate" in groks and len(groks) == 1:
        assert "fnet, phase_shift, full never grokked" in gate["measured"]
    # only a size that is not the seed's protocol makes it not comparable
    tiny = presets.study("tiny")
    rows23 = [{**r, "p": 23} for r in rows]
    assert _claim_of(rows23, GATE, tiny)["verdict"] == "not comparable"


def test_learned_gate_sooner_needs_learned_gate_and_another_wave_mode():
    alone = [_row("standard", 0.02), _row("learned_gate", 1.0, 2_600)]
    assert _claim_of(alone, GATE)["verdict"] == "not run"
    no_gate = [_row("standard", 0.02), _row("fnet", 1.0, 2_600)]
    assert _claim_of(no_gate, GATE)["verdict"] == "not run"


@pytest.mark.parametrize(
    "accs,verdict",
    [
        (dict(standard=0.02, fnet=0.99, learned_gate=0.99, phase_shift=0.93, full=1.0), "holds"),
        # one FFT-only mode fails: "every wave mode does" is false, whatever the best one did
        (dict(standard=0.02, fnet=0.99, learned_gate=0.99, phase_shift=0.4, full=1.0),
         "does not hold"),
        # full alone keeps Q/K/V; it can neither carry nor rescue the claim
        (dict(standard=0.02, fnet=0.3, learned_gate=0.3, phase_shift=0.3, full=1.0),
         "does not hold"),
        (dict(standard=0.02, fnet=0.99, learned_gate=0.99, phase_shift=0.99, full=0.3),
         "does not hold"),
        # standard generalises
        (dict(standard=0.987, fnet=1.0, learned_gate=1.0, phase_shift=1.0, full=1.0),
         "does not hold"),
        (dict(standard=0.02, fnet=0.99, learned_gate=0.99, full=1.0), "not run"),
        (dict(fnet=0.99, learned_gate=0.99, phase_shift=0.99, full=1.0), "not run"),
    ],
)  # fmt: skip
def test_fft_beats_attention_checks_standard_and_every_wave_mode(accs, verdict):
    rows = [_row(m, acc) for m, acc in accs.items()]
    c = _claim_of(rows, FFT_BEATS)
    assert c["verdict"] == verdict, c
    assert f"below {kit_claims.NOT_GENERALISED_ACC}" in c["rule"]
    assert f"at least {kit_claims.GENERALISED_ACC}" in c["rule"]
    if verdict != "not run":
        assert f"standard {accs['standard']:.3f}" in c["measured"]
        assert f"phase_shift {accs['phase_shift']:.3f}" in c["measured"]
    tiny = presets.study("tiny")
    rows23 = [{**r, "p": 23} for r in rows]
    expected = "not run" if verdict == "not run" else "not comparable"
    assert _claim_of(rows23, FFT_BEATS, tiny)["verdict"] == expected


def test_figures_use_each_arms_data_split_and_run_experiment_returns_them(runs_root, monkeypatch):
    import matplotlib.pyplot as plt
    import torch

    from akira_nb.grokking import plots
    from akira_nb.modular_arithmetic.data import make_dataset

    base = TrainConfig(p=7, n_epochs=10, eval_every=5, d_model=32, d_mlp=64, data_seed=5,
                       snapshot_every=5, progress_every=5, checkpoint_every=0)  # fmt: skip
    split = make_dataset(7, base.train_frac, 5).train_idx
    assert torch.equal(base.dataset().train_idx, split)
    assert not torch.equal(split, make_dataset(7, base.train_frac, 0).train_idx)
    seen = []

    def spy(plot):
        def wrapped(*args):
            data = args[2] if plot.__name__ == "plot_snapshot" else args[1]
            seen.append((plot.__name__, data))
            return plot(*args)

        return wrapped

    for name in ("plot_snapshot", "plot_neuron_maps"):
        monkeypatch.setattr(plots, name, spy(getattr(plots, name)))
    plan = presets.Study(base, primes=[7], mixers=["fnet"], seeds=[0]).validate()
    open_before = set(plt.get_fignums())
    out = experiment.run_experiment(plan, progress=False)
    assert {name for name, _ in seen} == {"plot_snapshot", "plot_neuron_maps"}
    for name, data in seen:
        assert torch.equal(data.train_idx, split), name  # data_seed 5, not the seed 0
    saved = {p.stem: p for p in (out["run"].path / "figures").glob("*.png")}
    assert out["figures"] == saved and "neurons_fnet_p7" in saved
    frames = sorted(out["run"].path.glob("figures/frames_p7_fnet_s0/*.png"))  # every 5 epochs
    assert [f.name for f in frames] == ["epoch_000005.png", "epoch_000010.png"]
    assert set(plt.get_fignums()) <= open_before  # every figure closed once saved


NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "grokking_attention_vs_waves.py"


def test_notebook_shows_the_saved_figures_and_types_no_measured_numbers():
    text = NOTEBOOK.read_text()
    code = "\n".join(
        line for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
    # no figure drawn a second time (it could differ from the saved one): only out["figures"]
    assert "plots.plot_" not in code and 'out["figures"]' in code
    assert "make_dataset" not in code  # the arm's split comes from its config (data_seed)
    # the key frequencies of a run are printed from the results, not typed into the markdown
    assert "1, 3, 9, 14, 16" not in text and "k = 3, 5, 9" not in text
    assert "key_freqs" in code


def test_run_experiment_checks_the_ensemble_flag_before_making_a_folder(tmp_path):
    plan = presets.study("tiny", primes=[7], mixers=["fnet"], seeds=[0, 1], n_epochs=5)
    with pytest.raises(ValueError, match="ensemble"):
        experiment.run_experiment(plan, root=tmp_path, progress=False, ensemble="yes")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "gate_epoch, fnet_epoch, said, ratio",
    [
        (550, 800, "learned_gate groks 1.5x sooner than fnet (learned_gate at epoch 550, fnet "
         "at 800)", 800 / 550),
        (800, 550, "learned_gate groks 1.5x later than fnet (learned_gate at epoch 800, fnet "
         "at 550)", 550 / 800),
    ],
)  # fmt: skip
def test_the_gate_sentence_says_which_arm_grokked_when_and_which_way(
    gate_epoch, fnet_epoch, said, ratio
):
    rows = [_row(m, 1.0, None, p=23) for m in ("standard", "phase_shift", "full")]
    rows += [_row("learned_gate", 1.0, gate_epoch, p=23), _row("fnet", 1.0, fnet_epoch, p=23)]
    gate = _claim_of(rows, GATE, presets.study("tiny"))
    assert gate["claim"].startswith("p=23: ")
    assert gate["measured"] == said, gate["measured"]
    assert gate["measured_value"] == pytest.approx(ratio) and gate["unit"] == "x"
    assert gate["verdict"] == "not comparable" and gate["computed_verdict"] == "does not hold"


def test_claims_are_labelled_with_the_runs_own_prime():
    rows = [_row(m, 0.99, 500, p=23) for m in ("standard", "fnet", "learned_gate")]
    rows += [_row(m, 0.99, 700, p=23) for m in ("phase_shift", "full")]
    claims = kit_claims.claims(rows, presets.study("tiny"))
    assert all(c["claim"].startswith("p=23") for c in claims), [c["claim"] for c in claims]
    acc = next(c for c in claims if c["claim"] == "p=23 standard: final test accuracy")
    assert acc["claimed"] == "0.022 (the seed's, at p=53)"
    assert acc["measured_value"] == pytest.approx(0.99) and acc["unit"] == ""
    assert acc["computed_verdict"] == "does not hold"  # 0.99 vs 0.022
    grok = next(c for c in claims if c["claim"].startswith("p=23 fnet: grok epoch"))
    assert grok["measured_value"] == 500.0 and grok["unit"] == "epochs"
    assert grok["computed_verdict"] == "does not hold"  # 500 vs 27,400
    speed = next(c for c in claims if "trains 2.5x faster" in c["claim"])
    assert speed["unit"] == "x" and speed["computed_verdict"].startswith("not measurable: ")
    for c in claims:
        assert c["verdict"] == "not comparable" and "computed_verdict" in c
