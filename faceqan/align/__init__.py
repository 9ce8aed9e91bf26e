"""Face detection and 5-point alignment, so raw photos can be scored like aligned crops."""

from .detectors import SCRFD, Face, YuNet, get_detector
from .prepare import ALIGN_MODES, FACE_POLICIES, FacePreparer, NoFaceError, choose, detect
from .transform import TEMPLATES, align, as_rgb, similarity_transform, template_points

__all__ = ["ALIGN_MODES", "FACE_POLICIES", "SCRFD", "TEMPLATES", "Face", "FacePreparer", "NoFaceError", "YuNet",
           "align", "as_rgb", "choose", "detect", "get_detector", "similarity_transform", "template_points"]
