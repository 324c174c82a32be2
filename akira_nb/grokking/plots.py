"""Figures for the grokking comparison. Each function returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from akira_nb import explorers
from akira_nb.modular_arithmetic.train import TrainResult

TOKENS = ("a", "b", "=")  # the three positions a model reads


def _label(res: TrainResult) -> str:
    return f"{res.config['mixer']} (p={res.config['p']}, seed {res.config['seed']})"


def _colors(n: int):
    return plt.cm.tab10(np.arange(n) % 10)


def plot_curves(results: list[TrainResult], title: str = "") -> plt.Figure:
    """Loss and accuracy (train dashed, test solid) on a log epoch axis; dotted vertical lines
    mark each model's grok epoch. With several results this is the overlay of all models."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.2))
    for res, color in zip(results, _colors(len(results))):
        h = res.history
        label = _label(res)
        ax_loss.plot(h["epoch"], h["train_loss"], "--", color=color, alpha=0.7)
        ax_loss.plot(h["epoch"], h["test_loss"], "-", color=color, label=label)
        ax_acc.plot(h["epoch"], h["train_acc"], "--", color=color, alpha=0.7)
        ax_acc.plot(h["epoch"], h["test_acc"], "-", color=color, label=label)
        if res.grok_epoch is not None:
            for ax in (ax_loss, ax_acc):
                ax.axvline(res.grok_epoch, color=color, ls=":", lw=1)
    ax_loss.set(xscale="log", yscale="log", xlabel="epoch", ylabel="cross-entropy loss")
    ax_acc.set(xscale="log", xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02))
    if results:
        chance = 1.0 / results[0].config["p"]
        ax_acc.axhline(chance, color="grey", lw=0.8, ls="-.", label=f"chance 1/p = {chance:.3f}")
    ax_acc.legend(fontsize=7, loc="lower right")
    ax_loss.set_title("loss (train dashed, test solid)")
    ax_acc.set_title("accuracy (dotted: grok epoch)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_progress_measures(results: list[TrainResult]) -> plt.Figure:
    """Nanda et al.'s progress measures over training: Gini of the Fourier norms of W_E and
    W_L and the total weight norm (every ``eval_every`` epochs), and restricted loss (all pairs)
    and excluded loss (train split) at every saved snapshot, with the key frequencies of each
    model's FINAL state (``res.progress``), beside its train and test loss."""
    with_weights = any(
        r.history["freq_weight_mean"] and r.history["freq_weight_mean"][0] for r in results
    )
    fig, axes = plt.subplots(1, 5 if with_weights else 4, figsize=(20 if with_weights else 16, 3.6))
    panels = [
        (0, "gini_embed", "Gini of W_E Fourier norms", "linear"),
        (1, "gini_logit_map", "Gini of W_L Fourier norms", "linear"),
        (3, "weight_norm", "sum of squared weights", "linear"),
    ]
    for res, color in zip(results, _colors(len(results))):
        h = res.history
        for i, key, title, yscale in panels:
            axes[i].plot(h["epoch"], h[key], color=color, label=_label(res))
            axes[i].set(title=title, xscale="log", yscale=yscale, xlabel="epoch")
        prog = res.progress
        if prog:
            epochs = np.asarray(prog["epoch"])
            keep = epochs > 0  # log axis
            keys = ",".join(map(str, prog["key_freqs"])) or "none"
            axes[2].plot(
                epochs[keep],
                np.asarray(prog["restricted_loss"])[keep],
                color=color,
                label=f"{res.config['mixer']}: key {{{keys}}}",
            )
            axes[2].plot(epochs[keep], np.asarray(prog["excluded_loss"])[keep], "--", color=color)
            axes[2].plot(epochs[keep], np.asarray(prog["test_loss"])[keep], ":", color=color)
        if with_weights and h["freq_weight_mean"] and h["freq_weight_mean"][0]:
            mean = np.asarray(h["freq_weight_mean"])
            std = np.asarray(h["freq_weight_std"])
            for row, style in zip(range(mean.shape[1]), ("-", "--")):
                axes[4].plot(h["epoch"], mean[:, row], style, color=color)
                axes[4].fill_between(
                    h["epoch"],
                    mean[:, row] - std[:, row],
                    mean[:, row] + std[:, row],
                    color=color,
                    alpha=0.15,
                )
    axes[2].set(
        title="restricted (solid), excluded (dashed), test (dotted)\nloss; key freqs of the "
        "final model",
        xscale="log",
        yscale="log",
        xlabel="epoch",
    )
    if with_weights:
        axes[4].set(
            title="learned gates / phases: mean +- std\n(solid: DC or k=1, dashed: k=1)",
            xscale="log",
            xlabel="epoch",
        )
    axes[0].legend(fontsize=7)
    if any(r.progress for r in results):
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_embedding_spectrum(results: list[TrainResult]) -> plt.Figure:
    """Fraction of the token embedding's energy in each Fourier frequency of Z_p (index 0 is
    the constant component); the final model's key frequencies are marked with a star."""
    n = len(results)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.9 * n + 0.4), squeeze=False)
    for ax, res, color in zip(axes[:, 0], results, _colors(n)):
        energy = np.asarray(res.embed_energy)
        ax.bar(np.arange(len(energy)), energy, color=color)
        for k in res.key_freqs:
            ax.plot(k, energy[k], "k*", ms=8)
        ax.set(ylabel="energy", title=f"{_label(res)}: embedding spectrum (*: key freqs)")
    axes[-1, 0].set_xlabel("frequency k")
    fig.tight_layout()
    return fig


@torch.no_grad()
def plot_neuron_maps(res: TrainResult, data, n_neurons: int = 4) -> plt.Figure:
    """Post-ReLU activation at ``=`` over the (a, b) grid for the highest-variance neurons.
    A generalising Fourier circuit shows diagonal stripes (functions of a + b)."""
    model = res.model
    p = res.config["p"]
    device = next(model.parameters()).device
    _, cache = model.run_with_cache(
        data.inputs.to(device), names_filter=lambda name: name == "blocks.0.mlp.hook_post"
    )
    acts = cache["blocks.0.mlp.hook_post"][:, 0].float().cpu()  # [p*p, d_mlp]
    top = acts.var(0).argsort(descending=True)[:n_neurons]
    fig, axes = plt.subplots(1, n_neurons, figsize=(3.2 * n_neurons, 3.2), squeeze=False)
    for ax, idx in zip(axes[0], top.tolist()):
        ax.imshow(acts[:, idx].reshape(p, p).numpy(), cmap="viridis", origin="lower")
        ax.set(title=f"neuron {idx}", xlabel="b", ylabel="a")
    fig.suptitle(f"{_label(res)}: top-variance MLP neurons over (a, b)")
    fig.tight_layout()
    return fig


def plot_frequency_weights(results: list[TrainResult]) -> plt.Figure | None:
    """Learned gates (learned_gate: DC and k = 1 sequence bins x channels) and phases
    (phase_shift: k = 1 bin x channels). None when no result has such weights."""
    with_weights = [r for r in results if r.frequency_weights]
    if not with_weights:
        return None
    fig, axes = plt.subplots(
        len(with_weights), 1, figsize=(10, 1.8 * len(with_weights) + 0.5), squeeze=False
    )
    for ax, res in zip(axes[:, 0], with_weights):
        name, values = next(iter(res.frequency_weights.items()))
        arr = np.atleast_2d(np.asarray(values))
        im = ax.imshow(arr, aspect="auto", cmap="coolwarm")
        ax.set(
            title=f"{_label(res)}: learned {name}",
            xlabel="channel",
            ylabel="bin" if arr.shape[0] > 1 else "k=1",
        )
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def plot_snapshot(res_like: dict, model, data, epoch: int) -> plt.Figure:
    """The seed's six-panel frame at one epoch: loss, accuracy, Fourier sparsity (Gini of W_L),
    embedding spectrum, top-neuron activations grouped by (a + b) mod p, learned weights."""
    from akira_nb.modular_arithmetic import fourier

    h, cfg = res_like["history"], res_like["config"]
    p = cfg["p"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    ax = axes[0, 0]
    ax.plot(h["epoch"], h["train_loss"], label="train")
    ax.plot(h["epoch"], h["test_loss"], label="test")
    ax.set(yscale="log", title="loss", xlabel="epoch")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(h["epoch"], h["train_acc"], label="train")
    ax.plot(h["epoch"], h["test_acc"], label="test")
    ax.set(title="accuracy", xlabel="epoch", ylim=(-0.02, 1.02))
    ax = axes[0, 2]
    ax.plot(h["epoch"], h["gini_logit_map"])
    ax.set(title="Fourier sparsity: Gini of W_L", xlabel="epoch")
    with torch.no_grad():
        energy = fourier.frequency_energy(model.W_E[:p].double(), p).cpu().numpy()
        logits_cache = model.run_with_cache(
            data.inputs.to(next(model.parameters()).device),
            names_filter=lambda n: n == "blocks.0.mlp.hook_post",
        )[1]
    axes[1, 0].bar(np.arange(len(energy)), energy)
    axes[1, 0].set(title="embedding spectrum", xlabel="frequency k")
    acts = logits_cache["blocks.0.mlp.hook_post"][:, 0].float().cpu()
    top = acts.var(0).argsort(descending=True)[:3]
    sums = data.labels.cpu()
    ax = axes[1, 1]
    for idx in top.tolist():
        by_sum = torch.zeros(p).index_add_(0, sums, acts[:, idx]) / p
        ax.plot(by_sum.numpy(), label=f"neuron {idx}")
    ax.set(title="top neurons by (a+b) mod p", xlabel="(a + b) mod p")
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    weights = {k: v for k, v in model.frequency_weights().items()}
    if weights:
        name, values = next(iter(weights.items()))
        ax.imshow(np.atleast_2d(values.numpy()), aspect="auto", cmap="coolwarm")
        ax.set(title=f"learned {name}", xlabel="channel")
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no frequency weights", ha="center", va="center")
    fig.suptitle(f"{cfg['mixer']} p={p} seed {cfg['seed']}: epoch {epoch}")
    fig.tight_layout()
    return fig


def attention_pattern_maps(pattern: torch.Tensor, p: int, key: int = 0):
    """A look inside a trained attention model: ``pattern`` is its cached
    ``blocks.0.attn.hook_pattern`` over every (a, b) pair in the data's row order
    ([p*p, heads, 1, 3]: the ``=`` query attending to a, b and =); per head, the weight on the
    key position ``key`` (0: token a) over the (a, b) grid. The figure is not tracked by pyplot
    (:func:`akira_nb.explorers.figure`): show it with ``display(fig)``."""
    if pattern.ndim != 4 or pattern.shape[0] != p * p or pattern.shape[2:] != (1, len(TOKENS)):
        raise ValueError(
            f"pattern of shape {tuple(pattern.shape)} is no hook_pattern over the {p * p} "
            f"pairs of p={p}; expected [{p * p}, heads, 1, {len(TOKENS)}]"
        )
    if key not in range(len(TOKENS)):
        raise ValueError(f"key={key!r} must be a position 0, 1 or 2 (a, b, =)")
    weights = pattern[:, :, 0, key].detach().float().cpu()  # [p*p, heads]
    n_heads = weights.shape[1]
    fig = explorers.figure(figsize=(3.2 * n_heads + 1.0, 3.4), layout="constrained")
    axes = fig.subplots(1, n_heads, squeeze=False)[0]
    for head, ax in enumerate(axes):
        grid = weights[:, head].reshape(p, p).numpy()
        image = ax.imshow(grid, cmap="viridis", origin="lower", vmin=0.0, vmax=1.0)
        ax.set(title=f"head {head}", xlabel="b", ylabel="a")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="attention weight")
    fig.suptitle(f"attention from = to {TOKENS[key]} over (a, b), p = {p}")
    return fig
