"""026's comparison rules on known answers: its form of the LR sweep (the rule itself, the
learning check included: tests/test_lr_sweep.py) and its runner, budgets, FLOP counts against a
hand computation, the final validation set, the verdicts at the longest budget, and the AQ
figure without AQ."""

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from akira_nb import lr_sweep
from akira_nb.band_transformer import claims as claims_mod
from akira_nb.band_transformer import experiment, plots, presets, sweep, tables
from akira_nb.bandformer import train
from akira_nb.bandformer.model import BaselineTransformer, GPTConfig

LOW, MID, HIGH = sweep.LR_GRID


# ----------------------------------------------------------------------------- the sweep
# (the rule itself on known answers: tests/test_lr_sweep.py; here 026's form of it)


def test_026_uses_the_kits_one_sweep_rule():
    assert sweep.LR_GRID == lr_sweep.GRID and sweep.MAX_EXTENSIONS == lr_sweep.MAX_EXTENSIONS
    assert sweep.next_point is lr_sweep.next_point and sweep.best is lr_sweep.best
    assert sweep.learned is lr_sweep.learned and sweep.LEARN_MARGIN == lr_sweep.LEARN_MARGIN
    assert sweep.tag(10**-0.5) == "0.316"  # 3 significant digits name 026's trainings


def test_the_sweep_notes_say_inside_at_an_edge_or_not_swept():
    out = sweep.outcome({LOW: 3.0, MID: 2.5, HIGH: 2.8}, sweep.LR_GRID)
    assert out["best"] == MID and out["edge"] is None and out["swept"]
    assert out["note"] == "3 points, best inside"
    assert [m for m, _ in out["points"]] == [LOW, MID, HIGH]
    # a best at the low edge after the cap: 2 points below the grid, the best the lowest
    losses = {LOW: 2.0, MID: 2.2, HIGH: 2.5, LOW / 10**0.5: 1.9, LOW / 10: 1.8}
    out = sweep.outcome(losses, sweep.LR_GRID)
    assert out["best"] == LOW / 10 and out["edge"] == "low"
    assert (
        out["note"] == "5 points, best at the low edge: the optimum may lie beyond (below x0.0316)"
    )
    high = sweep.outcome({LOW: 2.5, MID: 2.2, HIGH: 2.0}, sweep.LR_GRID)
    assert (
        high["note"] == "3 points, best at the high edge: the optimum may lie beyond (above x3.16)"
    )
    out = sweep.outcome({1.0: 2.0}, [1.0])
    assert not out["swept"] and out["edge"] is None and "not swept" in out["note"]
    # run_sweep: the rule over a loss function, with the same note
    ran = sweep.run_sweep(lambda m: {LOW: 2.5, MID: 2.2, HIGH: 2.0}.get(m, 2.1), sweep.LR_GRID)
    assert sweep.tag(ran["best"]) == "3.16" and ran["edge"] is None
    assert ran["note"] == "4 points, best inside" and ran["extensions"] == 1


@pytest.mark.parametrize(
    "value, match",
    [
        ([1.0, 3.0], r"has 2 point\(s\) spanning 3x; a sweep needs at least 3"),  # 2 points
        (
            [0.5, 1.0, 2.0],
            r"spanning 4x; a sweep needs at least 3 points spanning at least 10x: distinct",
        ),
        ([1.0, 0.3, 3.0], "ascending"),
        ([0.0, 1.0, 10.0], "lr_multipliers"),
        ("1,2,3", "must be a list"),
        ([0.3162, 0.31623, 3.2], r"repeats 0.31623 \(multipliers must differ in their first 3"),
        ([], r"\(or one multiplier: no sweep"),
        ([math.nan], r"lr_multipliers\[0\]=nan"),
    ],
)
def test_bad_multipliers_are_refused_naming_the_setting(value, match):
    with pytest.raises(ValueError, match=match):
        sweep.check_multipliers(value)


def test_good_multipliers_and_budgets():
    assert sweep.check_multipliers([1]) == [1.0]
    assert sweep.check_multipliers(list(sweep.LR_GRID)) == list(sweep.LR_GRID)
    assert sweep.check_budgets([200, 1000]) == [200, 1000]
    for bad in ([1000, 200], [200, 200], [], [0], "200"):
        with pytest.raises(ValueError, match="budgets"):
            sweep.check_budgets(bad)


class _FakeRunner(experiment._Runner):
    """The runner's sweep loop over a table of losses instead of trainings."""

    def __init__(self, plan, table):
        super().__init__(plan, None, False, None, lambda line: None, None)
        self.table, self.calls, self.made = table, [], []

    def train(self, arm, steps, multiplier, seed):
        self.calls.append((arm, steps, sweep.tag(multiplier), seed))
        loss = self.table[sweep.tag(multiplier)] + 0.01 * seed
        result = SimpleNamespace(final_val_loss=loss, model=object(), data={"unigram_val_loss": 9})
        self.made.append(tables.Training(arm, steps, multiplier, seed, "t", None, result, 1.0))
        return self.made[-1]


def test_the_runner_sweeps_the_first_seed_then_trains_the_others_at_the_best():
    plan = presets.study(
        "tiny", arms=["band", "baseline"], seeds=[0, 3], aq_seeds=[0, 1], max_extensions=2
    )
    table = {"0.316": 2.0, "1": 2.2, "3.16": 2.5, "0.1": 1.9, "0.0316": 1.95}
    runner = _FakeRunner(plan, table)
    runner.arm("band", 200)
    assert runner.calls == [
        ("band", 200, "0.316", 0),
        ("band", 200, "1", 0),
        ("band", 200, "3.16", 0),
        ("band", 200, "0.1", 0),  # best at the low edge: one below
        ("band", 200, "0.0316", 0),  # best at the edge again: one more (the cap is 2)
        ("band", 200, "0.1", 3),  # then the other seeds at the best, the AQ seed 1 too
        ("band", 200, "0.1", 1),
    ]
    assert [sweep.tag(t.multiplier) for t in runner.reported] == ["0.1", "0.1", "0.1"]
    assert runner.reported[0].seed == 0  # the sweep's winner is the first seed's result
    # the losing sweep points keep their numbers and drop their models; the reported keep theirs
    kept = [t.result.model is not None for t in runner.made]
    assert kept == [False, False, False, True, False, True, True]
    sw = runner.sweeps[("band", 200)]
    assert sweep.tag(sw["best"]) == "0.1" and sw["edge"] is None
    # the long budget trains the first seed only (AQ seeds are trained at the first budget)
    runner.calls.clear()
    runner.arm("band", 500)
    assert [c[3] for c in runner.calls] == [0] * 5 + [3]
    # an arm outside sweep_arms trains once, at the preset's LRs
    plan.sweep_arms = ["band"]
    runner.calls.clear()
    runner.arm("baseline", 200)
    assert runner.calls == [("baseline", 200, "1", s) for s in (0, 3, 1)]
    assert not runner.sweeps[("baseline", 200)]["swept"]


# ----------------------------------------------------------------------------- FLOPs


def test_the_flop_count_of_a_small_gpt_equals_the_hand_computation():
    """One layer, d = 8 (2 heads of 4), d_mlp = 16, vocabulary 11, a 2 x 4 batch (N = 8
    tokens): forward = 2 N (qkv 8x24 + out 8x8 + MLP 2 x 8x16 + tied unembedding 8x11) + the
    attention's two T x T products per head, 2 x 2 B T^2 d; backward = 2 x forward."""
    with torch.device("meta"):
        model = BaselineTransformer(
            GPTConfig(vocab_size=11, n_ctx=4, n_layers=1, d_model=8, n_heads=2, d_mlp=16)
        )
    n, b, t, d = 8, 2, 4, 8
    forward = 2 * n * (8 * 24 + 8 * 8 + 2 * 8 * 16 + 8 * 11) + 4 * b * t * t * d
    assert forward == 10_624
    assert train.count_step_flops(model, b, t) == 3 * forward


def test_the_equal_width_arms_flops_per_token_at_tiny():
    """baseline_wide at tiny: 2 layers of d = 128, d_mlp = 512, vocabulary 257, T = 32."""
    plan = presets.study("tiny")
    cfg = plan.config("baseline_wide", 200)
    d, m, v, t, layers = 128, 512, 257, 32, 2
    matmul = layers * (4 * d * d + 2 * d * m) + d * v  # weights per token (no biases)
    per_token = 3 * (2 * matmul + layers * 4 * t * d)
    assert train.step_flops(cfg) == per_token * cfg.tokens_per_step
    # the band model costs more per token than the parameter-matched GPT (padding counted)
    band, base = (train.step_flops(plan.config(a, 200)) for a in ("band", "baseline"))
    assert band > base and train.step_flops(plan.config("band", 200, 10.0)) == band  # LR-free


def test_step_flops_counts_the_arms_model_and_leaves_the_generators_seeded_as_a_build_does():
    """``step_flops`` equals the count of the arm's model built on the meta device, and after it
    the random generators are where a build leaves them (seeded with ``cfg.seed``)."""
    import random

    import numpy as np

    from akira_nb import runtime

    plan = presets.study("tiny")
    for arm in ("band", "baseline"):
        cfg = plan.config(arm, 200, seed=3)
        train._FLOPS.clear()
        got = train.step_flops(cfg)
        draws = (torch.rand(3).tolist(), random.random(), float(np.random.rand()))
        with torch.device("meta"):
            model, _ = train.build_model(cfg)
        assert got == train.count_step_flops(model, cfg.batch_size, cfg.seq_len), arm
        runtime.seed_everything(3)
        assert draws == (torch.rand(3).tolist(), random.random(), float(np.random.rand())), arm


# ----------------------------------------------------------------------------- validation


def test_the_final_validation_set_holds_at_least_50000_predictions_at_tiny():
    plan = presets.study("tiny")
    cfg = plan.config("band", 200)
    splits = train.make_data(cfg)
    final = train.final_validation_blocks(cfg, splits.val)
    assert final.shape[0] * (cfg.seq_len - 1) >= 50_000 and final.shape[0] <= splits.val.shape[0]
    # a superset of the evaluation set, which stays as small as before
    small = train.validation_blocks(cfg, splits.val)
    assert small.shape[0] == cfg.eval_batches * cfg.batch_size
    assert {tuple(r) for r in small.tolist()} <= {tuple(r) for r in final.tolist()}
    # more predictions than the split holds: all of it; 0: the evaluation set itself
    big = train.final_validation_blocks(replace(cfg, final_eval_predictions=10**9), splits.val)
    assert big.shape[0] == splits.val.shape[0]
    zero = replace(cfg, final_eval_predictions=0)
    assert torch.equal(train.final_validation_blocks(zero, splits.val), small)


# ----------------------------------------------------------------------------- verdicts


def _row(arm, budget, loss, learned=True, edge=None):
    return dict(
        arm=arm,
        budget=budget,
        tokens=budget * 512,
        val_loss=loss,
        learned=learned,
        unigram=3.19,
        lr_text="LR 0.001 (x0.316)",
        sweep={"swept": True, "edge": edge, "points": [], "best": 1.0},
    )


def _claims(rows, size="a100"):
    plan = presets.study(size)
    return {c["claim"]: c for c in claims_mod.claims({"study": plan, "loss_rows": rows})}


def test_the_band_vs_gpt_verdicts_use_the_longest_budget_both_arms_trained():
    rows = [
        _row("baseline", 200, 2.60),
        _row("band", 200, 2.45),  # the band model wins the short budget ...
        _row("baseline_wide", 200, 2.62),
        _row("baseline", 1000, 2.17),
        _row("band", 1000, 2.30),  # ... and loses the long one
        _row("baseline_wide", 1000, 1.99, edge="low"),
    ]
    out = _claims(rows)
    matched = out[claims_mod.HEADLINE]
    assert matched["verdict"] == "does not hold"
    assert matched["measured_value"] == pytest.approx(2.30 - 2.17) and matched["unit"] == "nats"
    assert matched["measured"].startswith("at 1,000 steps (512,000 tokens per arm)")
    assert "at 200 steps 2.4500 vs 2.6000 (-0.1500)" in matched["measured"]
    wide = out["the band model learns better than a GPT of its width"]
    assert wide["verdict"] == "does not hold"
    assert "baseline_wide's best LR is at the low edge" in wide["measured"]
    # the short budget alone: the band model wins
    short = _claims([r for r in rows if r["budget"] == 200])
    assert short[claims_mod.HEADLINE]["verdict"] == "holds"
    # below the seed's scale: not comparable, with the rule's result on the run's numbers
    tiny = _claims(rows, "tiny")[claims_mod.HEADLINE]
    assert tiny["verdict"] == "not comparable" and tiny["computed_verdict"] == "does not hold"


def test_an_arm_that_did_not_learn_judges_nothing():
    rows = [_row("baseline", 1000, 3.17, learned=False), _row("band", 1000, 2.5)]
    claim = _claims(rows)[claims_mod.HEADLINE]
    assert claim["verdict"].startswith("not measurable: arm baseline did not learn at 1,000")
    assert claim["measured_value"] == pytest.approx(2.5 - 3.17)
    tiny = _claims(rows, "tiny")[claims_mod.HEADLINE]
    assert tiny["verdict"] == "not comparable"
    assert tiny["computed_verdict"].startswith("not measurable: arm baseline did not learn")


# ----------------------------------------------------------------------------- figures


def test_the_aq_figure_says_when_no_aq_was_found():
    zero = {"pct": 0.0, "chance_pct": 0.0, "above_pct": 0.0}
    bands = [dict(zero, band=i) for i in range(7)]
    summary = {"method": "procrustes", "rule": "mean + 2 std"}
    aq = {
        "band": {"summary": dict(summary, by_kind={"random": dict(zero, bands=bands)})},
        "baseline": {"summary": dict(summary, by_kind={"random": dict(zero)})},
    }
    fig = plots.plot_aq(aq)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert len(texts) == 1 and texts[0].startswith("no AQ found at this size")
    assert not fig.axes[0].patches  # no empty bars
    # with AQ in one band the bars are drawn
    bands[2] = dict(zero, band=2, pct=5.0)
    fig = plots.plot_aq(aq)
    assert not fig.axes[0].texts and len(fig.axes[0].patches) == 14
    heights = [p.get_height() for p in fig.axes[0].patches[:7]]
    np.testing.assert_allclose(heights, [0, 0, 5.0, 0, 0, 0, 0])
