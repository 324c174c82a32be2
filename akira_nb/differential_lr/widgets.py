"""The 013 explorer over saved results: pick an LR preset (one saved study per preset), an arm
and the arm to draw beside it (the uniform control by default); see their curves, their measures
and the verdicts.

:func:`explore` is the plain callback (pytest calls it); :func:`build_explorer` wires ipywidgets
to it (Dropdown, Output, interactive_output: what ipywidgets 7.7 and 8.x share). Its figure is
one pyplot does not track (:func:`akira_nb.explorers.figure`; that module says why).
"""

from __future__ import annotations

import math

from akira_nb import explorers
from akira_nb.differential_lr import plots
from akira_nb.differential_lr.claims import CONTROL
from akira_nb.differential_lr.presets import ARM_LABELS, EXPERIMENT

MEASURES = ("steps_to_target", "final_val_loss", "test_loss", "variance", "spikes")


def load_results(root=None) -> dict:
    """``{lr_preset: results.json}`` of the newest saved 013 study per LR preset under the runs
    root (``runs.runs_root(root)``)."""
    from akira_nb.runs import read_json, runs_root

    found: dict[str, dict] = {}
    folder = runs_root(root) / EXPERIMENT
    for path in sorted(folder.glob("*/results.json")):  # names start with the time: newest last
        res = read_json(path)
        found[res["config"]["lr_preset"]] = res
    return found


def _mean_std(stats: dict, k: str) -> tuple[float, float]:
    return tuple(math.nan if v is None else v for v in stats[k])  # JSON keeps NaN as null


def tuned_lines(res: dict, arm: str) -> list[str]:
    """``arm``'s tuned LR, final val loss and learning check at every budget of ``res``."""
    out = []
    for budget, rows in (res.get("tuned") or {}).items():
        r = rows.get(arm)
        if r:
            m = _mean_std(r, "final_val_loss")[0]
            word = "learned" if r["learned"] else "did not learn"
            out.append(
                f"  at {budget} steps: tuned x{r['mult']:.3g} (LR {r['lr']:.3g}), "
                f"val {m:.4f} over {len(r['seeds'])} seed(s), {word}"
            )
    return out


def explore(results: dict, lr_preset: str, arm: str, beside: str | None = None):
    """The saved study of ``lr_preset``: ``arm``'s curves beside ``beside``'s (an arm of the
    study; None: the uniform control where the study ran it; ``"none"``: ``arm`` alone), and
    the lines of text
    (its measures, the other arm's, the verdicts with their rules). Returns
    ``(lines, figure)``; the figure is not tracked by pyplot (display it)."""
    if lr_preset not in results:
        raise ValueError(
            f"lr_preset={lr_preset!r} has no saved study; choose one of {list(results)}"
        )
    res = results[lr_preset]
    curves = res["curves"]
    if arm not in curves:
        raise ValueError(f"arm={arm!r} was not run for {lr_preset}; choose one of {list(curves)}")
    if beside is None:
        beside = CONTROL if CONTROL in curves else "none"
    if beside != "none" and beside not in curves:
        raise ValueError(
            f"beside={beside!r} was not run for {lr_preset}; choose 'none' or one of {list(curves)}"
        )
    stats = res["stats"][arm]
    lines = [
        f"{lr_preset}: {arm} ({ARM_LABELS.get(arm, arm)}), "
        f"{stats['seeds']} seeds, target {res['target']:.4f}"
    ]
    for k in MEASURES:
        m, s = _mean_std(stats, k)
        lines.append(f"  {k}: {m:.4g}" + ("" if math.isnan(s) else f" +- {s:.3g}"))
    lines += tuned_lines(res, arm)
    shown = [arm] if beside in ("none", arm) else [arm, beside]
    if len(shown) == 2:
        other = ", ".join(f"{k} {_mean_std(res['stats'][beside], k)[0]:.4g}" for k in MEASURES)
        lines.append(f"  beside {beside} ({ARM_LABELS.get(beside, beside)}): {other}")
    for c in res["claims"]:
        lines.append(f"{c['claim']}: {c['seed_verdict']} ({c['measured']}); rule: {c['rule']}")
    lines.append(res["recommendation"]["line"])
    fig = plots.plot_curves(
        curves,
        res["target"],
        res.get("unigram_eval_loss", res["unigram_val_loss"]),  # the curves' set's
        arms=shown,
        fig=explorers.figure(figsize=(11, 3.8)),
    )
    return lines, fig


def build_explorer(results: dict, lr_preset: str | None = None):
    """Widgets wired to :func:`explore`, opening on ``lr_preset`` (None: the last of
    ``results``; the notebook passes the study it just ran). Returns ``(box, controls)``."""
    import ipywidgets as W

    presets = list(results)
    if not presets:
        raise ValueError("results is empty: no saved 013 study to explore")
    lr_preset = presets[-1] if lr_preset is None else lr_preset
    if lr_preset not in results:
        raise ValueError(f"lr_preset={lr_preset!r} has no saved study; choose one of {presets}")
    arms = list(results[lr_preset]["curves"])
    controls = {
        "lr_preset": W.Dropdown(options=presets, value=lr_preset, description="LR preset"),
        "arm": W.Dropdown(options=arms, value=arms[0], description="arm"),
        "beside": W.Dropdown(
            options=["none"] + arms,
            value=CONTROL if CONTROL in arms else "none",
            description="beside",
        ),
    }

    def draw(**kw):
        lines, fig = explore(results, **kw)
        explorers.show(lines, fig)

    return explorers.build(draw, controls, [list(controls)])
