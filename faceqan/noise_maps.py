"""Adversarial-noise maps (FaceQAN.score(maps=True)): why a face scored as it did, as the paper's Fig. 1 shows.

A map is |adversarial copy - initial noisy copy| per pixel, averaged over the k copies and the channels, at the
crop's resolution. It is stored as a 16-bit grayscale PNG in units of the attack's budget (the most a pixel
can move: 65535 = every copy and channel moved the full budget), so maps of one run compare directly. Its
summary number, the concentration (std / mean), says how unevenly the attack spent that budget over the face.
A map PNG may also record where its crop lies in the photo (``Placement``), so it can be laid back on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from .align.transform import resize_matrix, unalign
from .config import FaceQANConfig

PNG_LEVELS = 65535  # 16-bit PNG: one level is 1/65535 of the attack budget
MAP_COLUMNS = ("noise_map", "noise_concentration")  # what a row gains when maps are kept: PNG path, summary
PLACEMENT_KEY = "faceqan_placement"  # the PNG text chunk that holds a map's Placement, as JSON
OVERLAY_MAX_SIDE = 1024  # a map laid back on a photo has at most this many pixels on a side


@dataclass(frozen=True)
class Placement:
    """Where an aligned crop lies in its photo: ``to_crop`` the 2x3 matrix from photo pixels to crop pixels (the
    alignment's similarity transform, or the resize of a whole image) and the photo's (height, width)."""

    to_crop: tuple[tuple[float, ...], ...]
    photo_size: tuple[int, int]

    @classmethod
    def of(cls, to_crop, photo_size) -> Placement:
        return cls(tuple(tuple(float(v) for v in row) for row in np.asarray(to_crop)), tuple(map(int, photo_size)))

    def is_identity(self) -> bool:
        """Whether the crop is the photo itself (an aligned crop scored as it is: resized to its own size)."""
        return bool(np.allclose(self.to_crop, np.eye(2, 3)))


def attack_budget(config: FaceQANConfig) -> float:
    """The most one pixel of one copy can move, in [0, 1] pixel units: the steps taken times the step (the
    official variant takes l-1 steps, its l-th is never measured; the paper takes l). Clipping only shrinks it."""
    steps = config.iterations - 1 if config.variant == "official" else config.iterations
    return steps * config.step


def check_maps(config: FaceQANConfig) -> None:
    """Maps need at least one attack step; refused before any work."""
    if attack_budget(config) == 0:
        raise ValueError("noise maps need at least 2 iterations (-l 2) with the official variant: with l=1 no "
                         "attack step is taken, so every map would be 0")


def to_levels(noise_map: np.ndarray, config: FaceQANConfig) -> np.ndarray:
    """A map (H, W) in pixel units as 16-bit levels of the attack budget."""
    share = np.asarray(noise_map, dtype=np.float64) / attack_budget(config)
    return np.clip(np.rint(share * PNG_LEVELS), 0, PNG_LEVELS).astype(np.uint16)


def write_map_png(noise_map: np.ndarray, config: FaceQANConfig, path: Path,
                  placement: Placement | None = None) -> None:
    """Written under a temporary name and renamed, so a killed run never leaves half a PNG; ``placement`` is
    kept in the PNG's text, so the map can be laid back on its photo."""
    write_levels_png(to_levels(noise_map, config), path, placement)


def write_levels_png(levels: np.ndarray, path: Path, placement: Placement | None = None) -> None:
    """16-bit levels as a PNG, written under a temporary name and renamed (``placement`` in its text)."""
    text = PngImagePlugin.PngInfo()
    if placement is not None:
        text.add_text(PLACEMENT_KEY, json.dumps([placement.to_crop, placement.photo_size]))
    partial = path.with_name(path.name + ".writing")
    Image.fromarray(levels).save(partial, format="PNG", pnginfo=text)
    os.replace(partial, path)


def read_map_png(path: str | Path, config: FaceQANConfig) -> np.ndarray:
    """A map PNG back in pixel units (to within half a level of the budget), float32 (H, W)."""
    levels = np.asarray(Image.open(path), dtype=np.float64)
    return (levels / PNG_LEVELS * attack_budget(config)).astype(np.float32)


def read_placement(path: str | Path) -> Placement | None:
    """The Placement a map PNG records, or None."""
    with Image.open(path) as png:
        text = png.text.get(PLACEMENT_KEY)
    return None if text is None else Placement.of(*json.loads(text))


def photo_levels(paths: Sequence[str | Path]) -> np.ndarray:
    """The maps of faces of one photo (PNGs with their Placement) laid back on the photo through the inverse of
    each face's alignment, in PNG levels (uint16): the largest where faces overlap, 0 where no face reaches.
    At most OVERLAY_MAX_SIDE pixels on a side, the photo's aspect kept (viewers stretch it over the photo)."""
    placements = [read_placement(p) for p in paths]
    height, width = placements[0].photo_size
    scale = min(1.0, OVERLAY_MAX_SIDE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    from_overlay = np.vstack([resize_matrix(size, (height, width)), [0.0, 0.0, 1.0]])  # overlay -> photo pixels
    overlay = np.zeros(size, dtype=np.uint16)
    for path, placement in zip(paths, placements):
        levels = np.asarray(Image.open(path), dtype=np.uint16)
        overlay = np.maximum(overlay, unalign(levels, np.asarray(placement.to_crop) @ from_overlay, size))
    return overlay


def map_file_name(path: str, face: int | None = None) -> str:
    """``<stem>-<hash of the path>[-face<i>].png``: readable, and unique for files of the same name."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    return f"{Path(path).stem}-{digest}" + ("" if face is None else f"-face{face}") + ".png"


def concentration(noise_map: np.ndarray) -> float:
    """std / mean of the map: 0 when the attack moved every pixel alike, larger the more it concentrated on
    some pixels (scale-free, so comparable across eps; comparable across faces of one k and l)."""
    values = np.asarray(noise_map, dtype=np.float64)
    mean = values.mean()
    return float(values.std() / mean) if mean > 0 else 0.0


class MapWriter:
    """Turns a scored row's map into its PNG in ``folder`` and the row's map columns (path, concentration). The
    row's ``face_key`` tells faces of one file apart in the name; its ``placement``, if any, goes into the PNG."""

    def __init__(self, folder: Path, config: FaceQANConfig, face_key: str = "face"):
        self.folder, self.config, self.face_key = Path(folder), config, face_key

    def __call__(self, row: dict) -> dict:
        noise_map = row.get("noise_map")
        if noise_map is None:  # an error row: no map
            return row
        target = self.folder / map_file_name(row["path"], row.get(self.face_key))
        self.folder.mkdir(parents=True, exist_ok=True)
        write_map_png(noise_map, self.config, target, row.get("placement"))
        return {**row, "noise_map": str(target), "noise_concentration": concentration(noise_map)}


def maps_missing(rows: list[dict]) -> bool:
    """Whether a file's stored rows name a map PNG that is not on disk (so the file is scored again)."""
    return any(isinstance(row.get("noise_map"), str) and not Path(row["noise_map"]).is_file() for row in rows)


def save_figure(images: Sequence[np.ndarray], maps: Sequence[np.ndarray], qualities: Sequence[float],
                path: str | Path, count: int = 4, title: str | None = None) -> None:
    """The paper's Fig. 1 for any faces: the ``count`` lowest-Q faces (top) and highest-Q faces (bottom), each
    beside its map, all maps on one colour scale (their range). images are (3, H, W) or (H, W, 3) in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(np.asarray(qualities, dtype=np.float64), kind="stable")
    count = min(count, len(order) // 2)
    if count < 1:
        raise ValueError("the figure needs at least 2 faces")
    rows = {"lowest Q": order[:count], "highest Q": order[::-1][:count]}
    shown_maps = [np.asarray(maps[i]) for chosen in rows.values() for i in chosen]
    low, high = min(float(m.min()) for m in shown_maps), max(float(m.max()) for m in shown_maps)
    fig, axes = plt.subplots(2, 2 * count, figsize=(1.9 * 2 * count + 1.2, 4.4), squeeze=False,
                             layout="constrained")
    for r, (label, chosen) in enumerate(rows.items()):
        for c, i in enumerate(chosen):
            image = np.asarray(images[i], dtype=np.float32)
            image = image.transpose(1, 2, 0) if image.shape[0] == 3 else image
            face, heat = axes[r, 2 * c], axes[r, 2 * c + 1]
            face.imshow(np.clip(image, 0, 1))
            face.set_title(f"Q = {qualities[i]:.3f}", fontsize=9)
            shown = heat.imshow(maps[i], cmap="inferno", vmin=low, vmax=high)
            heat.set_title("noise map", fontsize=9)
            for ax in (face, heat):
                ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=10)
    fig.colorbar(shown, ax=axes, fraction=0.02, label="mean |adversarial - noisy copy| ([0, 1] pixels)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
