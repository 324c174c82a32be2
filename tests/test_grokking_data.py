import pytest
import torch

from akira_nb.modular_arithmetic.data import check_p, make_dataset


@pytest.mark.parametrize("p,frac,n_train", [(53, 0.3, 842), (113, 0.3, 3830), (7, 0.5, 24)])
def test_split_sizes_match_nanda(p, frac, n_train):
    data = make_dataset(p, frac, seed=0)
    assert data.n_train == n_train
    assert data.n_test == p * p - n_train


def test_splits_disjoint_and_cover_every_pair():
    data = make_dataset(13, 0.3, seed=1)
    train, test = set(data.train_idx.tolist()), set(data.test_idx.tolist())
    assert not train & test
    assert train | test == set(range(13 * 13))


def test_labels_are_a_plus_b_mod_p_and_row_order_is_a_times_p_plus_b():
    p = 11
    data = make_dataset(p, 0.5, seed=0)
    a, b, eq = data.inputs.T
    assert torch.equal(data.labels, (a + b) % p)
    assert torch.equal(a * p + b, torch.arange(p * p))
    assert (eq == p).all()


def test_split_depends_on_seed_only():
    assert torch.equal(make_dataset(13, 0.3, 5).train_idx, make_dataset(13, 0.3, 5).train_idx)
    assert not torch.equal(make_dataset(13, 0.3, 5).train_idx, make_dataset(13, 0.3, 6).train_idx)


@pytest.mark.parametrize("p", [1, 2, 4, 9, 15, 0, -7, 7.0, "7", True])
def test_bad_p_raises(p):
    with pytest.raises(ValueError, match="p="):
        make_dataset(p)
    with pytest.raises(ValueError, match="p="):
        check_p(p)


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_bad_train_frac_raises(frac):
    with pytest.raises(ValueError, match="train_frac"):
        make_dataset(13, frac)


def test_train_frac_leaving_an_empty_split_raises():
    with pytest.raises(ValueError, match="train_frac"):
        make_dataset(3, 0.05)
