"""Baseline quality measures on real LFW crops: sharpness, embedding norm, FaceQAN factors, random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from faceqan import load_model
from faceqan.baselines import (baseline_qualities, embed_files, embedding_norm, laplacian_variance,
                               random_quality, sharpness)
from faceqan.io import read_image
from lfw_data import subset_paths


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
