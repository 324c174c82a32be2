import math

import pytest
import torch

from akira_nb import spectral


def test_low_plus_high_is_the_image_and_batched():
    x = torch.rand(2, 3, 16, 12)
    low, high = spectral.low_high_split(x, freq_cutoff=0.3, sharpness=20)
    assert low.shape == high.shape == x.shape
    torch.testing.assert_close(low + high, x)
    # batched == one at a time
    low1, _ = spectral.low_high_split(x[1, 2], freq_cutoff=0.3, sharpness=20)
    torch.testing.assert_close(low[1, 2], low1)


def test_constant_goes_low_and_checkerboard_goes_high():
    const = torch.full((16, 16), 0.7)
    low, high = spectral.low_high_split(const, 0.25, 10)
    # a soft mask keeps sigmoid(10 * 0.25) of the DC component in the low band
    keep = torch.sigmoid(torch.tensor(2.5))
    torch.testing.assert_close(low, torch.full_like(const, 0.7) * keep)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 1.0 - 0.5
    low, high = spectral.low_high_split(checker, 0.25, 10)
    assert low.abs().max() < 1e-3
    torch.testing.assert_close(high, checker, atol=1e-3, rtol=0)


def test_sharper_mask_moves_closer_to_a_hard_cut():
    r = spectral.radial_frequency(32, 32)
    soft = spectral.lowpass_mask(32, 32, 0.25, 5)
    hard = spectral.lowpass_mask(32, 32, 0.25, 500)
    target = (r < 0.25).float()
    assert (hard - target).abs().mean() < (soft - target).abs().mean()


def test_radial_bands_partition_the_spectrum():
    x = torch.rand(3, 16, 16)
    bands = spectral.radial_bands(x, [0.0, 0.2, 0.5, 1.0, 1.5])
    assert bands.shape == (4, 3, 16, 16)
    torch.testing.assert_close(bands.sum(0), x, atol=1e-5, rtol=0)


def test_radial_power_spectrum_is_parseval():
    x = torch.rand(2, 8, 8)
    _, power = spectral.radial_power_spectrum(x, n_bins=5)
    torch.testing.assert_close(power.sum(-1), (x**2).sum((-2, -1)) * 64)


def test_1d_spectrum_and_centroid():
    n = torch.arange(64.0)
    x = torch.stack([torch.cos(2 * math.pi * 5 * n / 64), torch.cos(2 * math.pi * 12 * n / 64)])
    p = spectral.spectrum_1d(x)
    assert p.argmax(-1).tolist() == [5, 12]
    torch.testing.assert_close(spectral.spectral_centroid_1d(x), torch.tensor([5.0, 12.0]))


def test_band_mse_splits_the_error():
    a, b = torch.rand(4, 16, 16), torch.rand(4, 16, 16)
    out = spectral.band_mse(a, b)
    assert out["low"] >= 0 and out["high"] >= 0 and out["high"] > out["low"]  # white noise


@pytest.mark.parametrize(
    "kwargs, name",
    [({"freq_cutoff": 0.0}, "freq_cutoff"), ({"sharpness": -1.0}, "sharpness")],
)
def test_bad_band_parameters_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        spectral.low_high_split(torch.rand(8, 8), **kwargs)
