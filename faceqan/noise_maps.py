"""Adversarial-noise maps (FaceQAN.score(maps=True)): why a face scored as it did, as the paper's Fig. 1 shows.

A map is |adversarial copy - initial noisy copy| per pixel, averaged over the k copies and the channels, at the
crop's resolution. It is stored as a 16-bit grayscale PNG in units of the attack's budget (the most a pixel
can move: 65535 = every copy and channel moved the full budget), so maps of one run compare directly. Its
summary number, the concentration (std / mean), says how unevenly the attack spent that budget over the face.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .config import FaceQANConfig

PNG_LEVELS = 65535  # 16-bit PNG: one level is 1/65535 of the attack budget
MAP_COLUMNS = ("noise_map", "noise_concentration")  # what a row gains when maps are kept: PNG path, summary


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


def write_map_png(noise_map: np.ndarray, config: FaceQANConfig, path: Path) -> None:
    """Written under a temporary name and renamed, so a killed run never leaves half a PNG."""
    partial = path.with_name(path.name + ".writing")
    Image.fromarray(to_levels(noise_map, config)).save(partial, format="PNG")
    os.replace(partial, path)


def read_map_png(path: str | Path, config: FaceQANConfig) -> np.ndarray:
    """A map PNG back in pixel units (to within half a level of the budget), float32 (H, W)."""
    levels = np.asarray(Image.open(path), dtype=np.float64)
    return (levels / PNG_LEVELS * attack_budget(config)).astype(np.float32)


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
    """Turns a scored row's map into its PNG in ``folder`` and the row's map columns (path, concentration)."""

    def __init__(self, folder: Path, config: FaceQANConfig):
        self.folder, self.config = Path(folder), config

    def __call__(self, row: dict) -> dict:
        noise_map = row.get("noise_map")
        if noise_map is None:  # an error row: no map
            return row
        target = self.folder / map_file_name(row["path"], row.get("face"))
        self.folder.mkdir(parents=True, exist_ok=True)
        write_map_png(noise_map, self.config, target)
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
