"""Spectra along the sequence of each neuron's activations (:func:`spectral_profile`), AQ vs
non-AQ neurons compared (:func:`compare_spectra`, :func:`spectral_analysis`), and how often
matched neurons share their key frequency (:func:`frequency_agreement`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from akira_nb.runtime import check_choice, check_int

if TYPE_CHECKING:
    from akira_nb.alignment.aq_methods import MethodResult


SPECTRAL_RULE = (
    "AQ neurons lower-frequency than the other neurons: median spectral centroid (DC bin "
    "excluded) lower, two-sided Mann-Whitney U p < 0.05; spectra from the model whose neurons "
    "the AQ indices name"
)


def spectral_profile(seq_acts, n_bands: int = 7) -> dict:
    """Per-neuron spectra along the sequence of ``seq_acts [n_seq, T, d]``.

    Returns ``freqs [K]`` (``k / T``, ``k = 0 .. T//2 - 1``), ``power [K, d]`` (``|FFT|^2``
    averaged over sequences), ``centroid_dc`` and ``centroid`` ``[d]`` (with and without the DC
    bin; cycles per token; 0 for a neuron without power), ``band_share [n_bands, d]`` (share of
    the non-DC power in each equal-width band of (0, 0.5)), ``band [d]`` (the band of the
    no-DC centroid) and ``band_edges``."""
    x = torch.as_tensor(seq_acts, dtype=torch.float64)
    if x.ndim != 3 or x.shape[1] < 4:
        raise ValueError(f"seq_acts has shape {tuple(x.shape)}; expected [n_seq, T >= 4, d]")
    n_bands = check_int("n_bands", n_bands, low=1)
    t = x.shape[1]
    k = t // 2
    power = torch.fft.fft(x, dim=1)[:, :k].abs().pow(2).mean(0)  # [K, d]
    freqs = torch.arange(k, dtype=torch.float64) / t
    tot_dc = power.sum(0)
    tot = power[1:].sum(0)
    safe = lambda v: torch.where(v > 0, v, torch.ones_like(v))
    centroid_dc = torch.where(tot_dc > 0, (freqs[:, None] * power).sum(0) / safe(tot_dc), 0.0)
    centroid = torch.where(tot > 0, (freqs[1:, None] * power[1:]).sum(0) / safe(tot), 0.0)
    edges = torch.linspace(0.0, 0.5, n_bands + 1, dtype=torch.float64)
    band_of_bin = (torch.bucketize(freqs[1:], edges[1:-1], right=True)).clamp(max=n_bands - 1)
    onehot = torch.nn.functional.one_hot(band_of_bin, n_bands).to(torch.float64)  # [K-1, B]
    band_power = onehot.T @ power[1:]  # [B, d]
    band_share = torch.where(tot > 0, band_power / safe(tot), 0.0)
    band = torch.bucketize(centroid, edges[1:-1], right=True).clamp(max=n_bands - 1)
    return {
        "freqs": freqs.numpy(),
        "power": power.numpy(),
        "centroid_dc": centroid_dc.numpy(),
        "centroid": centroid.numpy(),
        "band_share": band_share.numpy(),
        "band": band.numpy(),
        "band_edges": edges.numpy(),
        "n_sequences": int(x.shape[0]),
        "seq_len": t,
    }


def compare_spectra(profile: dict, aq_indices, n_bands: int | None = None) -> dict:
    """AQ vs non-AQ neurons of one profile: medians, means, Mann-Whitney U p-values of the
    centroids with and without DC and of the low-band share (the lowest 3 of 7 bands), band
    counts, and whether the AQ neurons are lower-frequency (:data:`SPECTRAL_RULE`)."""
    from scipy.stats import mannwhitneyu

    d = len(profile["centroid"])
    idx = np.asarray(aq_indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= d):
        raise ValueError(f"AQ indices must lie in [0, {d}) (the profiled model's neurons)")
    is_aq = np.zeros(d, dtype=bool)
    is_aq[idx] = True
    n_bands = n_bands or profile["band_share"].shape[0]
    low = max(1, round(3 * n_bands / 7))
    out = {"n_aq": int(is_aq.sum()), "n_other": int((~is_aq).sum()), "n_neurons": d}
    out["aq_indices"] = np.flatnonzero(is_aq).tolist()
    low_share = profile["band_share"][:low].sum(0)
    for key, values in (
        ("centroid", profile["centroid"]),
        ("centroid_dc", profile["centroid_dc"]),
        ("low_band_share", low_share),
    ):
        a, b = values[is_aq], values[~is_aq]
        entry = {
            "aq_median": float(np.median(a)) if a.size else None,
            "other_median": float(np.median(b)) if b.size else None,
            "aq_mean": float(a.mean()) if a.size else None,
            "other_mean": float(b.mean()) if b.size else None,
            "p_value": None,
        }
        if a.size >= 2 and b.size >= 2:
            entry["p_value"] = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        out[key] = entry
    share = profile["band_share"]
    out["band_share_aq"] = share[:, is_aq].mean(1).tolist() if is_aq.any() else None
    out["band_share_other"] = share[:, ~is_aq].mean(1).tolist() if (~is_aq).any() else None
    bands = profile["band"]
    out["band_counts_aq"] = np.bincount(bands[is_aq], minlength=n_bands).tolist()
    out["band_counts_other"] = np.bincount(bands[~is_aq], minlength=n_bands).tolist()
    c = out["centroid"]
    if c["p_value"] is None:
        out["lower_frequency"] = None
        out["verdict"] = f"not enough AQ neurons ({out['n_aq']}) for a test"
    else:
        lower = c["aq_median"] < c["other_median"] and c["p_value"] < 0.05
        out["lower_frequency"] = bool(lower)
        direction = "lower" if c["aq_median"] < c["other_median"] else "higher"
        out["verdict"] = (
            f"AQ median centroid {c['aq_median']:.4f} vs {c['other_median']:.4f} "
            f"({direction}, p = {c['p_value']:.2g}): "
            + ("lower-frequency" if lower else "not lower-frequency")
        )
    return out


def spectral_analysis(seq_acts: dict, method: MethodResult, n_bands: int = 7) -> dict:
    """The spectra of the neurons ``method``'s AQ indices name, from **that** model's
    activations: ``seq_acts = {"A": [n, T, d_a], "B": [n, T, d_b]}``."""
    model = check_choice("method.model", method.model, ("A", "B"))
    if model not in seq_acts:
        raise ValueError(
            f"{method.name}'s AQ indices are {model}'s neurons: pass seq_acts[{model!r}]"
        )
    profile = spectral_profile(seq_acts[model], n_bands)
    if profile["centroid"].shape[0] != len(method.scores):
        raise ValueError(
            f"{method.name} scores {len(method.scores)} neurons of {model}; its activations "
            f"have {profile['centroid'].shape[0]}"
        )
    out = compare_spectra(profile, method.aq_indices, n_bands)
    out.update(
        method=method.name,
        model=model,
        profile=profile,
        n_sequences=profile["n_sequences"],
        seq_len=profile["seq_len"],
    )
    return out


def frequency_agreement(freq_a, freq_b, partner, mask=None) -> dict:
    """How often matched neurons share their key frequency, against chance.

    ``freq_a [d_a]``, ``freq_b [d_b]``: each neuron's dominant frequency (e.g.
    :func:`akira_nb.modular_arithmetic.fourier.neuron_frequencies`); ``partner [d_a]``: A
    neuron ``i``'s
    matched B neuron; ``mask [d_a]``: which A neurons to count (default all). Chance: two
    neurons drawn independently from the two models' frequency distributions (of the counted A
    neurons and of all B neurons) share one with probability ``sum_k P_A(k) P_B(k)``; the
    one-sided binomial p-value says whether the observed rate is above it."""
    from scipy.stats import binomtest

    fa, fb = np.asarray(freq_a), np.asarray(freq_b)
    partner = np.asarray(partner, dtype=np.int64)
    mask = np.ones(len(fa), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    same = fa[mask] == fb[partner[mask]]
    k = int(same.sum())
    top = int(max(fa.max(initial=0), fb.max(initial=0))) + 1
    pa = np.bincount(fa[mask], minlength=top) / max(n, 1)
    pb = np.bincount(fb, minlength=top) / len(fb)
    chance = float((pa * pb).sum())
    p = float(binomtest(k, n, chance, alternative="greater").pvalue) if n and chance < 1 else None
    return {"n": n, "same": k, "rate": k / n if n else None, "chance": chance, "p_value": p}


__all__ = [
    "SPECTRAL_RULE",
    "compare_spectra",
    "frequency_agreement",
    "spectral_analysis",
    "spectral_profile",
]
