"""Faces as FiftyOne Detections: detect them (box + 5 landmarks) and turn each one into an aligned crop.

Landmarks are stored on each detection as ``landmarks``: five [x, y] pairs relative to the image size,
FiftyOne's convention for coordinates, so they survive resizing and export. The ``prepare`` functions here also
say where each crop lies in its photo (``placement``), so a noise map can be laid back on the photo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone as fo

import numpy as np

from faceqan.align import FacePreparer, alignment_matrix, detect, get_detector, warp
from faceqan.io import read_image
from faceqan.noise_maps import Placement

from .fields import DETECTOR_INFO, check_detector_target

# (label id, landmarks relative [[x, y]] * 5 or None, bounding box relative [x, y, w, h])
FaceRef = tuple[str, list | None, list]
logger = logging.getLogger(__name__)
BOX_MARGIN = 0.25  # a face without landmarks is searched in its box grown by this fraction on each side


def _relative_face(face, width: int, height: int) -> fo.Detection:
    x, y, w, h = face.box
    box = [max(0.0, x / width), max(0.0, y / height), min(w / width, 1.0), min(h / height, 1.0)]
    landmarks = [[px / width, py / height] for px, py in face.landmarks]
    return fo.Detection(label="face", bounding_box=box, confidence=float(face.confidence), landmarks=landmarks)


def detect_faces(samples, field: str = "faces", min_confidence: float = 0.6, detector: str = "yunet",
                 overwrite: bool = False, progress: bool = True,
                 on_progress: Callable[[int, int], None] | None = None) -> int:
    """Write fo.Detections of every face (box, confidence, ``landmarks``) to ``field``; returns the number
    of faces found. Samples that already have the field are left alone unless ``overwrite``; unreadable
    files get no field (a warning names them). ``field`` must be new or one detect_faces wrote before;
    it and the settings are checked before any image is read."""
    from tqdm import tqdm

    dataset = samples._root_dataset
    check_detector_target(dataset, field)
    if not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}")
    get_detector(detector)  # an unknown name or a missing model file stops here, before any work
    todo = samples if overwrite else samples.exists(field, False)
    ids, paths = todo.values(["id", "filepath"])
    found, failed, values = 0, [], {}
    for done, (sample_id, path) in enumerate(tqdm(list(zip(ids, paths)), desc="detect faces",
                                                  disable=not progress), start=1):
        try:
            rgb = read_image(path)
        except ValueError as exc:
            failed.append(f"{path}: {exc}")
            continue
        height, width = rgb.shape[:2]
        faces = detect(rgb, min_confidence, detector)
        values[sample_id] = fo.Detections(detections=[_relative_face(f, width, height) for f in faces])
        found += len(faces)
        if on_progress:
            on_progress(done, len(ids))
    if not dataset.has_sample_field(field):
        dataset.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections,
                                 info={DETECTOR_INFO: detector})
    dataset.set_values(field, values, key_field="id", dynamic=True)
    if failed:
        logger.warning("detect_faces: %d file(s) could not be read: %s", len(failed), "; ".join(failed))
    return found


@dataclass(frozen=True)
class PlacedCrops:
    """A ``prepare`` function for faceqan.pipeline: FacePreparer's crops of a whole image, each with its
    ``placement`` in the image. Picklable, so it runs in DataLoader workers."""

    preparer: FacePreparer

    def __call__(self, path: str | Path):
        rgb = read_image(path)
        return [({**info, "placement": Placement.of(self.preparer.to_crop(info, rgb.shape[:2]), rgb.shape[:2])},
                 crop) for info, crop in self.preparer.prepare_array(rgb)]


@dataclass(frozen=True)
class DetectionCrops:
    """A ``prepare`` function for faceqan.pipeline: the aligned crop of each listed detection of a file, with its
    ``placement`` in the photo.

    A detection with landmarks is aligned with them; one without (another detector's boxes) is searched
    again inside its grown box. Picklable, so it runs in DataLoader workers.
    """

    preparer: FacePreparer
    faces: dict[str, list[FaceRef]] = field(default_factory=dict)

    def __call__(self, path: str | Path):
        rgb = read_image(path)
        height, width = rgb.shape[:2]
        crops = []
        for label_id, landmarks, box in self.faces[str(path)]:
            if landmarks:
                points = [(x * width, y * height) for x, y in landmarks]
                to_crop = alignment_matrix(points, self.preparer.size, self.preparer.template)
                crop = warp(rgb, to_crop, self.preparer.size)
            else:
                crop, to_crop = self._search_box(rgb, box)
            crops.append(({"label_id": label_id, "placement": Placement.of(to_crop, (height, width))}, crop))
        return crops

    def _search_box(self, rgb, box):
        """The crop of the face found in the grown box, and the matrix from photo pixels to its pixels."""
        height, width = rgb.shape[:2]
        x, y, w, h = box[0] * width, box[1] * height, box[2] * width, box[3] * height
        left, top = max(0, int(x - BOX_MARGIN * w)), max(0, int(y - BOX_MARGIN * h))
        right, bottom = min(width, int(x + w * (1 + BOX_MARGIN)) + 1), min(height, int(y + h * (1 + BOX_MARGIN)) + 1)
        region = rgb[top:bottom, left:right]
        info, crop = self.preparer.prepare_array(region)[0]
        to_crop = self.preparer.to_crop(info, region.shape[:2])
        return crop, np.hstack([to_crop[:, :2], to_crop[:, 2:] - to_crop[:, :2] @ [[left], [top]]])
