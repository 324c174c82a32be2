"""Pearson correlation of every neuron of model A with every neuron of model B, over tokens.

Activations are matrices ``[n_tokens, n_neurons]`` (one row per kept token, one column per MLP
neuron). :class:`StreamingCorrelation` keeps float64 running sums on its device (the token
count, the shifted sums, the cross-product ``Xa^T Xb``, and B's second moment per B layer for
the rotation baselines), so memory does not grow with tokens; widths given as ``{layer: width}``
concatenate several layers into one matmul per batch. :class:`SharedMarginalsCorrelation` is a
token-shuffle null that keeps only its own cross-product. A constant neuron correlates 0, never
NaN. The excess over Haar-rotated baselines is in :mod:`akira_nb.alignment.excess`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from akira_nb.runtime import check_bool, check_choice, check_int, get_device

SEED_THRESHOLD = 0.3
GURNEE_THRESHOLD = 0.5
SEED_N_ROTATIONS = 5
CONSTANT_RTOL = 1e-12

_FORMAT = "akira_nb.alignment.StreamingCorrelation/1"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
F64 = torch.float64


def _layout(name: str, d) -> tuple[int, dict]:
    """Total width and ``{layer: slice}`` (empty for a plain integer width)."""
    if isinstance(d, Mapping):
        if not d:
            raise ValueError(f"{name}={d!r} must name at least one layer")
        layers, start = {}, 0
        for key, width in d.items():
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise ValueError(f"{name}: layer name {key!r} must be an int or a str")
            width = check_int(f"{name}[{key!r}]", width, low=1)
            layers[key] = slice(start, start + width)
            start += width
        return start, layers
    return check_int(name, d, low=1), {}


def _widths(layers: dict) -> list | None:
    return [[k, s.stop - s.start] for k, s in layers.items()] or None


def analysis_dtype(device=None, dtype=None) -> torch.dtype:
    """The dtype of the dense analyses (Procrustes fits and their null, CKA, rotation
    baselines) on ``device``: ``dtype`` when given (``"float32"``, ``"float64"`` or a torch
    dtype), else float32 on CUDA (float64 runs at 1/32 of the rate on T4-class GPUs; the
    float32 results agree with float64 to 1e-5, tested; on MPS too, which has no float64) and
    float64 elsewhere (the CPU's known-answer tests hold to 1e-9). On CUDA with TF32 matmuls
    allowed (``torch.get_float32_matmul_precision() != "highest"``: a 10-bit mantissa)
    float64."""
    if dtype is not None:
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).removeprefix("torch.")
        return _DTYPES[check_choice("dtype", dtype, list(_DTYPES))]
    dev = get_device(device)
    if dev.type == "mps":  # no float64 there
        return torch.float32
    if dev.type == "cuda" and torch.get_float32_matmul_precision() == "highest":
        return torch.float32
    return F64


class StreamingCorrelation:
    """Running Pearson correlation of A's neurons against B's neurons, over tokens.

    Float64 sums on ``device``: the token count ``n``, ``sum_a``, ``sum_b``, ``sum_a2``,
    ``sum_b2``, the cross-product ``cross = Xa^T Xb`` (one matmul per batch) and B's second
    moment ``Xb^T Xb`` per B layer (for the rotation baselines). Every sum is taken on values
    shifted by the first batch's means (the "shifted data" algorithm), so ``sum(xy) - sum(x)
    sum(y) / n`` does not cancel for neurons whose mean is large next to their spread. Memory:
    ``8 d_a d_b`` bytes for ``cross`` plus ``8 w_b^2`` per B layer (``track_b_cov=False``
    skips it), ``8 w_a^2`` per A layer with ``track_a_cov=True`` (for linear CKA over every
    streamed token, :func:`~.cka.linear_cka_from_stats`). A neuron whose variance is at most
    ``1e-12 * mean**2`` is constant: its correlations are 0, never NaN, and it is listed in
    ``constant_a`` / ``constant_b``.

    ``d_a``/``d_b``: a width, or ``{layer: width}`` to concatenate several layers along the
    neuron axis (one matmul per batch updates every (layer_a, layer_b) block; ``update`` then
    takes ``{layer: [n, width]}`` per model and ``corr(layer_a, layer_b)`` reads one block).
    ``device``: where the float64 accumulators live and the matmuls run (default: CUDA when
    present). ``track_b_cov``: keep B's second-moment matrix per B layer (needed by the
    rotation baselines). ``compute_dtype``: dtype of each batch's products, ``"float64"``
    (CPU default) or ``"float32"`` (CUDA default).

    Resuming a stream: ``sc.save(run.file("correlation.pt"))`` every few batches; after a
    disconnect, ``sc = StreamingCorrelation.load(path)`` and skip the first ``sc.n_updates``
    batches of the same (seeded) token stream.
    """

    def __init__(
        self,
        d_a,
        d_b,
        device=None,
        *,
        track_b_cov: bool = True,
        compute_dtype=None,
        track_a_cov: bool = False,
    ):
        self.d_a, self.layers_a = _layout("d_a", d_a)
        self.d_b, self.layers_b = _layout("d_b", d_b)
        self.device = get_device(device)
        self.track_b_cov = check_bool("track_b_cov", track_b_cov)
        self.track_a_cov = check_bool("track_a_cov", track_a_cov)
        if compute_dtype is None:
            compute_dtype = "float32" if self.device.type == "cuda" else "float64"
        if isinstance(compute_dtype, torch.dtype):
            compute_dtype = str(compute_dtype).removeprefix("torch.")
        self.compute_dtype = _DTYPES[check_choice("compute_dtype", compute_dtype, list(_DTYPES))]
        self._tf32_warned = False
        self.reset()

    # ----------------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget every token seen so far."""
        z = lambda *shape: torch.zeros(*shape, dtype=F64, device=self.device)
        self.n = 0
        self.n_updates = 0
        self.shift_a, self.shift_b = z(self.d_a), z(self.d_b)
        self.sum_a, self.sum_b = z(self.d_a), z(self.d_b)
        self.sum_a2, self.sum_b2 = z(self.d_a), z(self.d_b)
        self.cross = z(self.d_a, self.d_b)
        self.sum_bb = [z(s.stop - s.start, s.stop - s.start) for _, s in self._blocks_b()]
        if not self.track_b_cov:
            self.sum_bb = []
        self.sum_aa = []
        if self.track_a_cov:
            self.sum_aa = [z(s.stop - s.start, s.stop - s.start) for _, s in self._blocks_a()]
        self._rotated_var = {}

    @property
    def nbytes(self) -> int:
        """Bytes held by the accumulators (constant in the token count)."""
        tensors = [self.shift_a, self.shift_b, self.sum_a, self.sum_b, self.sum_a2, self.sum_b2]
        tensors += [self.cross, *self.sum_bb, *self.sum_aa]
        return sum(t.numel() * t.element_size() for t in tensors)

    def state_dict(self, copy: bool = True) -> dict:
        """Plain dict of CPU tensors, ints and strings (loadable with ``weights_only=True``).
        ``copy=False``: the CPU accumulators themselves, not copies (for a checkpoint written
        at once: no second copy of ``cross`` and ``B^T B`` in memory)."""
        cpu = lambda t: t.detach().cpu().clone() if copy else t.detach().cpu()
        return {
            "format": _FORMAT,
            "d_a": self.d_a,
            "d_b": self.d_b,
            "layers_a": _widths(self.layers_a),
            "layers_b": _widths(self.layers_b),
            "track_b_cov": self.track_b_cov,
            "track_a_cov": self.track_a_cov,
            "n": self.n,
            "n_updates": self.n_updates,
            **{
                k: cpu(getattr(self, k))
                for k in ("shift_a", "shift_b", "sum_a", "sum_b", "sum_a2", "sum_b2", "cross")
            },
            "sum_bb": [cpu(t) for t in self.sum_bb],
            "sum_aa": [cpu(t) for t in self.sum_aa],
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore a :meth:`state_dict`; refuses one made for other widths, layers or options."""
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            raise ValueError(f"not a StreamingCorrelation state (expected format {_FORMAT!r})")
        for key, mine in (
            ("d_a", self.d_a),
            ("d_b", self.d_b),
            ("layers_a", _widths(self.layers_a)),
            ("layers_b", _widths(self.layers_b)),
            ("track_b_cov", self.track_b_cov),
            ("track_a_cov", self.track_a_cov),
        ):
            saved = state.get(key, False) if key == "track_a_cov" else state[key]
            if key.startswith("layers") and saved is not None:
                saved = [list(x) for x in saved]
            if saved != mine:
                raise ValueError(f"saved state has {key}={saved!r}, this instance has {mine!r}")
        self.n, self.n_updates = int(state["n"]), int(state["n_updates"])
        dev = lambda t: t.to(self.device, F64).clone()
        for k in ("shift_a", "shift_b", "sum_a", "sum_b", "sum_a2", "sum_b2", "cross"):
            setattr(self, k, dev(state[k]))
        self.sum_bb = [dev(t) for t in state["sum_bb"]]
        self.sum_aa = [dev(t) for t in state.get("sum_aa", [])]
        self._rotated_var = {}

    def save(self, path) -> Path:
        """Write the state atomically (a temp file then ``os.replace``) with ``torch.save``."""
        from akira_nb.runs import atomic_torch_save

        return atomic_torch_save(self.state_dict(), path)

    @classmethod
    def load(cls, path, device=None, compute_dtype=None) -> StreamingCorrelation:
        """A new instance from :meth:`save`'s file (``torch.load(weights_only=True)``)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a saved StreamingCorrelation")
        lay = lambda key, d: {k: w for k, w in state[key]} if state[key] else d
        obj = cls(
            lay("layers_a", state["d_a"]),
            lay("layers_b", state["d_b"]),
            device=device,
            track_b_cov=state["track_b_cov"],
            compute_dtype=compute_dtype,
            track_a_cov=state.get("track_a_cov", False),
        )
        obj.load_state_dict(state)
        return obj

    # ---------------------------------------------------------------------------------- update
    def _matrix(self, name: str, x, d: int, layers: dict) -> torch.Tensor:
        if isinstance(x, Mapping):
            if not layers:
                raise ValueError(f"{name} is a dict but this instance has no named layers")
            if set(x) != set(layers):
                raise ValueError(f"{name} has layers {sorted(x, key=str)}; expected {list(layers)}")
            parts = []
            for key, s in layers.items():
                part = torch.as_tensor(x[key])
                if part.ndim != 2 or part.shape[1] != s.stop - s.start:
                    raise ValueError(
                        f"{name}[{key!r}] has shape {tuple(part.shape)}; "
                        f"expected [n_tokens, {s.stop - s.start}]"
                    )
                parts.append(self._to_device(part))
            if len({p.shape[0] for p in parts}) > 1:
                raise ValueError(f"the layers of {name} have different token counts")
            x = torch.cat(parts, dim=1)
        else:
            x = torch.as_tensor(x)
            if x.ndim != 2 or x.shape[1] != d:
                raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [n_tokens, {d}]")
            x = self._to_device(x)
        return x

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """On the accumulator device; cast only when needed (integers, or wider floats than the
        compute dtype): ``x - shift`` then promotes to the compute dtype in one pass."""
        if not torch.is_floating_point(x) or x.element_size() > self.compute_dtype.itemsize:
            return x.to(self.device, self.compute_dtype)
        return x.to(self.device)

    def _dtype_for_update(self) -> torch.dtype:
        """float32 matmuls must not silently run in TF32 (10-bit mantissa) on Ampere+ GPUs."""
        if self.compute_dtype == torch.float32 and self.device.type == "cuda":
            if torch.get_float32_matmul_precision() != "highest":
                if not self._tf32_warned:
                    warnings.warn(
                        "float32 matmul precision is not 'highest' (TF32 allowed); "
                        "StreamingCorrelation computes in float64 instead",
                        stacklevel=3,
                    )
                    self._tf32_warned = True
                return F64
        return self.compute_dtype

    @torch.no_grad()
    def update(self, xa, xb) -> StreamingCorrelation:
        """Add a batch of tokens: ``xa [n, d_a]`` and ``xb [n, d_b]`` (rows are the same tokens),
        or dicts ``{layer: [n, width]}`` when the widths were given per layer."""
        xa = self._matrix("xa", xa, self.d_a, self.layers_a)
        xb = self._matrix("xb", xb, self.d_b, self.layers_b)
        if xa.shape[0] != xb.shape[0]:
            raise ValueError(
                f"xa has {xa.shape[0]} tokens and xb has {xb.shape[0]}; they must be the same rows"
            )
        if xa.shape[0] == 0:
            return self
        dtype = self._dtype_for_update()
        shift_a, shift_b = self.shift_a, self.shift_b
        if self.n == 0:
            shift_a, shift_b = xa.mean(0, dtype=F64), xb.mean(0, dtype=F64)
        a, b = xa - shift_a.to(dtype), xb - shift_b.to(dtype)  # promotes to dtype
        if a.dtype != dtype:  # a guard: the casts in _to_device make promotion give dtype
            a, b = a.to(dtype), b.to(dtype)
        sum_a2, sum_b2 = (a * a).sum(0, dtype=F64), (b * b).sum(0, dtype=F64)
        # a NaN or an infinity anywhere in a column makes its sum of squares non-finite: an O(d)
        # check instead of a pass over the batch, made before any accumulator changes
        for name, sq in (("xa", sum_a2), ("xb", sum_b2)):
            if not bool(torch.isfinite(sq).all()):
                raise ValueError(f"{name} holds NaN or infinite values (or values too large)")
        self.shift_a, self.shift_b = shift_a, shift_b
        self.sum_a += a.sum(0, dtype=F64)
        self.sum_b += b.sum(0, dtype=F64)
        self.sum_a2 += sum_a2
        self.sum_b2 += sum_b2
        self.cross += (a.T @ b).to(F64)
        for acc, (_, s) in zip(self.sum_bb, self._blocks_b()):
            bb = b[:, s]
            acc += (bb.T @ bb).to(F64)
        for acc, (_, s) in zip(self.sum_aa, self._blocks_a()):
            aa = a[:, s]
            acc += (aa.T @ aa).to(F64)
        self.n += xa.shape[0]
        self.n_updates += 1
        return self

    # ------------------------------------------------------------------------------ statistics
    def _rows(self, layer_a) -> slice:
        if layer_a is None:
            return slice(0, self.d_a)
        if layer_a not in self.layers_a:
            raise ValueError(f"layer_a={layer_a!r} is not tracked; tracked: {list(self.layers_a)}")
        return self.layers_a[layer_a]

    def _cols(self, layer_b) -> slice:
        if layer_b is None:
            return slice(0, self.d_b)
        if layer_b not in self.layers_b:
            raise ValueError(f"layer_b={layer_b!r} is not tracked; tracked: {list(self.layers_b)}")
        return self.layers_b[layer_b]

    def _blocks_b(self, layer_b=None) -> list[tuple]:
        """The B layers (name, slice) a rotation acts on: one rotation per B layer."""
        if layer_b is not None:
            return [(layer_b, self._cols(layer_b))]
        return list(self.layers_b.items()) or [(None, slice(0, self.d_b))]

    def _blocks_a(self, layer_a=None) -> list[tuple]:
        """The A layers (name, slice) whose second moment is kept (one block per A layer)."""
        if layer_a is not None:
            return [(layer_a, self._rows(layer_a))]
        return list(self.layers_a.items()) or [(None, slice(0, self.d_a))]

    def split_b(self, cols) -> tuple[torch.Tensor, torch.Tensor]:
        """For column indices into all of B's neurons: ``(layer position in list(layers_b),
        index within that layer)``; layer position 0 when B has no named layers."""
        cols = torch.as_tensor(cols, dtype=torch.long).cpu()
        if ((cols < 0) | (cols >= self.d_b)).any():
            raise ValueError(f"B neuron indices must lie in [0, {self.d_b})")
        starts = torch.tensor([s.start for _, s in self._blocks_b()])
        pos = torch.searchsorted(starts, cols, right=True) - 1
        return pos, cols - starts[pos]

    def _need(self, n_min: int = 2) -> None:
        if self.n < n_min:
            raise ValueError(f"need at least {n_min} tokens, have {self.n}")

    @property
    def mean_a(self) -> torch.Tensor:
        self._need(1)
        return self.shift_a + self.sum_a / self.n

    @property
    def mean_b(self) -> torch.Tensor:
        self._need(1)
        return self.shift_b + self.sum_b / self.n

    @property
    def var_a(self) -> torch.Tensor:
        """Population variance of each A neuron (divides by n)."""
        self._need(1)
        return (self.sum_a2 / self.n - (self.sum_a / self.n) ** 2).clamp_min(0)

    @property
    def var_b(self) -> torch.Tensor:
        self._need(1)
        return (self.sum_b2 / self.n - (self.sum_b / self.n) ** 2).clamp_min(0)

    @property
    def constant_a(self) -> torch.Tensor:
        """Boolean ``[d_a]``: A neurons with (numerically) zero variance (correlations 0)."""
        return self.var_a <= CONSTANT_RTOL * self.mean_a**2

    @property
    def constant_b(self) -> torch.Tensor:
        return self.var_b <= CONSTANT_RTOL * self.mean_b**2

    def cov(self, layer_a=None, layer_b=None) -> torch.Tensor:
        """Population cross-covariance ``[w_a, w_b]`` (float64, on the accumulator device)."""
        self._need(1)
        ra, rb = self._rows(layer_a), self._cols(layer_b)
        sa, sb = self.sum_a[ra] / self.n, self.sum_b[rb] / self.n
        return self.cross[ra, rb] / self.n - sa[:, None] * sb[None, :]

    def cov_b(self, layer_b=None) -> torch.Tensor:
        """Population covariance of B's neurons within one B layer (needs ``track_b_cov``)."""
        self._need(1)
        if not self.track_b_cov:
            raise ValueError("B's covariance is not tracked (track_b_cov=False)")
        blocks = self._blocks_b(layer_b)
        if len(blocks) != 1:
            raise ValueError(f"name one B layer: layer_b in {list(self.layers_b)}")
        name, s = blocks[0]
        i = 0 if name is None else list(self.layers_b).index(name)
        sb = self.sum_b[s] / self.n
        return self.sum_bb[i] / self.n - sb[:, None] * sb[None, :]

    def cov_a(self, layer_a=None) -> torch.Tensor:
        """Population covariance of A's neurons within one A layer (needs ``track_a_cov``)."""
        self._need(1)
        if not self.track_a_cov:
            raise ValueError("A's covariance is not tracked (track_a_cov=False)")
        blocks = self._blocks_a(layer_a)
        if len(blocks) != 1:
            raise ValueError(f"name one A layer: layer_a in {list(self.layers_a)}")
        name, s = blocks[0]
        i = 0 if name is None else list(self.layers_a).index(name)
        sa = self.sum_a[s] / self.n
        return self.sum_aa[i] / self.n - sa[:, None] * sa[None, :]

    def _inv_std(self, var: torch.Tensor, constant: torch.Tensor) -> torch.Tensor:
        inv = var.clamp_min(torch.finfo(F64).tiny).rsqrt()
        return torch.where(constant, torch.zeros_like(inv), inv)

    def corr(self, layer_a=None, layer_b=None) -> torch.Tensor:
        """Pearson correlation ``[w_a, w_b]`` over all tokens seen (float64, accumulator device).

        ``layer_a``/``layer_b`` pick one block when layers were named; None means all neurons.
        Rows/columns of constant neurons are 0.
        """
        self._need(2)
        ra, rb = self._rows(layer_a), self._cols(layer_b)
        ia = self._inv_std(self.var_a[ra], self.constant_a[ra])
        ib = self._inv_std(self.var_b[rb], self.constant_b[rb])
        return (self.cov(layer_a, layer_b) * ia[:, None] * ib[None, :]).clamp_(-1.0, 1.0)

    def index_matched(self, layer_a=None, layer_b=None) -> torch.Tensor:
        """``corr(A_i, B_i)`` for ``i < min(w_a, w_b)``: the seed's neuron-by-index comparison,
        read from the same sums without forming the full matrix."""
        self._need(2)
        ra, rb = self._rows(layer_a), self._cols(layer_b)
        m = min(ra.stop - ra.start, rb.stop - rb.start)
        ia_, ib_ = torch.arange(ra.start, ra.start + m), torch.arange(rb.start, rb.start + m)
        ia_, ib_ = ia_.to(self.device), ib_.to(self.device)
        n = self.n
        cov = self.cross[ia_, ib_] / n - (self.sum_a[ia_] / n) * (self.sum_b[ib_] / n)
        inv_a = self._inv_std(self.var_a[ia_], self.constant_a[ia_])
        inv_b = self._inv_std(self.var_b[ib_], self.constant_b[ib_])
        return (cov * inv_a * inv_b).clamp_(-1.0, 1.0)

    def _rotations(self, rotations, blocks) -> list[torch.Tensor]:
        if isinstance(rotations, torch.Tensor):
            rotations = [rotations]
        rotations = list(rotations)
        if len(rotations) != len(blocks):
            raise ValueError(f"give one rotation per B layer: {len(blocks)}, got {len(rotations)}")
        out = []
        for q, (name, s) in zip(rotations, blocks):
            w = s.stop - s.start
            if tuple(q.shape) != (w, w):
                raise ValueError(
                    f"rotation for B layer {name!r} has shape {tuple(q.shape)}; expected ({w}, {w})"
                )
            out.append(q.to(self.device, q.dtype if q.dtype == torch.float32 else F64))
        return out

    def rotated_var_b(self, rotation: torch.Tensor, layer_b=None) -> torch.Tensor:
        """``var((B Q)_j)`` for every column ``j`` of one B layer rotated by ``Q``:
        ``diag(Q^T cov_b Q)`` (float64), computed in ``Q``'s dtype. Kept for the rotation
        until the sums change, so the basic and Gurnee baselines of this accumulator and of
        its token-shuffle null (which shares B's sums) take one ``2 w_b^3`` product per
        rotation. Needs ``track_b_cov``."""
        self._need(2)
        blocks = self._blocks_b(layer_b)
        if len(blocks) != 1:
            raise ValueError(f"name one B layer: layer_b in {list(self.layers_b)}")
        name = blocks[0][0]
        (q,) = self._rotations(rotation, blocks)
        key = (id(q), name)
        hit = self._rotated_var.get(key)
        if hit is not None and hit[0] is q and hit[1] == self.n_updates:
            return hit[2]
        var = ((self.cov_b(name).to(q.dtype) @ q) * q).sum(0).to(F64)
        self._rotated_var = {
            k: v for k, v in self._rotated_var.items() if v[1] == self.n_updates
        }  # the sums changed: forget older rotations' variances
        self._rotated_var[key] = (q, self.n_updates, var)  # q held: its id stays unique
        return var

    def rotated_corr(self, rotations, layer_a=None, layer_b=None) -> torch.Tensor:
        """``corr(A, B @ Q)`` for a block-diagonal rotation (one ``Q`` per B layer, or one for
        ``layer_b``), from the sums: ``cov(A, B) Q / (std(A) std(BQ))``. Needs ``track_b_cov``.
        The products run in the rotations' dtype (float32 ones: float32 matmuls; the result is
        float64)."""
        self._need(2)
        blocks = self._blocks_b(layer_b)
        qs = self._rotations(rotations, blocks)
        ra = self._rows(layer_a)
        ia = self._inv_std(self.var_a[ra], self.constant_a[ra])
        out = []
        for q, (name, _) in zip(qs, blocks):
            cov = self.cov(layer_a, name).to(q.dtype)
            var_q = self.rotated_var_b(q, name)
            ib = self._inv_std(var_q, var_q <= CONSTANT_RTOL * var_q.max().clamp_min(0))
            out.append((cov @ q).to(F64) * ia[:, None] * ib[None, :])
        return torch.cat(out, dim=1).clamp_(-1.0, 1.0)

    def rotated_index_matched(self, rotation, layer_a=None, layer_b=None) -> torch.Tensor:
        """``corr(A_i, (B Q)_i)`` for ``i < min(w_a, w_b)``, with ``Q`` rotating one B layer
        (``layer_b``, or all of B when it has a single layer), in ``Q``'s dtype. Needs
        ``track_b_cov``."""
        self._need(2)
        blocks = self._blocks_b(layer_b)
        if len(blocks) != 1:
            raise ValueError(f"name one B layer: layer_b in {list(self.layers_b)}")
        name = blocks[0][0]
        (q,) = self._rotations(rotation, blocks)
        ra = self._rows(layer_a)
        m = min(ra.stop - ra.start, q.shape[0])
        cov = self.cov(layer_a, name)[:m].to(q.dtype)
        qm = q[:, :m]
        cov_q = (cov * qm.T).sum(1).to(F64)
        var_q = self.rotated_var_b(q, name)[:m]  # shared with Gurnee's and the null's
        ia = self._inv_std(self.var_a[ra][:m], self.constant_a[ra][:m])
        ib = self._inv_std(var_q, var_q <= CONSTANT_RTOL * var_q.max().clamp_min(0))
        return (cov_q * ia * ib).clamp_(-1.0, 1.0)

    def __repr__(self) -> str:
        la = f" layers {list(self.layers_a)}" if self.layers_a else ""
        lb = f" layers {list(self.layers_b)}" if self.layers_b else ""
        return (
            f"StreamingCorrelation(A {self.d_a}{la} x B {self.d_b}{lb}, n={self.n}, "
            f"device={self.device}, {self.nbytes / 2**20:.0f} MiB)"
        )


_NULL_FORMAT = "akira_nb.alignment.SharedMarginalsCorrelation/1"


class SharedMarginalsCorrelation(StreamingCorrelation):
    """A null accumulator that keeps only its own cross-product and takes every other statistic
    from ``real``, the accumulator of the same token stream.

    For the token-shuffle null (:class:`~.thresholds.ShuffledStream`: the same A rows, B's rows
    permuted within each batch) the permutation leaves each batch's token count, A's and B's
    sums, sums of squares, the shifts (first-batch means) and B's second moment ``Xb^T Xb``
    unchanged; only ``Xa^T P Xb`` differs. So this keeps ``cross`` (``8 * d_a * d_b`` bytes)
    and reads ``n``, the shifts, the sums and ``sum_bb`` from ``real``: at gpt2 x gpt2-medium
    that saves ``8 * 4096**2`` bytes (134 MB) of memory and of every checkpoint per pair, and the
    ``Xb^T Xb`` matmul (about 29 % of the pair's FLOPs per token). Update ``real`` with a batch
    first, then this with the same batch (B's rows permuted); reading its statistics while the
    two are out of step is refused.
    """

    def __init__(self, real: StreamingCorrelation):
        if not isinstance(real, StreamingCorrelation) or isinstance(
            real, SharedMarginalsCorrelation
        ):
            raise ValueError("real must be a StreamingCorrelation that keeps its own sums")
        self.real = real
        self.d_a, self.layers_a = real.d_a, real.layers_a
        self.d_b, self.layers_b = real.d_b, real.layers_b
        self.device = real.device
        self.compute_dtype = real.compute_dtype
        self._tf32_warned = False
        self.reset()

    def reset(self) -> None:
        self.n_updates = 0
        self.n_seen = 0
        self.cross = torch.zeros(self.d_a, self.d_b, dtype=F64, device=self.device)

    def _in_step(self) -> StreamingCorrelation:
        r = self.real
        if (r.n_updates, r.n) != (self.n_updates, self.n_seen):
            raise ValueError(
                f"this null has seen {self.n_updates} batches ({self.n_seen} tokens) and its "
                f"real accumulator {r.n_updates} ({r.n}): update both with the same batches"
            )
        return r

    # every statistic but the cross-product is the real accumulator's
    n = property(lambda self: self._in_step().n)
    shift_a = property(lambda self: self._in_step().shift_a)
    shift_b = property(lambda self: self._in_step().shift_b)
    sum_a = property(lambda self: self._in_step().sum_a)
    sum_b = property(lambda self: self._in_step().sum_b)
    sum_a2 = property(lambda self: self._in_step().sum_a2)
    sum_b2 = property(lambda self: self._in_step().sum_b2)
    sum_bb = property(lambda self: self._in_step().sum_bb)
    sum_aa = property(lambda self: self._in_step().sum_aa)
    track_b_cov = property(lambda self: self.real.track_b_cov)
    track_a_cov = property(lambda self: self.real.track_a_cov)

    def rotated_var_b(self, rotation: torch.Tensor, layer_b=None) -> torch.Tensor:
        """The real accumulator's (a row shuffle leaves B's covariance unchanged)."""
        return self._in_step().rotated_var_b(rotation, layer_b)

    @property
    def nbytes(self) -> int:
        """Bytes of its own accumulator (the cross-product only)."""
        return self.cross.numel() * self.cross.element_size()

    @torch.no_grad()
    def update(self, xa, xb) -> SharedMarginalsCorrelation:
        """Add a batch the real accumulator has just taken (B's rows permuted)."""
        xa = self._matrix("xa", xa, self.d_a, self.layers_a)
        xb = self._matrix("xb", xb, self.d_b, self.layers_b)
        if xa.shape[0] != xb.shape[0]:
            raise ValueError(
                f"xa has {xa.shape[0]} tokens and xb has {xb.shape[0]}; they must be the same rows"
            )
        if xa.shape[0] == 0:
            return self
        r = self.real
        if (r.n_updates, r.n) != (self.n_updates + 1, self.n_seen + xa.shape[0]):
            raise ValueError(
                "update the real accumulator with this batch first: this null shares its sums "
                f"(real: {r.n_updates} batches, {r.n} tokens; this null: {self.n_updates}, "
                f"{self.n_seen}; this batch: {xa.shape[0]} tokens)"
            )
        dtype = self._dtype_for_update()
        a, b = xa - r.shift_a.to(dtype), xb - r.shift_b.to(dtype)
        if a.dtype != dtype:
            a, b = a.to(dtype), b.to(dtype)
        self.cross += (a.T @ b).to(F64)
        self.n_seen += xa.shape[0]
        self.n_updates += 1
        return self

    def state_dict(self, copy: bool = True) -> dict:
        cross = self.cross.detach().cpu()
        return {
            "format": _NULL_FORMAT,
            "d_a": self.d_a,
            "d_b": self.d_b,
            "layers_a": _widths(self.layers_a),
            "layers_b": _widths(self.layers_b),
            "n": self.n_seen,
            "n_updates": self.n_updates,
            "cross": cross.clone() if copy else cross,
        }

    def load_state_dict(self, state: Mapping) -> None:
        if not isinstance(state, Mapping) or state.get("format") != _NULL_FORMAT:
            raise ValueError(
                f"not a shared-marginals null state (expected format {_NULL_FORMAT!r})"
            )
        for key, mine in (
            ("d_a", self.d_a),
            ("d_b", self.d_b),
            ("layers_a", _widths(self.layers_a)),
            ("layers_b", _widths(self.layers_b)),
        ):
            saved = state[key]
            if key.startswith("layers") and saved is not None:
                saved = [list(x) for x in saved]
            if saved != mine:
                raise ValueError(f"saved state has {key}={saved!r}, this instance has {mine!r}")
        self.n_seen, self.n_updates = int(state["n"]), int(state["n_updates"])
        self.cross = state["cross"].to(self.device, F64).clone()

    @classmethod
    def load(cls, path, real: StreamingCorrelation) -> SharedMarginalsCorrelation:
        """A new instance from :meth:`save`'s file, sharing ``real``'s statistics."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        obj = cls(real)
        obj.load_state_dict(state)
        return obj

    def __repr__(self) -> str:
        return (
            f"SharedMarginalsCorrelation(A {self.d_a} x B {self.d_b}, {self.n_updates} batches, "
            f"{self.nbytes / 2**20:.0f} MiB of its own)"
        )


def correlation_of(
    xa, xb, device=None, compute_dtype=None, track_b_cov: bool = False
) -> StreamingCorrelation:
    """One-shot :class:`StreamingCorrelation` of two in-memory matrices (a convenience)."""
    xa, xb = torch.as_tensor(xa), torch.as_tensor(xb)
    if xa.ndim != 2 or xb.ndim != 2:
        raise ValueError(
            f"xa and xb must be [n_tokens, n_neurons]; got {tuple(xa.shape)} and {tuple(xb.shape)}"
        )
    sc = StreamingCorrelation(
        xa.shape[1], xb.shape[1], device, track_b_cov=track_b_cov, compute_dtype=compute_dtype
    )
    return sc.update(xa, xb)


__all__ = [
    "CONSTANT_RTOL",
    "GURNEE_THRESHOLD",
    "SEED_N_ROTATIONS",
    "SEED_THRESHOLD",
    "SharedMarginalsCorrelation",
    "StreamingCorrelation",
    "analysis_dtype",
    "correlation_of",
]
