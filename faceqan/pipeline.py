"""From image files to the model: decode and prepare in DataLoader workers, then score in batches (one row per
crop, errors kept) or embed (one embedding per file) — one read-and-prepare path for both."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .aggregate import QualityScores
from .align import FacePreparer
from .calibration import COLUMN as UNIFIED_COLUMN
from .config import FaceQANConfig
from .engine import FaceQAN
from .io import load_image
from .models.base import FaceModel
from .noise_maps import MAP_COLUMNS

# A prepare function turns one file into its crops: a list of (info, crop) with crop (3, H, W) in [0,1].
# info is a dict of extra columns (a face index and box when faces are detected); [] means nothing to score.
Prepare = Callable[[Path], list[tuple[dict, torch.Tensor]]]


def whole_image(path: Path, size: tuple[int, int]) -> list[tuple[dict, torch.Tensor]]:
    """The file is already an aligned crop: decode it and resize it to the model's input size."""
    return [({}, load_image(path, size))]


class _Files(Dataset):
    def __init__(self, paths: Sequence[Path], prepare: Prepare):
        self.paths, self.prepare = list(paths), prepare

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        try:
            return path, self.prepare(path), None
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run
            return path, [], f"{type(exc).__name__}: {exc}"


def prepared_batches(paths: Sequence[str | Path], prepare: Prepare, batch_size: int, num_workers: int | None,
                     cuda: bool) -> DataLoader:
    """Batches of ``(path, crops, error)``, files in order, read and prepared in loader processes (by default
    4 beside a GPU, 1 beside the CPU's own work); a file that fails has no crops and its error message."""
    if num_workers is None:
        num_workers = 4 if cuda else 1
    return DataLoader(_Files([Path(p) for p in paths], prepare), batch_size=batch_size,
                      num_workers=num_workers if len(paths) > 1 else 0, collate_fn=list)


def _error_row(path: Path, info: dict, message: str) -> dict:
    row = {"path": str(path), **info}
    row.update({name: float("nan") for name in QualityScores.FIELDS})
    row["error"] = message
    return row


def iter_score_rows(paths: Sequence[str | Path], model: FaceModel, config: FaceQANConfig = FaceQANConfig(),
                    prepare: Prepare | None = None, num_workers: int | None = None,
                    progress: bool = True, maps: bool = False) -> Iterator[list[dict]]:
    """Yield the rows of each loader batch as soon as it is scored (for chunked writes and resuming); with
    ``maps=True`` each scored row also holds its adversarial-noise map, an (H, W) array, under "noise_map"."""
    scorer = FaceQAN(model, config)
    prepare = prepare or partial(whole_image, size=model.input_size)
    bar = tqdm(total=len(paths), unit="img", desc=f"FaceQAN ({model.name})", disable=not progress)
    for batch in prepared_batches(paths, prepare, scorer.batch_size, num_workers, scorer.cuda):
        rows, crops, owners = [], [], []
        for path, items, error in batch:
            if error is not None:
                rows.append(_error_row(path, {}, error))
            elif not items:
                rows.append(_error_row(path, {}, "no face to score"))
            for info, crop in items:
                owners.append((path, info))
                crops.append(crop)
        if crops:
            stacked = torch.stack(crops)
            if scorer.cuda:
                stacked = stacked.pin_memory()
            try:
                scored = scorer.score(stacked, maps=maps).rows()
            except Exception as exc:  # noqa: BLE001 - recorded per crop, the run goes on
                scored = [None] * len(crops)
                message = f"{type(exc).__name__}: {exc}"
            for (path, info), values in zip(owners, scored):
                rows.append({"path": str(path), **info, **values, "error": None} if values is not None
                            else _error_row(path, info, message))
        bar.update(len(batch))
        yield rows
    bar.close()


def embed_paths(paths: Sequence[str | Path], model: FaceModel, batch_size: int = 64,
                on_progress: Callable[[int, int], None] | None = None) -> list[np.ndarray | None]:
    """Raw (not normalised) float32 embeddings, one per path, in order; None where a file cannot be read or
    shows no face. Files are prepared as `faceqan score` prepares them (FacePreparer.for_model's defaults):
    crops of the model's input size as they are, any other image detected and aligned (largest face), so raw
    photos are compared as the model expects."""
    device = next(model.buffers()).device
    out: list[np.ndarray | None] = []
    with torch.inference_mode():
        for batch in prepared_batches(paths, FacePreparer.for_model(model), batch_size, num_workers=None,
                                      cuda=device.type == "cuda"):
            crops = [items[0][1] for _, items, _ in batch if items]
            vectors = iter(model(torch.stack(crops).to(device)).float().cpu().numpy() if crops else ())
            out.extend(next(vectors) if items else None for _, items, _ in batch)
            if on_progress:
                on_progress(len(out), len(paths))
    return out


def embed_files(paths: Sequence[str | Path], model: FaceModel, batch_size: int = 64) -> np.ndarray:
    """embed_paths for files that must all work (e.g. a benchmark's aligned crops): one row per path."""
    rows = embed_paths(paths, model, batch_size)
    failed = [str(p) for p, row in zip(paths, rows) if row is None]
    if failed:
        raise ValueError(f"no embedding for {len(failed)} file(s): {', '.join(failed[:5])}")
    return np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)


def rows_to_frame(rows: list[dict]):
    """Rows as a pandas DataFrame: path, any prepare columns, the FaceQAN components, the unified score when
    a calibration applied, the map columns when maps were kept, error."""
    import pandas as pd

    columns = ["path", *QualityScores.FIELDS, "error"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    after = [c for c in (UNIFIED_COLUMN, *MAP_COLUMNS) if c in frame.columns]
    extra = [c for c in frame.columns if c not in columns and c not in after]
    for name in {"face", "faces_found"} & set(extra):  # counts stay integers next to error rows' gaps
        frame[name] = frame[name].astype("Int64")
    return frame[["path", *extra, *QualityScores.FIELDS, *after, "error"]]


def score_files(paths: Sequence[str | Path], model: FaceModel, config: FaceQANConfig = FaceQANConfig(),
                **kwargs):
    """All rows as a pandas DataFrame (rows_to_frame), one per file or per detected face."""
    return rows_to_frame([row for chunk in iter_score_rows(paths, model, config, **kwargs) for row in chunk])


def score_settings(model: FaceModel, config: FaceQANConfig, prepare) -> dict:
    """Everything a stored score depends on, as JSON: the scoring arithmetic's version, the model and its
    weights, every FaceQAN setting and how faces are found and aligned (a dataclass such as FacePreparer);
    not the device, batch size or workers, which change only the speed."""
    return json.loads(json.dumps({"model": model.name, "model_sha256": model.sha256, **config.score_settings(),
                                  **asdict(prepare)}))
