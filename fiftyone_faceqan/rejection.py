"""Rejecting low-quality faces: the threshold for a rejection rate, the counts, and the views of the kept and
rejected samples (or faces), as functions of a FiftyOne collection, so the App panel stays a thin layer.

A quality field is a numeric sample field (``faceqan``) or a numeric attribute of the faces in a Detections
field (``faces.detections.faceqan``). A face is kept when its score is >= the threshold; a face without a
score (FaceQAN failed on it, see ``<field>_error``) is never kept, so the kept and rejected views split the
collection exactly. A rate is always a fraction in [0, 1].

The rejection stage is an ordinary view stage that ``parse_rejection`` recognises again: for a sample field
a ``Match`` with the plain query ``{field: {$gte: t}}`` (or its ``$not``) marked ``$comment:
"faceqan rejection"``, so MongoDB filters and counts with the field's index and a user's own match is
never taken for the panel's; for faces a ``FilterLabels``. The ``$expr`` form of earlier versions, still in
saved views, is recognised too.

Speed at scale: ``SortedScores`` answers "the k-th lowest score" and "how many scores lie below t" from the
field's index when there is one (every sample of a dataset, perhaps sorted, and a sample field: no score
leaves the database), else from the scores read once. Nothing here creates an index: a FaceQAN run indexes
the field it writes (``fiftyone_faceqan.store``); for a user's own field, ``dataset.create_index(field)`` is
the user's call.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import fiftyone as fo
import numpy as np
import pandas as pd
from fiftyone import ViewField as F

from faceqan.calibration import Calibration

from .calibration import stored_calibration
from .fields import NUMERIC_FIELDS
from .runs import faceqan_runs

MODES = ("kept", "rejected")
REJECTED_TAG = "faceqan_rejected"
STAGE_COMMENT = "faceqan rejection"
SCORED = {"$gte": -math.inf}  # every number but NaN: what counts as a score in the database


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


def _numeric_paths(samples) -> list[str]:
    """Numeric sample fields and numeric face attributes of Detections fields, from the schema alone."""
    schema, flat = samples.get_field_schema(), samples.get_field_schema(flat=True)
    found = [name for name, field in schema.items() if isinstance(field, NUMERIC_FIELDS)]
    for name, field in schema.items():
        if isinstance(field, fo.EmbeddedDocumentField) and issubclass(field.document_type, fo.Detections):
            prefix = f"{name}.detections."
            found += [path for path, sub in flat.items() if path.startswith(prefix) and isinstance(sub, NUMERIC_FIELDS)
                      and "." not in path[len(prefix):] and path[len(prefix):] != "index"]
    return found


def quality_fields(samples) -> list[str]:
    """The numeric paths that hold at least one score (asked with a one-document query each); fields FaceQAN
    runs wrote come first (the one a user most likely wants)."""
    found = [path for path in _numeric_paths(samples) if len(samples.match({path: SCORED}).limit(1))]
    faceqan = faceqan_runs(samples._root_dataset)
    return sorted(found, key=lambda path: (path not in faceqan, path))


def field_calibration(samples, field: str) -> Calibration | None:
    """The unified score's calibration of the FaceQAN run whose quality field is ``field``, if it has one: the
    same cut reads on both scales (Calibration.score of the threshold)."""
    config = faceqan_runs(samples._root_dataset).get(field)
    return stored_calibration(config) if config is not None else None


def resolve_quality_field(samples, field: str) -> QualityField:
    """``field`` as a quality field of the collection (a numeric sample field or face attribute), or one line
    naming the ones there are."""
    if field not in _numeric_paths(samples):
        raise ValueError(f"{field!r} is not a numeric quality field of this collection; "
                         f"quality fields: {quality_fields(samples) or 'none'}")
    return QualityField(field)


def scores(samples, field: str) -> np.ndarray:
    """Every score of the collection (one per sample or per face), NaN where a face has none."""
    values = samples.values(resolve_quality_field(samples, field).path, unwind=True)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


class SortedScores:
    """The scores of one quality field on a collection in ascending order, asked two questions: ``value_at(k)``
    (the k-th lowest, from 0) and ``count_below(t)``; ``scored`` values and ``unscored`` samples (or faces)."""

    scored: int
    unscored: int

    def value_at(self, k: int) -> float:
        raise NotImplementedError

    def count_below(self, threshold: float) -> int:
        raise NotImplementedError


class _LoadedScores(SortedScores):
    """The scores read once into memory: any view, per-face fields, fields without an index."""

    def __init__(self, values: np.ndarray):
        self.values = np.sort(values[~np.isnan(values)])
        self.scored, self.unscored = len(self.values), len(values) - len(self.values)

    def value_at(self, k):
        return float(self.values[k])

    def count_below(self, threshold):
        return int(np.searchsorted(self.values, threshold, side="left"))


class _IndexedScores(SortedScores):
    """A sample field of a whole dataset with an index on it: each answer walks the index from the nearest
    point already known (a value and how many scores lie below it), up or down, so questions asked in
    ascending order walk the index about once, and none reads a document."""

    def __init__(self, collection, path: str, total: int):
        self.collection, self.path = collection, path
        self.scored = collection.count_documents({path: SCORED})
        self.unscored = total - self.scored
        self.known = [(-math.inf, 0), (math.inf, self.scored)]  # (value, count below it), ascending in both

    def _learn(self, value, count):
        point = (value, count)
        index = bisect.bisect_left(self.known, point)
        if self.known[index] != point:
            self.known.insert(index, point)

    def count_below(self, threshold):
        value, count = self.known[bisect.bisect_right(self.known, (threshold, math.inf)) - 1]
        if value < threshold:
            count += self.collection.count_documents({self.path: {"$gte": value, "$lt": threshold}})
            self._learn(threshold, count)
        return count

    def _walk(self, query, order, skip, limit) -> list[float]:
        cursor = self.collection.find({self.path: query}, {self.path: 1, "_id": 0}).sort(self.path, order)
        return [float(doc[self.path]) for doc in cursor.skip(skip).limit(limit)]

    def value_at(self, k):
        index = bisect.bisect_right([count for _, count in self.known], k) - 1
        (low, below), (high, above) = self.known[index], self.known[index + 1]  # below <= k < above
        if k - below <= above - 1 - k:  # up from low: the values at k - 1 (when >= low) and k
            found = self._walk({"$gte": low}, 1, max(k - below - 1, 0), 2 if k > below else 1)
            value, tied = found[-1], k > below and found[0] == found[-1]
        else:  # down from high: the values at k and k - 1
            found = self._walk({"$lt": high}, -1, above - 1 - k, 2 if k else 1)
            value, tied = found[0], k > 0 and found[0] == found[-1]
        if tied:
            self.count_below(value)
        else:
            self._learn(value, k)
        return value


WHOLE_STAGES = (fo.SortBy, fo.SelectFields, fo.ExcludeFields)  # they order or project, never drop, samples


def _indexed(samples, path: str) -> bool:
    """Whether ``samples`` holds every sample of a whole (ungrouped) dataset (a view that only sorts, as the
    App's grid sorted by quality, does) whose sample field ``path`` leads an index."""
    view = samples.view()
    return (all(isinstance(stage, WHOLE_STAGES) for stage in view._stages) and view._dataset is view._root_dataset
            and view.media_type != "group" and "." not in path
            and any(spec["key"][0][0] == path for spec in view._dataset.get_index_information().values()))


def sorted_scores(samples, field: str) -> SortedScores:
    where = resolve_quality_field(samples, field)
    if _indexed(samples, where.path):
        dataset = samples.view()._dataset
        return _IndexedScores(dataset._sample_collection, where.path, len(dataset))
    return _LoadedScores(scores(samples, field))


def _threshold(ranked: SortedScores, rate: float) -> float:
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be a fraction in [0, 1], got {rate!r}")
    if ranked.scored == 0:
        raise ValueError("no scored values: run FaceQAN on this collection first")
    count = int(round(rate * ranked.scored))
    if count >= ranked.scored:
        return float(np.nextafter(ranked.value_at(ranked.scored - 1), math.inf))
    return ranked.value_at(count)


def threshold_for_rate(values: np.ndarray, rate: float) -> float:
    """The threshold that rejects ``round(rate * n)`` of the n scored values (fewer when the value at the
    cut is tied: equal scores are kept together). Rate 1 rejects everything (the threshold is just above
    the highest score)."""
    return _threshold(_LoadedScores(values), rate)


@dataclass(frozen=True)
class Distribution:
    """A quality field's scores on a collection as the rejection panel shows them, computed once: the
    threshold and the rejected count at every rate ``i / steps`` (``thresholds[i]``, ``rejected[i]``) and
    a histogram of equal-width bins (``edges``, ``counts``)."""

    field: str
    unit: str
    scored: int
    unscored: int
    thresholds: list[float]
    rejected: list[int]
    edges: list[float]
    counts: list[int]


def distribution(samples, field: str, steps: int = 100, bins: int = 40, ranked: SortedScores | None = None
                 ) -> Distribution:
    """Everything in ascending order, the histogram's edges first, so an index is walked about twice."""
    ranked = ranked or sorted_scores(samples, field)
    low = _threshold(ranked, 0.0)
    high = ranked.value_at(ranked.scored - 1)
    edges = np.linspace(low, high, bins + 1) if high > low else np.array([low, high])
    below = [ranked.count_below(edge) for edge in edges[:-1]] + [ranked.scored]  # the last bin holds the top
    thresholds = [_threshold(ranked, i / steps) for i in range(steps + 1)]
    return Distribution(field, QualityField(field).unit, ranked.scored, ranked.unscored, thresholds,
                        [ranked.count_below(t) for t in thresholds], edges.tolist(), np.diff(below).tolist())


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


def summarize(samples, field: str, threshold: float, ranked: SortedScores | None = None) -> Rejection:
    ranked = ranked or sorted_scores(samples, field)
    return Rejection(field, float(threshold), QualityField(field).unit, ranked.scored,
                     ranked.count_below(threshold), ranked.unscored)


def _stage(field: str, threshold: float, mode: str) -> fo.core.stages.ViewStage:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    where = QualityField(field)
    if where.labels:
        keep = F(where.attribute) >= float(threshold)
        return fo.FilterLabels(where.labels, keep if mode == "kept" else ~keep, only_matches=True)
    keep = {"$gte": float(threshold)}
    return fo.Match({where.path: keep if mode == "kept" else {"$not": keep}, "$comment": STAGE_COMMENT})


def rejection_view(samples, field: str, threshold: float, mode: str):
    """The samples kept (score >= threshold) or rejected (below it, or unscored); for faces, the samples
    with at least one such face, showing only those faces."""
    resolve_quality_field(samples, field)
    return samples.add_stage(_stage(field, threshold, mode))


def _condition(query) -> tuple[float, str] | None:
    """(threshold, mode) of ``{$gte: t}`` or ``{$not: {$gte: t}}``; None for anything else."""
    mode = "kept"
    if isinstance(query, dict) and list(query) == ["$not"]:
        query, mode = query["$not"], "rejected"
    if not (isinstance(query, dict) and list(query) == ["$gte"]):
        return None
    threshold = query["$gte"]
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        return None
    return float(threshold), mode


def _expr_condition(expr) -> tuple[str, float, str] | None:
    """(value path, threshold, mode) of the expression ``{$gte: [$path, t]}`` or its ``$not``."""
    mode = "kept"
    if isinstance(expr, dict) and list(expr) == ["$not"]:
        expr, mode = expr["$not"], "rejected"
    if not (isinstance(expr, dict) and list(expr) == ["$gte"] and len(expr["$gte"]) == 2):
        return None
    path, threshold = expr["$gte"]
    if not (isinstance(path, str) and path.startswith("$")):
        return None
    found = _condition({"$gte": threshold})
    return found and (path[1:], found[0], mode)


def _parse_match(query: dict) -> tuple[str, float, str] | None:
    """The panel's plain query (``_stage``), or the ``$expr`` one of earlier versions (saved views)."""
    if list(query) == ["$expr"]:
        return _expr_condition(query["$expr"])
    paths = [key for key in query if key != "$comment"]
    if query.get("$comment") != STAGE_COMMENT or len(paths) != 1:
        return None
    found = _condition(query[paths[0]])
    return found and (paths[0], *found)


def _parse_stage(stage) -> tuple[str, float, str] | None:
    """(field, threshold, mode) of a stage ``_stage`` builds; a FilterLabels filter reads ``$$this.<attr>``
    once a collection has validated it, ``$<field>.<attr>`` before."""
    kwargs = dict(stage._kwargs())
    if isinstance(stage, fo.Match) and isinstance(kwargs["filter"], dict):
        return _parse_match(kwargs["filter"])
    if not isinstance(stage, fo.FilterLabels):
        return None
    found = _expr_condition(kwargs["filter"])
    if not found or not found[0].startswith(("$this.", kwargs["field"] + ".")):
        return None
    parsed = (f"{kwargs['field']}.detections.{found[0].split('.', 1)[1]}", found[1], found[2])
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
    where = resolve_quality_field(samples, field)
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


def fnmr_at_thresholds(curves: pd.DataFrame, measure: str, thresholds) -> list[dict] | None:
    """The FNM-EDC point of ``measure`` at each threshold, once every mated pair whose lower quality is below
    it is discarded: FNMR of the pairs left (threshold fixed on all comparisons) and the discarded share of
    mated pairs. None when the evaluation has no EDC curve of this measure."""
    rows = curves[(curves["measure"] == measure) & (curves["curve"] == "edc")]
    if rows.empty:
        return None
    rows = rows.sort_values("quality_cut", kind="stable")
    first = rows.iloc[0]
    points = []
    for position in np.searchsorted(rows["quality_cut"].to_numpy(float), thresholds, side="left") - 1:
        point = rows.iloc[max(position, 0)]
        points.append({"fnmr": float(point["fnmr"]), "discarded": float(point["discard"]),
                       "tau": float(point["tau"]), "fnmr_0": float(first["fnmr"]),
                       "kept_mated": int(point["kept_mated"])})
    return points
