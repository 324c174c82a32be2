"""Ring-buffer history of per-band images.

The buffer stores the raw band *images* ``[B, T, C, H, W]`` (C bands), not projected features,
so the model re-projects its history with the current weights every step: the band projections
get a gradient through the history too, and no stale features from older weights are reused.
"""

from __future__ import annotations

import torch

from akira_nb.runtime import check_int, check_range


class RingBuffer:
    """``T`` slots; :meth:`ordered` returns them oldest first (the newest is the last push)."""

    def __init__(self, time_depth: int, init_noise: float = 0.0):
        check_int("time_depth", time_depth, low=1)
        check_range("init_noise", init_noise, 0.0)
        self.time_depth, self.init_noise = int(time_depth), float(init_noise)
        self.reset()

    def reset(self) -> None:
        self.buffer: torch.Tensor | None = None
        self.idx = 0

    @property
    def initialized(self) -> bool:
        return self.buffer is not None

    def fill(self, x: torch.Tensor) -> None:
        """Start the history from ``x [B, ...]``: every slot holds ``x`` plus noise of std
        ``init_noise * (1 - slot / T)`` (the reference's warm start; 0 by default)."""
        T = self.time_depth
        buf = x.detach().unsqueeze(1).repeat(1, T, *([1] * (x.dim() - 1)))
        if self.init_noise > 0:
            sigma = self.init_noise * (1 - torch.arange(T, device=x.device) / T)
            buf = buf + torch.randn_like(buf) * sigma.view(1, T, *([1] * (x.dim() - 1)))
        self.buffer, self.idx = buf, 0

    def ordered(self) -> torch.Tensor:
        """``[B, T, ...]``, oldest slot first."""
        order = (
            self.idx + torch.arange(self.time_depth, device=self.buffer.device)
        ) % self.time_depth
        return self.buffer[:, order]

    def push(self, x: torch.Tensor) -> None:
        """Write ``x [B, ...]`` (detached) into the oldest slot."""
        if self.buffer is None or self.buffer.shape[0] != x.shape[0]:
            self.fill(x)
        # in place is safe: ordered() hands out a gathered copy, never a view of the buffer
        self.buffer[:, self.idx] = x.detach()
        self.idx = (self.idx + 1) % self.time_depth

    def state(self) -> dict:
        return {"buffer": self.buffer, "idx": self.idx}

    def load_state(self, state: dict, device=None) -> None:
        """Restore :meth:`state`; ``device`` moves the buffer (e.g. to the model's device)."""
        buf = state["buffer"]
        if buf is not None and device is not None:
            buf = buf.to(device)
        self.buffer, self.idx = buf, int(state["idx"])
