"""FaceQAN hyper-parameters and run settings, validated once so every caller gets the same errors.

Every setting is declared once, as a field of FaceQANConfig with its label, help, CLI flag and whether it
decides the score; the CLI, the App form, stored runs and the rerun fingerprints are built from ``settings()``,
so a new field reaches them all (and, deciding the score unless declared otherwise, makes old scores rerun).
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field, fields

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


def setting(default, label: str, help: str, *, flag: str | None = None, choices: tuple | None = None,
            decides_score: bool = True):
    """A FaceQANConfig field with what every front end needs to offer it; a setting decides the score unless
    it only changes where or how fast the score is computed."""
    return field(default=default, metadata={"label": label, "help": help, "flag": flag, "choices": choices,
                                            "decides_score": decides_score})


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

    eps: float = setting(0.001, "eps (noise and step size)",
                         "noise amplitude and attack step: [0,1] pixel units (official), the paper's [-1,1] "
                         "units (paper)")
    iterations: int = setting(5, "l (attack iterations)", "BIM iterations l", flag="-l")
    copies: int = setting(10, "k (noisy copies)", "noisy copies k per image", flag="-k")
    power: int = setting(5, "p (power)", "exponent p of Q = (q_adv * symmetry)^p", flag="-p")
    variant: str = setting("official", "Variant", "official: the published code; paper: the paper's equations",
                           choices=VARIANTS)
    precision: str = setting("fp32", "Precision", "the network's arithmetic (images, noise and steps stay fp32)",
                             choices=PRECISIONS)
    device: str = setting("auto", "Device", "auto, cpu, cuda, cuda:1, ...", decides_score=False)
    batch_size: int | None = setting(None, "Batch size (optional)", "images per step; unset: chosen per device",
                                     decides_score=False)
    seed: int = setting(0, "Seed", "seed of the noise, which each image's pixels seed too")

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
        """What a stored score depends on: the scoring arithmetic's version and every setting that decides it
        (not where or how fast it was computed)."""
        return score_settings(self, type(self))


@dataclass(frozen=True)
class Setting:
    """One FaceQANConfig field as the CLI, the App form and stored runs see it."""

    name: str
    kind: type  # int, float or str; None is allowed where the default is None
    default: object
    label: str
    help: str
    flag: str | None
    choices: tuple | None
    decides_score: bool

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


@functools.cache  # a class's declaration does not change; the forms and the fingerprint ask often
def settings(config_cls: type = FaceQANConfig) -> tuple[Setting, ...]:
    """The settings ``config_cls`` (FaceQANConfig or a dataclass extending it) declares, in field order."""
    hints = typing.get_type_hints(config_cls)
    undeclared = [f.name for f in fields(config_cls) if "decides_score" not in f.metadata]
    if undeclared:
        raise TypeError(f"declare {', '.join(undeclared)} with faceqan.config.setting(...), so every front end "
                        "and the fingerprint know it")
    kinds = {name: next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
             for name, hint in hints.items()}
    return tuple(Setting(f.name, kinds[f.name], f.default, **f.metadata) for f in fields(config_cls))


def score_settings(values, config_cls: type = FaceQANConfig) -> dict:
    """The score version and the settings of ``config_cls`` that decide the score, read from ``values``
    (a config, or a stored run's config: anything with the settings as attributes)."""
    decisive = {s.name: getattr(values, s.name) for s in settings(config_cls) if s.decides_score}
    return {"score_version": SCORE_VERSION, **decisive}


def setting_changes(recorded: dict, settings: dict) -> list[str]:
    """``"name old -> new"`` for every setting that differs, in name order."""
    return [f"{key} {recorded.get(key)!r} -> {settings.get(key)!r}"
            for key in sorted(set(recorded) | set(settings)) if recorded.get(key) != settings.get(key)]
