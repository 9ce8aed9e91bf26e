"""compute_face_quality: FaceQAN scores for a FiftyOne dataset or view, written in chunks so a stopped
run loses at most one chunk, and resumable (faces already scored with the same settings are skipped)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from faceqan.align import ALIGN_MODES, FacePreparer
from faceqan.config import FaceQANConfig
from faceqan.models import DEFAULT_MODEL, FaceModel, load_model
from faceqan.pipeline import iter_score_rows

from .faces import DetectionCrops
from .fields import check_quality_target, field_names, run_field
from .runs import FaceQANBrainConfig, FaceQANResults

FLUSH_SECONDS = 10.0  # a chunk is also written once this long has passed, so slow CPU runs lose little


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _config(config: FaceQANConfig | None, overrides: dict) -> FaceQANConfig:
    unknown = set(overrides) - {f.name for f in dataclasses.fields(FaceQANConfig)}
    if unknown:
        raise TypeError(f"unknown FaceQAN setting(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(config or FaceQANConfig(), **overrides)


class _Writer:
    """Buffers result rows and writes them with one bulk call per field; the fingerprint goes last, so a
    face counts as done only once all its values are stored."""

    def __init__(self, dataset, quality_field, detections_field, fingerprint, targets, chunk_size):
        self.dataset, self.detections_field, self.fingerprint = dataset, detections_field, fingerprint
        self.names = {**field_names(quality_field), "run": run_field(quality_field)}
        self.targets, self.chunk_size = targets, chunk_size
        self.pending, self.last = [], time.monotonic()
        self.scored = self.failed = 0
        self._declare()

    def _declare(self):
        """Create the fields with their types up front (a chunk of failures alone has no floats to infer)."""
        import fiftyone as fo

        prefix = f"{self.detections_field}.detections." if self.detections_field else ""
        for key, name in self.names.items():
            if not self.dataset.has_sample_field(prefix + name):
                kind = fo.StringField if key in ("error", "run") else fo.FloatField
                self.dataset.add_sample_field(prefix + name, kind)

    def add(self, rows):
        for row in rows:
            for target in self.targets(row):
                self.pending.append((target, row))
                if row["error"] is None:
                    self.scored += 1
                else:
                    self.failed += 1
        if len(self.pending) >= self.chunk_size or time.monotonic() - self.last > FLUSH_SECONDS:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        for key, name in self.names.items():
            values = [(target, self.fingerprint if key == "run" else _clean(row[key]))
                      for target, row in self.pending]
            if self.detections_field:
                self.dataset.set_label_values(
                    f"{self.detections_field}.detections.{name}",
                    [{"sample_id": s, "label_id": label, "value": v} for (s, label), v in values], dynamic=True)
            else:
                self.dataset.set_values(name, dict(values), key_field="id")
        self.pending, self.last = [], time.monotonic()


def _values(samples, path: str) -> list:
    """The stored values at ``path`` (None where nothing was written)."""
    if not samples._root_dataset.has_sample_field(path):
        return [None] * len(samples)
    return samples.values(path)


def _image_work(samples, fingerprint, quality_field, overwrite):
    """Per path still to score, the sample ids that take its score; and how many samples are skipped.
    A sample is done when it was scored with these settings without an error; a failure is retried."""
    ids, paths = samples.values(["id", "filepath"])
    marks, errors = _values(samples, run_field(quality_field)), _values(samples, field_names(quality_field)["error"])
    owners, skipped = defaultdict(list), 0
    for sample_id, path, mark, error in zip(ids, paths, marks, errors):
        if mark == fingerprint and error is None and not overwrite:
            skipped += 1
        else:
            owners[str(Path(path))].append(sample_id)
    return owners, skipped


def _attribute(label, name: str):
    return label[name] if label.has_field(name) else None


def _face_work(samples, detections_field, fingerprint, quality_field, overwrite):
    """Per path, the detections still to score as (label id, landmarks, box); each label's sample id;
    and how many detections are skipped (scored with these settings without an error)."""
    ids, paths, labels = samples.values(["id", "filepath", f"{detections_field}.detections"])
    mark, error = run_field(quality_field), field_names(quality_field)["error"]
    faces, owner, skipped = defaultdict(list), {}, 0
    for sample_id, path, detections in zip(ids, paths, labels):
        for det in detections or []:
            if _attribute(det, mark) == fingerprint and _attribute(det, error) is None and not overwrite:
                skipped += 1
                continue
            faces[str(Path(path))].append((det.id, _attribute(det, "landmarks"), list(det.bounding_box)))
            owner[det.id] = sample_id
    return faces, owner, skipped


def _check_request(samples, quality_field, detections_field, alignment, chunk_size, num_workers) -> None:
    """Everything but the FaceQAN settings and the model, which check themselves when built."""
    check_quality_target(samples._root_dataset, quality_field, detections_field)
    if alignment not in ALIGN_MODES:
        raise ValueError(f"alignment must be one of {', '.join(ALIGN_MODES)}, got {alignment!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 0):
        raise ValueError(f"num_workers must be a number of loader processes >= 0 or None (per device), "
                         f"got {num_workers!r}")


def compute_face_quality(samples, model: str | FaceModel = DEFAULT_MODEL, quality_field: str = "faceqan",
                         detections_field: str | None = None, config: FaceQANConfig | None = None,
                         weights: str | None = None, alignment: str = FacePreparer.align, overwrite: bool = False,
                         chunk_size: int = 32, num_workers: int | None = None, progress: bool = True,
                         on_progress: Callable[[int, int], None] | None = None, **settings) -> FaceQANResults:
    """Score every sample of ``samples`` (a dataset or view) with FaceQAN, or with ``detections_field``
    every detected face, and record the run as the brain run ``quality_field``.

    ``settings`` override fields of ``config`` (any FaceQANConfig setting: eps, copies, device, ...).
    ``alignment``: ``auto`` scores images of the model's input size as they are and detects and aligns the
    largest face of any other image; ``always``; ``never`` (resize the whole image).
    Faces already scored with the same model, weights and settings are skipped unless ``overwrite``; faces
    whose last attempt failed are tried again. ``on_progress(done, total)`` is called as files are scored.
    Failures are stored in ``<field>_error``. Every argument, the model and the fields to write are checked
    before any image is read: a refused call changes nothing (fiftyone_faceqan.fields says which fields).
    """
    detections_field = detections_field or None
    _check_request(samples, quality_field, detections_field, alignment, chunk_size, num_workers)
    config = _config(config, settings)
    face_model = model if isinstance(model, FaceModel) else load_model(model, weights=weights)
    preparer = FacePreparer.for_model(face_model, align=alignment)
    run_config = FaceQANBrainConfig(
        quality_field=quality_field, model=face_model.name, model_sha256=face_model.sha256,
        detections_field=detections_field, alignment=None if detections_field else alignment,
        **dataclasses.asdict(config))
    fingerprint = run_config.fingerprint
    dataset = samples._root_dataset
    started = time.monotonic()

    if detections_field:
        faces, owner, skipped = _face_work(samples, detections_field, fingerprint, quality_field, overwrite)
        paths, prepare = list(faces), DetectionCrops(preparer, dict(faces))

        def targets(row):
            if row.get("label_id"):
                return [(owner[row["label_id"]], row["label_id"])]
            return [(owner[label], label) for label, _, _ in faces[row["path"]]]  # the whole file failed
    else:
        owners, skipped = _image_work(samples, fingerprint, quality_field, overwrite)
        paths, prepare = list(owners), preparer

        def targets(row):
            return owners[row["path"]]

    method = run_config.build()  # everything is checked: only now is anything written
    method.register_run(samples, quality_field, overwrite=True, cleanup=False)
    writer = _Writer(dataset, quality_field, detections_field, fingerprint, targets, chunk_size)
    done = 0
    if paths:
        for rows in iter_score_rows(paths, face_model, config, prepare=prepare, num_workers=num_workers,
                                    progress=progress):
            writer.add(rows)
            done += len({row["path"] for row in rows})
            if on_progress:
                on_progress(done, len(paths))
        writer.flush()
    results = FaceQANResults(samples, run_config, quality_field, scored=writer.scored, skipped=skipped,
                             failed=writer.failed, seconds=round(time.monotonic() - started, 3), backend=method)
    method.save_run_results(samples, quality_field, results)
    return results
