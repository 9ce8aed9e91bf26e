"""FaceQAN hyper-parameters and run settings, validated once so every caller gets the same errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass

VARIANTS = ("official", "paper")
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class FaceQANConfig:
    """Everything that decides a FaceQAN score (plus where and how fast it is computed).

    ``variant="official"`` reproduces the published code (step eps, similarities measured before each of
    the ``iterations`` steps); ``"paper"`` follows the paper (step eps/l, similarities of the final copies).
    ``batch_size=None`` lets the engine pick a size that suits the device.
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

    def score_settings(self) -> dict:
        """The settings a score depends on (not where or how fast it was computed)."""
        settings = asdict(self)
        for name in ("device", "batch_size"):
            settings.pop(name)
        return settings
