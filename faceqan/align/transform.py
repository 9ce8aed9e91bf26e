"""5-point similarity alignment: landmarks -> the crop a face-recognition model was trained on.

The similarity transform is estimated here (Umeyama, 1991) instead of with insightface's
``face_align.estimate_norm``: importing that pulls the whole insightface package (onnxruntime, scipy,
scikit-image, requests; ~0.7 s per DataLoader worker) and it calls scikit-image's deprecated
``SimilarityTransform.estimate`` (a FutureWarning per face with scikit-image 0.26). tests/test_align.py
checks both give the same matrix.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

# name -> (reference (height, width), 5 points (x, y): eye, eye, nose tip, mouth corner, mouth corner,
# in image order left to right).
TEMPLATES: dict[str, tuple[tuple[int, int], np.ndarray]] = {
    "arcface": ((112, 112), np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                      [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)),
}


def as_rgb(image) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0,1] from an RGB array: uint8 or float in [0,1], grey (H, W) or (H, W, 1),
    RGBA (alpha dropped), or a (3, H, W) tensor."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[2] not in (1, 3, 4):
            image = image.transpose(1, 2, 0)
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    image = image[..., :3] if image.shape[2] == 4 else np.repeat(image, 3 // image.shape[2], axis=2)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def template_points(template: str, size: tuple[int, int]) -> np.ndarray:
    """The template's 5 points scaled to a crop of size (height, width)."""
    try:
        (ref_h, ref_w), points = TEMPLATES[template]
    except KeyError:
        raise ValueError(f"unknown alignment template {template!r}; known: {', '.join(sorted(TEMPLATES))}") from None
    return points * np.array([size[1] / ref_w, size[0] / ref_h])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity (rotation, uniform scale, translation) mapping src points to dst."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    variance = (src_c ** 2).sum() / len(src)
    scale = (s * d).sum() / variance if variance > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def alignment_matrix(landmarks, size: tuple[int, int] = (112, 112), template="arcface") -> np.ndarray:
    """The 2x3 matrix ``align`` warps with: photo pixels -> crop pixels, mapping the 5 landmarks onto the
    template (a name in TEMPLATES, or 5 (x, y) points in crop pixels)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    target = template_points(template, size) if isinstance(template, str) else np.asarray(template, dtype=np.float64)
    if landmarks.shape != (5, 2) or target.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) landmarks and template points, got shapes {landmarks.shape}, "
                         f"{target.shape}")
    return similarity_transform(landmarks, target)


def resize_matrix(image_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The 2x3 matrix of resizing a whole (height, width) image to ``size``, pixel centres to pixel centres as
    PIL and OpenCV resize (the identity when the sizes agree)."""
    sy, sx = size[0] / image_size[0], size[1] / image_size[1]
    return np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2]])


def align(image: np.ndarray, landmarks, size: tuple[int, int] = (112, 112), template="arcface") -> torch.Tensor:
    """Warp an RGB image (any form as_rgb takes) so its 5 landmarks land on the template (a name in
    TEMPLATES, or 5 (x, y) points in crop pixels): a (3, height, width) tensor in [0,1], black outside the
    image (as insightface's norm_crop)."""
    return warp(image, alignment_matrix(landmarks, size, template), size)


def warp(image, to_crop: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The crop of an RGB image (any form as_rgb takes) that the 2x3 matrix ``to_crop`` (image pixels -> crop
    pixels) defines: a (3, height, width) tensor in [0,1], black outside the image."""
    crop = cv2.warpAffine(np.ascontiguousarray(as_rgb(image)), np.asarray(to_crop, dtype=np.float64),
                          (size[1], size[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return torch.from_numpy(np.ascontiguousarray(np.clip(crop, 0.0, 1.0).transpose(2, 0, 1)))


def unalign(values: np.ndarray, to_crop: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The inverse of a warp: a crop's values (H, W) laid back on an image of ``size`` (height, width), given
    the 2x3 matrix from that image's pixels to the crop's; 0 where the crop does not reach. The dtype is kept."""
    return cv2.warpAffine(np.ascontiguousarray(values), np.asarray(to_crop, dtype=np.float64), (size[1], size[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
