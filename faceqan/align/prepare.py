"""From an image (file or RGB array) to the aligned crops FaceQAN scores, one row per face.

A face-recognition model only gives meaningful scores on crops aligned like its training data, so raw
photos are detected and aligned; inputs that already have the model's input size are taken as aligned
crops (``align="auto"``). A photo without a confident face raises NoFaceError: the pipeline records it
as an error row instead of scoring an arbitrary crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..io import read_image, to_tensor
from .detectors import Face, get_detector
from .transform import TEMPLATES, align, alignment_matrix, as_rgb, resize_matrix

ALIGN_MODES = ("auto", "always", "never")
FACE_POLICIES = ("largest", "central", "confident", "all")
CANDIDATE_FLOOR = 0.1  # weaker detections are still collected, so a failure can report the best one
MIN_SIDE, MAX_SIDE = 224, 1920  # detection runs on the image scaled into this range (landmark precision, speed)

Crops = list[tuple[dict, torch.Tensor]]


class NoFaceError(ValueError):
    """No detection reached the confidence threshold; the message gives the best confidence seen."""


def _detection_scale(height: int, width: int) -> float:
    scale = MIN_SIDE / min(height, width) if min(height, width) < MIN_SIDE else 1.0
    return min(scale, MAX_SIDE / max(height, width))


def candidates(rgb: np.ndarray, threshold: float, detector: str = "yunet") -> list[Face]:
    """All detections with confidence >= threshold in image pixels, most confident first."""
    height, width = rgb.shape[:2]
    scale = _detection_scale(height, width)
    bgr = np.round(rgb[..., ::-1] * 255.0).astype(np.uint8)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    faces = get_detector(detector)(bgr, threshold)
    faces = [f.unscaled(scale) if scale != 1.0 else f for f in faces]
    return sorted(faces, key=lambda f: -f.confidence)


def detect(image, min_confidence: float = 0.6, detector: str = "yunet") -> list[Face]:
    """The faces of an RGB image with confidence >= min_confidence, most confident first."""
    return candidates(as_rgb(image), min_confidence, detector)


def choose(faces: list[Face], policy: str, shape: tuple[int, ...]) -> int:
    """Index of the one face a whole-image score should use."""
    if policy == "largest":
        return max(range(len(faces)), key=lambda i: (faces[i].area, -i))
    if policy == "central":
        cx, cy = shape[1] / 2, shape[0] / 2
        return min(range(len(faces)), key=lambda i: (np.hypot(faces[i].centre[0] - cx, faces[i].centre[1] - cy), i))
    if policy == "confident":
        return 0
    raise ValueError(f"policy must be one of {', '.join(FACE_POLICIES[:-1])} to choose one face, got {policy!r}")


@dataclass(frozen=True)
class FacePreparer:
    """A ``prepare`` function for faceqan.pipeline (picklable, so it runs in DataLoader workers).

    align: ``auto`` (detect + align unless the image already has the crop size), ``always``, ``never``
    (resize the whole image). faces: ``largest``, ``central``, ``confident`` (one face per image) or
    ``all`` (one row per face).
    """

    size: tuple[int, int] = (112, 112)
    template: str = "arcface"
    align: str = "auto"
    faces: str = "largest"
    min_confidence: float = 0.6
    detector: str = "yunet"

    def __post_init__(self):
        if self.align not in ALIGN_MODES:
            raise ValueError(f"align must be one of {', '.join(ALIGN_MODES)}, got {self.align!r}")
        if self.faces not in FACE_POLICIES:
            raise ValueError(f"faces must be one of {', '.join(FACE_POLICIES)}, got {self.faces!r}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown alignment template {self.template!r}; known: {', '.join(sorted(TEMPLATES))}")

    @classmethod
    def for_model(cls, model, **options) -> FacePreparer:
        """Crop size and template from a FaceModel (or ModelEntry) preprocessing."""
        return cls(size=tuple(model.preprocessing.input_size), template=model.preprocessing.template, **options)

    def __call__(self, path: str | Path) -> Crops:
        return self.prepare_array(read_image(path))

    def prepare_array(self, image) -> Crops:
        """(info, crop) per face of an RGB array; info holds JSON-friendly columns."""
        rgb = as_rgb(image)
        if self.align == "never":
            return [({"face": 0, "alignment": "resized"}, to_tensor(rgb, self.size))]
        if self.align == "auto" and rgb.shape[:2] == tuple(self.size):
            return [({"face": 0, "alignment": "passthrough"}, to_tensor(rgb))]
        found = candidates(rgb, min(CANDIDATE_FLOOR, self.min_confidence), self.detector)
        faces = [f for f in found if f.confidence >= self.min_confidence]
        if not faces:
            seen = (f"best confidence {found[0].confidence:.3f} < threshold {self.min_confidence}" if found else
                    f"no candidate with confidence >= {CANDIDATE_FLOOR}; threshold {self.min_confidence}")
            raise NoFaceError(f"no face found ({seen})")
        chosen = range(len(faces)) if self.faces == "all" else [choose(faces, self.faces, rgb.shape)]
        return [({"face": i, "faces_found": len(faces), "alignment": "detected", **faces[i].info()},
                 align(rgb, faces[i].landmarks, self.size, self.template)) for i in chosen]

    def to_crop(self, info: dict, image_size: tuple[int, int]) -> np.ndarray:
        """The 2x3 matrix from the pixels of an image of ``image_size`` (height, width) to the pixels of the crop
        ``prepare_array`` made of it with ``info`` (detected faces: from the landmarks as info rounds them)."""
        if info["alignment"] == "detected":
            return alignment_matrix(info["landmarks"], self.size, self.template)
        return resize_matrix(image_size, self.size)
