import math

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from akira_nb.alignment.procrustes import column_corr, procrustes_align, split_tokens


def acts(n=1000, d=30, seed=0):
    rng = np.random.default_rng(seed)
    # distinct scales per direction: a clear PCA spectrum
    return rng.standard_normal((n, d)) * np.linspace(3.0, 0.2, d) + rng.uniform(-1, 1, d)


def test_a_model_against_itself_has_zero_error_and_identity_map():
    a = acts()
    r = procrustes_align(a, a)
    assert r.train_error < 1e-12 and r.test_error < 1e-12
    np.testing.assert_allclose(r.R, np.eye(30), atol=1e-10)
    np.testing.assert_allclose(r.aligned_corr, 1.0, atol=1e-10)
    # shuffled tokens: the best orthogonal map is no better than two unrelated representations
    assert r.null_error == pytest.approx(math.sqrt(2), abs=0.1)
    assert (np.abs(r.null_aligned_corr) < 0.2).all()
    assert procrustes_align(a, a, standardize=True).test_error < 1e-12


@pytest.mark.parametrize("method", ["semi_orthogonal", "pca"])
def test_a_rotated_copy_is_recovered_exactly_on_held_out_tokens(method):
    a = acts()
    q = ortho_group.rvs(30, random_state=1)
    r = procrustes_align(a, a @ q + 5.0, method=method, k=10 if method == "pca" else None)
    assert r.test_error < 1e-9 and r.train_error < 1e-9
    assert set(r.train_idx).isdisjoint(r.test_idx) and r.n_train + r.n_test == 1000
    if method == "semi_orthogonal":
        np.testing.assert_allclose(r.R, q, atol=1e-9)
        np.testing.assert_allclose(r.transform(a[:7]), a[:7] @ q + 5.0, atol=1e-9)
        # the same map scipy finds on the training tokens
        a_tr = a[r.train_idx] - a[r.train_idx].mean(0)
        want, _ = orthogonal_procrustes(a_tr, a_tr @ q)
        np.testing.assert_allclose(r.R, want, atol=1e-9)
    else:
        assert r.R.shape == (10, 10) and r.k == 10


def test_independent_data_gives_a_large_held_out_error_and_the_in_sample_error_flatters():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((160, 40)), rng.standard_normal((160, 50))
    r = procrustes_align(a, b, n_shuffles=2)
    assert r.test_error > 1.3  # ~ sqrt(2): worse than predicting 0
    assert r.train_error < r.test_error - 0.1  # fitting and scoring on the same tokens hides it
    assert r.null_error == pytest.approx(r.test_error, abs=0.1)
    assert len(r.null_errors) == 2 and r.null_aligned_corr.shape == (2, 50)


def test_different_widths_keep_every_neuron():
    a = acts(d=30)
    # B is a 40-wide isometric embedding of A: rows of S are orthonormal
    s = ortho_group.rvs(40, random_state=3)[:30]
    wide = a @ s
    r = procrustes_align(a, wide)
    assert r.R.shape == (30, 40) and r.test_error < 1e-9
    np.testing.assert_allclose(r.R @ r.R.T, np.eye(30), atol=1e-10)
    back = procrustes_align(wide, a)  # A wider than B
    assert back.R.shape == (40, 30) and back.test_error < 1e-9
    np.testing.assert_allclose(back.R.T @ back.R, np.eye(30), atol=1e-10)
    pca = procrustes_align(a, wide, method="pca")
    assert pca.k == 30 and pca.test_error < 1e-9


def test_split_by_groups_keeps_each_sequence_on_one_side():
    groups = np.repeat(np.arange(20), 8)  # 20 sequences of 8 tokens
    train, test = split_tokens(160, 0.5, seed=1, groups=groups)
    assert set(groups[train]).isdisjoint(groups[test])
    assert len(train) == len(test) == 80
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(160))
    r = procrustes_align(acts(n=160), acts(n=160), groups=groups)
    assert set(groups[r.train_idx]).isdisjoint(groups[r.test_idx])


def test_column_corr():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
    y[:, 2] = 1.0
    want = [np.corrcoef(x[:, i], y[:, i])[0, 1] for i in range(2)]
    np.testing.assert_allclose(column_corr(x, y)[:2], want)
    assert column_corr(x, y)[2] == 0.0


def test_bad_inputs_raise_value_errors():
    a = acts(n=100)
    with pytest.raises(ValueError, match="same rows"):
        procrustes_align(a, a[:-1])
    with pytest.raises(ValueError, match="method='cca' is not allowed"):
        procrustes_align(a, a, method="cca")
    with pytest.raises(ValueError, match="k="):
        procrustes_align(a, a, method="pca", k=31)
    with pytest.raises(ValueError, match="method='pca'"):
        procrustes_align(a, a, k=5)
    with pytest.raises(ValueError, match="train_frac"):
        procrustes_align(a, a, train_frac=1.0)
    with pytest.raises(ValueError, match="groups"):
        procrustes_align(a, a, groups=np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        procrustes_align(np.full((10, 2), np.nan), a[:10])
    with pytest.raises(ValueError, match="expected"):
        procrustes_align(a[:, 0], a)
    with pytest.raises(ValueError, match="neurons"):
        procrustes_align(a, a).transform(a[:, :5])
