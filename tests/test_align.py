"""Detection and alignment on real photos: odd inputs, several faces, no face, already aligned crops."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from faceqan import FaceQANConfig, load_model
from faceqan.align import (FacePreparer, NoFaceError, align, detect, get_detector, similarity_transform,
                           template_points)
from faceqan.io import load_image, read_image
from faceqan.models.files import ModelFileError, package_file
from faceqan.pipeline import score_files
from lfw_data import DATA

RAW = DATA / "lfw-raw-fold1"
PHOTO = "Abel_Pacheco/Abel_Pacheco_0001.jpg"  # raw 250x250 LFW photo, one face


def raw_photo() -> np.ndarray:
    if not (RAW / PHOTO).is_file():
        pytest.skip(f"raw LFW photos not found at {RAW} (see ../shared/data/README.md)")
    return read_image(RAW / PHOTO)


def insightface_image(name: str):
    try:
        return package_file("insightface", f"data/images/{name}", "insightface==2.1")
    except ModelFileError as exc:
        pytest.skip(str(exc))


def save(rgb: np.ndarray, path, **kwargs):
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path, **kwargs)
    return path


def one_face(prepare, source):
    rows = prepare(source) if not isinstance(source, np.ndarray) else prepare.prepare_array(source)
    assert len(rows) == 1
    info, crop = rows[0]
    assert crop.shape == (3, 112, 112) and crop.dtype == torch.float32
    assert 0.0 <= float(crop.min()) and float(crop.max()) <= 1.0
    return info, crop


def landmark_error(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def test_a_raw_photo_gives_one_aligned_face_with_json_friendly_info():
    info, _ = one_face(FacePreparer(), raw_photo())
    assert info["alignment"] == "detected" and info["face"] == 0 and info["faces_found"] == 1
    assert info["confidence"] >= 0.6 and len(info["box"]) == 4 and np.shape(info["landmarks"]) == (5, 2)
    assert all(type(v) is float for v in info["box"] + [info["confidence"]] + sum(info["landmarks"], []))
    x, y, w, h = info["box"]
    assert 60 < x + w / 2 < 190 and 60 < y + h / 2 < 190  # LFW photos are centred on the person


def test_uint8_float_and_tensor_inputs_detect_the_same_face():
    rgb = raw_photo()
    as_uint8 = detect(np.round(rgb * 255).astype(np.uint8))[0]
    as_tensor = detect(torch.from_numpy(rgb.transpose(2, 0, 1).copy()))[0]
    assert landmark_error(as_uint8.landmarks, as_tensor.landmarks) < 1e-3
    crop = align(np.round(rgb * 255).astype(np.uint8), as_uint8.landmarks, (112, 112))
    assert crop.shape == (3, 112, 112) and torch.allclose(crop, align(rgb, as_uint8.landmarks), atol=1e-5)


def test_grayscale_photo(tmp_path):
    grey = raw_photo().mean(axis=2)
    path = tmp_path / "grey.png"
    Image.fromarray(np.round(grey * 255).astype(np.uint8), mode="L").save(path)
    _, crop = one_face(FacePreparer(), path)
    assert torch.equal(crop[0], crop[1]) and torch.equal(crop[1], crop[2])


def test_exif_rotated_jpeg_is_detected_upright(tmp_path):
    rgb = raw_photo()
    stored = Image.fromarray(np.round(rgb * 255).astype(np.uint8)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif)
    upright, rotated = detect(rgb)[0], one_face(FacePreparer(), path)[0]
    assert landmark_error(upright.landmarks, rotated["landmarks"]) < 3.0


def test_tiny_images_never_crash():
    small = np.asarray(Image.fromarray(np.round(raw_photo() * 255).astype(np.uint8)).resize((40, 40), Image.BILINEAR))
    info, _ = one_face(FacePreparer(), small)  # a 40x40 photo still has a usable face
    assert info["alignment"] == "detected"
    for shape in [(1, 1, 3), (3, 7), (8, 8, 3)]:
        with pytest.raises(NoFaceError, match="no face found"):
            FacePreparer().prepare_array(np.full(shape, 0.5, dtype=np.float32))


def test_no_face_is_an_error_with_the_reason():
    rng = np.random.default_rng(0)
    for image in (np.full((250, 250, 3), 0.5, np.float32), rng.random((300, 400, 3), dtype=np.float32)):
        with pytest.raises(NoFaceError, match=r"no face found \((no candidate with confidence >= 0\.1; threshold 0\.6|"
                                              r"best confidence 0\.[0-5]\d+ < threshold 0\.6)\)$"):
            FacePreparer().prepare_array(image)
    # the bodies below the faces of the group photo: weak candidates only, reported with the best one
    background = read_image(insightface_image("t1.jpg"))[600:]
    with pytest.raises(NoFaceError, match=r"best confidence 0\.\d+ < threshold 0\.6\)"):
        FacePreparer().prepare_array(background)


def test_every_face_of_a_group_photo_and_no_false_positive():
    path = insightface_image("t1.jpg")
    rows = FacePreparer(faces="all")(path)
    assert [info["face"] for info, _ in rows] == list(range(6))
    assert all(info["faces_found"] == 6 and info["confidence"] >= 0.6 for info, _ in rows)
    confidences = [info["confidence"] for info, _ in rows]
    assert confidences == sorted(confidences, reverse=True)
    centres = np.array([[x + w / 2, y + h / 2] for x, y, w, h in (info["box"] for info, _ in rows)])
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(6) * 1e9
    assert distances.min() > 100  # six distinct people, no face found twice
    # whole-image policies each pick one of those six faces
    for policy in ("largest", "central", "confident"):
        (info, _), = FacePreparer(faces=policy)(path)
        assert info["box"] in [i["box"] for i, _ in rows]
    assert FacePreparer(faces="confident")(path)[0][0]["face"] == 0


def test_an_aligned_crop_is_passed_through_unless_alignment_is_forced():
    path = insightface_image("Tom_Hanks_54745.png")  # insightface's aligned 112x112 example
    info, crop = one_face(FacePreparer(), path)
    assert info == {"face": 0, "alignment": "passthrough"} and torch.equal(crop, load_image(path))
    info, realigned = one_face(FacePreparer(align="always"), path)
    assert info["alignment"] == "detected"
    assert landmark_error(info["landmarks"], template_points("arcface", (112, 112))) < 6.0
    assert float((realigned - crop).abs().mean()) < 0.06  # re-aligning an aligned crop changes little
    info, resized = one_face(FacePreparer(align="never"), raw_photo())
    assert info == {"face": 0, "alignment": "resized"}


def test_align_puts_the_landmarks_on_the_template():
    """A warped photo's landmarks, detected again, land on the template (within YuNet's precision: a few
    pixels; a transposed size or an inverted warp would put them tens of pixels away)."""
    rgb = raw_photo()
    face = detect(rgb)[0]
    crop = align(rgb, face.landmarks, (224, 224)).numpy().transpose(1, 2, 0)
    again = detect(crop)[0]
    assert np.abs(np.asarray(again.landmarks) - template_points("arcface", (224, 224))).mean() < 8.0


def test_similarity_transform_matches_insightface():
    face_align = pytest.importorskip("insightface.utils.face_align")
    rng = np.random.default_rng(1)
    landmarks = template_points("arcface", (112, 112)) * 1.7 + rng.normal(0, 3, (5, 2)) + [40, 25]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-image's deprecated estimate()
        theirs = face_align.estimate_norm(landmarks.astype(np.float32), 112)
    ours = similarity_transform(landmarks, template_points("arcface", (112, 112)))
    assert np.abs(ours - theirs).max() < 1e-4


def test_faces_are_scored_per_face_and_a_faceless_file_is_an_error_row(tmp_path):
    noise = save(np.random.default_rng(0).random((120, 160, 3)), tmp_path / "noise.png")
    photo = save(raw_photo(), tmp_path / "photo.png")
    model = load_model("sface")
    frame = score_files([photo, noise], model, FaceQANConfig(copies=2, iterations=1),
                        prepare=FacePreparer.for_model(model), progress=False)
    assert list(frame["path"]) == [str(photo), str(noise)]
    scored, failed = frame.iloc[0], frame.iloc[1]
    assert pd.isna(scored["error"]) and np.isfinite(scored["quality"]) and scored["alignment"] == "detected"
    assert len(scored["box"]) == 4
    assert "no face found" in failed["error"] and np.isnan(failed["quality"])


def test_bad_settings_and_missing_scrfd_pack_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="align must be one of auto, always, never"):
        FacePreparer(align="sometimes")
    with pytest.raises(ValueError, match="faces must be one of"):
        FacePreparer(faces="biggest")
    with pytest.raises(ValueError, match="min_confidence"):
        FacePreparer(min_confidence=1.5)
    with pytest.raises(ValueError, match="unknown alignment template"):
        FacePreparer(template="dlib5")
    with pytest.raises(ValueError, match="unknown detector"):
        get_detector("mtcnn")
    with pytest.raises(ModelFileError, match="no SCRFD detector .* download the insightface model pack"):
        get_detector("scrfd:faceqan-test-absent-pack")
    with pytest.raises(ModelFileError, match="does not exist"):
        get_detector(f"scrfd:{tmp_path / 'det_10g.onnx'}")
