"""Experiment 013: the study's validation (sweep tags, sweep seeds, targets, step budgets), the
stability measure's detrending, the template's wording, the rule texts, the prescribed LRs in
a training's summary, the sliced AdamW's batched rescale and the explorer's wiring."""

import numpy as np
import pytest
import torch
from test_differential_lr import _args, _out_from, _record

from akira_nb.bandformer import optim
from akira_nb.bandformer import train as train_mod
from akira_nb.differential_lr import claims as C
from akira_nb.differential_lr import cli, widgets
from akira_nb.differential_lr import evaluate as ev
from akira_nb.differential_lr import experiment as E
from akira_nb.differential_lr import presets as P

# ----------------------------------------------------------------------------- validation

# final losses on the evaluation batches, not 50,000 predictions (its own tests check that)
NO_LARGE_EVAL = dict(final_eval_predictions=0)


@pytest.mark.parametrize(
    "sweep, match",
    [
        ([0.3, 3.0, 3.0], r"sweep=\[0.3, 3.0, 3.0\] repeats 3.0"),
        ([0.3, 3.0, 3.00001], r"repeats 3.00001 \(multipliers must differ in their first 4"),
        ([0.3, 1.0, 2.9], r"3 point\(s\) spanning 9.67x; a sweep needs at least 3 points"),
        ("3", r"sweep='3' must be a list"),
    ],
)
def test_sweep_multipliers_and_their_tags_must_differ_and_span_10x(sweep, match):
    with pytest.raises(ValueError, match=match):
        P.study("tiny", sweep=sweep, progress=False)


def test_sweep_seeds_are_among_the_seeds_and_follow_given_seeds():
    with pytest.raises(ValueError, match=r"sweep_seeds=\[9\].*not among seeds=\[0, 1, 2\]"):
        P.study("tiny", seeds=[0, 1, 2], sweep_seeds=[9], progress=False)
    p = P.study("tiny", seeds=[5, 6, 7], progress=False)
    assert p.sweep_seeds == [5]
    short = [k for k, _ in p.configs() if k["budget"] < p.longest]
    assert len(short) == 3 * 3 and {k["seed"] for k in short} == {5}  # 3 arms x 3 points
    assert P.study("a100", seeds=[7, 8, 9], device="cpu").sweep_seeds == [7, 8]  # a100: two
    assert P.study("tiny", seeds=[5, 6], sweep_seeds=[6], progress=False).sweep_seeds == [6]
    plan = cli.config_from_args(_args(seeds=["5", "6"], **{"sweep-seeds": ["6"]}))
    assert plan.sweep_seeds == [6]


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(target_loss=0.0), "target_loss=0.0"),
        (dict(model_overrides=[1]), r"model_overrides=\[1\] must be a dict"),
        (dict(total_steps=2, warmup_steps=0), r"total_steps=2 .*at least 3 steps after"),
        (dict(total_steps=10, warmup_steps=8), r"total_steps=10 .*at least 3 steps after"),
    ],
)
def test_study_refuses_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        P.study("tiny", progress=False, **kw)


def test_a_shorter_budget_scales_the_warmup(runs_root):
    p = P.study("tiny", total_steps=4, progress=False)  # the preset's 20 of 200: 10%
    assert p.base.warmup_steps == 0 and p.base.total_steps == 4 and p.budgets == [4]
    assert P.study("tiny", total_steps=40, progress=False).base.warmup_steps == 4
    assert P.study("tiny", total_steps=40, warmup_steps=6).base.warmup_steps == 6  # given
    tiny = P.study("tiny", progress=False)
    assert tiny.budgets == [40, 200] and tiny.base.total_steps == 200
    assert tiny.base.warmup_steps == 20 and tiny.warmup_for(40) == 4  # each budget's 10%
    assert P.study("tiny", budgets=[50, 10]).budgets == [10, 50]  # sorted
    plan = cli.config_from_args(_args(total_steps=4))
    assert plan.base.warmup_steps == 0 and "warm-up 0" in plan.describe()


def test_comparability_names_the_models_real_shape():
    over = {"n_layers": 3}
    why = C.comparability(P.study("tiny", model_overrides=over, progress=False))
    assert why.startswith("the tiny_7p1 model (3 layers, 128 wide)")


# ----------------------------------------------------------------------------- H3's measure


def test_window_variance_ignores_curvature_and_the_warmup():
    x = np.arange(80, dtype=float)  # a tiny run: the last 20 steps still bend (no noise)
    curve = 2.0 + 3.0 * np.exp(-x / 20)  # around a line: variance 1.2e-5
    assert ev.window_variance(curve, 0.25) < 1e-6
    x = np.arange(400, dtype=float)
    curve = 2.0 + 3.0 * np.exp(-x / 60)
    noise = np.random.default_rng(0).normal(0, 0.1, x.size)
    assert ev.window_variance(curve + noise, 0.25) == pytest.approx(0.01, rel=0.15)
    assert ev.window_variance(5.0 - 0.01 * x, 0.25) == pytest.approx(0.0, abs=1e-20)  # a line
    # the warm-up is left out even when the window would reach into it
    wild = np.where(x < 100, noise * 10, 0.0) + 1.0
    assert ev.window_variance(wild, 1.0, warmup=100) == pytest.approx(0.0, abs=1e-20)
    assert ev.window_variance(wild, 1.0) > 0.1
    with pytest.raises(ValueError, match="needs >= 3 steps after the warm-up"):
        ev.window_variance(wild, 1.0, warmup=398)


# ----------------------------------------------------------------------------- rules, template


def _plan():
    return P.study(
        "tiny", seeds=[0, 1, 2], total_steps=60, sweep=[], progress=False, **NO_LARGE_EVAL
    )


def _template_out(band, control, unigram=10.0):
    plan = _plan()
    out = _out_from({"band": band, "band_geomean": control}, plan, target=2.0, unigram=unigram)
    out["stats"] = ev.arm_stats(out["measures"], plan.longest)
    out["claims"] = C.claims(out)
    out["recommendation"] = C.recommendation(out)
    return out


def test_the_template_counts_an_unreached_seed_as_the_budget_as_h1_does():
    control = [_record([4.0, 3.5, 3.0, 2.5, 2.0, 1.9]) for _ in range(3)]
    never = [_record([4.0, 3.9, 3.8, 3.7, 3.6, 3.5]) for _ in range(3)]
    out = _template_out(never, control)
    t = C.template(out)
    h1 = {c["key"]: c for c in out["claims"]}["H1"]
    assert h1["measured_value"] == pytest.approx(50 / 60)  # control 50 steps, never = 60
    assert "- Differential: 60.0 +- 0.0 steps to target (3 seed(s) never reached it)" in t
    assert "budget): 0.83x (H1: NOT SUPPORTED)" in t and "speedup 0.83x" in h1["measured"]
    assert "the differential arm needs 20.0% more steps" in h1["measured"]
    assert "Weight change ratios match prescribed: not measured" in t  # H4 not run


def test_rule_texts_say_the_thresholds_and_the_spread_exactly():
    control = [_record([4.0, 3.5, 3.0, 2.5, 2.0 - 0.01 * s, 1.9]) for s in range(3)]
    quick = [_record([3.0, 2.0 - 0.01 * s, 1.9, 1.8, 1.75, 1.7]) for s in range(3)]
    out = _template_out(quick, control)
    by = {c["key"]: c for c in out["claims"]}
    assert "at least 20% fewer steps" in by["H1"]["rule"] and "1.25x" in by["H1"]["rule"]
    for key in ("H1", "H2", "H3"):
        rule = by[key]["rule"]
        assert "mean paired difference > the std of the paired differences" in rule
        assert "paired t-test p" in rule
    assert "first differences" in by["H3"]["rule"] and "Spikes" in by["H3"]["rule"]
    t = C.template(out)
    assert "H1 (faster learning): SUPPORTED (differential faster, paired t-test p = " in t


# ----------------------------------------------------------------------------- prescribed LRs


def test_the_summary_carries_the_prescribed_lrs_and_the_study_builds_no_optimiser(
    runs_root, monkeypatch
):
    calls = []
    real = optim.make_sliced_adamw
    monkeypatch.setattr(
        optim, "make_sliced_adamw", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    kw = dict(
        seeds=[0],
        arms=["baseline_differential"],
        sweep=[],
        seq_len=16,
        batch_size=4,
        **NO_LARGE_EVAL,
    )
    plan = P.study("tiny", total_steps=6, warmup_steps=1, eval_every=3, monitor_every=2, **kw)
    out = E.run_experiment(plan, name="p", log=None)
    assert len(calls) == 1  # the training's own optimiser only
    rec = out["records"][0][1]
    cfg = plan.configs()[0][1]
    model, band_cfg = train_mod.build_model(cfg)
    want = optim.prescribed_lrs(train_mod.make_optimizer(model, cfg, band_cfg))
    assert rec["prescribed_lrs"] == want and want["band_6"] == pytest.approx(3e-2)


# ----------------------------------------------------------------------------- sliced AdamW


def _reference_adamw(w0, grads, lr_rows, lr_mults, wd, betas=(0.9, 0.999), eps=1e-8):
    m, v, p = torch.zeros_like(w0), torch.zeros_like(w0), w0.clone()
    for t, (g, k) in enumerate(zip(grads, lr_mults), 1):
        lr = lr_rows * k
        p = p * (1 - lr * wd)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        denom = v.sqrt() / (1 - betas[1] ** t) ** 0.5 + eps
        p = p - lr / (1 - betas[0] ** t) * m / denom
    return p


def test_sliced_adamw_rescales_all_tensors_in_one_batched_call(monkeypatch):
    g = torch.Generator().manual_seed(0)
    rows = torch.tensor([1e-5, 1e-4, 1e-3, 3e-2], dtype=torch.float64).view(-1, 1)
    top = float(rows.max())
    w0 = [torch.randn(4, 5, generator=g, dtype=torch.float64) for _ in range(2)]
    w0.append(torch.randn(4, generator=g, dtype=torch.float64))  # a bias: one scale per row
    params = [torch.nn.Parameter(w.clone()) for w in w0]
    scales = [rows / top, rows / top, rows.view(-1) / top]
    opt = optim.SliceScaledAdamW(
        [{"params": params, "lr": top, "weight_decay": 0.1}],
        scaled=list(zip(params, scales)),
        lr=top,
    )
    calls = []
    real_mul, real_pmul = torch._foreach_mul_, torch.Tensor.mul_
    monkeypatch.setattr(torch, "_foreach_mul_", lambda a, b: calls.append(len(a)) or real_mul(a, b))
    per_tensor = []
    monkeypatch.setattr(
        torch.Tensor,
        "mul_",
        lambda self, o: per_tensor.append(torch.is_tensor(o)) or real_pmul(self, o),
    )
    grads = [
        [torch.randn(w.shape, generator=g, dtype=torch.float64) for w in w0] for _ in range(12)
    ]
    mults = [min(1.0, (t + 1) / 4) for t in range(12)]
    for gs, k in zip(grads, mults):
        opt.param_groups[0]["lr"] = top * k
        for p, gr in zip(params, gs):
            p.grad = gr.clone()
        opt.step()
    assert calls == [3] * 12 and not any(per_tensor)  # no tensor-by-tensor row scaling
    for i, (p, w, s) in enumerate(zip(params, w0, scales)):
        want = _reference_adamw(w, [gs[i] for gs in grads], s * top, mults, 0.1)
        torch.testing.assert_close(p.detach(), want, rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------------- the explorer


def test_the_explorer_redraws_the_chosen_arm(runs_root, capsys):
    kw = dict(
        seeds=[0],
        arms=["band", "band_geomean"],
        sweep=[],
        seq_len=16,
        batch_size=4,
        **NO_LARGE_EVAL,
    )
    E.run_experiment(
        P.study("tiny", total_steps=6, warmup_steps=1, eval_every=3, **kw), name="w", log=None
    )
    found = widgets.load_results()
    box, controls = widgets.build_explorer(found)
    capsys.readouterr()
    controls["arm"].value = "band_geomean"
    # outside a kernel the Output widget lets the callback's print through (after its
    # clear_output escapes): the chosen arm's lines, and no error caught in the callback
    shown = capsys.readouterr().out
    assert "\r013: band_geomean (uniform (from the geometric mean)), 1 seeds, target" in shown
    assert "steps_to_target: " in shown and "error" not in shown and "Differential LR is" in shown
    controls["arm"].value = "band"
    assert "\r013: band (differential (band LRs)), 1 seeds" in capsys.readouterr().out
