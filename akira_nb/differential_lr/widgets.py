"""The 013 explorer over saved results: pick an LR preset (one saved study per preset) and an
arm; see its curves beside the uniform control and the verdicts.

:func:`explore` is the plain callback (pytest calls it); :func:`build_explorer` wires ipywidgets
to it (Dropdown, Output, interactive_output: what ipywidgets 7.7 and 8.x share).
"""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt

from . import experiment, plots


def load_results(root=None) -> dict:
    """``{lr_preset: results.json}`` of the newest saved 013 study per LR preset under the runs
    root (``runs.runs_root(root)``)."""
    from akira_nb.runs import runs_root

    found: dict[str, dict] = {}
    folder = runs_root(root) / experiment.EXPERIMENT
    for path in sorted(folder.glob("*/results.json")):  # names start with the time: newest last
        res = json.loads(path.read_text())
        found[res["config"]["lr_preset"]] = res
    return found


def explore(results: dict, lr_preset: str, arm: str, show: bool = False):
    """The saved study of ``lr_preset``: ``arm``'s curves beside the control's, and the lines
    of text (its measures, the verdicts with their rules). Returns ``(lines, figure)``."""
    if lr_preset not in results:
        raise ValueError(
            f"lr_preset={lr_preset!r} has no saved study; choose one of {list(results)}"
        )
    res = results[lr_preset]
    curves = res["curves"]
    if arm not in curves:
        raise ValueError(f"arm={arm!r} was not run for {lr_preset}; choose one of {list(curves)}")
    stats = res["stats"][arm]
    lines = [
        f"{lr_preset}: {arm} ({experiment.ARM_LABELS.get(arm, arm)}), "
        f"{stats['seeds']} seeds, target {res['target']:.4f}"
    ]
    for k in ("steps_to_target", "final_val_loss", "test_loss", "variance", "spikes"):
        m, s = (math.nan if v is None else v for v in stats[k])  # JSON keeps NaN as null
        lines.append(f"  {k}: {m:.4g}" + ("" if math.isnan(s) else f" +- {s:.3g}"))
    for c in res["claims"]:
        lines.append(f"{c['claim']}: {c['seed_verdict']} ({c['measured']}); rule: {c['rule']}")
    lines.append(res["recommendation"]["line"])
    shown = [arm] + (
        [experiment.CONTROL] if arm != experiment.CONTROL and experiment.CONTROL in curves else []
    )
    fig = plots.plot_curves(curves, res["target"], res["unigram_val_loss"], arms=shown)
    if show:
        print("\n".join(lines))
        plt.show()
    return lines, fig


def build_explorer(results: dict):
    """Widgets wired to :func:`explore`; returns ``(box, controls)``."""
    import ipywidgets as W

    presets = list(results)
    arms = list(results[presets[-1]]["curves"])
    controls = {
        "lr_preset": W.Dropdown(options=presets, value=presets[-1], description="LR preset"),
        "arm": W.Dropdown(options=arms, value=arms[0], description="arm"),
    }

    def draw(lr_preset, arm):
        try:
            explore(results, lr_preset, arm, show=True)
        except ValueError as exc:
            print(f"error: {exc}")

    out = W.interactive_output(draw, controls)
    return W.VBox([W.HBox(list(controls.values())), out]), controls
