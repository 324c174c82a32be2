"""Per-band learning rates for the band transformer (026) and the differential-LR study (013).

``param_groups(model, lr_mode)`` turns a model's ``parameter_bands()`` into AdamW parameter
groups, one per band (``band_0`` .. ``band_6``, or ``band_7`` too for the 7+1 set) plus
``shared``, each with its own ``lr``. Weight decay is applied to weight matrices only: norms,
biases (any parameter with ndim < 2) and embeddings (``model.embedding_parameter_names()``) go
to a sibling group named ``<group>/no_decay`` (``band_3/no_decay``, ``shared/no_decay``) with
weight decay 0 and the same learning rate. Empty groups are dropped. The groups partition the
trainable parameters exactly once (checked every time). Every group records:

- ``name``: ``band_<i>``, ``band_<i>/no_decay``, ``shared`` or ``shared/no_decay``;
- ``band``: the band index, or None for shared parameters;
- ``lr`` and ``base_lr``: the group's learning rate before any schedule (``set_lrs`` rescales
  ``lr`` from ``base_lr`` at every step);
- ``weight_decay``; ``param_names``: the parameters' names (torch's own key for named groups,
  so ``optimizer.state_dict()`` keeps them; torch then wants ``param_names`` in any group added
  later with ``add_param_group`` too).

The three arms of 013 (``LR_MODES``):

- ``differential``: each band at its own LR, shared parameters at the shared LR.
- ``geomean``: every group, shared included, at the geometric mean of the band LRs. This is
  013's control ("uniform LR, same total learning budget, LR = geometric mean of the
  differential rates"): one uniform LR for the whole network, so the arm differs from
  ``differential`` only in the LR hierarchy. The shared LR is not one of the differential rates
  and does not enter the mean.
- ``uniform``: every group at the shared LR (the 026 notebook's uniform ablation: 3e-4).

Schedule: ``lr_multiplier`` (linear warm-up, then cosine to ``min_ratio``) is a pure function of
the optimiser step, and ``set_lrs`` sets every group's ``lr = base_lr * multiplier``. The
reference multiplied ``lr`` in place at every (micro-)step of the warm-up, which compounds to ~0;
here the LR never depends on its previous value.

``WeightChangeMonitor`` logs ||W_t - W_{t-N}|| / ||W_{t-N}|| per band every N steps beside the
prescribed LR ratios (013's H4: "bands learn at their prescribed rates").

Contract with the models (``akira_nb.bandformer.model``): ``parameter_bands()`` maps every name
of ``named_parameters()`` to its band index or None (shared); ``embedding_parameter_names()``;
``model.cfg.band_lrs`` / ``cfg.shared_lr`` (a baseline config has ``lr`` and no bands).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from akira_nb import runtime

LR_MODES = ("differential", "geomean", "uniform")
SHARED = "shared"
NO_DECAY = "/no_decay"


class LRPreset(NamedTuple):
    """One set of learning rates from the reference repository."""

    band_lrs: tuple[float, ...]
    shared_lr: float
    source: str


# The repository's LR sets disagree with each other (inventory section 4.3): 026 v1 is the
# canonical set shifted down one band and capped at 1e-2, with shared at 3e-4 instead of 5e-4.
LR_PRESETS: dict[str, LRPreset] = {
    "026_v1": LRPreset(
        (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
        3e-4,
        "026 code/models/akira_band_transformer.py AKIRAConfig.band_learning_rates; shared group "
        "at band_lrs[3] = 3e-4 (inventory 2.1)",
    ),
    "canonical_7p1": LRPreset(
        (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-3),
        5e-4,
        "CANONICAL_PARAMETERS.md Spec A, bands 0-6 + temporal band 7; shared = the example "
        "optimiser's wormhole LR 5e-4 (inventory 4.2, 4.3); the set 013 quotes (ratio 3000x)",
    ),
    "canonical_7": LRPreset(
        (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
        5e-4,
        "CANONICAL_PARAMETERS.md Spec A bands 0-6 only (no temporal band), shared 5e-4",
    ),
    "spec_b_warmstart": LRPreset(
        (1e-5, 2e-5, 4e-5, 6e-5, 8e-5, 1e-4, 1.2e-4, 6e-5),
        1e-4,
        "CANONICAL_PARAMETERS.md Spec B: lr_base 1e-4 x [0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 0.6] "
        "for bands 0..7 (ratio 12x); shared = lr_base (inventory 4.2)",
    ),
    "sbm_7p1": LRPreset(
        (3e-5, 5e-5, 1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 3e-4),
        3e-4,
        "026 colab_train_akira_v2_spectral_*.py SpectralConfig.band_learning_rates (band 7 "
        "temporal 3e-4, ratio 100x), shared 3e-4 (inventory 2.5)",
    ),
    "026_uniform": LRPreset(
        (3e-4,) * 7,
        3e-4,
        "026 original band notebook.ipynb uniform-LR ablation: every band at 3e-4 (inventory 2.6)",
    ),
}


def check_lrs(name: str, lrs, length: int | None = None) -> tuple[float, ...]:
    """A tuple of finite positive learning rates (of ``length`` entries when given), else
    ``ValueError`` naming ``name``."""
    if isinstance(lrs, (str, bytes)) or not hasattr(lrs, "__len__"):
        raise ValueError(f"{name}={lrs!r} must be a sequence of learning rates")
    if length is not None and len(lrs) != length:
        raise ValueError(
            f"{name}={tuple(lrs)!r} has {len(lrs)} learning rates; the model has {length} bands"
        )
    return tuple(
        runtime.check_real(f"{name}[{i}]", lr, low=0, low_open=True) for i, lr in enumerate(lrs)
    )


def geometric_mean(lrs) -> float:
    """exp(mean(log lr)), i.e. 10 ** mean(log10 lr): 013's "same total learning budget" LR."""
    lrs = check_lrs("lrs", lrs)
    if not lrs:
        raise ValueError("lrs=() is empty; the geometric mean needs at least one learning rate")
    return math.exp(math.fsum(math.log(lr) for lr in lrs) / len(lrs))


def configured_lrs(model, band_lrs=None, shared_lr=None) -> tuple[tuple[float, ...], float]:
    """``(band_lrs, shared_lr)``: the arguments where given, else ``model.cfg.band_lrs`` and
    ``model.cfg.shared_lr`` (a baseline's ``cfg.lr``; a model without bands gets ``()``).
    ``band_lrs`` must have one LR per band of the model."""
    cfg = getattr(model, "cfg", None)
    if band_lrs is None:
        band_lrs = getattr(cfg, "band_lrs", ())
    if shared_lr is None:
        shared_lr = getattr(cfg, "shared_lr", None)
        if shared_lr is None:
            shared_lr = getattr(cfg, "lr", None)
        if shared_lr is None:
            raise ValueError(
                "shared_lr=None and the model's cfg has neither shared_lr nor lr; pass shared_lr"
            )
    n_bands = _n_bands(model)
    band_lrs = check_lrs("band_lrs", band_lrs, n_bands or None)
    return band_lrs, runtime.check_real("shared_lr", shared_lr, low=0, low_open=True)


def _n_bands(model) -> int:
    """The model's band count: ``len(cfg.band_dims)``, else 1 + the largest band index used."""
    dims = getattr(getattr(model, "cfg", None), "band_dims", None)
    if dims is not None:
        return len(dims)
    used = [b for b in model.parameter_bands().values() if b is not None]
    return max(used) + 1 if used else 0


def _trainable(model) -> list[tuple[str, torch.nn.Parameter]]:
    """The model's trainable named parameters, after checking ``parameter_bands()`` and
    ``embedding_parameter_names()`` against ``named_parameters()``."""
    named = list(model.named_parameters())
    names = {n for n, _ in named}
    bands = model.parameter_bands()
    missing, extra = sorted(names - bands.keys()), sorted(bands.keys() - names)
    if missing or extra:
        raise ValueError(
            f"parameter_bands() must name every parameter of named_parameters() once: "
            f"missing {missing[:5]}, unknown {extra[:5]}"
        )
    n_bands = _n_bands(model)
    for name, band in bands.items():
        if band is not None and (
            isinstance(band, bool) or not isinstance(band, int) or not 0 <= band < n_bands
        ):
            raise ValueError(
                f"parameter_bands()[{name!r}]={band!r} must be None or a band index in "
                f"[0, {n_bands - 1}]"
            )
    unknown = sorted(set(model.embedding_parameter_names()) - names)
    if unknown:
        raise ValueError(f"embedding_parameter_names() names unknown parameters {unknown[:5]}")
    trainable = [(n, p) for n, p in named if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters")
    return trainable


def group_key(band: int | None) -> str:
    """``band_<i>`` for a band index, ``shared`` for None."""
    return SHARED if band is None else f"band_{band}"


def param_groups(
    model,
    lr_mode: str = "differential",
    weight_decay: float = 0.1,
    band_lrs=None,
    shared_lr=None,
) -> list[dict]:
    """AdamW parameter groups per band (see the module docstring for names, keys and modes).

    ``band_lrs``/``shared_lr`` override the model's configured LRs (``configured_lrs``); a
    model without bands (the baseline) needs ``band_lrs`` only for ``lr_mode="geomean"``.
    Groups come in band order, each decayed group before its ``/no_decay`` sibling, ``shared``
    last.
    """
    runtime.check_choice("lr_mode", lr_mode, LR_MODES)
    weight_decay = runtime.check_real("weight_decay", weight_decay, low=0)
    trainable = _trainable(model)
    band_lrs, shared_lr = configured_lrs(model, band_lrs, shared_lr)
    if lr_mode == "geomean" and not band_lrs:
        raise ValueError(
            "lr_mode='geomean' needs band LRs and the model has no bands: pass band_lrs=..."
        )
    mean = geometric_mean(band_lrs) if lr_mode == "geomean" else None
    bands = model.parameter_bands()
    no_decay_names = set(model.embedding_parameter_names())

    groups: dict[tuple[int | None, bool], dict] = {}
    for name, p in trainable:
        band = bands[name]
        decay = p.ndim >= 2 and name not in no_decay_names
        if (band, decay) not in groups:
            if lr_mode == "differential":
                lr = shared_lr if band is None else band_lrs[band]
            else:
                lr = mean if lr_mode == "geomean" else shared_lr
            groups[(band, decay)] = {
                "name": group_key(band) + ("" if decay else NO_DECAY),
                "band": band,
                "params": [],
                "param_names": [],
                "lr": lr,
                "base_lr": lr,
                "weight_decay": weight_decay if decay else 0.0,
            }
        groups[(band, decay)]["params"].append(p)
        groups[(band, decay)]["param_names"].append(name)

    def order(key):
        band, decay = key
        return (band is None, -1 if band is None else band, not decay)

    out = [groups[k] for k in sorted(groups, key=order)]
    check_partition(model, out)
    return out


def check_partition(model, groups) -> None:
    """Raise ``AssertionError`` unless ``groups`` hold every trainable parameter exactly once
    (and nothing else)."""
    seen: dict[int, str] = {}
    for g in groups:
        for p in g["params"]:
            if id(p) in seen:
                raise AssertionError(
                    f"a parameter sits in both {seen[id(p)]!r} and {g.get('name')!r}"
                )
            seen[id(p)] = g.get("name")
    want = {id(p) for p in model.parameters() if p.requires_grad}
    if seen.keys() != want:
        raise AssertionError(
            f"groups hold {len(seen)} tensors, {len(want - seen.keys())} trainable ones missing "
            f"and {len(seen.keys() - want)} foreign or frozen ones"
        )


def base_lrs(groups) -> dict[str, float]:
    """``{"band_0": lr, ..., "shared": lr}``: each band's base LR, read from param groups
    (``param_groups()`` output or ``optimizer.param_groups``); a band's ``/no_decay`` group must
    agree with its decayed group."""
    out: dict[str, float] = {}
    for g in groups:
        key = g["name"].removesuffix(NO_DECAY)
        lr = float(g.get("base_lr", g["lr"]))
        if out.setdefault(key, lr) != lr:
            raise ValueError(f"group {g['name']!r} has base_lr {lr}, its band has {out[key]}")
    return out


def lr_multiplier(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """The LR multiplier at optimiser step ``step`` (0-based; count optimiser steps, not
    gradient-accumulation micro-steps, which the reference counted).

    Linear warm-up ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (1/warmup at step 0,
    1.0 at step warmup - 1), then a cosine from 1.0 at ``warmup_steps`` to ``min_ratio`` at
    ``total_steps``, and ``min_ratio`` after it.
    """
    step = runtime.check_int("step", step, low=0)
    total_steps = runtime.check_int("total_steps", total_steps, low=1)
    warmup_steps = runtime.check_int("warmup_steps", warmup_steps, low=0, high=total_steps)
    min_ratio = runtime.check_real("min_ratio", min_ratio, low=0, high=1)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step >= total_steps:
        return min_ratio
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lrs(
    optimizer, step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1
) -> float:
    """Set every group's ``lr = base_lr * lr_multiplier(step, ...)`` from the group's own base
    LR (never from its current ``lr``, so repeated calls cannot compound). Returns the
    multiplier. Every group needs ``base_lr`` (``param_groups`` sets it)."""
    m = lr_multiplier(step, warmup_steps, total_steps, min_ratio)
    for g in optimizer.param_groups:
        if "base_lr" not in g:
            raise ValueError(
                f"optimizer group {g.get('name', '?')!r} has no base_lr; build the optimizer "
                f"from param_groups()"
            )
        if torch.is_tensor(g["lr"]):
            g["lr"].fill_(g["base_lr"] * m)
        else:
            g["lr"] = g["base_lr"] * m
    return m


def make_adamw(
    model,
    lr_mode: str = "differential",
    weight_decay: float = 0.1,
    band_lrs=None,
    shared_lr=None,
    betas=(0.9, 0.999),
    eps: float = 1e-8,
):
    """``torch.optim.AdamW(param_groups(model, ...), betas, eps)`` (the canonical Adam betas and
    eps, CANONICAL_PARAMETERS.md)."""
    groups = param_groups(model, lr_mode, weight_decay, band_lrs, shared_lr)
    return torch.optim.AdamW(groups, lr=groups[0]["lr"], betas=tuple(betas), eps=eps)


def describe_groups(groups) -> str:
    """A table of the groups: name, tensors, parameters, share of all, lr, weight decay."""
    sizes = [sum(p.numel() for p in g["params"]) for g in groups]
    total = sum(sizes) or 1
    lines = [f"{'group':<18} {'tensors':>7} {'params':>12} {'share':>7} {'lr':>9} {'wd':>6}"]
    for g, n in zip(groups, sizes):
        lines.append(
            f"{g['name']:<18} {len(g['params']):>7} {n:>12,} {n / total:>7.1%} "
            f"{g['lr']:>9.3g} {g['weight_decay']:>6.3g}"
        )
    lines.append(f"{'total':<18} {sum(len(g['params']) for g in groups):>7} {sum(sizes):>12,}")
    return "\n".join(lines)


class WeightChangeMonitor:
    """Relative weight change per band, ||W_t - W_{t-N}|| / ||W_{t-N}||, every ``every`` steps.

    W is the concatenation of all the band's trainable parameters (norms, biases and, for
    ``shared``, embeddings included). Build it before training, on the model already on its
    device and, like ``param_groups``, on the bare model rather than its DDP wrapper (whose names
    gain ``module.``): it snapshots the weights at ``start_step`` (0 for a fresh run, the
    checkpoint's step on resume). Call ``step(step)`` after each optimiser step with the number
    of optimiser steps done: at every multiple of ``every`` it logs the change since the previous
    snapshot and takes a new one.
    The work is batched over all tensors (``torch._foreach_*``, one index_add per band sum).

    ``lrs`` gives the prescribed rates: the param groups (``param_groups()`` output or
    ``optimizer.param_groups``; their ``base_lr`` per band), a ``{"band_0": lr, ...}`` dict, or
    None for the model's configured differential LRs. ``history`` is a dict of lists: ``step``
    and one entry per band key (``band_0`` .. , ``shared``). ``ratios()`` compares each band's
    measured change, relative to band 0, with its prescribed LR ratio.
    """

    def __init__(self, model, every: int = 100, lrs=None, start_step: int = 0):
        self.every = runtime.check_int("every", every, low=1)
        self.last_step = runtime.check_int("start_step", start_step, low=0)
        trainable = _trainable(model)
        bands = model.parameter_bands()
        present = sorted({bands[n] for n, _ in trainable}, key=lambda b: (b is None, b or 0))
        self.keys = [group_key(b) for b in present]
        self._params = [p for _, p in trainable]
        position = {b: i for i, b in enumerate(present)}
        self._index = torch.tensor(
            [position[bands[n]] for n, _ in trainable], device=self._params[0].device
        )
        if lrs is None:
            band_lrs, shared_lr = configured_lrs(model)
            lrs = {group_key(b): shared_lr if b is None else band_lrs[b] for b in present}
        elif not isinstance(lrs, dict):
            lrs = base_lrs(lrs)
        missing = [k for k in self.keys if k not in lrs]
        if missing:
            raise ValueError(f"lrs has no learning rate for {missing}")
        self.lrs = {k: float(lrs[k]) for k in self.keys}
        self.history: dict[str, list] = {"step": [], **{k: [] for k in self.keys}}
        with torch.no_grad():
            self._snapshot = [p.detach().clone() for p in self._params]
            self._prev_sq = self._band_sq(self._snapshot)

    def _band_sq(self, tensors) -> torch.Tensor:
        """Sum of squares of ``tensors`` per band key, float64, shape [n_keys]."""
        norms = torch.stack(torch._foreach_norm(tensors)).double()
        out = torch.zeros(len(self.keys), dtype=torch.float64, device=norms.device)
        return out.index_add_(0, self._index, norms * norms)

    @torch.no_grad()
    def step(self, step: int) -> dict[str, float] | None:
        """At a multiple of ``every`` past the last snapshot: log and return ``{key: relative
        change}`` and take a new snapshot; otherwise return None."""
        step = runtime.check_int("step", step, low=0)
        if step % self.every or step <= self.last_step:
            return None
        current = [p.detach() for p in self._params]
        cur_sq = self._band_sq(current)
        torch._foreach_sub_(self._snapshot, current)  # snapshot := W_{t-N} - W_t
        rel = (self._band_sq(self._snapshot) / self._prev_sq).sqrt().tolist()
        torch._foreach_copy_(self._snapshot, current)
        self._prev_sq, self.last_step = cur_sq, step
        logged = dict(zip(self.keys, rel))
        self.history["step"].append(step)
        for k, v in logged.items():
            self.history[k].append(v)
        return logged

    def ratios(self, at: int = -1, reference: str | None = None) -> dict[str, dict[str, float]]:
        """Per band key: ``measured`` = its relative change / the reference's (``band_0``, or
        ``shared`` for a model without bands) at history entry ``at``; ``prescribed`` = its
        base LR / the reference's; ``factor`` = measured / prescribed (013: within 2x?)."""
        if not self.history["step"]:
            raise ValueError("no interval logged yet: call step() past the first multiple of every")
        reference = reference or self.keys[0]
        runtime.check_choice("reference", reference, self.keys)
        ref = self.history[reference][at]
        out = {}
        for k in self.keys:
            measured = self.history[k][at] / ref if ref else math.nan
            prescribed = self.lrs[k] / self.lrs[reference]
            out[k] = {
                "measured": measured,
                "prescribed": prescribed,
                "factor": measured / prescribed,
            }
        return out
