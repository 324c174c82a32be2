import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats as sps

from akira_nb.alignment.correlation import (
    GURNEE_THRESHOLD,
    SEED_THRESHOLD,
    StreamingCorrelation,
    correlation_of,
)
from akira_nb.alignment.excess import basic_excess, gurnee_excess, haar_orthogonal


def corrcoef(a, b):
    """numpy's Pearson block of A vs B, constant neurons set to 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        c = np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1] :]
    return np.nan_to_num(c)


def data(n=600, d_a=64, d_b=96, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d_a)) * rng.uniform(0.1, 3, d_a) + rng.uniform(-2, 2, d_a)
    b = rng.standard_normal((n, d_b))
    b[:, :d_a] += 0.7 * a  # neuron i of B follows neuron i of A
    return a, b


@pytest.mark.parametrize("splits", [[600], [100] * 6, [1, 7, 250, 2, 340]])
def test_streaming_equals_numpy_corrcoef_for_any_batch_split(splits):
    a, b = data()
    sc = StreamingCorrelation(64, 96, device="cpu")
    start = 0
    for size in splits:
        sc.update(a[start : start + size], b[start : start + size])
        start += size
    assert sc.n == 600 and sc.n_updates == len(splits)
    np.testing.assert_allclose(sc.corr().numpy(), corrcoef(a, b), atol=1e-12)
    np.testing.assert_allclose(sc.mean_a.numpy(), a.mean(0), atol=1e-12)
    np.testing.assert_allclose(sc.var_b.numpy(), b.var(0), rtol=1e-10)


def test_save_load_and_more_batches_equals_corrcoef_on_everything(tmp_path):
    a, b = data(n=700)
    sc = StreamingCorrelation(64, 96, device="cpu")
    sc.update(a[:200], b[:200]).update(a[200:300], b[200:300])
    path = sc.save(tmp_path / "corr.pt")
    # the file is plain tensors and ints: weights_only loading works
    assert torch.load(path, weights_only=True)["n"] == 300
    resumed = StreamingCorrelation.load(path, device="cpu")
    assert resumed.n == 300 and resumed.n_updates == 2
    resumed.update(a[300:], b[300:])
    np.testing.assert_allclose(resumed.corr().numpy(), corrcoef(a, b), atol=1e-12)
    # the interrupted and the uninterrupted streams agree
    whole = StreamingCorrelation(64, 96, device="cpu").update(a, b)
    np.testing.assert_allclose(resumed.corr().numpy(), whole.corr().numpy(), atol=1e-13)


def test_load_refuses_a_state_for_other_widths(tmp_path):
    a, b = data()
    StreamingCorrelation(64, 96).update(a, b).save(tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    with pytest.raises(ValueError, match="d_b"):
        StreamingCorrelation(64, 95).load_state_dict(state)
    with pytest.raises(ValueError, match="track_b_cov"):
        StreamingCorrelation(64, 96, track_b_cov=False).load_state_dict(state)
    with pytest.raises(ValueError, match="format"):
        StreamingCorrelation(64, 96).load_state_dict({"n": 3})


def _held_bytes(obj) -> int:
    """Bytes of every tensor and array reachable from ``obj``'s attributes (through lists,
    tuples and dicts; shared storages counted once): what the object keeps in memory."""
    seen, total, stack = set(), 0, list(vars(obj).values())
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            storage = x.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(x, np.ndarray):
            total += x.nbytes
        elif isinstance(x, (list, tuple, set)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, StreamingCorrelation):
            stack.extend(vars(x).values())
    return total


def test_memory_does_not_grow_with_tokens(tmp_path):
    """What the accumulator keeps (every tensor it can reach) and what it saves are the same
    after 1,000 and after 10,000 tokens; an accumulator that kept its batches would grow."""
    from akira_nb.alignment.correlation import SharedMarginalsCorrelation

    a, b = data(n=100)

    class KeepsBatches(StreamingCorrelation):
        def update(self, xa, xb):
            self.kept = [*getattr(self, "kept", []), torch.as_tensor(xb).clone()]
            return super().update(xa, xb)

    real = StreamingCorrelation(64, 96)
    null = SharedMarginalsCorrelation(real)
    leaky = KeepsBatches(64, 96)

    def feed(k):
        for _ in range(k):
            real.update(a, b)
            null.update(a, b[::-1].copy())
            leaky.update(a, b)

    feed(10)
    held = [_held_bytes(x) for x in (real, null, leaky)]
    files = [x.save(tmp_path / f"{i}_10.pt").stat().st_size for i, x in enumerate((real, null))]
    feed(90)
    assert real.n == 10_000 and null.n == 10_000
    assert [_held_bytes(x) for x in (real, null)] == held[:2]
    assert [
        x.save(tmp_path / f"{i}_100.pt").stat().st_size for i, x in enumerate((real, null))
    ] == files
    assert _held_bytes(leaky) > 5 * held[2]  # the measure sees a growing accumulator
    # and what it keeps is its accumulators: cross, B's second moment, O(d) vectors
    assert held[0] == 8 * (64 * 96 + 96 * 96 + 3 * (64 + 96))


def test_constant_neurons_give_zero_and_are_reported():
    a, b = data()
    a[:, 3] = 2.5
    b[:, 7] = 0.0
    sc = StreamingCorrelation(64, 96).update(a[:300], b[:300]).update(a[300:], b[300:])
    c = sc.corr()
    assert torch.isfinite(c).all()
    assert (c[3] == 0).all() and (c[:, 7] == 0).all()
    assert sc.constant_a.nonzero().flatten().tolist() == [3]
    assert sc.constant_b.nonzero().flatten().tolist() == [7]
    np.testing.assert_allclose(c.numpy(), corrcoef(a, b), atol=1e-12)


def test_index_matched_is_the_diagonal_from_the_same_sums():
    a, b = data()
    sc = StreamingCorrelation(64, 96).update(a, b)
    full = corrcoef(a, b)
    np.testing.assert_allclose(sc.index_matched().numpy(), np.diag(full[:, :64]), atol=1e-12)
    # B narrower than A: min width
    sc2 = StreamingCorrelation(96, 64).update(b, a)
    assert sc2.index_matched().shape == (64,)


def test_float32_batches_keep_precision_for_large_means():
    """Shifted sums: a neuron with mean 1000 and std 1 still correlates right in float32."""
    a, b = data(n=2000)
    a = a + 1000.0
    sc = StreamingCorrelation(64, 96, compute_dtype="float32")
    for i in range(0, 2000, 250):
        sc.update(torch.tensor(a[i : i + 250], dtype=torch.float32), b[i : i + 250])
    np.testing.assert_allclose(sc.corr().numpy(), corrcoef(a, b), atol=2e-5)
    # half-precision activations (as captured from a model) and integers are accepted
    h = torch.tensor(a - 1000.0, dtype=torch.float16)
    sc16 = StreamingCorrelation(64, 96).update(h, torch.tensor(b).round().int())
    want = corrcoef(h.double().numpy(), np.round(b))
    np.testing.assert_allclose(sc16.corr().numpy(), want, atol=1e-12)


def test_named_layers_are_blocks_of_one_matmul_and_rotate_per_layer():
    a, b = data()
    sc = StreamingCorrelation({3: 30, 5: 34}, {3: 40, "7": 56})
    sc.update({3: a[:, :30], 5: a[:, 30:]}, {3: b[:, :40], "7": b[:, 40:]})
    full = corrcoef(a, b)
    np.testing.assert_allclose(sc.corr().numpy(), full, atol=1e-12)
    np.testing.assert_allclose(sc.corr(5, "7").numpy(), full[30:, 40:], atol=1e-12)
    np.testing.assert_allclose(
        sc.index_matched(5, "7").numpy(), np.diag(full[30:, 40:]), atol=1e-12
    )
    g = torch.Generator().manual_seed(1)
    q3, q7 = haar_orthogonal(40, g), haar_orthogonal(56, g)
    rot = torch.block_diag(q3, q7).numpy()
    np.testing.assert_allclose(sc.rotated_corr([q3, q7]).numpy(), corrcoef(a, b @ rot), atol=1e-12)
    np.testing.assert_allclose(
        sc.rotated_corr(q7, layer_a=3, layer_b="7").numpy(),
        corrcoef(a[:, :30], b[:, 40:] @ q7.numpy()),
        atol=1e-12,
    )
    ri = sc.rotated_index_matched(q3, layer_a=5, layer_b=3).numpy()
    np.testing.assert_allclose(ri, np.diag(corrcoef(a[:, 30:], b[:, :40] @ q3.numpy())[:, :34]))
    np.testing.assert_allclose(sc.cov_b(3).numpy(), np.cov(b[:, :40].T, bias=True), atol=1e-12)
    pos, idx = sc.split_b(torch.tensor([0, 39, 40, 95]))
    assert pos.tolist() == [0, 0, 1, 1] and idx.tolist() == [0, 39, 0, 55]
    # save / load keeps the layer names
    sd = sc.state_dict()
    again = StreamingCorrelation({3: 30, 5: 34}, {3: 40, "7": 56})
    again.load_state_dict(sd)
    np.testing.assert_allclose(again.corr(5, 3).numpy(), full[30:, :40], atol=1e-12)


def test_haar_rotation_is_orthogonal_and_uniform():
    g = torch.Generator().manual_seed(0)
    q = haar_orthogonal(50, g)
    torch.testing.assert_close(q.T @ q, torch.eye(50, dtype=torch.float64), atol=1e-12, rtol=0)
    # O(2): the angle of the first column is uniform on the circle, det = +-1 half each
    qs = torch.stack([haar_orthogonal(2, g) for _ in range(2000)])
    angle = torch.atan2(qs[:, 1, 0], qs[:, 0, 0]).numpy()
    assert sps.kstest(angle, sps.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3
    dets = torch.linalg.det(qs)
    assert 0.45 < float((dets > 0).float().mean()) < 0.55
    # in O(d), E[Q_ij^2] = 1/d
    q2 = torch.stack([haar_orthogonal(8, g) for _ in range(500)])
    np.testing.assert_allclose((q2**2).mean(0).numpy(), 1 / 8, atol=0.025)
    # the same seed gives the same rotation
    same = haar_orthogonal(6, torch.Generator().manual_seed(3))
    torch.testing.assert_close(same, haar_orthogonal(6, torch.Generator().manual_seed(3)))


def test_rotated_baselines_equal_rotating_the_activations():
    a, b = data()
    sc = StreamingCorrelation(64, 96).update(a, b)
    q = haar_orthogonal(96, torch.Generator().manual_seed(5))
    ref = corrcoef(a, b @ q.numpy())
    np.testing.assert_allclose(sc.rotated_corr(q).numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(
        sc.rotated_index_matched(q).numpy(), np.diag(ref[:, :64]), atol=1e-12
    )


def test_excess_is_near_zero_for_independent_data():
    rng = np.random.default_rng(2)
    n = 4000
    a, b = rng.standard_normal((n, 64)), rng.standard_normal((n, 96))
    sc = StreamingCorrelation(64, 96).update(a, b)
    e = basic_excess(sc, n_rotations=5, seed=0)
    assert e.excess.shape == (64,) and e.baselines.shape == (5, 64)
    # each excess is a difference of ~N(0, 1/n) correlations: the mean over 64 neurons is tiny
    assert abs(float(e.excess.mean())) < 4 * math.sqrt(2 / n / 64)
    assert e.count(SEED_THRESHOLD) == 0
    gu = gurnee_excess(sc, n_rotations=2, seed=0)
    assert abs(float(gu.excess.mean())) < 0.01
    assert gu.count(GURNEE_THRESHOLD) == 0
    assert gu.best_b.shape == (64,)


def test_excess_finds_planted_index_matched_copies():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2000, 64)), rng.standard_normal((2000, 96))
    b[:, :32] = a[:, :32] + 0.5 * rng.standard_normal((2000, 32))  # r = 0.89 for i < 32
    sc = StreamingCorrelation(64, 96).update(a, b)
    e = basic_excess(sc, n_rotations=3)
    assert e.aq_mask(SEED_THRESHOLD).nonzero().flatten().tolist() == list(range(32))
    # Gurnee's max finds the same partners
    gu = gurnee_excess(sc)
    assert gu.best_b[:32].tolist() == list(range(32))
    assert gu.aq_mask(GURNEE_THRESHOLD).nonzero().flatten().tolist() == list(range(32))
    s = e.summary(SEED_THRESHOLD)
    assert s["aq"] == 32 and s["total"] == 64 and s["pct"] == 50.0


def test_correlation_of_is_a_one_shot_helper():
    a, b = data()
    np.testing.assert_allclose(correlation_of(a, b).corr().numpy(), corrcoef(a, b), atol=1e-12)


def test_bad_inputs_raise_value_errors():
    a, b = data()
    sc = StreamingCorrelation(64, 96)
    with pytest.raises(ValueError, match="need at least 2 tokens"):
        sc.corr()
    with pytest.raises(ValueError, match=r"xb has shape \(600, 95\)"):
        sc.update(a, b[:, :95])
    with pytest.raises(ValueError, match="same rows"):
        sc.update(a, b[:10])
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sc.update(bad, b)
    with pytest.raises(ValueError, match="no named layers"):
        sc.update({0: a}, b)
    with pytest.raises(ValueError, match="compute_dtype"):
        StreamingCorrelation(4, 4, compute_dtype="float16")
    with pytest.raises(ValueError, match="d_a"):
        StreamingCorrelation(0, 4)
    named = StreamingCorrelation({3: 64}, {3: 96}).update({3: a}, {3: b})
    with pytest.raises(ValueError, match=r"layer_a=7 is not tracked; tracked: \[3\]"):
        named.corr(7, 3)
    with pytest.raises(ValueError, match="expected"):
        named.update({4: a}, {3: b})
    with pytest.raises(ValueError, match="track_b_cov"):
        basic_excess(StreamingCorrelation(64, 96, track_b_cov=False).update(a, b))
    with pytest.raises(ValueError, match="rotation"):
        named.rotated_corr(torch.eye(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_rotations"):
        basic_excess(named, n_rotations=0)


def test_a_shuffled_null_shares_the_real_accumulators_marginals(tmp_path):
    """Permuting B's rows within a batch leaves n, the shifts, every sum and B^T B unchanged:
    the null keeps only its cross-product and reads the rest from the real accumulator, and
    gives what a full accumulator fed the same shuffled batches gives."""
    from akira_nb.alignment.correlation import SharedMarginalsCorrelation
    from akira_nb.alignment.thresholds import ShuffledStream

    a, b = data(n=800)
    real = StreamingCorrelation({0: 30, 1: 34}, {0: 40, 1: 56})
    null = ShuffledStream(SharedMarginalsCorrelation(real), seed=3)
    full = ShuffledStream(StreamingCorrelation({0: 30, 1: 34}, {0: 40, 1: 56}), seed=3)
    for i in range(0, 800, 160):
        xa = {0: a[i : i + 160, :30], 1: a[i : i + 160, 30:]}
        xb = {0: b[i : i + 160, :40], 1: b[i : i + 160, 40:]}
        real.update(xa, xb)
        null.update(xa, xb)
        full.update(xa, xb)
    n, f = null.stats, full.stats
    torch.testing.assert_close(n.corr(), f.corr(), rtol=0, atol=1e-12)
    torch.testing.assert_close(n.cov_b(1), f.cov_b(1), rtol=0, atol=1e-12)
    q = haar_orthogonal(56, torch.Generator().manual_seed(0))
    torch.testing.assert_close(n.rotated_corr(q, 1, 1), f.rotated_corr(q, 1, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        basic_excess(n, 0, 0, seed=1).excess,
        basic_excess(f, 0, 0, seed=1).excess,
        atol=1e-12,
        rtol=0,
    )
    assert n.nbytes == 8 * 64 * 96 < f.nbytes  # only the cross-product is its own
    state = n.state_dict()
    assert {k for k, v in state.items() if isinstance(v, torch.Tensor)} == {"cross"}
    path = n.save(tmp_path / "null.pt")
    again = SharedMarginalsCorrelation.load(path, real)
    torch.testing.assert_close(again.corr(), n.corr(), rtol=0, atol=0)
    # the null must follow the real accumulator batch by batch
    lone = SharedMarginalsCorrelation(StreamingCorrelation(64, 96))
    with pytest.raises(ValueError, match="real accumulator"):
        lone.update(a[:10], b[:10])
    behind = SharedMarginalsCorrelation(real)
    with pytest.raises(ValueError, match="real accumulator"):
        behind.corr()
    with pytest.raises(ValueError, match="d_b"):
        SharedMarginalsCorrelation(StreamingCorrelation(64, 95)).load_state_dict(state)


def test_rotation_baselines_in_float32_agree_with_float64_and_reuse_one_draw():
    from akira_nb.alignment.excess import clear_rotations, haar_rotations

    a, b = data(n=800)
    sc = correlation_of(a, b, device="cpu", track_b_cov=True)
    e64 = basic_excess(sc, n_rotations=3, seed=5)
    e32 = basic_excess(sc, n_rotations=3, seed=5, dtype="float32")
    assert e32.baselines.dtype == torch.float64
    np.testing.assert_allclose(e32.baselines, e64.baselines, atol=1e-5)
    np.testing.assert_allclose(e32.excess, e64.excess, atol=1e-5)
    g64 = gurnee_excess(sc, seed=5)
    g32 = gurnee_excess(sc, seed=5, dtype="float32")
    np.testing.assert_allclose(g32.baseline, g64.baseline, atol=1e-5)
    # the kept rotations are the sequence one generator draws; gurnee's is basic's first
    g = torch.Generator().manual_seed(5)
    want = [haar_orthogonal(96, g) for _ in range(3)]
    got = haar_rotations(96, 3, 5)
    assert all(torch.equal(q, w) for q, w in zip(got, want))
    assert haar_rotations(96, 1, 5)[0] is got[0]  # kept, not drawn again
    q = want[0]
    rot = sc.rotated_corr(q)
    np.testing.assert_allclose(g64.baselines[0], rot.max(dim=1).values, atol=1e-12)
    # B's rotated variances: diag(Q^T cov_b Q), kept until the sums change
    var = sc.rotated_var_b(q)
    np.testing.assert_allclose(var, np.diag(q.T @ sc.cov_b() @ q), rtol=1e-12)
    assert sc.rotated_var_b(q) is var
    sc.update(a[:50], b[:50])
    assert sc.rotated_var_b(q) is not var
    clear_rotations()
    assert haar_rotations(96, 1, 5)[0] is not got[0]


def test_a_checkpoint_state_without_copies_reads_the_accumulators_themselves():
    from akira_nb.alignment.correlation import SharedMarginalsCorrelation

    a, b = data(n=100)
    sc = correlation_of(a, b, device="cpu", track_b_cov=True)
    null = SharedMarginalsCorrelation(sc)
    null.update(a, b[::-1].copy())
    for acc in (sc, null):
        shared, copied = acc.state_dict(copy=False), acc.state_dict()
        assert shared["cross"].data_ptr() == acc.cross.data_ptr()
        assert copied["cross"].data_ptr() != acc.cross.data_ptr()
        assert torch.equal(shared["cross"], copied["cross"])
    assert sc.state_dict(copy=False)["sum_bb"][0].data_ptr() == sc.sum_bb[0].data_ptr()


def test_the_analysis_dtype_is_float64_on_the_cpu_unless_asked():
    from akira_nb.alignment.correlation import analysis_dtype

    assert analysis_dtype("cpu") == torch.float64
    assert analysis_dtype("cpu", "float32") == torch.float32
    assert analysis_dtype("cpu", torch.float64) == torch.float64
    with pytest.raises(ValueError, match="dtype='half' is not allowed"):
        analysis_dtype("cpu", "half")
