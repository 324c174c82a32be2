"""Modular addition data: every pair (a, b) in [0, p)^2 as the tokens ``a b =`` with label
(a + b) mod p, split into train and test by a seeded permutation.

Row ``i`` of the full table is the pair ``a = i // p, b = i % p``, so metrics that need all p^2
inputs in (a, b) order (Fourier progress measures, neuron maps) index the same table. Torch is
imported when a table is made, so the configs (``config.py``) check ``p`` without it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

from akira_nb.runtime import check_range

if TYPE_CHECKING:
    import torch


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def check_p(p) -> int:
    """``p`` must be a prime integer >= 3; raise ``ValueError`` naming it otherwise."""
    if isinstance(p, bool) or not isinstance(p, numbers.Integral):
        raise ValueError(f"p={p!r} must be a prime integer >= 3, got {type(p).__name__}")
    p = int(p)
    if p < 3 or not is_prime(p):
        raise ValueError(f"p={p!r} must be a prime integer >= 3 (e.g. 13, 53, 113)")
    return p


@dataclass
class ModularAddition:
    """All p^2 inputs, their labels and a train/test split (index tensors into the table)."""

    p: int
    inputs: torch.Tensor  # [p*p, 3] long: a, b, p (the '=' token)
    labels: torch.Tensor  # [p*p] long: (a + b) % p
    train_idx: torch.Tensor  # [n_train] long
    test_idx: torch.Tensor  # [n_test] long

    @property
    def n_train(self) -> int:
        return int(self.train_idx.numel())

    @property
    def n_test(self) -> int:
        return int(self.test_idx.numel())

    def to(self, device) -> ModularAddition:
        return ModularAddition(
            self.p,
            self.inputs.to(device),
            self.labels.to(device),
            self.train_idx.to(device),
            self.test_idx.to(device),
        )


def make_dataset(p: int, train_frac: float = 0.3, seed: int = 0) -> ModularAddition:
    """Build the a + b mod p table and a seeded split with ``int(train_frac * p^2)`` train pairs
    (p = 53, 0.3 gives 842 / 1,967; p = 113 gives 3,830 / 8,939, as in Nanda et al.)."""
    import torch

    check_p(p)
    check_range("train_frac", train_frac, 0.0, 1.0, low_open=True, high_open=True)
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    inputs = torch.stack([a, b, torch.full_like(a, p)], dim=1)
    labels = (a + b) % p
    n_train = int(train_frac * p * p)
    if n_train < 1 or n_train >= p * p:
        raise ValueError(
            f"train_frac={train_frac!r} leaves {n_train} of {p * p} pairs for training; "
            "both splits need at least one pair"
        )
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(p * p, generator=gen)
    return ModularAddition(
        p, inputs, labels, perm[:n_train].sort().values, perm[n_train:].sort().values
    )
