"""Face detection and 5-point alignment, so raw photos can be scored like aligned crops."""

from .detectors import SCRFD, Face, YuNet, get_detector
from .prepare import ALIGN_MODES, FACE_POLICIES, FacePreparer, NoFaceError, choose, detect
from .transform import (TEMPLATES, align, alignment_matrix, as_rgb, resize_matrix, similarity_transform,
                        template_points, unalign, warp)

__all__ = ["ALIGN_MODES", "FACE_POLICIES", "SCRFD", "TEMPLATES", "Face", "FacePreparer", "NoFaceError", "YuNet",
           "align", "alignment_matrix", "as_rgb", "choose", "detect", "get_detector", "resize_matrix",
           "similarity_transform", "template_points", "unalign", "warp"]
