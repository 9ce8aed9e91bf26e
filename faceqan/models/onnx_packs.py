"""ONNX face-recognition models: insightface model packs and any user ``.onnx`` file, converted to torch.

insightface normalises a recognition model's input as (x - 127.5) / 127.5 on 0..255 RGB unless the graph
starts with its own Sub and Mul nodes, in which case it feeds raw 0..255 pixels; the same rule decides the
preprocessing here, so a pack behaves in the attack exactly as it does in insightface.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from .base import FaceModel, Preprocessing
from torch import nn

from .files import ModelFileError, sha256_file
from .onnx_import import onnx_to_torch, read_onnx
from .registry import ModelEntry, register

INSIGHTFACE_ROOT = Path("~/.insightface/models")
OUTSIDE_GRAPH = Preprocessing(input_size=(112, 112), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
INSIDE_GRAPH = Preprocessing(input_size=(112, 112), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=255.0)
PACKS = {"buffalo_l": ("w600k_r50.onnx", "ResNet50 trained on WebFace600K"),
         "antelopev2": ("glintr100.onnx", "ResNet100 trained on Glint360K")}


def graph_normalises_input(path: Path) -> bool:
    """insightface's test: a Sub and a Mul among the graph's first 8 nodes mean it normalises itself.

    Constant and Identity nodes (exporters emit them for shared weights) are not counted.
    """
    nodes = [node for node in read_onnx(path, load_external_data=False).graph.node
             if node.op_type not in ("Constant", "Identity")][:8]
    kinds = {node.op_type for node in nodes}
    return "Sub" in kinds and "Mul" in kinds


def insightface_preprocessing(path: Path) -> Preprocessing:
    return INSIDE_GRAPH if graph_normalises_input(path) else OUTSIDE_GRAPH


def onnx_model(path: str | Path, preprocessing: Preprocessing | None = None, name: str | None = None) -> FaceModel:
    """Any ONNX FR file as a frozen FaceModel; without ``preprocessing`` insightface's convention is used."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelFileError(f"ONNX model {path} does not exist")
    preprocessing = preprocessing or insightface_preprocessing(path)
    return FaceModel(onnx_to_torch(path), preprocessing, name=name or path.stem, sha256=sha256_file(path))


def locate_pack_file(pack: str, filename: str) -> Path:
    path = (INSIGHTFACE_ROOT / pack / filename).expanduser()
    if not path.is_file():
        raise ModelFileError(
            f"{path} not found: the insightface '{pack}' pack is downloaded by insightface itself "
            f"(`insightface.app.FaceAnalysis(name='{pack}')` puts it in ~/.insightface/models/{pack}/), or pass "
            f"load_model('{pack}', weights='/path/to/{filename}'); insightface packs are for non-commercial "
            "research only")
    return path


def build_pack(path: Path) -> nn.Module:
    """The converted graph, refused if it normalises its input itself (then use onnx_model(path))."""
    if graph_normalises_input(path):
        raise ModelFileError(f"{path} normalises its input inside the graph, unlike the standard pack file; "
                             "load it with faceqan.models.onnx_packs.onnx_model(path)")
    return onnx_to_torch(path)


for _pack, (_file, _what) in PACKS.items():
    register(ModelEntry(
        name=_pack,
        summary=f"insightface {_pack} pack: {_file} ({_what}), 512-d",
        embedding_size=512,
        preprocessing=OUTSIDE_GRAPH,
        licence="insightface model packs: non-commercial research only",
        source=f"~/.insightface/models/{_pack}/{_file} (downloaded by insightface), or weights=path",
        build=build_pack,
        locate=partial(locate_pack_file, _pack, _file),
    ))
