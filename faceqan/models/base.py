"""What the engine needs from a face-recognition model: a module from [0,1] RGB crops to embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .files import ModelFileError, first_line


@dataclass(frozen=True)
class Preprocessing:
    """How a [0,1] RGB crop becomes the network's input: x' = (x * scale - mean) / std, channels reordered.

    ``input_size`` is (height, width) of the crop the engine feeds; ``template`` names the alignment the
    crop must follow (``"arcface"``: the 5-point ArcFace template at 112x112).
    """

    input_size: tuple[int, int] = (112, 112)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    scale: float = 1.0
    channels: str = "RGB"
    template: str = "arcface"

    def __post_init__(self):
        if self.channels not in ("RGB", "BGR"):
            raise ValueError(f"channels must be 'RGB' or 'BGR', got {self.channels!r}")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not contain zeros")


class Normalize(nn.Module):
    """The preprocessing as a differentiable layer, so the attack works in [0,1] pixel space."""

    def __init__(self, preprocessing: Preprocessing):
        super().__init__()
        self.scale = preprocessing.scale
        self.bgr = preprocessing.channels == "BGR"
        self.register_buffer("mean", torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(preprocessing.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        return (x * self.scale - self.mean) / self.std


class FaceModel(nn.Module):
    """An FR network plus its preprocessing: maps (N, 3, H, W) crops in [0,1] to (N, D) embeddings.

    Frozen on construction (eval mode, no parameter gradients): FaceQAN only ever differentiates
    with respect to the input, and eval mode makes every sample's gradient independent of its batch.
    """

    def __init__(self, network: nn.Module, preprocessing: Preprocessing = Preprocessing(), name: str = "custom",
                 sha256: str | None = None):
        super().__init__()
        self.normalize = Normalize(preprocessing)
        self.network = network
        self.preprocessing = preprocessing
        self.name = name
        self.sha256 = sha256
        self.eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError("FaceModel is inference-only: FaceQAN needs BatchNorm running statistics")
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.normalize(x)).flatten(1)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocessing.input_size

    def check_runs(self) -> None:
        """One forward of a grey crop: a weights file of the wrong kind (a detector given as an FR model)
        is refused here, once, instead of failing every image of a run."""
        crop = torch.full((1, 3, *self.input_size), 0.5)
        try:
            with torch.no_grad():
                embedding = self(crop)
        except Exception as error:  # noqa: BLE001 - whatever the network raises, it cannot embed faces
            raise ModelFileError(f"model {self.name} cannot embed a {crop.shape[2]}x{crop.shape[3]} crop "
                                 f"({type(error).__name__}: {first_line(error)}): is the weights file a face-"
                                 "recognition model of this architecture?") from None
        if embedding.shape[0] != 1 or not torch.isfinite(embedding).all():
            raise ModelFileError(f"model {self.name} does not give one finite embedding per crop (got "
                                 f"{tuple(embedding.shape)}): is the weights file a face-recognition model?")
