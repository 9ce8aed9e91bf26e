"""compute_face_quality: FaceQAN scores for a FiftyOne dataset or view, written in chunks so a stopped
run loses at most one chunk, and resumable (faces already scored with the same settings are skipped); or,
with ``shards``, the same run queued as delegated operations for workers (fiftyone_faceqan.sharding); with
``maps``, each face's adversarial-noise map kept from the same attack (fiftyone_faceqan.maps)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from faceqan.align import ALIGN_MODES, FacePreparer
from faceqan.calibration import Calibration, as_calibration
from faceqan.config import FaceQANConfig
from faceqan.models import DEFAULT_MODEL, FaceModel, load_model
from faceqan.pipeline import iter_score_rows

from .calibration import run_calibration, write_unified_scores
from .faces import DetectionCrops, PlacedCrops
from .fields import check_quality_target, check_score_target, written_map_fields
from .maps import MapStore, check_maps_request, maps_root
from .runs import FaceQANBrainConfig, FaceQANResults
from .sharding import QueuedShards, Shard, check_shard_run, check_split, queue_shards
from .store import CHUNK_SIZE, ScoreWriter, face_work, image_work


def _config(config: FaceQANConfig | None, overrides: dict) -> FaceQANConfig:
    unknown = set(overrides) - {f.name for f in dataclasses.fields(FaceQANConfig)}
    if unknown:
        raise TypeError(f"unknown FaceQAN setting(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(config or FaceQANConfig(), **overrides)


def _check_request(samples, model, quality_field, detections_field, alignment, chunk_size, num_workers, overwrite,
                   shards, shard, maps) -> None:
    """Everything but the FaceQAN settings and the model, which check themselves when built."""
    check_quality_target(samples._root_dataset, quality_field, detections_field)
    if shards is not None:
        check_split(shards, overwrite)
        if shard is not None or isinstance(model, FaceModel):
            raise ValueError("shards queue the run for workers, which load the model by name: give a model name "
                             "(and weights), not a loaded model, and no shard")
    if alignment not in ALIGN_MODES:
        raise ValueError(f"alignment must be one of {', '.join(ALIGN_MODES)}, got {alignment!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 0):
        raise ValueError(f"num_workers must be a number of loader processes >= 0 or None (per device), "
                         f"got {num_workers!r}")
    if not isinstance(maps, bool):
        raise ValueError(f"maps must be True or False, got {maps!r}")


def compute_face_quality(samples, model: str | FaceModel = DEFAULT_MODEL, quality_field: str = "faceqan",
                         detections_field: str | None = None, config: FaceQANConfig | None = None,
                         weights: str | None = None, alignment: str = FacePreparer.align, overwrite: bool = False,
                         chunk_size: int = CHUNK_SIZE, num_workers: int | None = None, progress: bool = True,
                         on_progress: Callable[[int, int], None] | None = None, shards: int | None = None,
                         stalled_after: float | None = None, shard: Shard | None = None, maps: bool = False,
                         maps_dir: str | None = None, calibration: Calibration | str | None = None,
                         **settings) -> FaceQANResults | QueuedShards:
    """Score every sample of ``samples`` (a dataset or view) with FaceQAN, or with ``detections_field``
    every detected face, and record the run as the brain run ``quality_field``.

    ``settings`` override fields of ``config`` (any FaceQANConfig setting: eps, copies, device, ...).
    ``alignment``: ``auto`` scores images of the model's input size as they are and detects and aligns the
    largest face of any other image; ``always``; ``never`` (resize the whole image).
    Faces already scored with the same model, weights and settings are skipped unless ``overwrite``; faces
    whose last attempt failed are tried again. ``on_progress(done, total)`` is called as files are scored.
    Failures are stored in ``<field>_error``. Every argument, the model and the fields to write are checked
    before any image is read: a refused call changes nothing (fiftyone_faceqan.fields says which fields).

    The unified score (0-100, faceqan.calibration) goes to ``<field>_score`` (None where a face failed) when a
    calibration applies to the model's weights and these settings: ``calibration`` (a Calibration or the path
    of its JSON file; refused when it does not apply), else the one this run already holds, else the model's
    shipped one. A calibration that differs from the run's rewrites the score of the faces already scored.
    Without one, ``calibrate_quality`` gives the run one later.

    ``shards=N`` scores nothing here: it registers the run and queues its unfinished shards (N disjoint id
    ranges of ``samples``) as delegated operations that any `fiftyone delegated launch` worker connected to
    this database runs, and returns a QueuedShards. Calling it again queues only what is unfinished; a shard
    whose running operation reported nothing for ``stalled_after`` seconds (a killed worker) is queued again.
    ``shard`` is the one shard a queued operation scores (the Compute operator passes it).

    ``maps=True`` also keeps each face's adversarial-noise map from the same attack (Q is bit-identical, the
    fingerprint the same): a PNG per face under ``<maps_dir>/<dataset slug>/<quality_field>/`` (maps_dir defaults
    to ``<fo.config.default_dataset_dir>/faceqan-maps``), its path and concentration per face and a fo.Heatmap
    per sample for the App (fiftyone_faceqan.maps). Faces scored before without a map, or whose PNG is gone, are
    scored again. A run without maps keeps the maps of the faces it skips and clears those of the faces it scores
    again.
    """
    detections_field = detections_field or None
    _check_request(samples, model, quality_field, detections_field, alignment, chunk_size, num_workers, overwrite,
                   shards, shard, maps)
    config = _config(config, settings)
    given = as_calibration(calibration) if calibration is not None else None
    dataset = samples._root_dataset
    folder = check_maps_request(dataset, quality_field, detections_field, config, maps_dir) if maps else None
    face_model = model if isinstance(model, FaceModel) else load_model(model, weights=weights)
    preparer = FacePreparer.for_model(face_model, align=alignment)
    # a key's existing run is a FaceQAN run (fields.check_quality_target)
    previous = dataset.get_brain_info(quality_field).config if quality_field in dataset.list_brain_runs() else None
    unified = run_calibration(previous, face_model.name, face_model.sha256, config.score_settings(), given)
    check_score_target(dataset, quality_field, detections_field)
    run_config = FaceQANBrainConfig(
        quality_field=quality_field, model=face_model.name, model_sha256=face_model.sha256,
        detections_field=detections_field, alignment=None if detections_field else alignment,
        calibration=unified.to_dict() if unified else None, **dataclasses.asdict(config))
    fingerprint = run_config.fingerprint
    rescaled = previous is not None and previous.calibration != run_config.calibration
    if shards is not None:
        request = {"model": face_model.name, "weights": weights, "quality_field": quality_field,
                   "detections_field": detections_field, "alignment": alignment, "chunk_size": chunk_size,
                   "num_workers": num_workers, "maps": maps, "maps_dir": str(maps_root(maps_dir)) if maps else None,
                   **dataclasses.asdict(config)}
        queued = queue_shards(samples, run_config, shards, request, stalled_after)
        if rescaled:
            write_unified_scores(dataset, run_config)  # the faces scored before read on the new scale
        return queued
    if shard is not None:
        check_shard_run(dataset, quality_field, fingerprint)
        samples = shard.select(samples)
    started = time.monotonic()

    if detections_field:
        faces, owner, skipped = face_work(samples, detections_field, fingerprint, quality_field, overwrite, maps)
        paths, prepare = list(faces), DetectionCrops(preparer, dict(faces))

        def targets(row):
            if row.get("label_id"):
                return [(owner[row["label_id"]], row["label_id"])]
            return [(owner[label], label) for label, _, _ in faces[row["path"]]]  # the whole file failed
    else:
        owners, skipped = image_work(samples, fingerprint, quality_field, overwrite, maps)
        paths, prepare = list(owners), PlacedCrops(preparer)

        def targets(row):
            return owners[row["path"]]

    method = run_config.build()  # everything is checked: only now is anything written
    if shard is None:  # a shard's run was registered when it was queued
        method.register_run(samples, quality_field, overwrite=True, cleanup=False)
        if rescaled:
            write_unified_scores(dataset, run_config)  # the faces scored before read on the new scale
    kept = MapStore(dataset, quality_field, detections_field, config, folder) \
        if maps or written_map_fields(dataset, quality_field, detections_field) else None
    writer = ScoreWriter(dataset, quality_field, detections_field, fingerprint, targets, chunk_size, unified, kept)
    done = 0
    if paths:
        for rows in iter_score_rows(paths, face_model, config, prepare=prepare, num_workers=num_workers,
                                    progress=progress, maps=maps):
            writer.add(rows)
            done += len({row["path"] for row in rows})
            if on_progress:
                on_progress(done, len(paths))
        writer.flush()
    results = FaceQANResults(samples, run_config, quality_field, scored=writer.scored, skipped=skipped,
                             failed=writer.failed, seconds=round(time.monotonic() - started, 3), backend=method)
    if shard is None:
        method.save_run_results(samples, quality_field, results)
    return results
