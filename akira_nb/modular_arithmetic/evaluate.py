"""Evaluation of grokking models: losses, accuracies and Nanda et al.'s progress measures.

- :func:`evaluate`: the measures of one model now (logged every ``eval_every`` epochs).
- Restricted and excluded loss need the key frequencies, and Nanda et al. fix those once, from
  the final model, then apply them to every saved checkpoint. Training therefore saves
  weights-only snapshots every ``progress_every`` epochs; after training
  :func:`key_frequencies_of` picks the final model's key frequencies and
  :func:`fixed_key_progress` scores every snapshot's logits with that one set.

Key frequencies follow Nanda's ``calculate_key_freqs``: each MLP neuron's dominant frequency
(:func:`akira_nb.modular_arithmetic.fourier.neuron_frequencies`, the share of its variance over
the (a, b)
grid in one frequency's {const, cos k, sin k}^2 block); the key frequencies are the distinct
dominant frequencies of the neurons with a share above 0.85 (the cluster threshold of Nanda's
analysis). A model with no such neuron has no key frequency: its restricted loss is then the
loss of the per-class means (about ln p) and its excluded loss its full training loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from akira_nb.modular_arithmetic import fourier
from akira_nb.modular_arithmetic.models import GrokkingModel, ModelConfig

KEY_SHARE = 0.85  # a neuron belongs to a frequency's cluster above this share of its variance
KEY_RULE = (
    "distinct dominant frequencies of the final model's MLP neurons whose frequency explains "
    f"> {KEY_SHARE} of their variance (Nanda et al.'s calculate_key_freqs)"
)


@torch.no_grad()
def evaluate(model: GrokkingModel, data, key_freqs=None) -> dict:
    """Loss/accuracy on both splits and the weight-based progress measures of the current
    model (Gini of the Fourier norms of W_E and W_L, squared weight norm, embedding spectrum,
    the wave mixers' learned gates/phases). With ``key_freqs`` it adds restricted loss (all
    p^2 pairs, Nanda's mode='all') and excluded loss (training split) for that set."""
    p = model.cfg.p
    logits = model(data.inputs).double()
    labels = data.labels
    out = {}
    for split, idx in (("train", data.train_idx), ("test", data.test_idx)):
        out[f"{split}_loss"] = F.cross_entropy(logits[idx], labels[idx]).item()
        out[f"{split}_acc"] = (logits[idx].argmax(-1) == labels[idx]).double().mean().item()
    w_e = model.W_E[:p].double()
    w_l = model.neuron_logit_map.double().T  # [p, d_mlp]
    out["gini_embed"] = fourier.gini(fourier.fourier_norms(w_e, p))
    out["gini_logit_map"] = fourier.gini(fourier.fourier_norms(w_l, p))
    if key_freqs is not None:
        out["restricted_loss"] = fourier.restricted_loss(logits, key_freqs, p)  # all pairs
        out["excluded_loss"] = fourier.excluded_loss(logits, key_freqs, p, data.train_idx)
    out["weight_norm"] = fourier.weight_norm(model)
    out["embed_energy"] = fourier.frequency_energy(w_e, p).tolist()
    weights = [w.reshape(-1, w.shape[-1]).double() for w in model.frequency_weights().values()]
    out["freq_weight_mean"] = [v for w in weights for v in w.mean(-1).tolist()]
    out["freq_weight_std"] = [v for w in weights for v in w.std(-1).tolist()]
    return out


@torch.no_grad()
def mlp_acts(model: GrokkingModel, inputs: torch.Tensor) -> torch.Tensor:
    """Post-ReLU MLP activations at ``=`` for every input row, ``[n, d_mlp]``."""
    name = "blocks.0.mlp.hook_post"
    _, cache = model.run_with_cache(inputs, names_filter=lambda n: n == name)
    return cache[name][:, 0]


def key_frequencies_from_acts(acts, p: int, share: float = KEY_SHARE) -> tuple[list[int], dict]:
    """Key frequencies from MLP activations over all p^2 pairs (``[p*p, n_neurons]``, rows
    ``a*p + b``): the distinct dominant frequencies of the neurons whose frequency explains more
    than ``share`` of their variance. Returns ``(sorted key frequencies, {k: neuron count})``."""
    freqs, frac = fourier.neuron_frequencies(acts, p)
    clustered = freqs[(frac > share) & (freqs > 0)]
    keys, counts = torch.unique(clustered, return_counts=True)
    return keys.tolist(), dict(zip(keys.tolist(), counts.tolist()))


def key_frequencies_of(model: GrokkingModel, data) -> tuple[list[int], dict]:
    """:func:`key_frequencies_from_acts` of ``model`` on ``data``'s full p^2 table."""
    return key_frequencies_from_acts(mlp_acts(model, data.inputs), model.cfg.p)


def fixed_key_progress(epochs, logits, key_freqs, data) -> dict:
    """Restricted loss (all pairs) and excluded loss (training split) of every snapshot's logits
    (``[p*p, p]`` each, in ``epochs`` order) with ONE key-frequency set, beside each snapshot's
    train and test loss. Returns plain lists: ``{"epoch", "restricted_loss", "excluded_loss",
    "train_loss", "test_loss", "key_freqs"}``."""
    p = data.p
    out = {k: [] for k in ("restricted_loss", "excluded_loss", "train_loss", "test_loss")}
    for L in logits:
        L, labels = L.double(), data.labels.to(L.device)
        out["restricted_loss"].append(fourier.restricted_loss(L, key_freqs, p))
        out["excluded_loss"].append(fourier.excluded_loss(L, key_freqs, p, data.train_idx))
        for split, idx in (("train", data.train_idx), ("test", data.test_idx)):
            out[f"{split}_loss"].append(F.cross_entropy(L[idx], labels[idx]).item())
    return {"epoch": [int(e) for e in epochs], **out, "key_freqs": [int(k) for k in key_freqs]}


@torch.no_grad()
def snapshot_logits(model_cfg: ModelConfig, states, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Logits on ``inputs`` of a model with each weights-only state dict in ``states``."""
    model = GrokkingModel(model_cfg).to(inputs.device)
    out = []
    for state in states:
        model.load_state_dict(state)
        out.append(model(inputs).double())
    return out
