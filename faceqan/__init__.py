"""FaceQAN: face image quality through adversarial noise, as a batched PyTorch engine.

>>> from faceqan import FaceQAN, FaceQANConfig, load_model
>>> scorer = FaceQAN(load_model("sface"), FaceQANConfig())
>>> scores = scorer.score(images)          # (N, 3, 112, 112) aligned crops in [0, 1]
"""

from .aggregate import QualityScores, aggregate
from .config import FaceQANConfig
from .engine import FaceQAN
from .io import ImageLoadError, load_image
from .models import FaceModel, ModelFileError, Preprocessing, list_models, load_model
from .pipeline import iter_score_rows, score_files
from .reference import reference_score

__all__ = ["FaceModel", "FaceQAN", "FaceQANConfig", "ImageLoadError", "ModelFileError", "Preprocessing",
           "QualityScores", "aggregate", "iter_score_rows", "list_models", "load_image", "load_model",
           "reference_score", "score_files"]
