"""Simple quality measures FaceQAN must beat to be worth its cost, and the FR embeddings they (and the
comparison scores) come from.

- ``q_adv`` and ``symmetry``: FaceQAN's two factors alone (columns of its output);
- ``embedding_norm``: the L2 norm of an FR model's raw embedding (MagFace-style: larger means more confident);
- ``sharpness``: variance of the Laplacian of the grey image (blur lowers it);
- ``random``: seeded uniform noise, the random-rejection baseline measured on real data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

FACEQAN_FACTORS = ("q_adv", "symmetry")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as OpenCV's grey conversion


def embed_each(paths: Sequence[str | Path], model, batch_size: int = 64,
               on_progress: Callable[[int, int], None] | None = None) -> list[np.ndarray | None]:
    """Raw (not normalised) float32 embeddings, one per path, in order; None where a file cannot be read or
    shows no face. Crops of the model's input size are embedded as they are; any other image is detected and
    aligned (largest face) exactly as `faceqan score` does, so raw photos are compared as the model expects."""
    import torch

    from .align import FacePreparer

    prepare = FacePreparer.for_model(model)
    out: list[np.ndarray | None] = [None] * len(paths)
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            good, crops = [], []
            for i in range(start, min(start + batch_size, len(paths))):
                try:
                    crops.append(prepare(paths[i])[0][1])
                    good.append(i)
                except ValueError:  # ImageLoadError, NoFaceError: reported by the caller as a missing embedding
                    continue
            if crops:
                for i, row in zip(good, model(torch.stack(crops)).float().numpy()):
                    out[i] = row
            if on_progress:
                on_progress(min(start + batch_size, len(paths)), len(paths))
    return out


def embed_files(paths: Sequence[str | Path], model, batch_size: int = 64) -> np.ndarray:
    """embed_each for files that must all work (e.g. a benchmark's aligned crops): one row per path."""
    rows = embed_each(paths, model, batch_size)
    failed = [str(p) for p, row in zip(paths, rows) if row is None]
    if failed:
        raise ValueError(f"no embedding for {len(failed)} file(s): {', '.join(failed[:5])}")
    return np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)


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
