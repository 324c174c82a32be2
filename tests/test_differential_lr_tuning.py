"""013: its form of the kit's LR sweep rule (the rule itself: test_lr_sweep.py), the budgets'
tuning (which trainings run, each once), the final losses over at least 50,000 held-out
predictions for the reported trainings, the learning check, H1's pinned rule (its 20% threshold
and its every-seed condition), the direction beside every p, the template agreeing with the H
lines, the claims contract and the figures (points per band, one sweep panel per budget)."""

import json
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from test_differential_lr import _out_from, _record

from akira_nb import lr_sweep, text
from akira_nb.bandformer import look_inside
from akira_nb.bandformer import train as train_mod
from akira_nb.differential_lr import claims as C
from akira_nb.differential_lr import evaluate as ev
from akira_nb.differential_lr import experiment as E
from akira_nb.differential_lr import plots
from akira_nb.differential_lr import presets as P
from akira_nb.differential_lr import sweep as sw
from akira_nb.differential_lr import trainings as T

# ----------------------------------------------------------------------------- the edge rule
# (the rule itself on known answers: tests/test_lr_sweep.py; here 013's form of it)


def _bowl(opt):
    """A loss with its minimum at multiplier ``opt`` (a parabola in log10)."""
    return lambda m: 2.0 + (math.log10(m) - math.log10(opt)) ** 2


def test_013_uses_the_kits_one_sweep_rule():
    assert P.SWEEP == list(lr_sweep.GRID) and ev.LEARN_MARGIN is lr_sweep.LEARN_MARGIN
    assert P.study("tiny", progress=False).sweep_extensions == lr_sweep.MAX_EXTENSIONS
    assert sw.tag(10**0.5) == "3.162"  # 4 significant digits name 013's trainings


def test_an_interior_best_adds_no_point_and_has_no_note():
    res = sw.run_sweep(_bowl(1.0), [10**-0.5, 1.0, 10**0.5])
    assert res["best"] == 1.0 and res["extensions"] == 0 and res["note"] == ""
    assert [p["mult"] for p in res["points"]] == pytest.approx([0.3162, 1.0, 3.162], rel=1e-3)
    assert set(res["points"][0]) == {"mult", "loss"} and res["edge"] is None


def test_a_best_at_an_edge_extends_beyond_it_until_interior():
    seen = []
    res = sw.run_sweep(lambda m: seen.append(m) or _bowl(10.0)(m), [10**-0.5, 1.0, 10**0.5])
    # each multiplier trained once, normed, and reported as trained; x10 names its training
    assert sorted(seen) == [p["mult"] for p in res["points"]] and len(set(seen)) == 5
    assert seen == [sw.norm(m) for m in seen] and sw.tag(seen[3]) == "10"
    assert res["best"] == pytest.approx(10.0)
    assert [p["mult"] for p in res["points"]] == pytest.approx(
        [10**-0.5, 1.0, 10**0.5, 10.0, 10**1.5]
    )
    assert res["extensions"] == 2 and res["edge"] is None and res["note"] == ""
    low = sw.run_sweep(_bowl(0.1), [1.0, 3.0, 10.0])  # best at the low edge: 1/3, then 1/9
    assert [p["mult"] for p in low["points"]][:2] == pytest.approx([1 / 9, 1 / 3])
    assert low["best"] == pytest.approx(1 / 9) and low["edge"] == "low"


def test_a_best_still_at_an_edge_after_two_extensions_says_the_optimum_may_lie_beyond():
    res = sw.run_sweep(lambda m: -m, [0.1, 1.0, 10.0])  # keeps falling: never bracketed
    assert [p["mult"] for p in res["points"]] == pytest.approx([0.1, 1, 10, 100, 1000])
    assert res["edge"] == "high" and res["extensions"] == 2
    assert res["note"] == (
        "the optimum may lie beyond x1e+03 (the best point is at the high edge after 2 "
        "extension(s))"
    )
    # a diverged training (NaN) ranks last: x1 is the interior best
    nan = sw.run_sweep(lambda m: math.nan if m > 2 else _bowl(1.0)(m), [0.1, 1.0, 10.0])
    assert nan["best"] == 1.0 and nan["extensions"] == 0 and math.isnan(nan["points"][2]["loss"])


def test_check_grid():
    assert sw.check_grid("sweep", []) == []
    assert sw.check_grid("sweep", [3.0, 0.3, 1.0]) == [0.3, 1.0, 3.0]
    assert sw.check_grid("sweep", [10**-0.5, 1, 10**0.5]) == [0.316227766, 1.0, 3.16227766]
    with pytest.raises(ValueError, match=r"2 point\(s\) spanning 10x; a sweep needs at least 3"):
        sw.check_grid("sweep", [1.0, 10.0])
    with pytest.raises(ValueError, match=r"\(or \[\] for no sweep: every arm at its prescribed"):
        sw.check_grid("sweep", [1.0, 10.0])
    with pytest.raises(ValueError, match=r"sweep\[1\]=-1"):
        sw.check_grid("sweep", [1.0, -1, 10.0])


# ----------------------------------------------------------------------------- tuning


class _Trainings:
    """Stands in for trainings.Trainings: losses from ``table(arm, mult, budget, seed)``,
    every distinct training recorded once (as the real one trains each once)."""

    def __init__(self, plan, table, unigram):
        self.plan, self.table, self.unigram, self.trained = plan, table, unigram, []

    def get(self, arm, m, budget, seed):
        key = (arm, sw.tag(m), budget, seed)
        if key not in self.trained:
            self.trained.append(key)
        return {}

    def final_loss(self, arm, m, budget, seed):
        self.get(arm, m, budget, seed)
        return self.table(arm, m, budget, seed)

    def sweep_loss(self, arm, budget):
        seeds = self.plan.sweep_seeds
        return lambda m: float(np.mean([self.final_loss(arm, m, budget, s) for s in seeds]))


def test_each_budget_is_swept_the_longer_one_centred_on_the_shorter_and_seeds_train_once():
    plan = P.study("tiny", arms=["band"], budgets=[40, 200], progress=False)
    opt = {40: 10.0, 200: 10**0.5}
    fake = _Trainings(plan, lambda a, m, b, s: _bowl(opt[b])(m) + 0.01 * s, unigram=3.0)
    out = T.tune(fake, "band")
    assert out[40]["best"] == pytest.approx(10.0) and out[40]["extensions"] == 2
    assert out[40]["learned"]["ok"]  # 2.0 < 3.0 - 0.05
    # 200 steps: centred on x10 (x3.16, x10, x31.6), best at the low edge: one more (x1)
    assert [p["mult"] for p in out[200]["points"]] == pytest.approx([1, 10**0.5, 10, 10**1.5])
    assert out[200]["best"] == pytest.approx(10**0.5) and out[200]["note"] == ""
    tags = [t for t in fake.trained]
    assert len(tags) == len(set(tags)) == 5 + 4 + 2  # each training once
    assert tags[-2:] == [("band", "3.162", 200, 1), ("band", "3.162", 200, 2)]


def test_an_arm_that_did_not_learn_at_the_short_budget_is_swept_from_x1_at_the_long_one():
    plan = P.study("tiny", arms=["band"], budgets=[40, 200], progress=False)
    fake = _Trainings(plan, lambda a, m, b, s: _bowl(1.0)(m) + (1.0 if b == 40 else 0), 3.0)
    out = T.tune(fake, "band")
    assert not out[40]["learned"]["ok"] and out[40]["best"] == 1.0
    assert [p["mult"] for p in out[200]["points"]] == pytest.approx([10**-0.5, 1, 10**0.5])


# ----------------------------------------------------------------------------- learning check


def test_the_learning_check_needs_every_seed_below_unigram_minus_the_margin():
    ok = ev.learned([3.0, 3.1], unigram=3.19)
    assert ok["ok"] and ok["failed"] == []
    bad = ev.learned([3.0, 3.15, math.nan], unigram=3.19, seeds=[4, 5, 6])
    assert not bad["ok"] and [s for s, _ in bad["failed"]] == [5, 6]
    assert bad["line"].startswith("did not learn: final val loss 3.1500 at seed 5, nan at seed 6")
    # the kit's rule (akira_nb.lr_sweep.learned): on the bar, the margin below, has learned;
    # a hair above it has not
    edge = ev.learned([3.19 - ev.LEARN_MARGIN], unigram=3.19)
    assert edge["ok"] and ev.LEARN_MARGIN == 0.05
    above = ev.learned([3.19 - ev.LEARN_MARGIN + 1e-9], unigram=3.19)
    assert not above["ok"] and above["line"].endswith(
        "not at least 0.05 nats below the unigram 3.1900"
    )


def _linear(s, n=6, floor=1.0):
    """A validation curve at steps 10..10n crossing 2.0 at step ``s`` (None: never)."""
    if s is None:
        return [3.0 - 0.01 * i for i in range(n)]
    return [max(3.0 - st / s, floor) for st in range(10, 10 * n + 1, 10)]


def _plan(seeds=(0, 1, 2), steps=60):
    return P.study("tiny", seeds=list(seeds), total_steps=steps, sweep=[], progress=False)


def _judged(band_steps, control_steps, unigram=10.0, plan=None):
    plan = plan or _plan(range(len(band_steps)))
    curves = {
        "band": [_record(_linear(s)) for s in band_steps],
        "band_geomean": [_record(_linear(s)) for s in control_steps],
    }
    out = _out_from(curves, plan, target=2.0, unigram=unigram)
    out["stats"] = ev.arm_stats(out["measures"], plan.longest)
    out["claims"] = C.claims(out)
    out["recommendation"] = C.recommendation(out)
    return out, {c["key"]: c for c in out["claims"]}


def test_no_hypothesis_is_judged_when_an_arm_did_not_learn():
    # band ends at 1.0, the control at 1.8-1.89
    out, by = _judged([20, 21, 22], [50, 52, 54], unigram=2.0)
    assert by["H1"]["seed_verdict"] == ev.SUPPORTED  # both below 2.0 - 0.05
    out, by = _judged([20, 21, 22], [50, 52, 54], unigram=1.04)  # 1.0 is not 0.05 below 1.04
    for key in ("H1", "H2", "H3"):
        assert by[key]["seed_verdict"] == "not measurable: arm band, band_geomean did not learn"
        assert by[key]["verdict"] == "not comparable"  # tiny
        assert by[key]["computed_verdict"] == by[key]["seed_verdict"]
        assert "not judged" in by[key]["measured"]
    assert by["H1"]["measured_value"] == pytest.approx(52 / 21)  # measured all the same
    assert out["recommendation"]["word"] == "NOT JUDGED"
    assert "Differential LR is not judged" in C.template(out)


# ----------------------------------------------------------------------------- H1 pinned


def test_h1_needs_20_percent_fewer_steps_not_any_improvement():
    assert C.SEED_CLAIMS["H1"][2] == 0.20
    # 10% fewer steps at every seed, far beyond the spread: faster, but short of the 20%
    _, by = _judged([45, 46.8, 48.6], [50, 52, 54])
    assert by["H1"]["detail"]["relative"] == pytest.approx(0.10)
    assert by["H1"]["detail"]["exceeds_spread"]
    assert by["H1"]["seed_verdict"] == ev.NOT_SUPPORTED
    assert by["H1"]["computed_verdict"] == "does not hold"
    # 10% MORE steps: not supported either (a negative threshold would pass it)
    _, by = _judged([55, 57.2, 59.4], [50, 52, 54])
    assert by["H1"]["seed_verdict"] == ev.NOT_SUPPORTED
    # 25% fewer (speedup 1.33x): supported; 15% fewer: not
    _, by = _judged([37.5, 39, 40.5], [50, 52, 54])
    assert by["H1"]["seed_verdict"] == ev.SUPPORTED and by["H1"]["computed_verdict"] == "holds"
    _, by = _judged([42.5, 44.2, 45.9], [50, 52, 54])
    assert by["H1"]["seed_verdict"] == ev.NOT_SUPPORTED


def test_h1_needs_the_target_reached_at_every_seed():
    # 4 seeds: 45 steps fewer at three, never at the fourth (counted as the budget, 60): the
    # censored comparison passes (mean 32.5 > std 25, 59% fewer), the every-seed rule does not
    plan = _plan(range(4), steps=60)
    _, by = _judged([10, 10, 10, None], [55] * 4, plan=plan)
    d = by["H1"]["detail"]
    assert ev.verdict(d, 0.20) == ev.SUPPORTED and not d["every_seed"]
    assert by["H1"]["seed_verdict"] == ev.NOT_SUPPORTED
    assert "never reached it at 1 of 4 seeds" in by["H1"]["measured"]
    _, by = _judged([10, 10, 10, 10], [55] * 4, plan=plan)
    assert by["H1"]["seed_verdict"] == ev.SUPPORTED  # the same, reached at every seed


# ----------------------------------------------------------------------------- wording


def test_every_p_comes_with_its_direction_and_no_double_negative():
    out, by = _judged([60, 58, 59], [30, 29.5, 28.5])  # differential slower at every seed
    h1 = by["H1"]
    assert h1["seed_verdict"] == ev.NOT_SUPPORTED and h1["detail"]["p"] < 0.05
    assert "differential slower, paired t-test p = " in h1["measured"]
    assert (
        "paired t-test p = " in h1["measured"]
        and ", significant, against the claim" in h1["measured"]
    )
    assert "more steps" in h1["measured"] and "fewer steps -" not in h1["measured"]
    t = C.template(out)
    assert "H1 (faster learning): NOT SUPPORTED (differential slower, paired t-test p = " in t
    for key, words in (("H2", "test loss"), ("H3", "variance")):
        assert f"paired t-test p = {by[key]['detail']['p']:.3g}" in by[key]["measured"]
        assert words in by[key]["measured"].split("paired t-test")[0]


def test_the_template_and_the_h_lines_are_one_computation():
    out, by = _judged([20, 21, 22], [50, 52, 54])
    t = C.template(out)
    assert f"budget): {by['H1']['measured_value']:.2f}x (H1: SUPPORTED)" in t
    assert f"speedup {by['H1']['measured_value']:.2f}x" in by["H1"]["measured"]
    for key in ("H1", "H2", "H3", "H4"):
        assert C.h_line(by[key]) in t.splitlines()
    change = by["H2"]["measured_value"]
    assert change < 0 and f"Differential vs uniform: {-change:.1f}% lower test loss (H2: " in t


def test_claims_carry_the_contract_keys():
    _, by = _judged([20, 21, 22], [50, 52, 54])
    for c in by.values():
        assert {"claim", "claimed", "measured", "rule", "verdict", "unit"} <= set(c)
        assert c["measured_value"] is None or isinstance(c["measured_value"], float)
        assert ("computed_verdict" in c) == c["verdict"].startswith("not comparable")
    assert by["H1"]["unit"] == "x" and by["H4"]["measured_value"] is None  # H4 not run here
    assert by["H4"]["verdict"] == "not run" and "computed_verdict" not in by["H4"]


# ----------------------------------------------------------------------------- figures


def test_the_weight_change_figure_draws_bands_as_points_not_a_line():
    per_band = {
        f"band_{i}": {"prescribed": p, "measured": p * f}
        for i, (p, f) in enumerate([(1, 1), (10, 1.2), (3000, 0.2), (100, 0.5)])
    }
    fig = plots.plot_rates({"band": per_band, "baseline_differential": per_band})
    for ax in fig.axes:
        arms = [ln for ln in ax.get_lines() if ln.get_label() in ("band", "baseline_differential")]
        assert len(arms) == 2 and all(ln.get_linestyle() == "None" for ln in arms)
    right = fig.axes[1]
    assert [t.get_text() for t in right.get_xticklabels()] == ["0", "1", "2", "3"]
    assert right.get_lines()[0].get_ydata() == pytest.approx([1, 1.2, 0.2, 0.5])
    plt.close(fig)


def test_the_sweep_figure_has_a_panel_per_budget_and_marks_the_tuned_points():
    def row(arm, budget, losses, best):
        points = [{"mult": m, "lr": m * 1e-3, "loss": v} for m, v in losses.items()]
        return {"arm": arm, "budget": budget, "points": points, "best": best, "note": ""}

    sweep = [
        row("band", 40, {0.316: 3.3, 1.0: 3.2, 3.16: 3.25}, 1.0),
        row("band", 200, {0.316: 2.9, 1.0: 2.8, 3.16: 2.85}, 1.0),
    ]
    tuned = {200: {"band": {"lr": 1e-3, "seeds": [0, 1, 2], "final_val_loss": (2.81, 0.02)}}}
    fig = plots.plot_sweep(sweep, tuned, unigram=3.19)
    assert [ax.get_title() for ax in fig.axes] == ["LR sweep at 40 steps", "LR sweep at 200 steps"]
    stars = [ln for ln in fig.axes[1].get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 1 and stars[0].get_ydata()[0] == pytest.approx(2.8)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "band tuned, mean of 3 seeds" in legend and "unigram - 0.05" in legend
    fig.canvas.draw()
    for ax in fig.axes:  # no minor-tick labels to collide with the major ones
        assert ax.get_xscale() == "log"
        assert all(t.get_text() == "" for t in ax.xaxis.get_minorticklabels())
    plt.close(fig)


# ----------------------------------------------------------------------------- final losses


def test_every_size_reports_final_losses_over_at_least_50000_predictions():
    for size in ("tiny", "t4", "a100"):
        plan = P.study(size, device="cpu", progress=False)
        assert plan.final_eval_predictions == 50_000 and plan.to_dict()["final_eval_predictions"]
        assert plan.base.final_eval_predictions == 0  # the trainer's: only reported ones pay
    assert P.study("tiny", final_eval_predictions=0, progress=False).final_eval_predictions == 0
    with pytest.raises(ValueError, match="final_eval_predictions=-1"):
        P.study("tiny", final_eval_predictions=-1, progress=False)


def test_reported_final_losses_are_over_the_held_out_sets_and_the_sweep_ranks_on_the_eval_set(
    runs_root,
):
    arm = "baseline_differential"
    kw = dict(arms=[arm], seeds=[0, 1], sweep_extensions=0, progress=False)
    plan = P.study("tiny", total_steps=8, eval_every=4, eval_batches=1, **kw)
    out = E.run_experiment(plan, name="held_out", log=None)
    cfg = plan.config(arm, 1.0, 8, 0)
    splits = train_mod.make_data(cfg)
    per_block = cfg.seq_len - 1
    # tiny: 50,000 predictions are 1,613 of the 1,790 validation blocks (and of the test's)
    n = out["held_out"]
    assert n["val_blocks"] == math.ceil(50_000 / per_block) < splits.val.shape[0]
    assert n["val"] == n["val_blocks"] * per_block >= 50_000 and n["test"] == n["val"]
    assert n["eval"] == cfg.batch_size * per_block and n["test_split"] == "test"
    # the unigram loss of the learning check is over the same validation blocks
    blocks = train_mod.final_validation_blocks(
        replace(cfg, final_eval_predictions=50_000), splits.val
    )
    unigram = text.unigram_cross_entropy(splits.train, blocks, splits.vocab_size)
    assert out["unigram"] == pytest.approx(float(unigram), abs=1e-12)
    # the curves' (the evaluation set's) unigram loss, the one the curves figure draws
    curves_set = train_mod.validation_blocks(cfg, splits.val)
    unigram_eval = text.unigram_cross_entropy(splits.train, curves_set, splits.vocab_size)
    assert out["unigram_eval"] == pytest.approx(float(unigram_eval), abs=1e-12)
    assert out["unigram_eval"] != out["unigram"]
    # only the reported trainings (the sweep's best on seed 0, seed 1 there) take the large sets
    recs = {k["tag"]: r for k, r in out["records"]}
    reported = out["tuned"][8][arm]["tags"]
    assert len(recs) == 4 and len(reported) == 2
    for tag, r in recs.items():
        if tag in reported:
            assert r["final_val_predictions"] == n["val"] and r["test_predictions"] == n["test"]
            assert r["eval_val_loss"] == r["history"]["val_loss"][-1] != r["final_val_loss"]
            assert abs(r["final_val_loss"] - r["eval_val_loss"]) < 0.5
        else:
            assert "final_val_predictions" not in r and "test_loss" not in r
    # the sweep ranked its points by the evaluation set's loss (the curves' last point)
    row = out["sweep"][0]
    by_mult = {k["mult"]: r for k, r in out["records"] if k["seed"] == 0}
    losses = [by_mult[p["mult"]]["history"]["val_loss"][-1] for p in row["points"]]
    assert [p["loss"] for p in row["points"]] == losses
    assert row["best"] == row["points"][int(np.argmin(losses))]["mult"]
    # every reported number is the held-out one: the tuned table, the measures, results.json
    finals = [recs[t]["final_val_loss"] for t in reported]
    assert out["tuned"][8][arm]["final_val_loss"] == ev.mean_std(finals)
    assert [m["final_val_loss"] for m in out["measures"][arm]] == finals
    assert [m["test_loss"] for m in out["measures"][arm]] == [
        recs[t]["test_loss"] for t in reported
    ]
    assert f"final val loss over {n['val']:,} held-out predictions" in out["tables"]["tuned"]
    assert f"on the evaluation set ({n['eval']:,} predictions" in out["tables"]["sweep"]
    fig = plots.plot_sweep(out["sweep"], out["tuned"], out["unigram"])
    assert fig.axes[0].get_ylabel() == (
        f"final val loss (lines: {n['eval']:,} predictions;\ncircles: {n['val']:,} held-out "
        "predictions)"
    )
    plt.close(fig)
    saved = json.loads((out["run"].path / "results.json").read_text())
    assert saved["data"]["final_val_predictions"] == n["val"] == saved["held_out"]["val"]
    assert saved["unigram_val_loss"] == out["unigram"]
    assert saved["unigram_eval_loss"] == out["unigram_eval"]
    # a resume reloads the held-out losses (no training, no evaluation again)
    again = E.run_experiment(
        P.study("tiny", total_steps=8, eval_every=4, eval_batches=1, **kw),
        name="held_out",
        resume=True,
        log=None,
    )
    assert again["tuned"] == out["tuned"] and again["measures"] == out["measures"]


# ----------------------------------------------------------------------------- look inside


def test_the_look_inside_figure_reads_a_band_hook_from_run_with_cache():
    import torch

    from akira_nb.bandformer import model as bm

    cfg = bm.preset("tiny_7p1")
    model = bm.BandTransformer(cfg).eval()
    tokens = torch.randint(0, cfg.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    _, cache = model.run_with_cache(tokens)
    norms = look_inside.band_norms(cache)
    assert norms.shape == (cfg.n_layers, len(cfg.band_dims))
    out = cache["blocks.1.hook_band_out"]  # [B, T, n_bands, max(band_dims)]
    assert norms[1] == pytest.approx(out.norm(dim=-1).mean(dim=(0, 1)).numpy(), rel=1e-5)
    fig = look_inside.plot_band_norms(cache)
    (ax,) = fig.axes
    assert [ln.get_label() for ln in ax.get_lines()] == ["block 0", "block 1"]
    assert all(ln.get_linestyle() == "None" for ln in ax.get_lines())  # bands as points
    assert ax.get_lines()[0].get_ydata() == pytest.approx(norms[0])
    plt.close(fig)
    with pytest.raises(ValueError, match=r"no blocks.<l>.hook_nope"):
        look_inside.band_norms(cache, "hook_nope")
