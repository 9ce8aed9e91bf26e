"""Real LFW faces for the tests, from ../shared/data (tests skip with the reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from faceqan.io import load_image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LFW_112 = DATA / "lfw-112"


def require_lfw() -> Path:
    if not (LFW_112 / "pairs.txt").is_file():
        pytest.skip(f"LFW crops not found at {LFW_112} (see ../shared/data/README.md)")
    return LFW_112


def subset_paths(count: int) -> list[Path]:
    """The first ``count`` images of the fixed ERC subset: a deterministic spread over identities."""
    root = require_lfw()
    lines = (root / "erc_subset.txt").read_text().split()
    step = max(1, len(lines) // count)
    return [root / rel for rel in lines[::step][:count]]


def crops(count: int) -> torch.Tensor:
    return torch.stack([load_image(p, (112, 112)) for p in subset_paths(count)])


def protocol_pairs(count: int) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """The first ``count`` mated and non-mated pairs of LFW's official pairs.txt."""
    root = require_lfw()
    mated, non_mated = [], []
    for line in (root / "pairs.txt").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            name, i, j = parts
            mated.append((root / name / f"{name}_{int(i):04d}.jpg", root / name / f"{name}_{int(j):04d}.jpg"))
        elif len(parts) == 4:
            a, i, b, j = parts
            non_mated.append((root / a / f"{a}_{int(i):04d}.jpg", root / b / f"{b}_{int(j):04d}.jpg"))
    return mated[:count], non_mated[:count]


def raw_photo_folder(folder: Path, people: tuple[str, ...] = ("Abel_Pacheco", "Akhmed_Zakayev"),
                     per_person: int = 3) -> Path:
    """Copies of raw 250x250 LFW photos (not aligned) in identity folders, as a user's dataset looks."""
    import shutil

    root = DATA / "lfw-raw-fold1"
    if not root.is_dir():
        pytest.skip(f"{root} not found (see ../shared/data/README.md)")
    for name in people:
        (folder / name).mkdir(parents=True)
        for path in sorted((root / name).iterdir())[:per_person]:
            shutil.copy(path, folder / name / path.name)
    return folder
