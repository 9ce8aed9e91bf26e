"""The plugin's operators (thin wrappers over fiftyone_faceqan)."""

from .compute_quality import ComputeFaceQuality, DetectFaces
from .curate import CurateIdentities
from .evaluate import EvaluateQuality
from .noise_maps import ShowNoiseMaps

OPERATORS = (ComputeFaceQuality, DetectFaces, EvaluateQuality, CurateIdentities, ShowNoiseMaps)
