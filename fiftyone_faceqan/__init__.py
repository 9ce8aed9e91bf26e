"""FaceQAN for FiftyOne: score face datasets (whole images or detected faces) as a brain run."""

# The engine's names the plugin's operators and panels use, so that they import this package only.
from faceqan import FaceQANConfig, list_models
from faceqan.config import settings
from faceqan.metrics import CURVE_LABELS
from faceqan.models import DEFAULT_MODEL
from faceqan.plots import AXIS_TITLES, figure

from .calibration import calibrate_quality
from .curation import Curation, curate_identities
from .faces import detect_faces
from .fields import field_names, output_fields, run_field, score_field
from .groups import rejection_by_group
from .map_figure import noise_map_figure
from .quality import compute_face_quality
from .runs import FaceQANBrain, FaceQANBrainConfig, FaceQANResults, RunProgress, run_progress
from .sharding import QueuedShards

__all__ = ["AXIS_TITLES", "CURVE_LABELS", "Curation", "DEFAULT_MODEL", "FaceQANBrain", "FaceQANBrainConfig",
           "FaceQANConfig", "FaceQANResults", "QueuedShards", "RunProgress", "calibrate_quality",
           "compute_face_quality", "curate_identities", "detect_faces", "field_names", "figure", "list_models",
           "noise_map_figure", "output_fields", "rejection_by_group", "run_field", "run_progress", "score_field",
           "settings"]
