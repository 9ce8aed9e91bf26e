"""The plugin's operators (thin wrappers over fiftyone_faceqan)."""

from .compute_quality import ComputeFaceQuality, DetectFaces
from .evaluate import EvaluateQuality

OPERATORS = (ComputeFaceQuality, DetectFaces, EvaluateQuality)
