"""The plugin's operators (thin wrappers over fiftyone_faceqan)."""

from .compute_quality import ComputeFaceQuality, DetectFaces

OPERATORS = (ComputeFaceQuality, DetectFaces)
