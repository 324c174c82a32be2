"""Experiment 013 (differential LR): measurements on hand-made curves, the verdict rules on
constructed curves, presets, the study's arms and LRs, a resumed study, the CLI's validation and
the explorer. (The monitor's known ratios under plain SGD and the sliced optimiser's per-slice
steps are in tests/test_bandformer_optim.py; the sweep, the learning check and H1's pinned rule
in tests/test_differential_lr_tuning.py; the real tiny preset in
tests/test_differential_lr_tiny.py.)"""

import argparse
import json
import math

import numpy as np
import pytest

from akira_nb.bandformer import optim
from akira_nb.bandformer import train as train_mod
from akira_nb.differential_lr import claims as C
from akira_nb.differential_lr import cli, widgets
from akira_nb.differential_lr import evaluate as ev
from akira_nb.differential_lr import experiment as E
from akira_nb.differential_lr import presets as P
from akira_nb.runs import Run

# ----------------------------------------------------------------------------- measurements

# final losses on the evaluation batches, not 50,000 predictions (its own tests check that)
NO_LARGE_EVAL = dict(final_eval_predictions=0)


def test_steps_to_target_interpolates_between_evaluations():
    steps, losses = [10, 20, 30, 40], [4.0, 3.0, 2.0, 1.5]
    assert ev.steps_to_target(steps, losses, 2.5) == pytest.approx(25.0)  # half-way 20..30
    assert ev.steps_to_target(steps, losses, 2.0) == pytest.approx(30.0)
    assert ev.steps_to_target(steps, losses, 5.0) == 10.0  # already there at the first
    assert ev.steps_to_target(steps, losses, 1.0) is None  # never
    # the first crossing counts, not a later one after a bounce
    assert ev.steps_to_target([1, 2, 3, 4], [3.0, 1.0, 3.0, 1.0], 2.0) == pytest.approx(1.5)


def test_window_variance_is_around_the_trend():
    x = np.arange(100, dtype=float)
    line = 5.0 - 0.01 * x
    assert ev.window_variance(line, 0.25) == pytest.approx(0.0, abs=1e-20)  # a falling line
    noise = np.where(x % 2 == 0, 0.1, -0.1)  # +-0.1 alternating: differences +-0.2
    assert ev.window_variance(line + noise, 0.21) == pytest.approx(0.02)  # 20 diffs: 0.04 / 2
    noisy_early = line + np.where(x < 50, noise * 10, 0.0)  # noise before the window only
    assert ev.window_variance(noisy_early, 0.25) == pytest.approx(0.0, abs=1e-20)


def test_spike_count_against_the_running_median():
    y = np.full(60, 2.0)
    y[[20, 40]] = 4.5  # > 2x the median 2.0
    y[30] = 3.9  # not a spike
    assert ev.spike_count(y) == 2
    assert ev.spike_count(y, factor=1.9) == 3
    assert ev.spike_count(np.full(10, 1.0)) == 0


def test_rate_factors_known_ratios():
    wc = {
        "step": [5, 10],
        "band_0": [1e-4, 2e-4],
        "band_1": [1e-3, 2e-3],
        "band_2": [4e-4, 8e-4],
        "shared": [1.0, 1.0],
    }
    lrs = {"band_0": 1e-5, "band_1": 1e-4, "band_2": 1e-3, "shared": 5e-4}
    r = ev.rate_factors(wc, lrs)
    assert set(r) == {"band_0", "band_1", "band_2"}
    assert r["band_1"]["measured"] == pytest.approx(10) and r["band_1"]["factor"] == pytest.approx(
        1
    )
    assert r["band_2"]["prescribed"] == pytest.approx(100)
    assert r["band_2"]["factor"] == pytest.approx(0.04)
    word, per_band = ev.rate_verdict([r, r])
    assert word == ev.NOT_SUPPORTED and per_band["band_2"]["factor"] == pytest.approx(0.04)
    good = {k: dict(v, factor=1.5) for k, v in r.items()}
    assert ev.rate_verdict([good, good])[0] == ev.SUPPORTED
    # each seed inside 2x (1.95, 1.2) but mean + spread of log2 = 0.61 + 0.49 > 1
    spread = {k: dict(v, factor=1.95) for k, v in r.items()}
    near = {k: dict(v, factor=1.2) for k, v in r.items()}
    assert ev.rate_verdict([spread, near])[0] == ev.NOT_SUPPORTED  # inside 2x, but its spread


# ----------------------------------------------------------------------------- verdict rules


def _record(val, step_losses=None, test=None, wc=None):
    steps = list(range(10, 10 * len(val) + 1, 10))
    losses = (
        step_losses if step_losses is not None else list(np.linspace(5, val[-1], 10 * len(val)))
    )
    return {
        "history": {"step": steps, "val_loss": list(val), "train_loss": list(val)},
        "step_losses": losses,
        "test_loss": val[-1] if test is None else test,
        "weight_change": wc or {},
        "prescribed_lrs": {},
    }


def _out_from(curves: dict, plan, target, unigram=10.0):
    """What C.claims reads, from hand-made records (one list per arm, one record per seed);
    ``unigram``: the unigram loss of the learning check (10: every hand-made arm learned)."""
    records = [
        ({"arm": arm, "seed": s, "tag": f"{arm}_s{s}"}, {**rec, "seed": s})
        for arm, recs in curves.items()
        for s, rec in enumerate(recs)
    ]
    measures = {}
    for key, rec in records:
        measures.setdefault(key["arm"], []).append(ev.measure(rec, target, 0.25))
    return {
        "study": plan,
        "records": records,
        "measures": measures,
        "target": target,
        "target_rule": "given",
        "unigram": unigram,
    }


@pytest.fixture
def plan():
    return P.study(
        "tiny", seeds=[0, 1, 2], total_steps=60, sweep=[], progress=False, **NO_LARGE_EVAL
    )


def test_a_clearly_faster_and_better_arm_is_supported_an_equal_one_is_not(plan):
    # control: reaches 2.0 at step 50; differential: at step 20 (60% fewer steps), test loss
    # 10% lower, noise 4x smaller; each seed differs a little (a spread smaller than the gap)
    rng = np.random.default_rng(0)
    control, faster, equal = [], [], []
    for s in range(3):
        base = [4.0, 3.5, 3.0, 2.5, 2.0 - 0.01 * s, 1.9]
        quick = [3.0, 2.0 - 0.01 * s, 1.9, 1.8, 1.75, 1.7]
        noise = rng.normal(0, 0.1, 60)
        control.append(_record(base, list(3 + noise), test=1.9 + 0.01 * s))
        faster.append(_record(quick, list(3 + noise / 4), test=1.7 + 0.01 * s))
        equal.append(_record(base, list(3 + noise), test=1.9 + 0.01 * s))
    out = _out_from({"band": faster, "band_geomean": control}, plan, target=2.0)
    by = {c["key"]: c for c in C.claims(out)}
    assert by["H1"]["seed_verdict"] == ev.SUPPORTED, by["H1"]["measured"]
    assert by["H2"]["seed_verdict"] == ev.SUPPORTED
    assert by["H3"]["seed_verdict"] == ev.SUPPORTED
    assert all(by[k]["verdict"] == "not comparable" for k in ("H1", "H2", "H3"))  # tiny
    assert by["H4"]["seed_verdict"] == "not run"  # no monitor in these records
    assert "20%" in by["H1"]["rule"] and "std of the paired differences" in by["H1"]["rule"]
    out = _out_from({"band": equal, "band_geomean": control}, plan, target=2.0)
    by = {c["key"]: c for c in C.claims(out)}
    assert {by[k]["seed_verdict"] for k in ("H1", "H2", "H3")} == {ev.NOT_SUPPORTED}
    # faster on average but with a spread larger than the gain: NOT SUPPORTED
    c = ev.paired([50, 50, 50], [20, 60, 40])  # diffs 30, -10, 10
    assert c["relative"] >= 0.2 and not c["exceeds_spread"]
    assert ev.verdict(c, 0.2) == ev.NOT_SUPPORTED
    # an arm that never reaches the target is not faster
    never = [_record([4.0, 3.9, 3.8, 3.7, 3.6, 3.5]) for _ in range(3)]
    out = _out_from({"band": never, "band_geomean": control}, plan, target=2.0)
    assert {c["key"]: c for c in C.claims(out)}["H1"]["seed_verdict"] == ev.NOT_SUPPORTED


def test_paired_known_answer():
    c = ev.paired([3.0, 3.2, 3.1], [2.0, 2.3, 2.0])
    assert c["diffs"] == pytest.approx([1.0, 0.9, 1.1])
    assert c["mean"] == pytest.approx(1.0) and c["std"] == pytest.approx(0.1)
    assert c["relative"] == pytest.approx(1.0 / 3.1) and c["exceeds_spread"]
    assert 0 < c["p"] < 0.01
    one = ev.paired([3.0], [2.0])
    assert not one["exceeds_spread"] and math.isnan(one["p"])  # one seed: no spread


# ----------------------------------------------------------------------------- presets, arms


@pytest.mark.parametrize("name", ["013", "026_v1", "canonical_7", "spec_b_warmstart", "sbm_7p1"])
def test_each_lr_presets_arms_get_their_lrs_times_the_sweeps_multiplier(name):
    arms = list(P.ARMS)  # band_uniform too (not a default arm)
    p = P.study("tiny", lr_preset=name, arms=arms, budgets=[20, 40], progress=False)
    pre = optim.LR_PRESETS[name]
    g = optim.geometric_mean(pre.band_lrs)
    assert p.geomean == pytest.approx(g)
    assert p.base.preset == ("tiny_7p1" if len(pre.band_lrs) == 8 else "tiny")
    configs = p.configs()
    # per arm: 3 sweep points at each budget on seed 0, then seeds 1 and 2 at the longest
    assert len(configs) == len(arms) * (3 * 2 + 2)
    seen = set()
    for key, cfg in configs:
        m = key["mult"]
        assert key["tag"] == f"{key['arm']}_x{m:.4g}_b{key['budget']}_s{key['seed']}"
        assert cfg.total_steps == key["budget"] and cfg.warmup_steps == key["budget"] // 10
        if key["budget"] != 20:  # the LRs of the sweep points (the first budget) suffice
            continue
        seen.add(m)
        model, band_cfg = train_mod.build_model(cfg)
        lrs = optim.prescribed_lrs(train_mod.make_optimizer(model, cfg, band_cfg))
        bands = [lrs[f"band_{i}"] for i in range(len(pre.band_lrs))]
        if key["arm"] == "band_geomean":  # one LR: mult x the geometric mean
            assert bands == pytest.approx([m * g] * len(bands)) and lrs["shared"] == pytest.approx(
                m * g
            )
            assert key["lr"] == pytest.approx(m * g)
        elif key["arm"] == "band_uniform":  # one LR: mult x the shared LR
            assert list(lrs.values()) == pytest.approx([m * pre.shared_lr] * len(lrs))
            assert key["lr"] == pytest.approx(m * pre.shared_lr)
        else:  # band and baseline_differential: the band LRs x mult, the ratios kept
            assert bands == pytest.approx([m * lr for lr in pre.band_lrs])
            assert lrs["shared"] == pytest.approx(m * pre.shared_lr)
            assert key["lr"] == pytest.approx(m * g)  # the same learning budget as the control
    assert sorted(seen) == pytest.approx([10**-0.5, 1.0, 10**0.5])
    with pytest.raises(ValueError, match="needs at least 3 points spanning at least 10x"):
        P.study("tiny", sweep=[1.0, 3.0])


def test_presets_sizes():
    assert P.study("tiny").seeds == [0, 1, 2] and P.PRESETS["a100"]["seeds"] == [0, 1, 2, 3, 4]
    assert C.comparability(P.study("tiny")).startswith("the tiny_7p1 model")
    assert P.study("a100", device="cpu").base.preset == "canonical_7p1"
    assert C.comparability(P.study("a100", device="cpu")) is None
    assert P.study("tiny", lr_preset="custom", band_lrs=(1e-4,) * 7).shared_lr == pytest.approx(
        1e-4
    )


def test_the_cli_copies_equal_the_real_names():
    assert cli.ARMS == P.ARMS and cli.DEFAULT_ARMS == P.DEFAULT_ARMS
    assert set(cli.LR_PRESETS) == set(optim.LR_PRESETS) | {optim.CUSTOM}


# ----------------------------------------------------------------------------- cli validation


def _args(**kw):
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    flags = []
    for k, v in kw.items():
        flags.append(f"--{k}")
        if v is not True:
            flags += v if isinstance(v, list) else [str(v)]
    return p.parse_args(["--size", "tiny", *flags])


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(arms=["band", "bands"]), "arms='bands' is not allowed"),
        (dict(**{"lr-preset": "fast"}), "lr_preset='fast' is not allowed"),
        (dict(seeds=["0", "x"]), "'x' is not an integer seed"),
        (dict(seeds=["0", "0"]), "repeats a seed"),
        (dict(seeds=["-1"]), r"seeds\[0\]=-1"),
        (dict(total_steps=0), "total_steps=0"),
        (dict(**{"band-lrs": "1e-3,1e-2"}), "pass lr_preset='custom'"),
        (dict(**{"lr-preset": "custom", "band-lrs": "1e-3,1e-2,1e-1"}), "7 or 8 bands"),
        (dict(budgets=["40", "x"]), "'x' is not an integer step count"),
        (dict(budgets=["40", "40"]), r"budgets=\[40, 40\] repeats 40"),
        (dict(budgets=["0", "40"]), r"budgets\[0\]=0"),
        (dict(budgets=["40", "200"], total_steps=100), "total_steps=100 and budgets="),
        (dict(sweep="1,3"), r"sweep=\[1.0, 3.0\] has 2 point\(s\)"),
        (dict(sweep="0.1,1,0"), r"sweep\[2\]=0"),
        (dict(**{"final-eval-predictions": "-1"}), "final_eval_predictions=-1"),
    ],
)
def test_cli_refuses_bad_input_before_any_folder(runs_root, kw, match):
    with pytest.raises(ValueError, match=match):
        cli.main(_args(**kw))
    assert not runs_root.exists()


# ----------------------------------------------------------------------------- a real study


def test_the_cli_checks_its_flags_and_builds_the_study_without_importing_torch():
    """Bad input is refused, and a good study built, before torch is imported (seconds on a
    fresh Colab kernel)."""
    import subprocess
    import sys

    code = """
import argparse, sys
from akira_nb.differential_lr import cli
p = argparse.ArgumentParser()
cli.add_arguments(p)
try:
    cli.config_from_args(p.parse_args(["--size", "tiny", "--budgets", "-1"]))
except ValueError as exc:
    print("REFUSED", exc)
lrs = "1e-5,1e-4,1e-3,1e-3,1e-2,1e-2,1e-2"
plan = cli.config_from_args(p.parse_args(["--size", "tiny", "--lr-preset", "custom",
                                          "--band-lrs", lrs]))
print("BUILT", plan.size, plan.shared_lr > 0)
print("TORCH", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "REFUSED" in out.stdout and "budgets" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "BUILT tiny True" in out.stdout, out.stderr[-2000:]
    assert "TORCH False" in out.stdout


def test_a_resumed_study_reloads_finished_trainings_and_continues_a_half_trained_one(
    runs_root, monkeypatch
):
    kw = dict(
        seeds=[0, 1],
        arms=["band"],
        sweep=[],
        seq_len=16,
        batch_size=4,
        total_steps=10,
        **NO_LARGE_EVAL,
        warmup_steps=2,
        eval_every=2,
        checkpoint_every=5,
        monitor_every=2,
        progress=False,
    )
    plan = P.study("tiny", **kw)
    out = E.run_experiment(plan, name="r", root=runs_root.parent / "uninterrupted", log=None)
    assert [k["tag"] for k, _ in out["records"]] == ["band_x1_b10_s0", "band_x1_b10_s1"]
    # the same study "disconnected" half-way through its seed-1 training (step-5 checkpoint)
    save = Run.save_checkpoint

    class Disconnect(Exception):
        pass

    def lost(self, state, step, tag="", keep=2):
        if tag == "band_x1_b10_s1" and step == 10:
            raise Disconnect
        return save(self, state, step, tag=tag, keep=keep)

    monkeypatch.setattr(Run, "save_checkpoint", lost)
    with pytest.raises(Disconnect):
        E.run_experiment(plan, name="r", log=None)
    monkeypatch.setattr(Run, "save_checkpoint", save)
    run = Run.find_latest(P.EXPERIMENT, "r")
    assert [p.stem for p in (run.path / "arms").glob("*.json")] == ["band_x1_b10_s0"]
    assert [p.name for p in run.checkpoint_dir("band_x1_b10_s1").iterdir()] == ["ckpt_000000005.pt"]
    # a finished training keeps only its final checkpoint
    assert [p.name for p in run.checkpoint_dir("band_x1_b10_s0").iterdir()] == ["ckpt_000000010.pt"]
    again = E.run_experiment(P.study("tiny", **kw), name="r", resume=True, log=None)
    assert again["run"].path == run.path
    with pytest.raises(ValueError, match="resume refused.*base.offline saved False, now True"):
        E.run_experiment(P.study("tiny", offline=True, **kw), name="r", resume=True, log=None)
    assert again["stats"] == out["stats"] and again["claims"] == out["claims"]
    assert again["target"] == out["target"]
    saved = json.loads((run.path / "results.json").read_text())
    assert {c["key"] for c in saved["claims"]} == {"H1", "H2", "H3", "H4"}
    by = {c["key"]: c["seed_verdict"] for c in saved["claims"]}
    assert {by[k] for k in ("H1", "H2", "H3")} == {"not run"}  # no control arm
    assert by["H4"] == "not measurable: arm band did not learn"  # 10 steps: above unigram
    assert set(out["figures"]) == {"curves", "weight_change", "sweep"}
    assert out["rates"]["band"]["band_6"]["prescribed"] == pytest.approx(3000)
    # the explorer over the saved results
    found = widgets.load_results()
    assert list(found) == ["013"]
    lines, fig = widgets.explore(found, "013", "band")
    assert lines[0].startswith("013: band") and any("H4" in x for x in lines)
    assert "  at 10 steps: tuned x1 (LR 0.000849), val " in "\n".join(lines)
    with pytest.raises(ValueError, match="arm='nope' was not run"):
        widgets.explore(found, "013", "nope")
    with pytest.raises(ValueError, match="lr_preset='026_v1' has no saved study"):
        widgets.explore(found, "026_v1", "band")
    box, controls = widgets.build_explorer(found)
    assert controls["lr_preset"].value == "013" and box.children[0].children[1] is controls["arm"]


def test_the_final_losses_held_out_set_size_is_a_flag():
    assert cli.config_from_args(_args()).final_eval_predictions == 50_000  # the preset's
    plan = cli.config_from_args(_args(**{"final-eval-predictions": 64}))
    assert plan.final_eval_predictions == 64
    assert "over at least 64 held-out" in plan.describe()


def test_cli_main_runs_a_small_study_and_its_kit_summary(runs_root, capsys):
    args = _args(arms=["band", "band_geomean"], seeds=["0"], total_steps=8, sweep="", quiet=True)
    args.final_eval_predictions = 64  # the 50,000 of the preset: tests/test_differential_lr_tuning
    out = cli.main(args)
    printed = capsys.readouterr().out
    assert "Differential LR is" in printed and "Conclusion (013 section 5)" in printed
    assert f"this study: {out['cpu_seconds']:.0f} CPU-s (process time" in printed
    assert out["study"].seeds == [0] and [r["best"] for r in out["sweep"]] == [1.0, 1.0]
    assert "not tuned (sweep=[])" in out["tables"]["tuned"]
    s = C.kit_summary(out)
    assert s["run"].startswith(str(runs_root)) and s["size"] == "tiny"
    assert all(c["verdict"] in ("not comparable", "not run") for c in s["claims"])
    for c in s["claims"]:  # the claims contract
        assert {"measured_value", "unit"} <= set(c)
        if c["verdict"] == "not comparable":
            assert c["computed_verdict"].split(":")[0] in (
                "holds",
                "does not hold",
                "not measurable",
            )


def test_offline_and_eval_batches_reach_the_study_and_the_verdicts_say_why(monkeypatch, capsys):
    from akira_nb import standins

    args = _args(offline=True, **{"eval-batches": 1, "total_steps": 3})
    args.size = "t4"
    plan = cli.config_from_args(args)
    assert plan.base.offline is True and plan.base.eval_batches == 1
    assert plan.base.dataset == "wikitext-103" and plan.base.tokenizer == "gpt2-standin"
    assert "offline stand-ins" in C.comparability(plan)
    # every verdict against the seed reads not comparable, whatever the rule says
    curves = {
        "band": [_record([3.0, 2.0 - 0.05 * s, 1.0 + 0.03 * s]) for s in range(3)],
        "band_geomean": [_record([3.0, 2.5, 2.0 + 0.01 * s]) for s in range(3)],
    }
    by = {c["key"]: c for c in C.claims(_out_from(curves, plan, target=2.2))}
    assert by["H1"]["seed_verdict"] == ev.SUPPORTED  # computed by the rule all the same
    assert {by[k]["verdict"] for k in ("H1", "H2", "H3")} == {standins.NOT_COMPARABLE}
    assert by["H4"]["verdict"] == "not run"  # no monitor in these records
    seen = {}

    def fake_study(plan, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(E, "run_experiment", fake_study)
    with pytest.raises(SystemExit):
        cli.main(args)
    assert capsys.readouterr().out.splitlines()[0] == standins.BANNER
    assert seen["banner"] is False
