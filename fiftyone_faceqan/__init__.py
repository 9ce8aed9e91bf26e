"""FaceQAN for FiftyOne: score face datasets (whole images or detected faces) as a brain run."""

# The engine's names the plugin's operators and panels use, so that they import this package only.
from faceqan import FaceQANConfig, list_models
from faceqan.config import settings
from faceqan.metrics import CURVE_LABELS
from faceqan.models import DEFAULT_MODEL
from faceqan.plots import AXIS_TITLES, figure

from .faces import detect_faces
from .fields import field_names, output_fields, run_field
from .map_figure import noise_map_figure
from .quality import compute_face_quality
from .runs import FaceQANBrain, FaceQANBrainConfig, FaceQANResults, RunProgress, run_progress
from .sharding import QueuedShards

__all__ = ["AXIS_TITLES", "CURVE_LABELS", "DEFAULT_MODEL", "FaceQANBrain", "FaceQANBrainConfig", "FaceQANConfig",
           "FaceQANResults", "QueuedShards", "RunProgress", "compute_face_quality", "detect_faces", "field_names",
           "figure", "list_models", "noise_map_figure", "output_fields", "run_field", "run_progress", "settings"]
