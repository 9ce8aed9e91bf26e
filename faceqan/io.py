"""Decoding image files into [0,1] RGB tensors, with a clear error for every kind of bad file."""

from __future__ import annotations

import mimetypes
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
MAX_PIXELS = 100_000_000  # a larger image is refused before it is decoded
# Python's built-in suffix table only (not the system's), so a folder is searched alike on every machine.
_KNOWN_TYPES = mimetypes.MimeTypes()


class ImageLoadError(ValueError):
    """A file that cannot be turned into a face image; the message says why."""


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode to float32 RGB in [0,1]; 16-bit and 32-bit grey keep their full range."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or grey.max(initial=0) > 255 else 255.0
        grey = np.clip(grey / peak, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    # Alpha is dropped (the colour under a transparent pixel is kept), as the official code's
    # PIL convert("RGB") does.
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0,1], EXIF orientation applied."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"empty file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageLoadError(f"image too large ({img.width}x{img.height} > {MAX_PIXELS} pixels): {path}")
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb_array(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"not an image (or an unsupported format): {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"image too large (decompression bomb guard): {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"corrupt or truncated image ({exc}): {path}") from None


def to_tensor(rgb: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(3, H, W) float32 tensor; resized bilinearly to size=(height, width) as the official code does."""
    if size is not None and rgb.shape[:2] != tuple(size):
        img = Image.fromarray(np.round(rgb * 255.0).astype(np.uint8))
        rgb = np.asarray(img.resize((size[1], size[0]), Image.BILINEAR), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def load_image(path: str | Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    return to_tensor(read_image(path), size)


def is_image_file(path: Path) -> bool:
    """An image suffix; else, unless the suffix names another kind of file (.txt, .json, .csv), whether PIL
    recognises the header: image sets such as Yale's name their files ``subject01.glasses``."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    kind, _ = _KNOWN_TYPES.guess_type("file" + suffix)
    if kind is not None and not kind.startswith("image/"):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path):
                return True
    except Image.DecompressionBombError:
        return True  # an image: refused with its reason when it is read
    except Exception:  # noqa: BLE001 - anything PIL cannot identify is not an image
        return False


def find_images(paths: list[str | Path]) -> list[Path]:
    """Files given directly are kept whatever they hold (a bad one gets an error row later); folders are
    searched recursively for image files (is_image_file), in sorted order. Each path is kept once."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f)))
        else:
            found.append(p)
    return list(dict.fromkeys(found))
