import numpy as np
import pytest
import torch

from akira_nb.alignment.correlation import StreamingCorrelation, correlation_of
from akira_nb.alignment.thresholds import count_with_null, permutation_null
from akira_nb.alignment.transport import METHODS, NeuronMatching, match_neurons


def permuted_copy(n=800, d_a=64, d_b=96, seed=0, flip=True):
    """B holds a sign-flipped copy of each A neuron at a known column, plus extra noise neurons."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d_a))
    b = rng.standard_normal((n, d_b))
    true = rng.permutation(d_b)[:d_a]
    sign = np.where(rng.random(d_a) < 0.5, -1.0, 1.0) if flip else 1.0
    b[:, true] = a * sign * rng.uniform(0.5, 2.0, d_a)
    return a, b, true


@pytest.mark.parametrize("method", ["emd", "hungarian"])
@pytest.mark.parametrize("d_b", [64, 96])
def test_exact_methods_recover_a_permuted_copy_with_or_without_extra_neurons(method, d_b):
    a, b, true = permuted_copy(d_b=d_b)
    sc = StreamingCorrelation(64, d_b).update(a, b)
    m = match_neurons(sc.corr(), method=method)
    assert isinstance(m, NeuronMatching) and m.method == method and m.converged
    np.testing.assert_array_equal(m.b_idx, true)
    np.testing.assert_array_equal(m.a_idx, np.arange(64))
    np.testing.assert_allclose(m.abs_corr, 1.0, atol=1e-12)
    assert m.one_to_one and m.n_a == 64 and m.n_b == d_b
    # index-matched correlation does not see the copy
    assert np.abs(sc.index_matched().numpy()).mean() < 0.2
    # activations in, the same answer; the method may come second after a correlation matrix
    np.testing.assert_array_equal(match_neurons(a, b, method=method).b_idx, true)
    np.testing.assert_array_equal(match_neurons(sc.corr(), method).b_idx, true)


def test_total_cost_is_the_plan_cost():
    a, b, true = permuted_copy(d_b=64)
    for method in METHODS:
        m = match_neurons(correlation_of(a, b).corr(), method=method, reg=0.01, keep_plan=True)
        assert m.plan.shape == (64, 64)
        assert m.plan.sum() == pytest.approx(1.0, abs=1e-6)
        cost = 1 - np.abs(correlation_of(a, b).corr().numpy())
        assert m.total_cost == pytest.approx((m.plan * cost).sum(), abs=1e-9)
    # a perfect one-to-one copy costs 0 for the exact methods
    assert match_neurons(a, b[:, true], method="hungarian").total_cost == pytest.approx(0, abs=1e-9)
    assert match_neurons(a, b[:, true], method="emd").total_cost == pytest.approx(0, abs=1e-9)


def test_uniform_marginals_spread_mass_when_b_is_wider():
    a, b, true = permuted_copy(d_b=96)
    m = match_neurons(a, b, method="emd", keep_plan=True)
    # each A neuron sends 1/96 of mass (2/3 of its own 1/64) to its copy, the rest elsewhere
    np.testing.assert_allclose(m.mass, 64 / 96, atol=1e-9)
    np.testing.assert_allclose(m.plan.sum(0), 1 / 96, atol=1e-12)
    np.testing.assert_allclose(m.plan.sum(1), 1 / 64, atol=1e-12)


def test_a_wider_than_b_still_matches_every_a_neuron():
    a, b, true = permuted_copy(d_b=96)
    # swap roles: A has 96 neurons, B 64; the 64 copies must find their sources
    for method in ("hungarian", "emd"):
        m = match_neurons(b, a, method=method)
        assert len(m.b_idx) == 96
        np.testing.assert_array_equal(m.b_idx[true], np.arange(64))
        assert np.bincount(m.b_idx, minlength=64).max() <= 2  # ceil(96 / 64)


def test_sinkhorn_is_close_to_the_exact_match():
    a, b, true = permuted_copy(d_b=96, flip=False)
    b = b + 0.3 * np.random.default_rng(1).standard_normal(b.shape)
    corr = torch.as_tensor(correlation_of(a, b).corr())
    exact = match_neurons(corr, method="emd")
    soft = match_neurons(corr, method="sinkhorn", reg=0.02)
    assert soft.converged and soft.reg == 0.02
    assert soft.agreement(exact) >= 0.95
    assert soft.accuracy(true) >= 0.95
    assert soft.total_cost == pytest.approx(exact.total_cost, abs=0.05)


def test_planted_noisy_copies_are_recovered_by_matching_plus_threshold():
    """k of B's neurons are noisy copies of A's under a known permutation: the matching + a
    threshold checked against the token-shuffle null finds them with high precision/recall."""
    rng = np.random.default_rng(7)
    n, d_a, d_b, k = 1500, 64, 96, 20
    a = rng.standard_normal((n, d_a))
    b = rng.standard_normal((n, d_b))
    planted_a = rng.choice(d_a, k, replace=False)
    planted_b = rng.choice(d_b, k, replace=False)
    b[:, planted_b] = a[:, planted_a] + 0.8 * rng.standard_normal((n, k))  # r ~ 0.78
    for method in ("emd", "hungarian"):
        score = lambda x, y, method=method: match_neurons(x, y, method=method).abs_corr
        m = match_neurons(a, b, method=method)
        null = permutation_null(a, b, score, n_permutations=2, seed=0)
        res = count_with_null(m.abs_corr, null, rule="fixed", value=0.3)
        found = set(np.flatnonzero(res.mask))
        correct = {i for i in found if i in set(planted_a)}
        correct = {i for i in correct if m.b_idx[i] == planted_b[list(planted_a).index(i)]}
        precision, recall = len(correct) / max(len(found), 1), len(correct) / k
        assert precision >= 0.95 and recall >= 0.95, (method, precision, recall)
        assert res.null_count == 0  # a 0.3 matched correlation never happens by chance here
        # the statistical rule re-applied to the null still flags a few percent: its defect
        same = count_with_null(m.abs_corr, null, rule="statistical")
        assert 0 < np.mean(same.null_counts_same_rule) <= 0.08 * d_a


def test_emd_at_moderate_size_converges_with_the_default_iterations():
    """768 x 1024, noise plus a permuted copy of half of A: exact recovery, no warning."""
    rng = np.random.default_rng(3)
    n, d_a, d_b = 1200, 768, 1024
    a = rng.standard_normal((n, d_a)).astype(np.float32)
    b = rng.standard_normal((n, d_b)).astype(np.float32)
    cols = rng.permutation(d_b)[: d_a // 2]
    b[:, cols] = a[:, : d_a // 2]
    corr = StreamingCorrelation(d_a, d_b, compute_dtype="float32").update(a, b).corr()
    m = match_neurons(corr, method="emd")
    assert m.converged and m.warning is None
    np.testing.assert_array_equal(m.b_idx[: d_a // 2], cols)
    h = match_neurons(corr, method="hungarian")
    np.testing.assert_array_equal(h.b_idx[: d_a // 2], cols)
    assert h.one_to_one


def test_solver_limits_are_reported_and_warned():
    rng = np.random.default_rng(0)
    corr = np.tanh(rng.standard_normal((40, 60)) * 0.1)
    with pytest.warns(RuntimeWarning, match="ot.emd stopped before optimality"):
        m = match_neurons(corr, method="emd", num_iter_max=5)
    assert not m.converged and "num_iter_max=5" in m.warning
    with pytest.warns(RuntimeWarning, match="did not converge"):
        s = match_neurons(corr, method="sinkhorn", reg=0.001, num_iter_max=3)
    assert not s.converged


def test_summary_and_accuracy():
    a, b, true = permuted_copy(d_b=96)
    m = match_neurons(a, b, method="hungarian")
    s = m.summary(threshold=0.5)
    assert s["above"] == 64 and s["mean_abs_corr"] == pytest.approx(1.0)
    assert m.accuracy(true) == 1.0
    with pytest.raises(ValueError, match="true_b_idx"):
        m.accuracy(true[:3])


def test_bad_inputs_raise_value_errors():
    corr = np.zeros((4, 5))
    with pytest.raises(ValueError, match="method='ot' is not allowed"):
        match_neurons(corr, method="ot")
    with pytest.raises(ValueError, match="reg"):
        match_neurons(corr, method="sinkhorn", reg=0.0)
    with pytest.raises(ValueError, match="reg"):
        match_neurons(corr, method="sinkhorn", reg=float("inf"))
    with pytest.raises(ValueError, match="expected a"):
        match_neurons(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        match_neurons(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="lie in"):
        match_neurons(np.full((3, 3), 2.0))
    with pytest.raises(ValueError, match="same rows"):
        match_neurons(np.zeros((10, 3)), np.zeros((9, 3)))
    with pytest.raises(ValueError, match="not a method"):
        match_neurons(corr, "emd", method="hungarian")
    with pytest.raises(ValueError, match="num_iter_max"):
        match_neurons(corr, method="emd", num_iter_max=0)
