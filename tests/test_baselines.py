"""Baseline quality measures on real LFW crops: sharpness, embedding norm, FaceQAN factors, random; and the
embeddings they and the comparisons use (faceqan.pipeline.embed_paths), on crops, raw photos and bad files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageFilter

from faceqan import load_model
from faceqan.align import FacePreparer
from faceqan.baselines import baseline_qualities, embedding_norm, laplacian_variance, random_quality, sharpness
from faceqan.io import read_image
from faceqan.pipeline import embed_files, embed_paths
from lfw_data import raw_photo_folder, subset_paths


def test_laplacian_variance_matches_opencv_on_the_interior():
    cv2 = pytest.importorskip("cv2")
    rgb = read_image(subset_paths(1)[0])
    grey = cv2.cvtColor(rgb * 255.0, cv2.COLOR_RGB2GRAY).astype(np.float64)
    want = cv2.Laplacian(grey, cv2.CV_64F)[1:-1, 1:-1].var()
    assert laplacian_variance(rgb) == pytest.approx(want, rel=1e-4)


def test_blur_lowers_sharpness_on_real_faces(tmp_path):
    paths = subset_paths(6)
    blurred = []
    for i, path in enumerate(paths):
        out = tmp_path / f"{i}.png"
        Image.open(path).filter(ImageFilter.GaussianBlur(1.5)).save(out)
        blurred.append(out)
    assert np.all(sharpness(blurred) < sharpness(paths))


def test_random_quality_is_seeded():
    np.testing.assert_array_equal(random_quality(5, seed=1), random_quality(5, seed=1))
    assert not np.array_equal(random_quality(5, seed=1), random_quality(5, seed=2))


def test_embedding_norm():
    np.testing.assert_allclose(embedding_norm(np.array([[3.0, 4.0], [0.0, 1.0]])), [5.0, 1.0])


def test_sface_embeddings_and_every_baseline_on_real_crops():
    paths = subset_paths(4)
    embeddings = embed_files(paths, load_model("sface"), batch_size=3)  # two batches
    assert embeddings.shape == (4, 128) and embeddings.dtype == np.float32
    np.testing.assert_allclose(embed_files(paths[:1], load_model("sface")), embeddings[:1], atol=1e-5)
    scores = pd.DataFrame({"q_adv": [0.9, 0.8, 0.7, 0.6], "symmetry": [0.5, 0.6, 0.7, 0.8]})
    out = baseline_qualities(paths, scores, embeddings, seed=0)
    assert list(out) == ["q_adv only", "symmetry only", "embedding norm", "sharpness", "random"]
    assert all(len(v) == 4 and np.all(np.isfinite(v)) for v in out.values())
    np.testing.assert_array_equal(out["symmetry only"], scores["symmetry"])
    assert list(baseline_qualities(paths)) == ["sharpness", "random"]


def test_embed_paths_aligns_raw_photos_as_score_does_and_gives_none_for_bad_files(tmp_path):
    model = load_model("sface")
    photo = next(raw_photo_folder(tmp_path / "raw", people=("Abel_Pacheco",), per_person=1).rglob("*.jpg"))
    (tmp_path / "text.jpg").write_text("not an image")
    noise = tmp_path / "noise.png"  # an image without a face
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(noise)
    paths = [*subset_paths(2), tmp_path / "text.jpg", photo, noise, tmp_path / "missing.jpg"]
    seen = []
    vectors = embed_paths(paths, model, batch_size=4, on_progress=lambda done, total: seen.append((done, total)))
    assert [v is None for v in vectors] == [False, False, True, False, True, True]
    assert seen == [(4, 6), (6, 6)]
    prepare = FacePreparer.for_model(model)  # what `faceqan score` scores: the crop as it is, the photo aligned
    assert [prepare(p)[0][0]["alignment"] for p in (paths[0], photo)] == ["passthrough", "detected"]
    with torch.inference_mode():
        want = model(torch.stack([prepare(p)[0][1] for p in (paths[0], paths[1], photo)])).numpy()
    np.testing.assert_allclose(np.stack([vectors[0], vectors[1], vectors[3]]), want, atol=1e-5)
    with pytest.raises(ValueError, match=r"no embedding for 1 file\(s\): .*text.jpg"):
        embed_files(paths[:3], model)
