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


RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
ALIGNED_SCORES = RESULTS / "lfw_erc_aligned_faceqan_sface.csv"  # SFace, default settings, SCORE_VERSION 2
ALIGNED_CROPS = RESULTS.parent / "cache" / "lfw-erc-aligned"  # the crops they score (benchmarks/erc_sets.py)


def aligned_scores(count: int | None = None) -> list[dict]:
    """The first ``count`` scored faces (all without a count) of our aligned LFW ERC crops, as the scoring job
    wrote them: real FaceQAN rows, SFace at the default settings; a line still being written is left out."""
    import io

    import pandas as pd

    text = ALIGNED_SCORES.read_text()
    frame = pd.read_csv(io.StringIO(text[:text.rfind("\n") + 1]), dtype={"path": str}).drop_duplicates("path")
    frame = frame[frame["error"].isna() & frame["quality"].notna()]
    return frame.head(count).to_dict("records") if count is not None else frame.to_dict("records")


def cached_faceqan_run(dataset, rows: list[dict], detections_field: str | None = None, calibration=None,
                       quality_field: str = "faceqan") -> None:
    """A FaceQAN run of SFace at the default settings on ``dataset``, stored from cached rows (real scores of
    ALIGNED_CROPS; an ``error`` row is a failed face) the way compute_face_quality stores them: the run
    registered with its config, every row written by its ScoreWriter. One sample per row, or with
    ``detections_field`` one face per sample."""
    import dataclasses

    import fiftyone as fo

    from faceqan import FaceQANConfig
    from faceqan.models import get_entry
    from fiftyone_faceqan.runs import FaceQANBrainConfig
    from fiftyone_faceqan.store import ScoreWriter

    samples = []
    for row in rows:
        sample = fo.Sample(filepath=str(ALIGNED_CROPS / row["path"]))
        if detections_field:
            sample[detections_field] = fo.Detections(detections=[fo.Detection(label="face",
                                                                              bounding_box=[0, 0, 1, 1])])
        samples.append(sample)
    dataset.add_samples(samples)
    ids = dataset.values("id")
    targets = dict(zip((str(ALIGNED_CROPS / row["path"]) for row in rows), ids))
    if detections_field:
        labels = dict(zip(ids, (d.detections[0].id for d in dataset.values(detections_field))))
        targets = {path: (sample_id, labels[sample_id]) for path, sample_id in targets.items()}
    config = FaceQANBrainConfig(quality_field=quality_field, model="sface", model_sha256=get_entry("sface").sha256,
                                detections_field=detections_field, alignment=None if detections_field else "auto",
                                calibration=calibration.to_dict() if calibration else None,
                                **dataclasses.asdict(FaceQANConfig()))
    config.build().register_run(dataset, quality_field, overwrite=True, cleanup=False)
    writer = ScoreWriter(dataset, quality_field, detections_field, config.fingerprint,
                         lambda row: [targets[row["path"]]], chunk_size=64, calibration=calibration)
    writer.add([{**row, "path": str(ALIGNED_CROPS / row["path"]),
                 "error": row["error"] if isinstance(row["error"], str) else None} for row in rows])
    writer.flush()
