"""Where a run's scores are stored: which samples (or faces) still need a score with a run's fingerprint (and,
when maps are kept, a map), asked of the database so a rerun reads only those, and the buffered writer that
stores each face's values (with its unified score when the run has a calibration) and its fingerprint in one
atomic update, so a face counts as done only once all its values are stored."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import fiftyone.core.odm as foo
import fiftyone.core.sample as fos
from bson import ObjectId
from pymongo import UpdateOne

from .fields import (declare_score_field, field_names, heatmap_field, label_path, map_field_names, run_field,
                     score_field)

CHUNK_SIZE = 256  # faces per bulk write by default: each write is a round trip, so small chunks cap the write rate
FLUSH_SECONDS = 10.0  # a chunk is also written once this long has passed, so slow CPU runs lose little
TEXT_KEYS = ("error", "run")  # the string values of a row; the others are floats


def _clean(value):
    """A float for the database (numpy scalars included); None for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


class ScoreWriter:
    """Buffers result rows and writes each chunk with one bulk call: one update per face that sets all its
    values and the fingerprint together, so a face counts as done only once all its values are stored.
    Also makes sure the quality field is indexed, so filtering and sorting by quality use the index.

    With a ``calibration`` (faceqan.calibration.Calibration) each face also gets its unified score (None where
    it failed); without one the score field is written (None) only if an earlier calibration created it, so a
    rescored face never keeps the score of its old Q. Its target was checked (fields.check_score_target).
    ``maps`` (a maps.MapStore) writes the chunk's map files first and adds the map values to each update."""

    def __init__(self, dataset, quality_field, detections_field, fingerprint, targets, chunk_size,
                 calibration=None, maps=None):
        self.dataset, self.detections_field, self.fingerprint = dataset, detections_field, fingerprint
        self.quality_field, self.calibration, self.maps = quality_field, calibration, maps
        self.names = {**field_names(quality_field), "run": run_field(quality_field)}
        self.targets, self.chunk_size = targets, chunk_size
        self.pending, self.last = [], time.monotonic()
        self.scored = self.failed = 0
        self._declare()

    def _declare(self):
        """Create the fields with their types up front (a chunk of failures alone has no floats to infer) and
        the index of the quality field (only fields of this run reach here: fields.check_quality_target)."""
        import fiftyone as fo

        for key, name in self.names.items():
            path = label_path(name, self.detections_field)
            if not self.dataset.has_sample_field(path):
                kind = fo.StringField if key in TEXT_KEYS else fo.FloatField
                self.dataset.add_sample_field(path, kind)
        if self.calibration is not None:
            declare_score_field(self.dataset, self.quality_field, self.detections_field)
        unified = score_field(self.quality_field)
        self.unified = unified if self.dataset.has_sample_field(label_path(unified, self.detections_field)) else None
        quality = label_path(self.names["quality"], self.detections_field)
        if quality not in self.dataset.list_indexes():
            self.dataset.create_index(quality)

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
        now = datetime.now(timezone.utc)
        maps = self.maps.values(self.pending) if self.maps else [({}, {})] * len(self.pending)
        updates = [self._update(target, row, now, *extra) for (target, row), extra in zip(self.pending, maps)]
        sample_ids = [target[0] if self.detections_field else target for target, _ in self.pending]
        # one round trip per chunk (FiftyOne's default batcher starts each call at one operation: 4 round trips
        # for 256), then the samples loaded in memory see their new values, as FiftyOne's own writes do
        foo.bulk_write(updates, self.dataset._sample_collection, batcher=False)
        fos.Sample._reload_docs(self.dataset._sample_collection_name, sample_ids=sample_ids)
        if self.maps:
            self.maps.stored()
        self.pending, self.last = [], time.monotonic()

    def _update(self, target, row, now, face_maps, sample_maps) -> UpdateOne:
        """One face's values and fingerprint in one update (a face in a Detections field by its label id), with
        its map values and its sample's heatmap when maps are kept or cleared."""
        values = {name: _clean(row[key]) for key, name in self.names.items() if key not in TEXT_KEYS}
        values.update({self.names["error"]: row["error"], self.names["run"]: self.fingerprint, **face_maps})
        if self.unified:
            quality = values[self.names["quality"]]
            values[self.unified] = None if self.calibration is None or quality is None else \
                self.calibration.score(quality)
        if not self.detections_field:
            return UpdateOne({"_id": ObjectId(target)}, {"$set": {**values, **sample_maps, "last_modified_at": now}})
        sample_id, label_id = target
        path = f"{self.detections_field}.detections.$[face]."
        return UpdateOne({"_id": ObjectId(sample_id)},
                         {"$set": {**{path + name: v for name, v in values.items()}, **sample_maps,
                                   "last_modified_at": now}},
                         array_filters=[{"face._id": ObjectId(label_id)}])


def _unfinished(mark: str, error: str, fingerprint: str) -> dict:
    """The MongoDB query of a face still to score: never scored, scored with other settings, or failed."""
    return {"$or": [{mark: {"$ne": fingerprint}}, {error: {"$ne": None}}]}


def _files_missing(*paths) -> bool:
    """Whether a recorded map PNG is gone (deleted since), so its face is scored again."""
    return not all(isinstance(p, str) and Path(p).is_file() for p in paths)


def image_work(samples, fingerprint, quality_field, overwrite, maps=False):
    """Per path still to score, the sample ids that take its score; and how many samples are skipped.
    A sample is done when it was scored with these settings without an error (and, with ``maps``, its map PNGs
    are there); a failure is retried. The database picks the samples still to score, so a rerun reads only
    those (with ``maps``, the done ones' PNGs are looked for on disk too)."""
    redo = _unfinished(run_field(quality_field), field_names(quality_field)["error"], fingerprint)
    noise_map, heat = map_field_names(quality_field)["noise_map"], heatmap_field(quality_field)
    if maps:
        redo = {"$or": [redo, {noise_map: None}, {heat: None}]}
    todo = samples if overwrite else samples.match(redo)
    ids, paths = todo.values(["id", "filepath"])
    if maps and not overwrite and samples.has_field(heat):  # no map field yet: every sample is to score
        done = samples.match({"$nor": [redo]})
        for sample_id, path, *pngs in zip(*done.values(["id", "filepath", noise_map, heat + ".map_path"])):
            if _files_missing(*pngs):
                ids.append(sample_id)
                paths.append(path)
    owners = defaultdict(list)
    for sample_id, path in zip(ids, paths):
        owners[str(Path(path))].append(sample_id)
    return owners, len(samples) - len(ids)


def face_work(samples, detections_field, fingerprint, quality_field, overwrite, maps=False):
    """Per path, the detections still to score as (label id, landmarks, box); each label's sample id;
    and how many detections are skipped (scored with these settings without an error and, with ``maps``, with
    their map PNGs there). The database picks the faces still to score, so a rerun reads only those (with
    ``maps``, the done ones' PNGs are looked for on disk too)."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    mark, error = run_field(quality_field), field_names(quality_field)["error"]
    noise_map, heat = map_field_names(quality_field)["noise_map"], heatmap_field(quality_field)
    # in an expression a missing attribute is not None: "> None" is true only for a stored value
    redo = (F(mark) != fingerprint) | (F(error) > None)
    if maps:
        redo = redo | ~(F(noise_map) > None) | ~(F("$" + heat) > None)
    todo = samples if overwrite else samples.add_stage(fo.FilterLabels(detections_field, redo, only_matches=True))
    faces, owner = defaultdict(list), {}

    def add(sample_id, path, det):
        landmarks = det["landmarks"] if det.has_field("landmarks") else None
        faces[str(Path(path))].append((det.id, landmarks, list(det.bounding_box)))
        owner[det.id] = sample_id

    for sample_id, path, detections in zip(*todo.values(["id", "filepath", f"{detections_field}.detections"])):
        for det in detections or []:
            add(sample_id, path, det)
    if maps and not overwrite and samples.has_field(heat):  # no map field yet: every face is to score
        done = samples.add_stage(fo.FilterLabels(detections_field, ~redo, only_matches=True))
        for sample_id, path, detections, overlay in zip(*done.values(
                ["id", "filepath", f"{detections_field}.detections", heat + ".map_path"])):
            for det in detections:
                if _files_missing(det[noise_map], overlay):
                    add(sample_id, path, det)
    return faces, owner, samples.count(f"{detections_field}.detections") - len(owner)


def work_left(samples, run_config, maps: bool) -> bool:
    """Whether a call with the run's settings (keeping maps or not) would score any face of ``samples``."""
    key, fingerprint, faces = run_config.quality_field, run_config.fingerprint, run_config.detections_field
    todo = face_work(samples, faces, fingerprint, key, False, maps)[0] if faces else \
        image_work(samples, fingerprint, key, False, maps)[0]
    return bool(todo)
