import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from akira_nb.alignment.cka import (
    MinibatchCKA,
    cka_matrix,
    debiased_linear_cka,
    gram_linear,
    hsic_biased,
    hsic_unbiased,
    linear_cka,
    rbf_cka,
    sample_tokens,
)


def related(n=300, d_x=30, d_y=40, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d_x)) * rng.uniform(0.2, 2, d_x)
    y = x @ rng.standard_normal((d_x, d_y)) + noise * rng.standard_normal((n, d_y))
    return x, y


def direct_cka(x, y):
    """Kornblith et al. eq. (via token Gram matrices): HSIC(K, L) / sqrt(HSIC(K,K) HSIC(L,L))."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def song_unbiased_hsic(k, l):
    """Song et al. 2012, eq. (5), written out with explicit loops-free numpy."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    one = np.ones(n)
    return (
        np.trace(k @ l)
        + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ k @ l @ one)
    ) / (n * (n - 3))


def test_linear_cka_equals_the_direct_formula_and_is_one_on_identical_inputs():
    x, y = related()
    assert linear_cka(x, y) == pytest.approx(direct_cka(x, y), rel=1e-10)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(torch.tensor(x, dtype=torch.float32), x) == pytest.approx(1.0, abs=1e-6)


def test_linear_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling():
    x, y = related()
    q = ortho_group.rvs(40, random_state=1)
    base = linear_cka(x, y)
    assert linear_cka(x, y @ q) == pytest.approx(base, rel=1e-10)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x + 5.0, y - 2.0) == pytest.approx(base, rel=1e-10)  # centred inside
    # but not to a general invertible map
    m = np.diag(np.linspace(0.1, 10, 40))
    assert abs(linear_cka(x, y @ m) - base) > 1e-3


def test_debiased_cka_matches_song_unbiased_hsic_and_is_near_zero_when_independent():
    x, y = related(n=120)
    xc, yc = x - x.mean(0), y - y.mean(0)
    k, l = xc @ xc.T, yc @ yc.T
    want = song_unbiased_hsic(k, l) / np.sqrt(song_unbiased_hsic(k, k) * song_unbiased_hsic(l, l))
    assert debiased_linear_cka(x, y) == pytest.approx(want, rel=1e-9)
    kt, lt = torch.tensor(k), torch.tensor(l)
    assert float(hsic_unbiased(kt, lt)) == pytest.approx(song_unbiased_hsic(k, l), rel=1e-10)
    n = 120
    h = np.eye(n) - 1.0 / n
    assert float(hsic_biased(kt, lt)) == pytest.approx(np.trace(k @ h @ l @ h) / (n - 1) ** 2)
    # independent wide representations at few tokens: plain CKA is biased up, debiased is ~0
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((100, 200)), rng.standard_normal((100, 300))
    assert linear_cka(a, b) > 0.5
    assert abs(debiased_linear_cka(a, b)) < 0.05
    assert debiased_linear_cka(a, a) == pytest.approx(1.0)


def test_minibatch_cka_averages_unbiased_hsic_over_batches():
    x, y = related(n=400)
    mb = MinibatchCKA()
    for i in range(0, 400, 100):
        mb.update(x[i : i + 100], y[i : i + 100])
    # the direct computation of Nguyen et al.'s estimator
    hs = [
        [
            float(hsic_unbiased(gram_linear(u[i : i + 100]), gram_linear(v[i : i + 100])))
            for i in range(0, 400, 100)
        ]
        for u, v in ((x, y), (x, x), (y, y))
    ]
    want = np.mean(hs[0]) / np.sqrt(np.mean(hs[1]) * np.mean(hs[2]))
    assert mb.cka() == pytest.approx(want, rel=1e-10)
    assert mb.n_batches == 4 and mb.n_tokens == 400
    # close to the full-data debiased CKA
    assert mb.cka() == pytest.approx(debiased_linear_cka(x, y), abs=0.05)
    # several layers at once, and a saved state resumes
    m2 = MinibatchCKA()
    m2.update({"x": x[:100], "y": y[:100]}, {0: y[:100], 1: x[:100]})
    resumed = MinibatchCKA()
    resumed.load_state_dict(m2.state_dict())
    resumed.update({"x": x[100:200], "y": y[100:200]}, {0: y[100:200], 1: x[100:200]})
    mat, la, lb = resumed.matrix()
    assert la == ["x", "y"] and lb == [0, 1]
    np.testing.assert_allclose(np.diag(mat[:, ::-1]), 1.0)
    assert mat[0, 0] == pytest.approx(mat[1, 1])
    with pytest.raises(ValueError, match="layers changed"):
        resumed.update({"x": x[:100]}, {0: y[:100]})
    with pytest.raises(ValueError, match="at least 4"):
        MinibatchCKA().update(x[:3], y[:3])


def test_rbf_cka_is_one_on_identical_inputs_and_tends_to_linear_for_wide_kernels():
    x, y = related(n=150)
    assert rbf_cka(x, x) == pytest.approx(1.0)
    assert rbf_cka(x, y, sigma_frac=200.0) == pytest.approx(linear_cka(x, y), abs=1e-4)
    assert 0 < rbf_cka(x, y, sigma_frac=0.5) < 1
    assert rbf_cka(x, x, debiased=True) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="max_tokens"):
        rbf_cka(x, y, max_tokens=100)
    with pytest.raises(ValueError, match="sigma_frac"):
        rbf_cka(x, y, sigma_frac=0.0)


def test_cka_matrix_over_layers():
    x, y = related()
    rng = np.random.default_rng(9)
    z = rng.standard_normal(x.shape)
    acts_a = {0: x, 1: z}
    acts_b = {"y": y, "x": x}
    for method in ("linear", "debiased"):
        mat, la, lb = cka_matrix(acts_a, acts_b, method=method)
        assert mat.shape == (2, 2) and la == [0, 1] and lb == ["y", "x"]
        assert mat[0, 1] == pytest.approx(1.0)
        one = linear_cka if method == "linear" else debiased_linear_cka
        assert mat[1, 0] == pytest.approx(one(z, y))
    mat, _, _ = cka_matrix({0: x[:80]}, {0: x[:80], 1: z[:80]}, method="rbf", sigma_frac=1.0)
    assert mat[0, 0] == pytest.approx(1.0) and mat[0, 1] < 0.9


def test_sample_tokens():
    idx = sample_tokens(1000, 50, seed=3)
    assert len(set(idx.tolist())) == 50 and (idx.diff() > 0).all()
    assert torch.equal(idx, sample_tokens(1000, 50, seed=3))
    assert len(sample_tokens(10, 50)) == 10


def test_bad_inputs_raise_value_errors():
    x, y = related()
    with pytest.raises(ValueError, match="same tokens"):
        linear_cka(x, y[:-1])
    with pytest.raises(ValueError, match="expected"):
        linear_cka(x[:, 0], y)
    with pytest.raises(ValueError, match="no variance"):
        linear_cka(np.ones((10, 3)), y[:10])
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(np.full((10, 3), np.nan), y[:10])
    with pytest.raises(ValueError, match="at least 4"):
        debiased_linear_cka(x[:3], y[:3])
    with pytest.raises(ValueError, match="method='cosine' is not allowed"):
        cka_matrix({0: x}, {0: y}, method="cosine")
    with pytest.raises(ValueError, match="token counts"):
        cka_matrix({0: x}, {0: y[:10]})


def test_linear_cka_from_streamed_sums_equals_the_direct_formula():
    """Linear CKA over every streamed token, from the accumulators' covariances, equals
    linear_cka on the full matrices; its token-shuffled null equals the shuffled pair's."""
    from akira_nb.alignment.cka import linear_cka_from_stats
    from akira_nb.alignment.correlation import SharedMarginalsCorrelation, StreamingCorrelation
    from akira_nb.alignment.thresholds import ShuffledStream

    g = torch.Generator().manual_seed(0)
    x = torch.randn(900, 24, generator=g, dtype=torch.float64) * 3 + 5
    y = torch.cat(
        [
            x[:, :10] @ torch.randn(10, 10, generator=g, dtype=torch.float64),
            torch.randn(900, 30, generator=g, dtype=torch.float64),
        ],
        1,
    )
    sc = StreamingCorrelation(24, 40, track_a_cov=True)
    null = ShuffledStream(SharedMarginalsCorrelation(sc), seed=2)
    shuffled = []
    for i in range(0, 900, 300):
        sc.update(x[i : i + 300], y[i : i + 300])
        gen = torch.Generator().manual_seed(2 * 1_000_003 + null.stats.n_updates)
        shuffled.append(y[i : i + 300][torch.randperm(300, generator=gen)])
        null.update(x[i : i + 300], y[i : i + 300])
    assert linear_cka_from_stats(sc) == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert linear_cka_from_stats(null.stats) == pytest.approx(
        linear_cka(x, torch.cat(shuffled)), abs=1e-12
    )
    layered = StreamingCorrelation({0: 10, 1: 14}, {5: 40}, track_a_cov=True)
    layered.update({0: x[:, :10], 1: x[:, 10:]}, {5: y})
    assert linear_cka_from_stats(layered, 1, 5) == pytest.approx(
        linear_cka(x[:, 10:], y), abs=1e-12
    )
    with pytest.raises(ValueError, match="track_a_cov"):
        linear_cka_from_stats(StreamingCorrelation(24, 40).update(x, y))


def mlp_like(n=1200, d_x=96, d_y=128, seed=0):
    """GELU layers reading one latent: correlated, ill-conditioned, non-zero mean."""
    g = np.random.default_rng(seed)
    z = g.standard_normal((n, 24)) * np.geomspace(3.0, 0.05, 24)
    gelu = lambda v: 0.5 * v * (1 + np.tanh(0.7978845608 * (v + 0.044715 * v**3)))
    x = gelu(z @ g.standard_normal((24, d_x)) + 0.1 * g.standard_normal((n, d_x)))
    y = gelu(z @ g.standard_normal((24, d_y)) + 0.1 * g.standard_normal((n, d_y)))
    return x, y


def test_float32_cka_agrees_with_float64_and_cka_scores_with_each_function():
    from akira_nb.alignment.cka import cka_scores

    x, y = mlp_like()
    perm = np.random.default_rng(1).permutation(len(y))
    y_null = y[perm]
    f64 = cka_scores(x, y, perm)
    f32 = cka_scores(x, y, perm, dtype="float32")
    assert f64["linear"] == pytest.approx(linear_cka(x, y), abs=1e-12)
    assert f64["debiased"] == pytest.approx(debiased_linear_cka(x, y), abs=1e-12)
    assert f64["linear_null"] == pytest.approx(linear_cka(x, y_null), abs=1e-12)
    assert f64["debiased_null"] == pytest.approx(debiased_linear_cka(x, y_null), abs=1e-12)
    assert f64["linear"] == pytest.approx(direct_cka(x - x.mean(0), y - y.mean(0)), abs=1e-10)
    assert f64["linear"] > 0.5 and abs(f64["debiased_null"]) < 0.02
    for key, value in f64.items():
        assert f32[key] == pytest.approx(value, abs=1e-5), key
    m64 = cka_matrix({0: x, 1: x[:, :50]}, {0: y})[0]
    m32 = cka_matrix({0: x, 1: x[:, :50]}, {0: y}, dtype="float32")[0]
    np.testing.assert_allclose(m32, m64, atol=1e-5)
    with pytest.raises(ValueError, match="dtype='float16' is not allowed"):
        linear_cka(x, y, dtype="float16")
    with pytest.raises(ValueError, match="null_perm must be a permutation of the 1200 tokens"):
        cka_scores(x, y, perm[:10])
