"""FaceQAN for FiftyOne: score face datasets (whole images or detected faces) as a brain run."""

from .faces import detect_faces
from .fields import field_names, output_fields, run_field
from .quality import compute_face_quality
from .runs import FaceQANBrain, FaceQANBrainConfig, FaceQANResults

__all__ = ["FaceQANBrain", "FaceQANBrainConfig", "FaceQANResults", "compute_face_quality", "detect_faces",
           "field_names", "output_fields", "run_field"]
