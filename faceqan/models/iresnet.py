"""insightface's iresnet (arcface_torch layout and state-dict names), loaded from a user's ``backbone.pth``.

The architecture is rebuilt here so that the state dicts arcface_torch saves load by name; the weights are
never shipped (insightface's trained models are for non-commercial research only).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from functools import partial
from pathlib import Path

import torch
from torch import nn

from .base import FaceModel, Preprocessing
from .files import ModelFileError, first_line
from .registry import ModelEntry, register

DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 200: (6, 26, 60, 6)}
PREPROCESSING = Preprocessing(input_size=(112, 112), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
WHERE_TO_GET = ("iresnet weights are not distributed with faceqan: download a `backbone.pth` from the insightface "
                "arcface_torch model zoo (the FaceQAN paper used CosFace r100 trained on Glint360K: "
                "load_model('iresnet100', weights='backbone.pth')); insightface's weights are for "
                "non-commercial research only")


def _conv3x3(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus the (projected) input."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """(N, 3, 112, 112) inputs normalised to [-1, 1] -> (N, num_features) embeddings."""

    def __init__(self, layers: tuple[int, int, int, int], num_features: int = 512):
        super().__init__()
        self.conv1 = _conv3x3(3, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stage = [IBasicBlock(inplanes, planes, 2)] + [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*stage))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def build_iresnet(depth: int, num_features: int = 512) -> IResNet:
    """A randomly initialised iresnet (eval mode), for benchmarks and tests."""
    if depth not in DEPTHS:
        raise ValueError(f"iresnet depth must be one of {sorted(DEPTHS)}, got {depth}")
    return IResNet(DEPTHS[depth], num_features).eval()


def random_iresnet(depth: int, seed: int = 0) -> FaceModel:
    """A frozen FaceModel with random weights: the real compute cost of an iresnet, no meaningful embeddings."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = build_iresnet(depth)
    return FaceModel(network, PREPROCESSING, name=f"iresnet{depth}-random")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors, unpickled with torch's weights-only loader (a file that needs code is refused).

    Every failure is one line: torch's own messages run to paragraphs of advice.
    """
    with open(path, "rb") as f:
        head = f.read(1)
    if not zipfile.is_zipfile(path) and head != b"\x80":  # torch.save writes a zip, old torch a pickle
        raise ModelFileError(f"{path} is not a torch checkpoint (neither torch.save's zip archive nor a pickle): "
                             "give the backbone.pth state dict saved by arcface_torch")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if code is None:
            raise ModelFileError(f"{path} is not a readable torch checkpoint (corrupt pickle)") from None
        raise ModelFileError(f"{path} is refused: it is not a plain state dict of tensors (loading it would "
                             f"run code from the file: {code.group(1)}). Save `model.state_dict()` instead.") from None
    except Exception as error:  # noqa: BLE001 - a damaged archive or pickle fails in many ways
        raise ModelFileError(f"{path} is not a readable torch checkpoint ({type(error).__name__}: "
                             f"{first_line(error)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path} does not hold a state dict of tensors (a mapping name -> tensor)")
    if state and all(key.startswith("module.") for key in state):  # saved from DistributedDataParallel
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def load_iresnet(depth: int, path: Path) -> IResNet:
    network = build_iresnet(depth)
    state = load_state_dict(path)
    expected = network.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ModelFileError(
            f"{path} is not an arcface_torch iresnet{depth} state dict: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, {len(wrong)} wrong shapes "
            f"{wrong[:3]}; check the depth (iresnet18/34/50/100/200) matches the checkpoint")
    network.load_state_dict(state, strict=False)
    return network.eval()


def _no_default(depth: int) -> Path:
    raise ModelFileError(f"iresnet{depth} needs weights=...: {WHERE_TO_GET}")


for _depth in DEPTHS:
    register(ModelEntry(
        name=f"iresnet{_depth}",
        summary=f"insightface iresnet{_depth} (arcface_torch), 512-d; your own backbone.pth",
        embedding_size=512,
        preprocessing=PREPROCESSING,
        licence="architecture MIT; insightface weights: non-commercial research only",
        source="user file: arcface_torch model zoo backbone.pth (load_model(name, weights=path))",
        build=partial(load_iresnet, _depth),
        locate=partial(_no_default, _depth),
    ))
