"""Per-band learning rates for the band transformer (026) and the differential-LR study (013).

- :func:`param_groups` turns a model's ``parameter_bands()`` into AdamW groups, one per band
  (``band_<i>``) plus ``shared``, each with its own ``lr`` / ``base_lr``; norms, biases and
  embeddings go to a ``<group>/no_decay`` sibling. The groups partition the trainable parameters
  exactly once (checked every time). ``lr_mode`` (``LR_MODES``): ``differential`` (each band
  its LR), ``geomean`` (every group at the geometric mean of the band LRs: 013's control) or
  ``uniform`` (every group at the shared LR).
- :func:`make_sliced_adamw`: "differential LR without bands", the LR hierarchy over the hidden
  slices of a standard model (:class:`SliceScaledAdamW` rescales each row's AdamW step).
- Schedule: :func:`lr_multiplier` (linear warm-up, cosine to ``min_ratio``) is a pure function
  of the step; :func:`set_lrs` sets ``lr = base_lr * multiplier``.
- LR sets: ``LR_PRESETS`` and :func:`lr_preset`; :func:`learning_budget`.
The weight-change monitor is :mod:`akira_nb.bandformer.monitor`.
"""

from __future__ import annotations

import math

import torch

from akira_nb import runtime
from akira_nb.bandformer.config import (  # noqa: F401  (the torch-free LR sets and checks)
    CUSTOM,
    LR_MODES,
    LR_PRESETS,
    LRPreset,
    check_lrs,
    geometric_mean,
    lr_preset,
)

SHARED = "shared"
NO_DECAY = "/no_decay"


def learning_budget(lrs) -> dict[str, float]:
    """What "the same total learning budget" can mean for a set of band LRs, and what the
    uniform LR at their geometric mean keeps of it:

    - ``log_budget``: sum of log(lr) over the bands (the product of the LRs, i.e. the total
      log-step size); the geometric mean ``g`` is the one uniform LR with the same log budget
      (``n log g``), which is 013's "same total learning budget";
    - ``uniform_log_budget``: ``n log g`` (equals ``log_budget``);
    - ``arithmetic_mean``: the uniform LR that keeps the plain sum of LRs instead; the
      geometric mean is smaller (by ``arithmetic_over_geometric``), so by that reading the
      control gets less total step size.
    """
    lrs = check_lrs("lrs", lrs)
    g = geometric_mean(lrs)
    arith = math.fsum(lrs) / len(lrs)
    return {
        "n_bands": len(lrs),
        "geometric_mean": g,
        "log_budget": math.fsum(math.log(lr) for lr in lrs),
        "uniform_log_budget": len(lrs) * math.log(g),
        "arithmetic_mean": arith,
        "arithmetic_over_geometric": arith / g,
        "ratio_max_min": max(lrs) / min(lrs),
    }


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


def trainable_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
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
    trainable = trainable_parameters(model)
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
    eps, CANONICAL_PARAMETERS.md), fused (one kernel for all parameters) on CPU and CUDA: the
    band model has ~270 parameter tensors at tiny, and the fused step measured 11 % faster a
    training step there than the default one."""
    groups = param_groups(model, lr_mode, weight_decay, band_lrs, shared_lr)
    devices = {p.device.type for g in groups for p in g["params"]}
    fused = devices <= {"cpu", "cuda"}
    return torch.optim.AdamW(
        groups, lr=groups[0]["lr"], betas=tuple(betas), eps=eps, fused=fused or None
    )


def proportional_slices(n: int, band_dims) -> torch.Tensor:
    """Slice index (0 .. len(band_dims) - 1) of each of ``n`` units laid along an axis in
    proportion to ``band_dims``: unit j sits at ``(j + 1/2) * sum(band_dims) / n`` in the band
    coordinates (so ``n == sum(band_dims)`` gives the band slices exactly). ``ValueError`` if a
    slice would be empty."""
    dims = [runtime.check_int(f"band_dims[{i}]", d, low=1) for i, d in enumerate(band_dims)]
    n = runtime.check_int("n", n, low=1)
    ends = torch.tensor(dims, dtype=torch.float64).cumsum(0)
    pos = (torch.arange(n, dtype=torch.float64) + 0.5) * (ends[-1] / n)
    idx = torch.searchsorted(ends, pos, right=True)
    counts = torch.bincount(idx, minlength=len(dims))
    if (counts == 0).any():
        raise ValueError(
            f"an axis of {n} units cannot be split in proportion to band_dims={tuple(dims)}: "
            f"slices {counts.tolist()} (every slice needs at least one unit)"
        )
    return idx


def hidden_row_slices(model, band_dims, prefix: str = "blocks.") -> dict[str, torch.Tensor]:
    """``{parameter name: slice index per row}`` for a standard model's block parameters:
    every ``nn.Linear`` (weight rows and bias = its output units) and ``nn.LayerNorm`` (its
    entries) under ``prefix``, each axis split by :func:`proportional_slices`; a fused
    attention ``qkv`` Linear (name ending ``qkv``, 3 x its input width) has its q, k and v
    chunks split alike. Parameters not listed (embeddings, the final norm) stay whole."""
    out: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if not name.startswith(prefix):
            continue
        if isinstance(module, torch.nn.Linear):
            rows = module.out_features
            if name.endswith("qkv") and rows == 3 * module.in_features:
                idx = proportional_slices(module.in_features, band_dims).repeat(3)
            else:
                idx = proportional_slices(rows, band_dims)
        elif isinstance(module, torch.nn.LayerNorm):
            idx = proportional_slices(module.normalized_shape[0], band_dims)
        else:
            continue
        for pname, p in module.named_parameters(recurse=False):
            if p.requires_grad:
                out[f"{name}.{pname}"] = idx
    if not out:
        raise ValueError(f"the model has no Linear or LayerNorm parameters under {prefix!r}")
    return out


class SliceScaledAdamW(torch.optim.AdamW):
    """AdamW whose step of each listed parameter is rescaled per row after the update:
    ``p = p_old + scale * (p_new - p_old)`` (``scale`` broadcasts over the rows). AdamW's
    update (decoupled weight decay included) is linear in the LR, so a group at LR ``L`` with
    row scale ``s`` steps each row exactly as AdamW at LR ``s * L`` would. A step skipped by a
    GradScaler (inf gradients) is not rescaled either. ``state_dict()`` is AdamW's.
    ``prescribed_lrs``: ``{"band_<i>": slice i's LR, ..., "shared": the shared LR}`` (what the
    weight-change monitor compares with); ``row_slices``: :func:`hidden_row_slices`."""

    def __init__(self, params, scaled=(), prescribed_lrs=None, row_slices=None, **kw):
        super().__init__(params, **kw)
        self._scaled = [p for p, _ in scaled]
        self._scales = [s for _, s in scaled]
        self._old = [torch.empty_like(p) for p in self._scaled]
        self.prescribed_lrs = dict(prescribed_lrs or {})
        self.row_slices = dict(row_slices or {})

    def step(self, closure=None):
        if self._scaled:
            with torch.no_grad():
                torch._foreach_copy_(self._old, self._scaled)
        loss = super().step(closure)
        if self._scaled:
            with torch.no_grad():
                torch._foreach_sub_(self._scaled, self._old)  # p := p_new - p_old
                torch._foreach_mul_(self._scaled, self._scales)  # each row times its scale
                torch._foreach_add_(self._scaled, self._old)
        return loss


def make_sliced_adamw(
    model,
    band_dims,
    band_lrs,
    shared_lr: float,
    weight_decay: float = 0.1,
    betas=(0.9, 0.999),
    eps: float = 1e-8,
) -> SliceScaledAdamW:
    """The "differential LR without bands" optimiser of a model without bands: its block
    parameters (:func:`hidden_row_slices` with ``band_dims``) in groups ``hidden`` /
    ``hidden/no_decay`` at ``max(band_lrs)`` with row scales ``band_lrs[slice] /
    max(band_lrs)``, everything else in ``shared`` / ``shared/no_decay`` at ``shared_lr``; weight
    decay as in :func:`param_groups`. Build it on the model already on its device."""
    band_lrs = check_lrs("band_lrs", band_lrs, len(tuple(band_dims)))
    shared_lr = runtime.check_real("shared_lr", shared_lr, low=0, low_open=True)
    weight_decay = runtime.check_real("weight_decay", weight_decay, low=0)
    trainable = trainable_parameters(model)
    bands = model.parameter_bands()
    banded = sorted(n for n, _ in trainable if bands[n] is not None)
    if banded:
        raise ValueError(
            f"make_sliced_adamw is for a model without bands; this one has band parameters "
            f"{banded[:3]} (use param_groups / make_adamw)"
        )
    rows = hidden_row_slices(model, band_dims)
    top = max(band_lrs)
    no_decay_names = set(model.embedding_parameter_names())
    groups: dict[tuple[str, bool], dict] = {}
    scaled = []
    for name, p in trainable:
        key = "hidden" if name in rows else SHARED
        decay = p.ndim >= 2 and name not in no_decay_names
        lr = top if key == "hidden" else shared_lr
        g = groups.setdefault(
            (key, decay),
            {
                "name": key + ("" if decay else NO_DECAY),
                "band": None,
                "params": [],
                "param_names": [],
                "lr": lr,
                "base_lr": lr,
                "weight_decay": weight_decay if decay else 0.0,
            },
        )
        g["params"].append(p)
        g["param_names"].append(name)
        if name in rows:
            ratio = torch.tensor(band_lrs, dtype=torch.float64)[rows[name]] / top
            shape = (-1,) + (1,) * (p.ndim - 1)
            scaled.append((p, ratio.to(device=p.device, dtype=p.dtype).view(shape)))
    order = [("hidden", True), ("hidden", False), (SHARED, True), (SHARED, False)]
    out = [groups[k] for k in order if k in groups]
    check_partition(model, out)
    prescribed = {group_key(i): lr for i, lr in enumerate(band_lrs)} | {SHARED: shared_lr}
    return SliceScaledAdamW(
        out,
        scaled=scaled,
        prescribed_lrs=prescribed,
        row_slices=rows,
        lr=out[0]["lr"],
        betas=tuple(betas),
        eps=eps,
    )


def prescribed_lrs(optimizer) -> dict[str, float]:
    """The base LR each monitored key should move at: a :class:`SliceScaledAdamW`'s per-slice
    LRs, else :func:`base_lrs` of the optimiser's groups."""
    return dict(getattr(optimizer, "prescribed_lrs", None) or base_lrs(optimizer.param_groups))


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
