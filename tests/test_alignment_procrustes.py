import math

import numpy as np
import pytest
import torch
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


def mlp_like(n=2400, d_a=96, d_b=128, seed=0):
    """Two GELU layers reading one 24-dim latent (plus noise): correlated, ill-conditioned
    activations like an MLP's (most of the spectrum far below the top)."""
    g = np.random.default_rng(seed)
    z = g.standard_normal((n, 24)) * np.geomspace(3.0, 0.05, 24)
    gelu = lambda x: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))
    a = gelu(z @ g.standard_normal((24, d_a)) + 0.1 * g.standard_normal((n, d_a)))
    b = gelu(z @ g.standard_normal((24, d_b)) + 0.1 * g.standard_normal((n, d_b)))
    return a, b, np.repeat(np.arange(n // 24), 24)


def test_float32_agrees_with_float64_to_1e5_on_mlp_like_activations():
    a, b, groups = mlp_like()
    r64 = procrustes_align(a, b, groups=groups, n_shuffles=3)
    r32 = procrustes_align(a, b, groups=groups, n_shuffles=3, dtype="float32")
    assert (r64.dtype, r32.dtype) == ("float64", "float32") and r64.n_train > 128
    assert r64.test_error < 0.9 < r64.null_error  # a real map, and a null that finds none
    for name in ("train_error", "test_error", "null_error"):
        assert getattr(r32, name) == pytest.approx(getattr(r64, name), abs=1e-5)
    np.testing.assert_allclose(r32.aligned_corr, r64.aligned_corr, atol=1e-5)
    np.testing.assert_allclose(r32.null_aligned_corr, r64.null_aligned_corr, atol=1e-5)


def test_float32_recovers_a_rotated_copy():
    a = acts(d=64)
    q = ortho_group.rvs(64, random_state=4)
    r = procrustes_align(a, a @ q + 5.0, dtype="float32")
    np.testing.assert_allclose(r.R, q, atol=1e-5)
    assert r.test_error < 1e-5 and r.train_error < 1e-5
    np.testing.assert_allclose(r.aligned_corr, 1.0, atol=1e-5)


def test_null_fits_are_scipys_fits_on_the_shuffled_rows_in_any_batch_size():
    a, b, groups = mlp_like(n=960, d_a=40, d_b=48)
    r = procrustes_align(a, b, groups=groups, seed=3, n_shuffles=4)
    one = procrustes_align(a, b, groups=groups, seed=3, n_shuffles=4, batch_bytes=1)
    np.testing.assert_allclose(one.null_aligned_corr, r.null_aligned_corr, atol=1e-12)
    np.testing.assert_allclose(one.null_errors, r.null_errors, atol=1e-12)
    # the first shuffle by hand: the same permutations, SciPy's zero-padded solution
    tr, te = r.train_idx, r.test_idx
    rng = np.random.default_rng(3 + 1)
    btr, bte = b[tr][rng.permutation(len(tr))], b[te][rng.permutation(len(te))]
    prep = lambda x, ref: (x - ref.mean(0)) / np.sqrt(((ref - ref.mean(0)) ** 2).sum(1).mean())
    atr, ate = prep(a[tr], a[tr]), prep(a[te], a[tr])
    btr_, bte_ = prep(btr, btr), prep(bte, btr)
    pad = np.zeros((48, 48))
    pad[:40] = atr.T @ btr_
    want = orthogonal_procrustes(np.eye(48), pad)[0][:40]
    np.testing.assert_allclose(r.null_aligned_corr[0], column_corr(ate @ want, bte_), atol=1e-10)
    assert r.null_errors[0] == pytest.approx(
        np.linalg.norm(ate @ want - bte_) / np.linalg.norm(bte_), abs=1e-10
    )


def test_fewer_training_tokens_than_neurons_give_the_least_norm_map():
    a, b, groups = mlp_like(n=240, d_a=300, d_b=400)  # 120 training tokens, rank 119
    r = procrustes_align(a, b, groups=groups, n_shuffles=2)
    # a partial isometry: R R^T projects onto the 119 directions the training tokens span
    ev = np.linalg.eigvalsh(r.R @ r.R.T)
    assert (ev > 0.5).sum() == r.n_train - 1
    np.testing.assert_allclose(ev * (1 - ev), 0.0, atol=1e-10)
    # on the training tokens it is SciPy's (zero-padded) map: the same predictions
    atr = a[r.train_idx] - a[r.train_idx].mean(0)
    btr = b[r.train_idx] - b[r.train_idx].mean(0)
    pad = np.zeros((400, 400))
    pad[:300] = atr.T @ btr
    want = orthogonal_procrustes(np.eye(400), pad)[0][:300]
    np.testing.assert_allclose(atr @ r.R, atr @ want, atol=1e-9)
    # unique, so float32 finds it too
    r32 = procrustes_align(a, b, groups=groups, n_shuffles=2, dtype="float32")
    np.testing.assert_allclose(r32.aligned_corr, r.aligned_corr, atol=1e-5)
    np.testing.assert_allclose(r32.null_aligned_corr, r.null_aligned_corr, atol=1e-5)
    assert r32.test_error == pytest.approx(r.test_error, abs=1e-5)


def test_bad_precision_settings_raise_value_errors():
    a = acts(n=100)
    with pytest.raises(ValueError, match="dtype='float16' is not allowed"):
        procrustes_align(a, a, dtype="float16")
    with pytest.raises(ValueError, match="batch_bytes"):
        procrustes_align(a, a, batch_bytes=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_float32_fits_agree_with_the_cpu_float64_fits():
    a, b, groups = mlp_like()
    cpu = procrustes_align(a, b, groups=groups, n_shuffles=3)
    gpu = procrustes_align(a, b, groups=groups, n_shuffles=3, device="cuda")
    assert (gpu.dtype, gpu.device[:4]) == ("float32", "cuda")
    assert gpu.test_error == pytest.approx(cpu.test_error, abs=1e-5)
    np.testing.assert_allclose(gpu.aligned_corr, cpu.aligned_corr, atol=1e-5)
    np.testing.assert_allclose(gpu.null_aligned_corr, cpu.null_aligned_corr, atol=1e-5)
