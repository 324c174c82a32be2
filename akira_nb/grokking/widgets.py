"""The grokking explorer over a run folder: pick an arm and one of its weights-only snapshots
(saved every ``progress_every`` epochs); see its loss and accuracy curves with that epoch
marked, and the token embedding's Fourier spectrum at that epoch beside the key frequencies of
the final model.

:func:`explore` is the plain callback (pytest calls it); :func:`build_explorer` wires ipywidgets
to it (Dropdown, SelectionSlider, Output, interactive_output: what ipywidgets 7.7 and 8.x
share). Its figure is one pyplot does not track (:func:`akira_nb.explorers.figure`; that
module says why).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from akira_nb import explorers
from akira_nb.modular_arithmetic import fourier
from akira_nb.modular_arithmetic.config import TrainConfig
from akira_nb.runs import read_json


def load_run(path) -> dict:
    """A grokking run folder's ``results.json`` with ``"path"`` (the folder, where the
    snapshots are) and ``"by_tag"`` (each arm's summary under its tag, e.g.
    ``p23_standard_s0``)."""
    path = Path(path)
    file = path / "results.json"
    if not file.is_file():
        raise ValueError(f"path={str(path)!r} holds no results.json; pass a grokking run folder")
    saved = read_json(file)
    saved["path"] = str(path)
    saved["by_tag"] = {TrainConfig(**a["config"]).tag: a for a in saved["arms"]}
    return saved


def snapshot_epochs(saved: dict, arm: str) -> list[int]:
    """The epochs of ``arm``'s weights-only snapshots in the run folder, oldest first."""
    folder = Path(saved["path"]) / "progress" / arm
    return sorted(int(p.stem.split("_")[1]) for p in folder.glob("epoch_*.pt"))


def _label(a: dict) -> str:
    c = a["config"]
    return f"p={c['p']} {c['mixer']} seed {c['seed']}"


def explore(saved: dict, arm: str, epoch: int):
    """``arm``'s (a tag of :func:`load_run`'s ``by_tag``) loss and accuracy curves with
    ``epoch`` marked, and the Fourier spectrum of its token embedding W_E in the snapshot of
    that epoch (the final model's key frequencies starred, its final spectrum outlined).
    Returns ``(lines, figure)``; the figure is not tracked by pyplot."""
    arms = list(saved["by_tag"])
    if arm not in arms:
        raise ValueError(f"arm={arm!r} is not in this run; choose one of {arms}")
    epochs = snapshot_epochs(saved, arm)
    if epoch not in epochs:
        raise ValueError(
            f"epoch={epoch!r} has no snapshot of {arm}; choose one of {epochs} (snapshots are "
            "kept every progress_every epochs; 0 keeps none)"
        )
    a = saved["by_tag"][arm]
    p, h, keys = a["config"]["p"], a["history"], a["key_freqs"]
    path = Path(saved["path"]) / "progress" / arm / f"epoch_{epoch:09d}.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    energy = fourier.frequency_energy(state["W_E"][:p].double(), p).numpy()
    final = np.asarray(a["embed_energy"], dtype=float)

    logged = np.asarray(h["epoch"])
    i = int(np.abs(logged - epoch).argmin())
    key_set = "{" + ", ".join(map(str, keys)) + "}" if keys else "none"
    top = np.argsort(energy[1:])[::-1][:3] + 1
    lines = [
        f"{_label(a)} at epoch {epoch} (snapshot {epochs.index(epoch) + 1} of {len(epochs)}; "
        f"trained {a['config']['n_epochs']} epochs, grok epoch {a['grok_epoch']})",
        f"  logged epoch {int(logged[i])}: train acc {h['train_acc'][i]:.3f}, test acc "
        f"{h['test_acc'][i]:.3f}; train loss {h['train_loss'][i]:.3g}, test loss "
        f"{h['test_loss'][i]:.3g} (chance accuracy 1/p = {1 / p:.3f})",
        f"  embedding: {energy[keys].sum():.0%} of W_E's energy in the final model's key "
        f"frequencies {key_set} (about {2 * len(keys) / p:.0%} for a random embedding); "
        "strongest now: " + ", ".join(f"k={k} {energy[k]:.2f}" for k in top),
    ]
    prog = a.get("progress") or {}
    if epoch in prog.get("epoch", []):
        j = prog["epoch"].index(epoch)
        lines.append(
            f"  restricted loss {prog['restricted_loss'][j]:.3g}, excluded loss "
            f"{prog['excluded_loss'][j]:.3g} at this snapshot (the final model's key frequencies)"
        )

    fig = explorers.figure(figsize=(15, 3.9), layout="constrained")
    ax_loss, ax_acc, ax_spec = fig.subplots(1, 3)
    ax_loss.plot(h["epoch"], h["train_loss"], "--", color="tab:blue", label="train")
    ax_loss.plot(h["epoch"], h["test_loss"], "-", color="tab:orange", label="test")
    ax_loss.set(yscale="log", xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.plot(h["epoch"], h["train_acc"], "--", color="tab:blue", label="train")
    ax_acc.plot(h["epoch"], h["test_acc"], "-", color="tab:orange", label="test")
    ax_acc.axhline(1 / p, color="grey", lw=0.8, ls="-.", label="chance 1/p")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02), title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.axvline(epoch, color="black", lw=1.2, ls=":", label=f"epoch {epoch}")
        ax.legend(fontsize=7)
    k = np.arange(len(energy))
    ax_spec.bar(k, energy, color="tab:blue", label=f"epoch {epoch}")
    ax_spec.step(k, final, where="mid", color="black", lw=0.8, label="final model")
    if keys:
        ax_spec.plot(keys, energy[keys], "r*", ms=10, label="final key frequencies")
    ax_spec.set(
        xlabel="frequency k of Z_p (0: constant)",
        ylabel="share of W_E's energy",
        title=f"{_label(a)}: embedding spectrum",
    )
    ax_spec.legend(fontsize=7)
    return lines, fig


def build_explorer(saved: dict):
    """Widgets wired to :func:`explore` (``saved``: :func:`load_run` of the run folder);
    returns ``(box, controls)``."""
    import ipywidgets as W

    arms = list(saved["by_tag"])
    epochs = snapshot_epochs(saved, arms[0]) if arms else []
    if not epochs:
        raise ValueError(
            "the run holds no weights-only snapshots to explore (progress_every = 0 keeps none)"
        )
    controls = {
        "arm": W.Dropdown(
            options=[(_label(saved["by_tag"][t]), t) for t in arms],
            value=arms[0],
            description="arm",
        ),
        "epoch": W.SelectionSlider(
            options=epochs,
            value=epochs[-1],
            description="snapshot epoch",
            style={"description_width": "initial"},
            continuous_update=False,
        ),
    }

    def draw(**kw):
        lines, fig = explore(saved, **kw)
        explorers.show(lines, fig)

    return explorers.build(draw, controls, [list(controls)])


__all__ = ["build_explorer", "explore", "load_run", "snapshot_epochs"]
