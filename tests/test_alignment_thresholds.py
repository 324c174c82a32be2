import numpy as np
import pytest
import torch

from akira_nb.alignment.correlation import StreamingCorrelation, correlation_of
from akira_nb.alignment.thresholds import (
    RULES,
    ShuffledStream,
    apply_threshold,
    chance_word,
    count_with_null,
    null_count_variance,
    overlap_null,
    paired_null_overlap,
    permutation_null,
    permute_rows,
    threshold_value,
    too_few_replicates,
)


def test_statistical_rule_flags_a_share_that_depends_on_the_shape():
    """mean + 2 std flags about 2.3% of a Gaussian, more of a heavy right tail, and nothing at
    all of bounded, left-skewed scores (matched |corr| near 1), where mean + 2 std lies above
    the maximum: a property of the rule and the shape, not of any correspondence."""
    rng = np.random.default_rng(0)
    gauss = rng.standard_normal(20000)
    mask, t = apply_threshold(gauss, "statistical")
    assert t == pytest.approx(gauss.mean() + 2 * gauss.std())
    assert 0.02 <= mask.mean() <= 0.026  # 2.3% for a Gaussian
    assert 0.02 <= apply_threshold(5 + 0.01 * gauss, "statistical")[0].mean() <= 0.026
    assert 0.04 <= apply_threshold(rng.gamma(1.0, 1.0, 20000), "statistical")[0].mean() <= 0.06
    bounded = 1.0 - rng.exponential(0.01, 20000).clip(max=0.5)  # scores <= 1, piled up near 1
    mask, t = apply_threshold(bounded, "statistical")
    assert mask.sum() == 0 and t > bounded.max()
    c = count_with_null(bounded, bounded[None] - 0.5, "statistical")
    assert c.flags_nothing and c.threshold_above_every_score
    assert "threshold above every score" in c.line()
    c = count_with_null(gauss, gauss[None], "statistical")
    assert not c.flags_nothing and not c.threshold_above_every_score


def test_percentile_and_fixed_rules():
    s = np.arange(100.0)
    assert threshold_value(s, "percentile", 95) == pytest.approx(np.percentile(s, 95))
    assert apply_threshold(s, "percentile", 90)[0].sum() == 10
    assert threshold_value(s, "fixed", 41.5) == 41.5
    assert apply_threshold(s, "fixed", 41.5)[0].sum() == 58
    assert threshold_value(torch.arange(10.0), "fixed") == 0.3  # the seed's default


def test_permutation_null_count_is_near_zero_on_independent_data():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2000, 64)), rng.standard_normal((2000, 96))

    def score(x, y):
        return correlation_of(x, y).corr().abs().max(1).values

    real = score(a, b)
    null = permutation_null(a, b, score, n_permutations=3, seed=0)
    assert null.shape == (3, 64)
    res = count_with_null(real, null, rule="fixed", value=0.3)
    assert res.count == 0 and res.null_count == 0 and res.null_counts == [0, 0, 0]
    # a relative rule flags a few percent of the real scores and of the null alike
    rel = count_with_null(real, null, rule="statistical")
    assert 0 < rel.count <= 6 and all(0 < c <= 6 for c in rel.null_counts_same_rule)
    text = rel.line()
    assert "mean + 2 std" in text and "token-shuffle null" in text
    d = rel.to_dict()
    assert d["rule"] == "statistical" and d["count"] == rel.count and len(d["indices"]) == rel.count


def test_permutation_null_keeps_real_signal_out():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((1000, 8))
    b = a + 0.1 * rng.standard_normal((1000, 8))
    score = lambda x, y: correlation_of(x, y).index_matched()
    real = score(a, b)
    null = permutation_null(a, b, score, n_permutations=2)
    assert (real > 0.9).all() and (np.abs(null) < 0.15).all()
    res = count_with_null(real, null, rule="fixed", value=0.5)
    assert res.count == 8 and res.null_count == 0


def test_permute_rows_shares_one_permutation_across_layers():
    x = {0: torch.arange(10.0)[:, None], 1: np.arange(10.0)[:, None] * 2}
    out = permute_rows(x, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(np.asarray(out[1]), out[0].numpy() * 2)
    assert sorted(out[0].flatten().tolist()) == list(range(10))
    with pytest.raises(ValueError, match="different token counts"):
        permute_rows({0: np.zeros((3, 1)), 1: np.zeros((4, 1))})


def test_shuffled_stream_resumes_with_the_same_permutations(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((600, 16))
    b = a + 0.2 * rng.standard_normal((600, 16))
    whole = ShuffledStream(StreamingCorrelation(16, 16), seed=4)
    for i in range(0, 600, 100):
        whole.update(a[i : i + 100], b[i : i + 100])
    first = ShuffledStream(StreamingCorrelation(16, 16), seed=4)
    for i in range(0, 300, 100):
        first.update(a[i : i + 100], b[i : i + 100])
    first.stats.save(tmp_path / "null.pt")
    resumed = ShuffledStream(StreamingCorrelation.load(tmp_path / "null.pt"), seed=4)
    for i in range(300, 600, 100):
        resumed.update(a[i : i + 100], b[i : i + 100])
    torch.testing.assert_close(resumed.stats.corr(), whole.stats.corr())
    # the shuffle broke the real correlation of 0.98
    assert whole.stats.index_matched().abs().max() < 0.2


def test_overlap_null_gives_the_chance_overlap():
    res = overlap_null(1000, range(100), range(50, 250))
    assert res["observed"] == 50 and res["expected"] == pytest.approx(20.0)
    assert res["p_value"] < 1e-6
    chance = overlap_null(1000, range(100), range(90, 290))
    assert chance["p_value"] > 0.5
    with pytest.raises(ValueError, match="indices"):
        overlap_null(10, [11], [1])


def test_bad_rules_and_values_raise_value_errors():
    s = np.arange(10.0)
    with pytest.raises(ValueError, match=r"rule='zscore' is not allowed; choose one of") as e:
        threshold_value(s, "zscore")
    for rule in RULES:
        assert rule in str(e.value)
    with pytest.raises(ValueError, match="value"):
        threshold_value(s, "percentile", 101)
    with pytest.raises(ValueError, match="value"):
        threshold_value(s, "fixed", float("nan"))
    with pytest.raises(ValueError, match="1-D"):
        threshold_value(np.zeros((2, 2)), "fixed")
    with pytest.raises(ValueError, match="NaN"):
        count_with_null(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="same"):
        permutation_null(np.zeros((5, 2)), np.zeros((4, 2)), lambda x, y: np.zeros(2))
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_null(np.zeros((5, 2)), np.zeros((5, 2)), lambda x, y: np.zeros(2), 0)


def _persistent_scores(rng, scale, k=0):
    """Scores of the same neurons: a per-neuron scale that carries over, fresh noise each time."""
    n = len(scale)
    if k:
        return scale * rng.standard_normal((k, n))
    return scale * rng.standard_normal(n)


def test_paired_null_overlap_keeps_per_neuron_properties():
    """AQ sets at chance in each input type, but a per-neuron scale carries over between them:
    the hypergeometric test (independent sets) calls their overlap significant, the paired null
    (the same null applied to both input types) says it is what chance gives."""
    rng = np.random.default_rng(0)
    n, k, t = 1000, 200, 1.5
    scale = rng.lognormal(0.0, 1.0, n)
    real_r, real_t = _persistent_scores(rng, scale), _persistent_scores(rng, scale)
    null_r, null_t = _persistent_scores(rng, scale, k), _persistent_scores(rng, scale, k)
    for real, null in ((real_r, null_r), (real_t, null_t)):
        c = count_with_null(real, null, "fixed", t)
        assert abs(c.count - c.null_count) < 3 * np.sqrt(c.null_count)  # counts at chance
    set_r, set_t = np.flatnonzero(real_r > t), np.flatnonzero(real_t > t)
    observed = len(set(set_r) & set(set_t))
    independent = overlap_null(n, set_r, set_t)
    assert independent["p_value"] < 1e-3
    paired = paired_null_overlap(null_r, null_t, observed, "fixed", t)
    assert paired["p_value"] > 0.05, paired
    assert paired["expected"] > 1.5 * independent["expected"]
    assert paired["n_null"] == k and len(paired["null_overlaps"]) == k
    # ... and it still sees an overlap that is really there (the same neurons in both types)
    shared = real_r + 0.3 * scale * rng.standard_normal(n)
    observed = len(set(set_r) & set(np.flatnonzero(shared > t)))
    assert paired_null_overlap(null_r, null_t, observed, "fixed", t)["p_value"] < 0.01


def test_paired_null_overlap_re_derives_the_rule_and_checks_its_inputs():
    rng = np.random.default_rng(1)
    null = rng.standard_normal((50, 400))
    res = paired_null_overlap(null, null, 0, "percentile", 90)
    # each replicate's set is its own top 10%: the same set twice, overlap 40
    assert res["null_overlaps"] == [40] * 50 and res["p_value"] == 1.0
    assert paired_null_overlap(null, -null, 40, "percentile", 90)["p_value"] == pytest.approx(
        1 / 51
    )
    with pytest.raises(ValueError, match="null_b"):
        paired_null_overlap(null, null[:10], 3)
    with pytest.raises(ValueError, match="observed"):
        paired_null_overlap(null, null, -1)


def test_the_spread_of_a_chance_count_and_the_words_it_gives():
    # replicates that hardly vary: the binomial spread n q (1 - q), plus the error of the mean
    assert null_count_variance([80, 80, 80, 80], 320) == pytest.approx(320 * 0.25 * 0.75 * 1.25)
    # replicates that vary more than a binomial: their own variance
    assert null_count_variance([0, 40], 400) == pytest.approx(800 * 1.5)
    # a null of 0: at least one neuron's variance (a count of 1 or 2 is no evidence)
    assert null_count_variance([0], 256) == 2.0
    assert chance_word(-8.3, 10.4) == "at chance" and chance_word(20.8, 10.4) == "at chance"
    assert chance_word(21.0, 10.4) == "above chance" and chance_word(-21, 10.4) == "below chance"
    assert too_few_replicates(1) == "not measurable: null of 1 replicate (needs >= 19)"
    assert too_few_replicates(5) == "not measurable: null of 5 replicates (needs >= 19)"
    assert too_few_replicates(19) is None
    with pytest.raises(ValueError, match="null_counts"):
        null_count_variance([], 10)
    with pytest.raises(ValueError, match="total=0"):
        null_count_variance([1], 0)
    with pytest.raises(ValueError, match="sd=-1"):
        chance_word(1.0, -1)
