"""Where a run's scores are stored: which samples (or faces) still need a score with a run's fingerprint, and
the buffered writer that stores rows, fingerprint last, so a face counts as done only once all its values are."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path

from .fields import field_names, run_field

FLUSH_SECONDS = 10.0  # a chunk is also written once this long has passed, so slow CPU runs lose little


def _clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value


class ScoreWriter:
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


def image_work(samples, fingerprint, quality_field, overwrite):
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


def face_work(samples, detections_field, fingerprint, quality_field, overwrite):
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
