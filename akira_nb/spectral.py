"""FFT band splits shared by the experiments.

Every function works on the last one (1D) or two (2D) dimensions and is batched over any leading
dimensions, so ``[H, W]``, ``[B, H, W]`` and ``[B, T, H, W]`` all work without Python loops.

Frequency convention (2D): the radial frequency of a Fourier coefficient is
``r = sqrt((f_y / 0.5)^2 + (f_x / 0.5)^2)`` with ``f`` in cycles per sample, so ``r = 1`` is the
Nyquist frequency along an axis (the reference code's "distance from the centre of the shifted
spectrum divided by N//2").
"""

from __future__ import annotations

import math

import torch

from akira_nb.runtime import check_range


def radial_frequency(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``[h, w]`` radial frequency of each FFT coefficient (unshifted layout), 1 = Nyquist."""
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype) / 0.5
    fx = torch.fft.fftfreq(w, device=device, dtype=dtype) / 0.5
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def lowpass_mask(
    h: int, w: int, freq_cutoff: float = 0.25, sharpness: float = 10.0, device=None
) -> torch.Tensor:
    """Soft low-pass mask ``sigmoid(sharpness * (freq_cutoff - r))`` (``[h, w]``, unshifted).

    ``sharpness`` is the reference's hard-coded 10; larger values approach a hard cut.
    """
    check_range("freq_cutoff", freq_cutoff, 0.0, None, low_open=True)
    check_range("sharpness", sharpness, 0.0, None, low_open=True)
    r = radial_frequency(h, w, device=device)
    return torch.sigmoid(sharpness * (freq_cutoff - r))


def low_high_split(
    x: torch.Tensor, freq_cutoff: float = 0.25, sharpness: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split real images ``[..., H, W]`` into spatial low- and high-pass images.

    ``low + high == x`` (up to float error); both are real images, not magnitudes. Differentiable.
    """
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dims [..., H, W]; got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    mask = lowpass_mask(h, w, freq_cutoff, sharpness, device=x.device).to(x.dtype)
    spec = torch.fft.fft2(x)
    low = torch.fft.ifft2(spec * mask).real
    return low, x - low


def normalize01(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Min-max normalise each ``[H, W]`` image of ``[..., H, W]`` to [0, 1] (the reference's
    per-band normalisation)."""
    flat = x.flatten(-2)
    lo = flat.min(-1, keepdim=True).values
    hi = flat.max(-1, keepdim=True).values
    return ((flat - lo) / (hi - lo + eps)).view_as(x)


def radial_bands(x: torch.Tensor, edges) -> torch.Tensor:
    """Hard radial band-pass images: ``[n_bands, ..., H, W]`` for bands ``[edges[i], edges[i+1])``.

    The bands partition the spectrum when ``edges[0] <= 0`` and ``edges[-1] > sqrt(2)``, so the
    images sum to ``x``.
    """
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges={edges!r} must be at least 2 strictly increasing numbers")
    h, w = x.shape[-2:]
    r = radial_frequency(h, w, device=x.device)
    e = torch.tensor(edges, device=x.device)
    masks = ((r >= e[:-1, None, None]) & (r < e[1:, None, None])).to(x.dtype)  # [n, h, w]
    spec = torch.fft.fft2(x).unsqueeze(0)  # [1, ..., h, w]
    shape = (masks.shape[0],) + (1,) * (x.dim() - 2) + (h, w)
    return torch.fft.ifft2(spec * masks.view(shape)).real


def radial_power_spectrum(x: torch.Tensor, n_bins: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially binned power ``|F|^2`` of ``[..., H, W]``: returns (bin centres ``[n_bins]``,
    power ``[..., n_bins]``), bins spanning radial frequency 0..sqrt(2)."""
    check_range("n_bins", n_bins, 1)
    h, w = x.shape[-2:]
    r = radial_frequency(h, w, device=x.device).flatten()
    top = math.sqrt(2.0) + 1e-6
    idx = torch.clamp((r / top * n_bins).long(), max=n_bins - 1)
    power = torch.fft.fft2(x).abs().pow(2).flatten(-2)  # [..., h*w]
    out = torch.zeros(power.shape[:-1] + (n_bins,), device=x.device, dtype=power.dtype)
    out.index_add_(-1, idx, power)
    centres = (torch.arange(n_bins, device=x.device) + 0.5) * top / n_bins
    return centres, out


def spectrum_1d(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Power spectrum ``|rfft(x)|^2`` along ``dim`` (batched over the other dims)."""
    return torch.fft.rfft(x, dim=dim).abs().pow(2)


def spectral_centroid_1d(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Power-weighted mean frequency index of ``rfft(x)`` along ``dim``."""
    p = spectrum_1d(x, dim=dim).movedim(dim, -1)
    k = torch.arange(p.shape[-1], device=p.device, dtype=p.dtype)
    return (p * k).sum(-1) / p.sum(-1).clamp_min(1e-12)


def band_mse(
    pred: torch.Tensor, target: torch.Tensor, freq_cutoff: float = 0.25, sharpness: float = 10.0
) -> dict:
    """Per-pixel MSE of the low- and high-pass parts of ``pred - target`` (``[..., H, W]``)."""
    low, high = low_high_split(pred - target, freq_cutoff, sharpness)
    return {"low": float(low.pow(2).mean()), "high": float(high.pow(2).mean())}
