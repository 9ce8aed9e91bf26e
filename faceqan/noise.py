"""Per-sample seeded noise, so a score never depends on batch size, order or the other images."""

from __future__ import annotations

import hashlib

import torch


def sample_generator(seed: int, key: str | int) -> torch.Generator:
    """A CPU generator seeded from (seed, key) through a stable hash (Python's hash() is salted)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def initial_noise(seed: int, key: str | int, copies: int, shape: tuple[int, ...], eps: float) -> torch.Tensor:
    """U(-eps, eps) noise of shape (copies, *shape), fp32, drawn on the CPU so every device gets the same."""
    uniform = torch.rand((copies, *shape), generator=sample_generator(seed, key), dtype=torch.float32)
    return (uniform * 2.0 - 1.0) * eps
