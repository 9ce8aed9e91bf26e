"""Rejecting low-quality faces: the threshold for a rejection rate, the counts, and the views of the kept and
rejected samples (or faces), as pure functions of a FiftyOne collection, so the App panel stays a thin layer.

A quality field is a numeric sample field (``faceqan``) or a numeric attribute of the faces in a Detections
field (``faces.detections.faceqan``). A face is kept when its score is >= the threshold; a face without a
score (FaceQAN failed on it, see ``<field>_error``) is never kept, so the kept and rejected views split the
collection exactly. The rejection stage is an ordinary view stage (a ``Match``, or a ``FilterLabels`` for
faces) that ``parse_rejection`` recognises again, so the App's current view is the whole state of the panel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import fiftyone as fo
import numpy as np
import pandas as pd
from fiftyone import ViewField as F

from .evaluation import NUMERIC_FIELDS
from .runs import FaceQANBrainConfig

MODES = ("kept", "rejected")
REJECTED_TAG = "faceqan_rejected"


@dataclass(frozen=True)
class QualityField:
    """Where the scores live: ``path`` as FiftyOne writes it; ``labels`` the Detections field holding the
    faces (None for a sample field); ``attribute`` the score's name inside each face."""

    path: str

    @property
    def labels(self) -> str | None:
        head, _, _ = self.path.rpartition(".detections.")
        return head or None

    @property
    def attribute(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def unit(self) -> str:
        return "faces" if self.labels else "samples"


def quality_fields(samples) -> list[str]:
    """Numeric sample fields and numeric face attributes of Detections fields that hold at least one value;
    fields FaceQAN runs wrote come first (the one a user most likely wants)."""
    schema, flat = samples.get_field_schema(), samples.get_field_schema(flat=True)
    found = [name for name, field in schema.items() if isinstance(field, NUMERIC_FIELDS)]
    for name, field in schema.items():
        if isinstance(field, fo.EmbeddedDocumentField) and issubclass(field.document_type, fo.Detections):
            prefix = f"{name}.detections."
            found += [path for path, sub in flat.items() if path.startswith(prefix) and isinstance(sub, NUMERIC_FIELDS)
                      and "." not in path[len(prefix):] and path[len(prefix):] != "index"]
    counts = samples.aggregate([fo.Count(path) for path in found]) if found else []
    found = [path for path, count in zip(found, counts) if count]
    runs = samples._root_dataset.list_brain_runs()
    faceqan = []
    for key in runs:
        config = samples._root_dataset.get_brain_info(key).config
        if isinstance(config, FaceQANBrainConfig):
            prefix = f"{config.detections_field}.detections." if config.detections_field else ""
            faceqan.append(prefix + config.quality_field)
    return sorted(found, key=lambda path: (path not in faceqan, path))


def _resolve(samples, field: str) -> QualityField:
    if field not in quality_fields(samples):
        raise ValueError(f"{field!r} is not a numeric quality field of this collection; "
                         f"quality fields: {quality_fields(samples) or 'none'}")
    return QualityField(field)


def scores(samples, field: str) -> np.ndarray:
    """Every score of the collection (one per sample or per face), NaN where a face has none."""
    values = samples.values(_resolve(samples, field).path, unwind=True)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def threshold_for_rate(values: np.ndarray, rate: float) -> float:
    """The threshold that rejects ``round(rate * n)`` of the n scored values (fewer when the value at the
    cut is tied: equal scores are kept together). Rate 1 rejects everything (the threshold is just above
    the highest score)."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be a fraction in [0, 1], got {rate!r}")
    scored = np.sort(values[~np.isnan(values)])
    if len(scored) == 0:
        raise ValueError("no scored values: run FaceQAN on this collection first")
    count = int(round(rate * len(scored)))
    if count >= len(scored):
        return float(np.nextafter(scored[-1], math.inf))
    return float(scored[count])


@dataclass(frozen=True)
class Rejection:
    """What a threshold does on a collection: counts are of ``unit`` (samples or faces); ``unscored``
    faces have no score and are rejected as well, but not counted in ``rate``."""

    field: str
    threshold: float
    unit: str
    scored: int
    rejected: int
    unscored: int

    @property
    def kept(self) -> int:
        return self.scored - self.rejected

    @property
    def rate(self) -> float:
        """Share of the scored faces below the threshold."""
        return self.rejected / self.scored if self.scored else 0.0


def summarize(samples, field: str, threshold: float) -> Rejection:
    values = scores(samples, field)
    scored = values[~np.isnan(values)]
    return Rejection(field, float(threshold), QualityField(field).unit, int(len(scored)),
                     int(np.sum(scored < threshold)), int(len(values) - len(scored)))


def _stage(field: str, threshold: float, mode: str) -> fo.core.stages.ViewStage:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    where = QualityField(field)
    keep = F(where.attribute if where.labels else where.path) >= float(threshold)
    condition = keep if mode == "kept" else ~keep
    if where.labels:
        return fo.FilterLabels(where.labels, condition, only_matches=True)
    return fo.Match(condition)


def rejection_view(samples, field: str, threshold: float, mode: str):
    """The samples kept (score >= threshold) or rejected (below it, or unscored); for faces, the samples
    with at least one such face, showing only those faces."""
    _resolve(samples, field)
    return samples.add_stage(_stage(field, threshold, mode))


def _condition(expr) -> tuple[str, float, str] | None:
    """(value path, threshold, mode) of ``{$gte: [$path, t]}`` or its ``$not``; None for anything else."""
    mode = "kept"
    if isinstance(expr, dict) and list(expr) == ["$not"]:
        expr, mode = expr["$not"], "rejected"
    if not (isinstance(expr, dict) and list(expr) == ["$gte"] and len(expr["$gte"]) == 2):
        return None
    path, threshold = expr["$gte"]
    if not (isinstance(path, str) and path.startswith("$") and isinstance(threshold, (int, float))
            and not isinstance(threshold, bool)):
        return None
    return path[1:], float(threshold), mode


def _parse_stage(stage) -> tuple[str, float, str] | None:
    """(field, threshold, mode) of a stage ``_stage`` builds; a FilterLabels filter reads ``$$this.<attr>``
    once a collection has validated it, ``$<field>.<attr>`` before."""
    kwargs = dict(stage._kwargs())
    if isinstance(stage, fo.Match) and isinstance(kwargs["filter"], dict):
        found = _condition(kwargs["filter"].get("$expr"))
        field = found and found[0]
    elif isinstance(stage, fo.FilterLabels):
        found = _condition(kwargs["filter"])
        prefixes = ("$this.", kwargs["field"] + ".")
        if not found or not found[0].startswith(prefixes):
            return None
        attribute = found[0].split(".", 1)[1]
        field = f"{kwargs['field']}.detections.{attribute}"
    else:
        return None
    if not found:
        return None
    parsed = (field, found[1], found[2])
    others = {k: v for k, v in _stage(*parsed)._kwargs() if k != "filter"}
    return parsed if others == {k: v for k, v in kwargs.items() if k != "filter"} else None


@dataclass(frozen=True)
class ViewRejection:
    """A view split into the user's own stages (``base``) and the rejection stage found in it."""

    base: object
    field: str | None = None
    threshold: float | None = None
    mode: str = "all"


def parse_rejection(view) -> ViewRejection:
    """Find the last rejection stage of ``view`` (what ``rejection_view`` adds); ``base`` is the view
    without it, so a new threshold replaces the stage instead of stacking another."""
    view = view.view()  # a Dataset becomes a view without stages
    stages = list(view._stages)
    for index in range(len(stages) - 1, -1, -1):
        found = _parse_stage(stages[index])
        if found:
            base = view._base_view
            for stage in stages[:index] + stages[index + 1:]:
                base = base.add_stage(stage)
            return ViewRejection(base, *found)
    return ViewRejection(view)


def tag_rejected(samples, field: str, threshold: float, tag: str = REJECTED_TAG) -> int:
    """Tag exactly the rejected samples (faces: the rejected face labels) of ``samples`` with ``tag``,
    removing it from the kept ones first, so the tag always matches the current threshold.
    Returns how many samples (or faces) carry the tag."""
    where = _resolve(samples, field)
    rejected = rejection_view(samples, field, threshold, "rejected")
    if where.labels:
        samples.untag_labels(tag, label_fields=where.labels)
        rejected.tag_labels(tag, label_fields=where.labels)
        return int(rejected.count_label_tags(label_fields=where.labels).get(tag, 0))
    samples.untag_samples(tag)
    rejected.tag_samples(tag)
    return len(rejected)


def save_kept_view(samples, field: str, threshold: float, name: str) -> str:
    """Save the kept samples as a named view of the dataset (overwriting one of the same name)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("give the saved view a name")
    view = rejection_view(samples, field, threshold, "kept")
    samples._root_dataset.save_view(name.strip(), view, overwrite=True)
    return name.strip()


def default_view_name(field: str, threshold: float) -> str:
    return f"{QualityField(field).attribute} >= {threshold:.4g}"


def fnmr_at_threshold(curves: pd.DataFrame, measure: str, threshold: float) -> dict | None:
    """The FNM-EDC point of ``measure`` once every mated pair whose lower quality is below ``threshold``
    is discarded: FNMR of the pairs left (threshold fixed on all comparisons) and the discarded share of
    mated pairs. None when the evaluation has no EDC curve of this measure."""
    rows = curves[(curves["measure"] == measure) & (curves["curve"] == "edc")]
    if rows.empty:
        return None
    gone = rows[rows["quality_cut"] < threshold]
    point = gone.iloc[-1] if not gone.empty else rows.iloc[0]
    return {"fnmr": float(point["fnmr"]), "discarded": float(point["discard"]), "tau": float(point["tau"]),
            "fnmr_0": float(rows.iloc[0]["fnmr"]), "kept_mated": int(point["kept_mated"])}
