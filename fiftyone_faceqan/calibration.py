"""The unified score (0-100, faceqan.calibration) of a FaceQAN run in FiftyOne: which calibration a run uses,
and ``calibrate_quality``, which fits or sets one for a run and rewrites ``<field>_score`` of every face of the
run in the database itself, with one update that counts the knots each face's Q reaches: no sample goes
through Python, so the cost is MongoDB rewriting each document once (benchmarks/scale_fiftyone.py, calibrate_s).

A face that could not be assessed gets None, like its other values (ISO/IEC 29794-1's 255 is for files): a
filter such as ``F("faceqan_score") >= 40`` or a sort never ranks a failure as good.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from faceqan.calibration import Calibration, as_calibration, choose, fit
from faceqan.config import score_settings

from .fields import check_score_target, declare_score_field, field_names, label_path, run_field, score_field
from .runs import FaceQANBrain, stored_run_config


def stored_calibration(config) -> Calibration | None:
    """The calibration a run's config holds (FaceQANBrainConfig.calibration)."""
    return Calibration.from_dict(config.calibration) if config.calibration else None


def run_calibration(previous, model: str, model_sha256: str | None, settings: dict,
                    given: Calibration | None = None) -> Calibration | None:
    """The calibration a run of these weights and score settings writes its unified scores with
    (faceqan.calibration.choose): ``given``, else the one ``previous`` (the config of the FaceQAN run of that
    key, or None) holds, so a rerun keeps the user's own, else the model's shipped one; each only when it
    applies."""
    kept = stored_calibration(previous) if previous is not None else None
    return choose(model, model_sha256, settings, given, kept)


def _run_qualities(samples, config) -> list:
    """Q of every face of the run in ``samples`` (None where it failed)."""
    from fiftyone import ViewField as F

    mark, quality = run_field(config.quality_field), field_names(config.quality_field)["quality"]
    if config.detections_field:
        faces = samples.filter_labels(config.detections_field, F(mark) == config.fingerprint)
        return faces.values(label_path(quality, config.detections_field), unwind=True)
    return samples.match({mark: config.fingerprint}).values(quality)


def calibrate_quality(samples, quality_field: str = "faceqan", calibration=None) -> Calibration:
    """Give FaceQAN run ``quality_field`` a unified score (0-100) and write it to ``<field>_score`` of every
    face of the run in the dataset.

    ``calibration=None`` fits one on the run's scored faces in ``samples`` (a dataset or a view, 100 faces or
    more): score k then means Q reaches the k-th percentile of those faces. A Calibration (or the path of its
    JSON file) is used as given, refused unless it was fitted on scores of the run's weights and settings. The
    calibration is stored with the run (``get_brain_info(quality_field).config.calibration``), and later runs
    of that key keep it. Everything is checked before anything is written. Returns the calibration.
    """
    dataset = samples._root_dataset
    config = stored_run_config(samples, quality_field)
    settings = score_settings(config, config.settings_class)
    if calibration is None:
        qualities = _run_qualities(samples, config)
        reference = (f"{sum(q is not None for q in qualities)} faces of FaceQAN run {quality_field!r} on dataset "
                     f"{dataset.name!r}")
        calibration = fit(qualities, config.model, config.model_sha256, settings, reference)
    else:
        calibration = as_calibration(calibration)
        calibration.check_applies(config.model_sha256, settings)
    check_score_target(dataset, quality_field, config.detections_field)
    config.calibration = calibration.to_dict()
    FaceQANBrain.update_run_config(dataset, quality_field, config)
    write_unified_scores(dataset, config)
    return calibration


def _unified(quality: str, knots) -> dict:
    """The MongoDB expression of Calibration.scores on the value ``quality`` (an expression such as "$q"): how
    many knots it reaches; None where it is not a number (a failed face: null, or NaN, which sorts below -inf)."""
    reached = {"$size": {"$filter": {"input": {"$literal": list(knots)}, "cond": {"$lte": ["$$this", quality]}}}}
    return {"$cond": [{"$gte": [quality, -math.inf]}, reached, None]}


def write_unified_scores(dataset, config) -> None:
    """(Re)write ``<field>_score`` of every face scored by the run (its fingerprint) with the run's calibration,
    in the database (one update_many); without a calibration a score field left by an earlier one is cleared.
    Its cost is MongoDB rewriting each document once."""
    calibration = stored_calibration(config)
    if calibration is None and not dataset.has_sample_field(label_path(score_field(config.quality_field),
                                                                       config.detections_field)):
        return
    if calibration is not None:
        declare_score_field(dataset, config.quality_field, config.detections_field)

    def unified(quality: str):
        return _unified(quality, calibration.knots) if calibration is not None else None

    mark, quality = run_field(config.quality_field), field_names(config.quality_field)["quality"]
    score, now = score_field(config.quality_field), datetime.now(timezone.utc)
    if config.detections_field:
        faces = f"{config.detections_field}.detections"
        face = {"$cond": [{"$eq": [f"$$face.{mark}", config.fingerprint]},
                          {"$mergeObjects": ["$$face", {score: unified(f"$$face.{quality}")}]}, "$$face"]}
        query, values = {f"{faces}.{mark}": config.fingerprint}, {faces: {"$map": {"input": f"${faces}",
                                                                                 "as": "face", "in": face}}}
    else:
        query, values = {mark: config.fingerprint}, {score: unified(f"${quality}")}
    dataset._sample_collection.update_many(query, [{"$set": {**values, "last_modified_at": now}}])
    dataset.reload()  # samples already loaded in this process see the new values
