"""The kit's one LR-sweep rule (akira_nb.lr_sweep) on known answers: the grid first, the best
point, the edge extensions and their cap, a diverged point, the grid check and the learning
check. 026's and 013's own forms (tags, notes, no-sweep settings) are tested beside their
experiments (test_bandformer_sweep.py, test_differential_lr_tuning.py)."""

import math

import pytest

from akira_nb import lr_sweep as ls

LOW, MID, HIGH = ls.GRID


def _bowl(opt):
    """A loss with its minimum at multiplier ``opt`` (a parabola in log10)."""
    return lambda m: 2.0 + (math.log10(m) - math.log10(opt)) ** 2


def _mults(out):
    return [m for m, _ in out["points"]]


# ----------------------------------------------------------------------------- next_point


def test_the_grid_is_trained_first_then_an_interior_best_ends_the_sweep():
    losses = {}
    assert ls.next_point(losses, ls.GRID) == LOW
    losses[LOW] = 3.0
    assert ls.next_point(losses, ls.GRID) == MID
    losses[MID] = 2.5
    assert ls.next_point(losses, ls.GRID) == HIGH
    losses[HIGH] = 2.8
    assert ls.next_point(losses, ls.GRID) is None  # best inside: done
    out = ls.outcome(losses, ls.GRID)
    assert out["best"] == MID and out["edge"] is None and out["swept"]
    assert out["extensions"] == 0
    assert _mults(out) == [LOW, MID, HIGH]


def test_a_best_at_an_edge_extends_the_sweep_beyond_it_up_to_the_cap():
    grid = ls.GRID
    losses = {LOW: 2.0, MID: 2.2, HIGH: 2.5}  # best at the low edge
    nxt = ls.next_point(losses, grid, max_extensions=2)
    assert ls.tag(nxt) == "0.1"  # one grid spacing (10 ** 0.5) below
    losses[nxt] = 1.9  # the new point is best again: one more
    nxt2 = ls.next_point(losses, grid, max_extensions=2)
    assert ls.tag(nxt2) == "0.0316"
    losses[nxt2] = 1.8  # still the best, but the cap (2 beyond the grid) is reached
    assert ls.next_point(losses, grid, max_extensions=2) is None
    out = ls.outcome(losses, grid)
    assert out["best"] == nxt2 and out["edge"] == "low" and out["extensions"] == 2
    # the high side the same way; an extension that does not win ends it with the best inside
    losses = {LOW: 2.5, MID: 2.2, HIGH: 2.0}
    up = ls.next_point(losses, grid, max_extensions=2)
    assert ls.tag(up) == "10"
    losses[up] = 2.1
    assert ls.next_point(losses, grid, max_extensions=2) is None
    assert ls.outcome(losses, grid)["edge"] is None
    # no extension allowed: an edge best is reported as such
    assert ls.next_point({LOW: 2.5, MID: 2.2, HIGH: 2.0}, grid, max_extensions=0) is None
    assert ls.outcome({LOW: 2.5, MID: 2.2, HIGH: 2.0}, grid)["edge"] == "high"


def test_the_spacing_is_the_grids_at_that_edge():
    # an uneven grid: x3 at the low edge, x10/3 at the high one
    assert ls.next_point({1.0: 2.0, 3.0: 1.0}, [1.0, 3.0]) == pytest.approx(9.0)
    assert ls.next_point({1.0: 2.0, 3.0: 1.0, 10.0: 1.5}, [1.0, 3.0, 10.0]) is None
    assert ls.next_point({1.0: 1.0, 3.0: 2.0, 10.0: 3.0}, [1.0, 3.0, 10.0]) == pytest.approx(1 / 3)
    up = ls.next_point({1.0: 3.0, 3.0: 2.0, 10.0: 1.0}, [1.0, 3.0, 10.0])
    assert up == pytest.approx(100 / 3)


def test_a_diverged_point_ranks_last_and_one_point_is_no_sweep():
    assert ls.best({LOW: math.nan, MID: 2.0, HIGH: math.inf}) == MID
    assert ls.best({LOW: None, MID: 2.5, HIGH: 2.4}) == HIGH
    assert ls.best({LOW: 2.0, MID: 2.0}) == LOW  # a tie: the smaller multiplier
    # every point diverged: the lowest LR is the "best", at the edge, so the sweep goes lower
    nan = {LOW: math.nan, MID: math.nan, HIGH: math.nan}
    assert ls.next_point(nan, ls.GRID) == pytest.approx(LOW / 10**0.5)
    assert ls.next_point({1.0: 2.0}, [1.0]) is None
    out = ls.outcome({1.0: 2.0}, [1.0])
    assert not out["swept"] and out["edge"] is None and out["extensions"] == 0
    with pytest.raises(ValueError, match="losses=.* is empty"):
        ls.best({})


# ----------------------------------------------------------------------------- run_sweep


def test_run_sweep_an_interior_best_adds_no_point():
    calls = []
    out = ls.run_sweep(lambda m: calls.append(m) or _bowl(1.0)(m), [10**-0.5, 1.0, 10**0.5])
    assert out["best"] == 1.0 and out["extensions"] == 0 and out["edge"] is None
    assert _mults(out) == pytest.approx([0.3162, 1.0, 3.162], rel=1e-3)
    assert calls == [10**-0.5, 1.0, 10**0.5]  # the grid in order, each point once


def test_run_sweep_extends_beyond_an_edge_until_the_best_is_inside():
    out = ls.run_sweep(_bowl(10.0), [10**-0.5, 1.0, 10**0.5])  # best at the high edge
    assert _mults(out) == pytest.approx([10**-0.5, 1.0, 10**0.5, 10.0, 10**1.5])
    assert out["best"] == pytest.approx(10.0) and out["extensions"] == 2 and out["edge"] is None
    low = ls.run_sweep(_bowl(0.1), [1.0, 3.0, 10.0])  # best at the low edge: 1/3, then 1/9
    assert _mults(low)[:2] == pytest.approx([1 / 9, 1 / 3])
    assert low["best"] == pytest.approx(1 / 9) and low["edge"] == "low"


def test_run_sweep_stops_at_the_cap_with_the_best_still_at_an_edge():
    out = ls.run_sweep(lambda m: -m, [0.1, 1.0, 10.0])  # keeps falling: never bracketed
    assert _mults(out) == pytest.approx([0.1, 1, 10, 100, 1000])
    assert out["edge"] == "high" and out["extensions"] == 2 and out["best"] == pytest.approx(1e3)
    three = ls.run_sweep(lambda m: -m, [0.1, 1.0, 10.0], max_extensions=3)
    assert three["extensions"] == 3 and three["best"] == pytest.approx(1e4)
    none = ls.run_sweep(lambda m: -m, [0.1, 1.0, 10.0], max_extensions=0)
    assert _mults(none) == [0.1, 1.0, 10.0] and none["edge"] == "high"
    # a diverged training (NaN) ranks last: x1 is the interior best
    nan = ls.run_sweep(lambda m: math.nan if m > 2 else _bowl(1.0)(m), [0.1, 1.0, 10.0])
    assert nan["best"] == 1.0 and nan["extensions"] == 0 and math.isnan(nan["points"][2][1])
    with pytest.raises(ValueError, match="grid=\\[\\] has no point"):
        ls.run_sweep(_bowl(1.0), [])
    with pytest.raises(ValueError, match="max_extensions=-1"):
        ls.run_sweep(_bowl(1.0), [0.1, 1.0, 10.0], max_extensions=-1)


# ----------------------------------------------------------------------------- grid check


def test_check_grid_sorts_a_good_grid():
    assert ls.check_grid("sweep", [3.0, 0.3, 1.0]) == [0.3, 1.0, 3.0]
    assert ls.check_grid("sweep", list(ls.GRID)) == list(ls.GRID)
    assert ls.check_grid("g", (1, 10, 100)) == [1.0, 10.0, 100.0]


@pytest.mark.parametrize(
    "grid, digits, match",
    [
        (
            [1.0, 10.0],
            3,
            r"g=\[1.0, 10.0\] has 2 point\(s\) spanning 10x; a sweep needs at least 3",
        ),
        (
            [0.3, 1.0, 2.9],
            3,
            r"3 point\(s\) spanning 9.67x; a sweep needs at least 3 points spanning at least 10x",
        ),
        ([], 3, r"g=\[\] has 0 point\(s\)"),
        ([1.0, -1, 10.0], 3, r"g\[1\]=-1"),
        ([0.0, 1.0, 10.0], 3, r"g\[0\]=0.0"),
        ([1.0, math.inf, 10.0], 3, r"g\[1\]=inf"),
        ("1,2,3", 3, r"g='1,2,3' must be a list"),
        ([0.3, 3.0, 3.0], 3, r"g=\[0.3, 3.0, 3.0\] repeats 3.0"),
        ([0.3162, 0.31623, 3.2], 3, r"repeats 0.31623 \(multipliers must differ in their first 3"),
        ([0.3, 3.0, 3.00001], 4, r"repeats 3.00001 \(multipliers must differ in their first 4"),
    ],
)
def test_check_grid_refuses_a_bad_grid_naming_it(grid, digits, match):
    with pytest.raises(ValueError, match=match):
        ls.check_grid("g", grid, digits)


def test_check_grid_names_the_callers_no_sweep_form_and_the_tag_digits_matter():
    with pytest.raises(ValueError, match=r"\(or \[\] for no sweep\)"):
        ls.check_grid("sweep", [1.0, 3.0], no_sweep="[] for no sweep")
    assert ls.check_grid("g", [0.3162, 0.31623, 3.2], digits=5) == [0.3162, 0.31623, 3.2]
    assert ls.tag(10**0.5) == "3.16" and ls.tag(10**0.5, 4) == "3.162"


# ----------------------------------------------------------------------------- learning check


def test_the_learning_check_on_hand_made_numbers():
    assert ls.LEARN_MARGIN == 0.05
    assert ls.learned(3.14, 3.19) and ls.learned(2.0, 3.19)
    assert ls.learned(3.19 - ls.LEARN_MARGIN, 3.19)  # on the bar: the margin below, learned
    assert not ls.learned(3.15, 3.19)  # 0.04 below: not enough
    assert not ls.learned(3.19 - ls.LEARN_MARGIN + 1e-9, 3.19)  # a hair above the bar
    assert not ls.learned(3.30, 3.19) and not ls.learned(math.nan, 3.19)
    assert not ls.learned(-math.inf, 3.19) and not ls.learned(None, 3.19)
    assert ls.learned(3.0, 3.19, margin=0.15) and not ls.learned(3.1, 3.19, margin=0.15)
