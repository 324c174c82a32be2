"""The 026 explorer over a run's ``results.json``: pick a band-layout arm and a band; see the
arm's validation curve, the band's spectrum along the sequence, its ablation curve and its
weight change against its prescribed learning rate, beside the other bands.

:func:`explore` is the plain callback (pytest calls it); :func:`build_explorer` wires ipywidgets
to it (Dropdown, Output, interactive_output: what ipywidgets 7.7 and 8.x share). Its figure is
one pyplot does not track (:func:`akira_nb.explorers.figure`; that module says why).
"""

from __future__ import annotations

import math

import numpy as np

from akira_nb import explorers
from akira_nb.band_transformer.plots import arm_color, band_colors


def arms_of(results: dict) -> list[str]:
    """The arms with per-band records (every arm but the GPTs), in the run's order."""
    return list(results["band_statistics"])


def _steps(summary: dict) -> int:
    return int(summary["config"].get("total_steps", 0))


def _first(results: dict, arm: str) -> dict:
    """The training summary of ``arm`` whose bands were analysed: its first seed at its longest
    budget (``results["arms"]`` lists the reported trainings, budgets ascending)."""
    runs = [a for a in results["arms"] if a["config"]["arm"] == arm]
    longest = max(_steps(a) for a in runs)
    return next(a for a in runs if _steps(a) == longest)


def _label(summary: dict) -> str:
    steps = _steps(summary)
    where = f", {steps:,} steps" if steps else ""
    return f"{summary['config']['arm']} seed {summary['config']['seed']}{where}"


def _ratios(summary: dict, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Per band: the last monitor interval's ||dW|| / ||W|| relative to band 0's, and the
    prescribed LR relative to band 0's (NaN where not recorded)."""
    wc, lrs = summary.get("weight_change") or {}, summary.get("prescribed_lrs") or {}
    keys = [f"band_{i}" for i in range(n_bands)]
    last = np.array([wc[k][-1] if wc.get(k) else math.nan for k in keys], dtype=float)
    lr = np.array([lrs.get(k, math.nan) for k in keys], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return last / last[0], lr / lr[0]


def explore(results: dict, arm: str, band: int):
    """``arm``'s validation loss against the tokens (every seed at its longest budget, the
    baseline's first seed at that budget beside it), and band ``band``'s spectrum, ablation
    curve and weight change against its prescribed (tuned) LR (the arm's first seed there; the
    other bands in grey). ``results``: a 026 run's
    ``results.json``. Returns ``(lines, figure)``; the figure is not tracked by pyplot."""
    arms = arms_of(results)
    if arm not in arms:
        raise ValueError(f"arm={arm!r} has no per-band records in this run; choose one of {arms}")
    stats = results["band_statistics"][arm]
    n = len(stats["band_dims"])
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or not 0 <= band < n:
        raise ValueError(f"band={band!r} is not a band of {arm}; choose an integer in 0..{n - 1}")
    band = int(band)
    first = _first(results, arm)
    same = [a for a in results["arms"] if _steps(a) == _steps(first)]  # its budget
    seeds = [a for a in same if a["config"]["arm"] == arm]
    base = next((a for a in same if a["config"]["arm"] == "baseline"), None)
    unigram = results["unigram_val_loss"]
    ablation = results.get("ablations", {}).get(arm)
    maturity = results.get("maturation", {}).get(arm, {}).get("maturity")
    measured, prescribed = _ratios(first, n)
    lines = _explore_lines(arm, band, stats, first, seeds, base, unigram, ablation, maturity)
    fig = explorers.figure(figsize=(12, 6.6), layout="constrained")
    (ax_val, ax_spec), (ax_abl, ax_wc) = fig.subplots(2, 2)
    colors = band_colors(n)
    _plot_validation(ax_val, arm, seeds, base, unigram)
    _plot_spectrum(ax_spec, stats, band, colors)
    _plot_ablation(ax_abl, ablation, maturity, band, colors)
    _plot_weight_change(ax_wc, measured, prescribed, band, colors)
    return lines, fig


def _explore_lines(arm, band, stats, first, seeds, base, unigram, ablation, maturity) -> list:
    """The printed lines of :func:`explore`."""
    n = len(stats["band_dims"])
    measured, prescribed = _ratios(first, n)
    lr = (first.get("prescribed_lrs") or {}).get(f"band_{band}")

    finals = ", ".join(f"{a['final_val_loss']:.4f} (seed {a['config']['seed']})" for a in seeds)
    if _steps(first):
        finals += f" at {_steps(first):,} steps"
    beside = (
        f"; baseline {base['final_val_loss']:.4f} (seed {base['config']['seed']})"
        if base is not None
        else ""
    )
    lr_text = f"prescribed LR {lr:.3g} = {prescribed[band]:.3g}x band 0's" if lr else "no LR"
    lines = [
        f"{arm}, band {band} ({stats['band_dims'][band]} dims, {lr_text}): final validation "
        f"loss {finals}{beside}; unigram {unigram:.4f}",
        f"  spectrum of the band's state (last block, validation): centroid "
        f"{stats['centroid'][band]:.3f} cycles/token (DC excluded), low-frequency share "
        f"{stats['low_share'][band]:.2f}, RMS {stats['rms'][band]:.3g}",
    ]
    if ablation:
        inc = np.asarray(ablation["increase"], dtype=float)[:, band]
        mature = maturity[band] if maturity else None
        lines.append(
            f"  ablation: validation loss {inc[-1]:+.4f} when the band is zeroed at step "
            f"{ablation['steps'][-1]} (clean {ablation['loss'][-1]:.4f}); maturity step {mature}"
        )
    else:
        lines.append("  ablation: not recorded for this arm")
    lines.append(
        f"  weight change, last interval: {measured[band]:.3g}x band 0's ||dW||/||W|| against "
        f"a prescribed {prescribed[band]:.3g}x (the diagonal: moving as fast as its LR says)"
    )
    return lines


def _plot_validation(ax_val, arm, seeds, base, unigram) -> None:
    for a, ls in zip(seeds, ["-", "--", "-.", ":"] * len(seeds)):
        h = a["history"]
        ax_val.plot(h["tokens"], h["val_loss"], ls, color=arm_color(arm), label=_label(a))
    if base is not None:
        h = base["history"]
        ax_val.plot(h["tokens"], h["val_loss"], color=arm_color("baseline"), label=_label(base))
    ax_val.axhline(unigram, color="black", ls=":", lw=1, label=f"unigram {unigram:.3f}")
    ax_val.set(xlabel="training tokens", ylabel="validation loss", title=f"{arm}: validation loss")
    ax_val.legend(fontsize=7)


def _plot_spectrum(ax_spec, stats, band, colors) -> None:
    freqs = np.asarray(stats["freqs"])[1:]
    for i, p in enumerate(stats["power"]):
        p = np.asarray(p, dtype=float)[1:]
        chosen = i == band
        ax_spec.plot(
            freqs,
            p / max(p.sum(), 1e-30),
            color=colors[i] if chosen else "0.8",
            lw=2.2 if chosen else 0.8,
            zorder=3 if chosen else 1,
            label=f"band {i}" if chosen else None,
        )
    ax_spec.set(
        xlabel="cycles / token",
        ylabel="share of power (DC excluded)",
        yscale="log",
        title=f"band {band}: spectrum along the sequence (grey: other bands)",
    )
    ax_spec.legend(fontsize=7)


def _plot_ablation(ax_abl, ablation, maturity, band, colors) -> None:
    n = len(colors)
    if ablation:
        inc = np.asarray(ablation["increase"], dtype=float)
        for i in range(n):
            chosen = i == band
            ax_abl.plot(
                ablation["steps"],
                inc[:, i],
                "o-" if chosen else "-",
                ms=3,
                color=colors[i] if chosen else "0.8",
                lw=2 if chosen else 0.8,
                zorder=3 if chosen else 1,
            )
        if maturity and maturity[band] is not None:
            ax_abl.axvline(maturity[band], color=colors[band], ls="--", lw=1, label="maturity")
            ax_abl.legend(fontsize=7)
        ax_abl.axhline(0, color="black", lw=0.6)
    else:
        ax_abl.text(0.5, 0.5, "no ablation record", ha="center", transform=ax_abl.transAxes)
    ax_abl.set(
        xlabel="step",
        ylabel="loss increase when ablated",
        title=f"band {band}: ablation at every checkpoint",
    )


def _plot_weight_change(ax_wc, measured, prescribed, band, colors) -> None:
    ok = np.isfinite(measured) & np.isfinite(prescribed) & (measured > 0) & (prescribed > 0)
    ax_wc.plot(prescribed[ok], measured[ok], "o", color="0.7", label="other bands")
    if ok[band]:
        ax_wc.plot(
            prescribed[band], measured[band], "o", ms=10, color=colors[band], label=f"band {band}"
        )
    if ok.any():
        lo = min(prescribed[ok].min(), measured[ok].min()) / 1.5
        hi = max(prescribed[ok].max(), measured[ok].max()) * 1.5
        ax_wc.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls=":")
        ax_wc.set(xscale="log", yscale="log")
    ax_wc.set(
        xlabel="prescribed LR / band 0's",
        ylabel="||dW||/||W|| / band 0's (last interval)",
        title="weight change against the prescribed LR",
    )
    ax_wc.legend(fontsize=7)


def build_explorer(results: dict):
    """Widgets wired to :func:`explore` (``results``: a 026 run's ``results.json``, e.g.
    ``run.read_results()``); returns ``(box, controls)``."""
    import ipywidgets as W

    arms = arms_of(results)
    if not arms:
        raise ValueError("results has no band-layout arm to explore (band_statistics is empty)")
    dims = results["band_statistics"][arms[0]]["band_dims"]
    controls = {
        "arm": W.Dropdown(options=arms, value=arms[0], description="arm"),
        "band": W.Dropdown(
            options=[(f"band {i} ({d} dims)", i) for i, d in enumerate(dims)],
            value=0,
            description="band",
        ),
    }

    def draw(**kw):
        lines, fig = explore(results, **kw)
        explorers.show(lines, fig)

    return explorers.build(draw, controls, [list(controls)])


__all__ = ["arms_of", "build_explorer", "explore"]
