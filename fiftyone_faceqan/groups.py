"""Splitting a collection by a categorical field (pose, source, a demographic attribute), and what a quality
threshold rejects in each group, so a user can see whether a threshold removes one group far more than others.

A categorical field is a string, bool or int sample field, or a Classification (its ``label``); for a
per-face quality field (``faces.detections.faceqan``) also a string, bool or int attribute of those faces
(``faces.detections.pose``, ``faces.detections.label``). A field with more than ``MAX_GROUPS`` values is
refused: it is not categorical (an identifier, a file name). Samples (faces) without a value are in no group
and are counted apart. Every count is a database aggregation: nothing is read per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import fiftyone as fo
import pandas as pd
from fiftyone import ViewField as F
from fiftyone.core.sample import get_default_sample_fields

from .rejection import resolve_quality_field
from .runs import run_output_fields

CATEGORICAL_FIELDS = (fo.StringField, fo.BooleanField, fo.IntField)
MAX_GROUPS = 50
OTHER = -math.inf  # counted apart: a number that no string, bool or int value equals


def _categorical(field) -> bool:
    return isinstance(field, CATEGORICAL_FIELDS) or (
        isinstance(field, fo.EmbeddedDocumentField) and issubclass(field.document_type, fo.Classification))


def categorical_fields(samples) -> list[str]:
    """The sample fields a collection can be split by, judged by type alone (the number of values is
    checked when one is used: counting them all would read every field)."""
    skipped = set(get_default_sample_fields(include_private=True)) | run_output_fields(samples._root_dataset)
    return sorted(name for name, field in samples.get_field_schema().items()
                  if name not in skipped and not name.startswith("_") and _categorical(field))


def group_path(samples, by: str, faces: str | None = None) -> str:
    """The value path of ``by``: the field, ``<field>.label`` of a Classification, or (with ``faces``, a
    Detections field) an attribute of its faces, ``<faces>.detections.<attribute>``."""
    face_prefix = f"{faces}.detections." if faces else None
    if isinstance(by, str) and face_prefix and by.startswith(face_prefix) and "." not in by[len(face_prefix):]:
        if isinstance(samples.get_field(by), CATEGORICAL_FIELDS):
            return by
    elif isinstance(by, str) and by in categorical_fields(samples):
        return f"{by}.label" if isinstance(samples.get_field(by), fo.EmbeddedDocumentField) else by
    faces_too = f", or a string, bool or int attribute of the faces ({face_prefix}<attribute>)" if faces else ""
    raise ValueError(f"by must be a categorical field: a string, bool or int sample field or a Classification"
                     f"{faces_too}; got {by!r}; categorical fields: {categorical_fields(samples) or 'none'}")


@dataclass(frozen=True)
class Groups:
    """A collection split by the values at ``path``: ``counts`` maps each value to its samples (faces),
    ``None`` to those without a value."""

    path: str
    counts: dict

    @property
    def values(self) -> list:
        return sorted(value for value in self.counts if value is not None)

    @property
    def missing(self) -> int:
        return self.counts.get(None, 0)


def _groups(by: str, path: str, counts: dict) -> Groups:
    """The groups, once their number is known to be categorical."""
    groups = Groups(path, counts)
    if len(groups.values) > MAX_GROUPS:
        raise ValueError(f"by field {by!r} has {len(groups.values)} values here, more than {MAX_GROUPS}: it is not "
                         f"categorical; split by a field such as pose or source")
    if not groups.values:
        raise ValueError(f"by field {by!r} has no value on any sample of this collection: nothing to split by")
    return groups


def _key(path: str, faces: str | None, where=None):
    """What to count: each sample's value of ``path`` or, with ``faces``, each face's (its own attribute, or
    its sample's value); with ``where`` (a condition on the sample or the face) the value only where it holds,
    and ``OTHER`` elsewhere."""
    if faces is None:
        value = F(path)
    else:
        prefix = f"{faces}.detections."
        value = F(path[len(prefix):]) if path.startswith(prefix) else F("$" + path)
    if where is not None:
        value = where.if_else(value, OTHER)
    return value if faces is None else F(f"{faces}.detections").map(value)


def split_by(samples, by: str) -> Groups:
    """The groups of ``by`` (a sample field) with their sizes, one aggregation; refuses a field with more than
    ``MAX_GROUPS`` values or none at all."""
    path = group_path(samples, by)
    return _groups(by, path, samples.count_values(path))


def rejection_by_group(samples, quality_field: str, by: str, threshold: float) -> pd.DataFrame:
    """What ``threshold`` rejects in each group of ``by``: one row per value (sorted), then a row with group
    None for the samples without a value when there are any. Columns: ``group``; ``count`` samples (faces,
    for a per-face quality field such as ``faces.detections.faceqan``); ``scored``, those with a score;
    ``rejected``, those with a score below the threshold or none (as the rejection panel rejects them);
    ``share_rejected`` = rejected / count. Three counting aggregations, whatever the collection's size."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    where = resolve_quality_field(samples, quality_field)
    path = group_path(samples, by, where.labels)
    score = F(where.attribute) if where.labels else F(where.path)
    counts, scored, kept = (samples.count_values(_key(path, where.labels, where=w))  # faster than one $facet
                            for w in (None, score >= -math.inf, score >= threshold))
    groups = _groups(by, path, counts)
    values = groups.values + ([None] if groups.missing else [])
    frame = pd.DataFrame({"group": pd.Series(values, dtype=object), "count": [counts[v] for v in values],
                          "scored": [scored.get(v, 0) for v in values]})
    frame["rejected"] = frame["count"] - [kept.get(v, 0) for v in values]
    frame["share_rejected"] = frame["rejected"] / frame["count"]
    return frame
