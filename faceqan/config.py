"""FaceQAN hyper-parameters and run settings, validated once so every caller gets the same errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

VARIANTS = ("official", "paper")
# Bumped whenever the same settings start giving different scores, so stored scores are recomputed
# (2: the official clip to [-1, 1], the official mean loss, the paper's eps units).
SCORE_VERSION = 2
PRECISIONS = ("fp32", "fp16", "bf16")


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``; anything this machine cannot run
    is refused with one line, before any work."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


@dataclass(frozen=True)
class FaceQANConfig:
    """Everything that decides a FaceQAN score (plus where and how fast it is computed).

    ``variant="official"`` reproduces the published code: ``eps`` is in [0, 1] pixel units (noise
    U(-eps, eps), step eps), copies are clipped to [-1, 1] after the noise and after every step (so pixels
    near 0 may drop to -l*eps), and the similarities are measured before each of the ``iterations`` steps.
    ``"paper"`` follows the paper: its images are in [-1, 1], so ``eps`` is in those units (eps/2 in pixel
    units), the step is eps/l, only the initial copies are clipped (to the valid range) and the similarities
    are those of the final copies. ``batch_size=None`` lets the engine pick a size that suits the device.
    """

    eps: float = 0.001
    iterations: int = 5
    copies: int = 10
    power: int = 5
    variant: str = "official"
    precision: str = "fp32"
    device: str = "auto"
    batch_size: int | None = None
    seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        for name in ("iterations", "copies", "power"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.copies < 2:
            raise ValueError("copies must be at least 2 (the spread of the similarities needs two)")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {self.batch_size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string such as 'cpu' or 'cuda:0', got {self.device!r}")
        resolve_device(self.device)

    @property
    def pixel_eps(self) -> float:
        """The noise amplitude in [0, 1] pixel units (the paper states eps on [-1, 1] images)."""
        return self.eps if self.variant == "official" else self.eps / 2.0

    @property
    def step(self) -> float:
        """The BIM step in pixel units: eps per step (official code) or eps/l (paper)."""
        return self.pixel_eps if self.variant == "official" else self.pixel_eps / self.iterations

    def score_settings(self) -> dict:
        """The settings a score depends on (not where or how fast it was computed)."""
        settings = asdict(self)
        for name in ("device", "batch_size"):
            settings.pop(name)
        return settings
