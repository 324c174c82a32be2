"""The per-band weight-change monitor: ||W_t - W_{t-N}|| / ||W_{t-N}|| per band (or per hidden
slice of a model without bands: the rows of its tensors) every N steps, beside the prescribed LR
ratios (013's H4: "bands learn at their prescribed rates"); ``state_dict()`` /
``load_state_dict()`` carry it through a checkpoint taken anywhere between two of its
intervals.
"""

from __future__ import annotations

import math

import torch

from akira_nb import runtime
from akira_nb.bandformer.optim import base_lrs, configured_lrs, group_key, trainable_parameters


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

    ``row_slices`` (a :class:`SliceScaledAdamW`'s ``row_slices``: parameter name -> slice index
    per row) monitors a model without bands by hidden slice instead: key ``band_<i>`` is then
    slice i, made of the rows of every sliced tensor that belong to it (one norm per row, one
    index_add), and the unsliced parameters are ``shared``.

    ``lrs`` gives the prescribed rates: the param groups (``param_groups()`` output or
    ``optimizer.param_groups``; their ``base_lr`` per band), a ``{"band_0": lr, ...}`` dict
    (:func:`prescribed_lrs` of an optimiser), or None for the model's configured differential
    LRs. ``history`` is a dict of lists: ``step`` and one entry per band key (``band_0`` .. ,
    ``shared``). ``ratios()`` compares each band's measured change, relative to band 0, with its
    prescribed LR ratio. ``state_dict(step)`` / ``load_state_dict(state)`` carry the snapshot
    and history through a checkpoint taken at any step (the snapshot is stored only when the
    checkpoint is off the monitor's grid, since on it the snapshot is the model's weights).
    """

    def __init__(self, model, every: int = 100, lrs=None, start_step: int = 0, row_slices=None):
        self.every = runtime.check_int("every", every, low=1)
        self.last_step = runtime.check_int("start_step", start_step, low=0)
        trainable = trainable_parameters(model)
        bands = model.parameter_bands()
        row_slices = dict(row_slices or {})
        unknown = sorted(set(row_slices) - {n for n, _ in trainable})
        if unknown:
            raise ValueError(f"row_slices names unknown parameters {unknown[:5]}")
        whole = [(n, p) for n, p in trainable if n not in row_slices]
        sliced = [(n, p) for n, p in trainable if n in row_slices]
        for n, p in sliced:
            if bands[n] is not None or row_slices[n].shape != (p.shape[0],):
                raise ValueError(
                    f"row_slices[{n!r}] must give one slice per row of a shared parameter "
                    f"(shape {tuple(p.shape)})"
                )
        used = {bands[n] for n, _ in whole}
        used |= {int(i) for _, idx in row_slices.items() for i in idx.unique().tolist()}
        present = sorted(used, key=lambda b: (b is None, b or 0))
        self.keys = [group_key(b) for b in present]
        position = {b: i for i, b in enumerate(present)}
        self._params = [p for _, p in whole] + [p for _, p in sliced]
        self._n_whole = len(whole)
        device = self._params[0].device
        self._index = torch.tensor([position[bands[n]] for n, _ in whole], device=device)
        lookup = torch.tensor(
            [position.get(i, -1) for i in range(max(used - {None}, default=-1) + 1)]
        )
        self._row_index = (
            torch.cat([lookup[row_slices[n]] for n, _ in sliced]).to(device)
            if sliced
            else torch.zeros(0, dtype=torch.long, device=device)
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
        """Sum of squares of ``tensors`` (in ``_params`` order) per band key, float64,
        shape [n_keys]."""
        whole, sliced = tensors[: self._n_whole], tensors[self._n_whole :]
        out = torch.zeros(len(self.keys), dtype=torch.float64, device=self._index.device)
        if whole:
            norms = torch.stack(torch._foreach_norm(whole)).double()
            out.index_add_(0, self._index, norms * norms)
        if sliced:
            rows = torch.cat(
                [torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1) for t in sliced]
            ).double()
            out.index_add_(0, self._row_index, rows * rows)
        return out

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

    def state_dict(self, step: int | None = None) -> dict:
        """What a checkpoint at optimiser step ``step`` needs: ``every``, ``keys``,
        ``last_step``, ``history`` and, unless ``step == last_step`` (then it equals the
        weights being saved), the snapshot taken at ``last_step``."""
        out = {
            "every": self.every,
            "keys": list(self.keys),
            "last_step": self.last_step,
            "history": {k: list(v) for k, v in self.history.items()},
        }
        if step is None or step != self.last_step:
            out["snapshot"] = [t.detach().clone() for t in self._snapshot]
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` on a monitor built over the same model (its weights
        already loaded: without a stored snapshot, they are the snapshot)."""
        if state["every"] != self.every or list(state["keys"]) != self.keys:
            raise ValueError(
                f"monitor state for every={state['every']}, keys {state['keys']} does not fit "
                f"this monitor (every={self.every}, keys {self.keys})"
            )
        self.last_step = int(state["last_step"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        if "snapshot" in state:
            snap = state["snapshot"]
            if len(snap) != len(self._snapshot):
                raise ValueError(
                    f"monitor snapshot has {len(snap)} tensors, want {len(self._snapshot)}"
                )
            torch._foreach_copy_(self._snapshot, [t.to(self._index.device) for t in snap])
        else:
            torch._foreach_copy_(self._snapshot, [p.detach() for p in self._params])
        self._prev_sq = self._band_sq(self._snapshot)

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
