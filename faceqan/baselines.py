"""Simple quality measures FaceQAN must beat to be worth its cost (the FR embeddings they and the comparison
scores come from are faceqan.pipeline.embed_paths / embed_files).

- ``q_adv`` and ``symmetry``: FaceQAN's two factors alone (columns of its output);
- ``embedding_norm``: the L2 norm of an FR model's raw embedding (MagFace-style: larger means more confident);
- ``sharpness``: variance of the Laplacian of the grey image (blur lowers it);
- ``random``: seeded uniform noise, the random-rejection baseline measured on real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

FACEQAN_FACTORS = ("q_adv", "symmetry")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as OpenCV's grey conversion


def embedding_norm(embeddings: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(embeddings, dtype=np.float64), axis=1)


def laplacian_variance(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the 0..255 grey image, over the interior pixels
    (what ``cv2.Laplacian(grey, CV_64F).var()`` measures, without its border padding)."""
    grey = np.asarray(rgb, dtype=np.float32) @ LUMA * 255.0
    lap = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
           - 4.0 * grey[1:-1, 1:-1])
    return float(lap.astype(np.float64).var())


def sharpness(paths: Sequence[str | Path]) -> np.ndarray:
    from .io import read_image

    return np.array([laplacian_variance(read_image(p)) for p in paths])


def random_quality(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(count)


def baseline_qualities(paths: Sequence[str | Path], faceqan_scores=None, embeddings: np.ndarray | None = None,
                       seed: int = 0) -> dict[str, np.ndarray]:
    """Every baseline that the given inputs allow, one value per path (in the order of ``paths``).

    ``faceqan_scores``: a table (DataFrame or dict of columns) aligned with ``paths`` holding FaceQAN's factors;
    ``embeddings``: raw FR embeddings aligned with ``paths``.
    """
    out: dict[str, np.ndarray] = {}
    if faceqan_scores is not None:
        for column in FACEQAN_FACTORS:
            out[f"{column} only"] = np.asarray(faceqan_scores[column], dtype=np.float64)
    if embeddings is not None:
        out["embedding norm"] = embedding_norm(embeddings)
    out["sharpness"] = sharpness(paths)
    out["random"] = random_quality(len(paths), seed)
    return out
