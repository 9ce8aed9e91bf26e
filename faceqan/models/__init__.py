"""The model zoo: ``load_model(name)`` gives a frozen FaceModel mapping [0,1] RGB crops to embeddings."""

from .base import FaceModel, Normalize, Preprocessing
from .files import ModelFileError
from .registry import DEFAULT_MODEL, ModelEntry, get_entry, list_models, load_model, register
from . import sface  # noqa: F401  (registers the default model)
from . import dlib_resnet, iresnet, onnx_packs  # noqa: F401  (register the rest of the zoo)

__all__ = ["DEFAULT_MODEL", "FaceModel", "ModelEntry", "ModelFileError", "Normalize", "Preprocessing", "get_entry",
           "list_models", "load_model", "register"]
