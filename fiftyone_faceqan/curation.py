"""Per-identity curation: keep the best images of each identity, drop the bad ones, flag identities that are
left with too few, as tags and a saved view (never a deletion), with a per-identity summary.

Rules, per identity, on its scorable faces (a face whose quality is a number; one FaceQAN could not score has
None there, the reason in ``<field>_error``, and is never kept), best first:

- ``best_k``: keep at most the K best;
- a quality cut, ``min_quality`` (keep Q >= it) or ``reject_rate`` (the cut that rejects that share of the
  collection's scorable faces, as the rejection panel computes it), which never takes an identity below
  ``min_per_identity`` kept: its m best are kept whatever their quality;
- an identity with fewer than m scorable faces keeps what it has and is flagged ``short``.

Ties: equal qualities rank by id, the smaller first (for ids FiftyOne made: the sample or face added first),
so a curation is deterministic. The identity is the sample's (a Classification's label or a string field, read
as ``evaluate_quality`` reads it), also for its faces; faces of a sample without one are dropped and counted.

Scale: the values are read in one pass over the collection and ranked in numpy (a lexsort by identity,
quality and id); tags are written with bulk updates, one write per sample whose tags change (per face: per
sample holding curated faces). What a curation wrote is recorded in the dataset's info under
``faceqan_curations`` (tag prefix -> its rules and saved views): only those tags and saved views may be
replaced by a later curation, a user's own never.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property

import fiftyone as fo
import fiftyone.core.utils as fou
import numpy as np
import pandas as pd
from fiftyone import ViewField as F
from pymongo import UpdateMany, UpdateOne

from .evaluation import identity_path
from .fields import check_detections_field
from .rejection import QualityField, resolve_quality_field, threshold_for_rate

RECORD = "faceqan_curations"  # dataset.info key: tag prefix -> what that curation wrote
TAG_KINDS = ("kept", "dropped", "short")
DEFAULT_TAG = "faceqan_curation"
TAG_PATTERN = re.compile(r"[\w.-]+( [\w.-]+)*")
WRITE_BATCH = 100_000  # sample ids per bulk update


def tag_names(tag: str) -> dict[str, str]:
    """The three tags a curation of prefix ``tag`` writes: kept, dropped, and the faces of short identities."""
    return {kind: f"{tag}_{kind}" for kind in TAG_KINDS}


@dataclass(frozen=True)
class Rules:
    """A curation's rules, checked (``check_rules``)."""

    best_k: int | None = None
    min_quality: float | None = None
    reject_rate: float | None = None
    min_per_identity: int = 0


def _whole(name: str, value, minimum: int, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}{' or None' if optional else ''}, got {value!r}")
    return int(value)


def _number(name: str, value) -> float | None:
    if value is None:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number or None, got {value!r}")
    return float(value)


def check_rules(best_k=None, min_quality=None, reject_rate=None, min_per_identity=0) -> Rules:
    rules = Rules(_whole("best_k", best_k, 1, True), _number("min_quality", min_quality),
                  _number("reject_rate", reject_rate), _whole("min_per_identity", min_per_identity, 0, False))
    if rules.min_quality is not None and rules.reject_rate is not None:
        raise ValueError("give min_quality or reject_rate, not both: each sets the quality cut")
    if rules.reject_rate is not None and not 0 <= rules.reject_rate <= 1:
        raise ValueError(f"reject_rate must be a fraction in [0, 1], got {reject_rate!r}")
    if rules.best_k is not None and rules.best_k < rules.min_per_identity:
        raise ValueError(f"best_k ({rules.best_k}) < min_per_identity ({rules.min_per_identity}): the best K "
                         f"could not keep m per identity")
    return rules


def _records(dataset) -> dict:
    return dict((dataset.info or {}).get(RECORD) or {})


def _existing_tags(dataset) -> set[str]:
    return set(dataset.distinct("tags")) | set(dataset.count_label_tags())


def _check_outputs(samples, tag: str | None, saved_view: str | None) -> None:
    """Tags and a saved view may be written only when new or made by a curation before."""
    dataset = samples._root_dataset
    records = _records(dataset)
    if tag is not None:
        if not isinstance(tag, str) or len(tag) > 100 or not TAG_PATTERN.fullmatch(tag):
            raise ValueError(f"tag must be a name of letters, digits, '_', '-', '.' and single spaces (at most 100 "
                             f"characters), or None for no tags, got {tag!r}")
        if tag not in records:
            taken = sorted(set(tag_names(tag).values()) & _existing_tags(dataset))
            if taken:
                raise ValueError(f"tag {tag!r}: the dataset already has the tag(s) {taken} and no curation made "
                                 f"them; choose another tag")
    if saved_view is None:
        return
    if tag is None:
        raise ValueError("saved_view needs tag: the saved view is the samples tagged <tag>_kept")
    if not isinstance(saved_view, str) or not saved_view.strip():
        raise ValueError(f"saved_view must be a non-empty name or None, got {saved_view!r}")
    slug = fou.to_slug(saved_view)
    ours = {name for record in records.values() for name in record.get("saved_views", [])}
    for name in dataset.list_saved_views():
        if (name == saved_view or fou.to_slug(name) == slug) and name not in ours:
            raise ValueError(f"saved_view {saved_view!r}: the dataset has a saved view {name!r} that no curation "
                             f"made; choose another name")


@dataclass(frozen=True)
class _Target:
    """Where a curation reads: the quality path, the identity path, and the faces' Detections field."""

    quality: QualityField
    identity: str
    detections: str | None


def _check_target(samples, quality_field: str, identity_field: str, detections_field: str | None) -> _Target:
    if not isinstance(samples, fo.core.collections.SampleCollection) or samples._is_generated:
        raise ValueError("samples must be a dataset or a view of one (not patches, frames or clips)")
    if detections_field is not None:
        check_detections_field(samples, detections_field)
    if not isinstance(quality_field, str) or not quality_field or "." in quality_field:
        raise ValueError(f"quality_field must be a field name such as 'faceqan' (per face: give the Detections field "
                         f"as detections_field), got {quality_field!r}")
    path = f"{detections_field}.detections.{quality_field}" if detections_field else quality_field
    quality = resolve_quality_field(samples, path)
    try:
        identity = identity_path(samples, identity_field)
    except ValueError:  # evaluation's message also offers a pairs file, which does not apply here
        raise ValueError(f"identity_field {identity_field!r} must be a Classification or string field of this "
                         f"collection") from None
    return _Target(quality, identity, detections_field)


@dataclass(frozen=True)
class _Faces:
    """One entry per face (a sample in per-sample mode), in the collection's order."""

    ids: np.ndarray  # str: sample or face id
    sample_index: np.ndarray  # int: the face's sample in ``sample_ids``
    sample_ids: list  # ObjectId per sample
    label_ids: list  # ObjectId per face (per-face mode), else empty
    identity: np.ndarray  # object: str or None
    quality: np.ndarray  # float, NaN where unscored


def _read(samples, target: _Target) -> _Faces:
    """One pass over the collection, projected to the few values needed (per face: unwound in the database),
    read as plain documents (half the time of ``values``, which builds each value as FiftyOne reads it)."""
    identity = f"${target.identity}"
    if target.detections is None:
        stages = [{"$project": {"q": f"${target.quality.path}", "i": identity}}]
    else:
        faces = f"{target.detections}.detections"
        name = target.quality.path[len(faces) + 1:]
        stages = [{"$project": {"i": identity, "f": f"${faces}"}}, {"$unwind": "$f"},
                  {"$project": {"s": "$_id", "i": 1, "_id": "$f._id", "q": f"$f.{name}"}}]
    docs = list(samples._aggregate(post_pipeline=stages))
    ids = [doc["_id"] for doc in docs]
    identity = np.array([doc.get("i") for doc in docs], dtype=object)
    quality = np.array([doc.get("q") for doc in docs], dtype=float)
    if target.detections is None:
        return _Faces(_strings(ids), np.arange(len(ids)), ids, [], identity, quality)
    owners = [doc["s"] for doc in docs]
    owner = _strings(owners)
    first = np.ones(len(owner), dtype=bool)
    first[1:] = owner[1:] != owner[:-1]  # a sample's faces come one after the other
    return _Faces(_strings(ids), np.cumsum(first) - 1, [owners[i] for i in np.flatnonzero(first)], ids, identity,
                  quality)


def _strings(ids: list) -> np.ndarray:
    return np.array(list(map(str, ids)), dtype=str)


@dataclass(frozen=True)
class Ranking:
    """The faces that have an identity grouped by identity (names sorted), each group best first, unscored
    last, ties by id: ``order`` indexes the input, ``rank`` is the place in the group, the groups are
    ``names``, ``starts`` and ``sizes`` in ``order``."""

    order: np.ndarray
    rank: np.ndarray
    names: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, identity: np.ndarray, quality: np.ndarray, ids: np.ndarray) -> "Ranking":
        named = np.flatnonzero(np.not_equal(identity, None))
        names, codes = np.unique(identity[named].astype(str), return_inverse=True)
        order = named[np.lexsort((ids[named], -quality[named], codes))]  # -NaN sorts last
        sizes = np.bincount(codes, minlength=len(names))
        starts = np.cumsum(sizes) - sizes
        return cls(order, np.arange(len(order)) - np.repeat(starts, sizes), names, starts, sizes)

    def per_identity(self, values: np.ndarray) -> np.ndarray:
        """Sums of ``values`` (in input order) per identity."""
        return np.add.reduceat(values[self.order], self.starts) if len(self.order) else np.zeros(0, int)


def keep_mask(quality: np.ndarray, ranking: Ranking, rules: Rules, threshold: float | None) -> np.ndarray:
    """Which faces (in input order) a curation keeps: scorable, among the identity's best K, and at or above
    the cut unless among its m best."""
    q = quality[ranking.order]
    kept = ~np.isnan(q)
    if rules.best_k is not None:
        kept &= ranking.rank < rules.best_k
    if threshold is not None:
        kept &= (q >= threshold) | (ranking.rank < rules.min_per_identity)
    mask = np.zeros(len(quality), dtype=bool)
    mask[ranking.order] = kept
    return mask


class Curation:
    """The outcome of ``curate_identities``: ``counts`` (of faces, or samples in per-sample mode), the
    ``threshold`` of the quality cut (None without one), the ``tags`` and ``saved_view`` written, the
    ``kept`` and ``dropped`` views, and the per-identity ``summary``."""

    def __init__(self, samples, target: _Target, rules: Rules, threshold: float | None, faces: _Faces,
                 ranking: Ranking, kept: np.ndarray):
        self.samples, self.rules, self.threshold = samples, rules, threshold
        self.unit, self.detections_field = target.quality.unit, target.detections
        self.tags: dict[str, str] = {}
        self.saved_view: str | None = None
        self._faces, self._ranking, self._kept = faces, ranking, kept
        scorable = ~np.isnan(faces.quality)
        self.counts = {"total": len(kept), "scorable": int(scorable.sum()), "unscored": int((~scorable).sum()),
                       "no_identity": len(kept) - len(ranking.order), "kept": int(kept.sum()),
                       "dropped": int((~kept).sum()), "identities": len(ranking.names),
                       "short_identities": int(self._short.sum())}

    @cached_property
    def _short(self) -> np.ndarray:
        """Per identity: fewer than min_per_identity kept."""
        return self._ranking.per_identity(self._kept) < self.rules.min_per_identity

    @property
    def kept_ids(self) -> list[str]:
        """Ids of the kept samples (faces in per-face mode)."""
        return self._faces.ids[self._kept].tolist()

    @property
    def short_identities(self) -> list[str]:
        return self._ranking.names[self._short].tolist()

    def short_mask(self) -> np.ndarray:
        """Per face (input order): its identity is short."""
        mask = np.zeros(len(self._kept), dtype=bool)
        mask[self._ranking.order] = np.repeat(self._short, self._ranking.sizes)
        return mask

    @cached_property
    def summary(self) -> pd.DataFrame:
        """One row per identity: faces (``count``), ``scorable``, ``kept``, the scorable faces' min and median
        quality, the lowest kept quality, and ``short`` (fewer than min_per_identity kept)."""
        ranking = self._ranking
        q = self._faces.quality[ranking.order]
        scorable = ranking.per_identity(~np.isnan(self._faces.quality))
        kept = ranking.per_identity(self._kept)

        def at(offsets, valid):  # each identity's quality at start + offset (best first), NaN where not valid
            if not len(q):
                return np.zeros(0)
            return np.where(valid, q[np.clip(ranking.starts + offsets, 0, len(q) - 1)], np.nan)

        median = (at((scorable - 1) // 2, scorable > 0) + at(scorable // 2, scorable > 0)) / 2
        return pd.DataFrame({"identity": ranking.names, "count": ranking.sizes, "scorable": scorable, "kept": kept,
                             "min_quality": at(scorable - 1, scorable > 0), "median_quality": median,
                             "kept_min_quality": at(kept - 1, kept > 0), "short": self._short})

    def _view(self, mask: np.ndarray, kind: str):
        """By the tags written, else by the ids (a long list in the view's stages at scale)."""
        if self.tags:
            return _tagged(self.samples, self.detections_field, self.tags[kind])
        if self.detections_field:
            ids = np.asarray(self._faces.label_ids, dtype=object)[mask].tolist()
            return self.samples.filter_labels(self.detections_field, F("_id").is_in(ids))
        return self.samples.select(self._faces.ids[mask].tolist(), ordered=False)

    @property
    def kept(self):
        """The kept samples (faces: the samples with a kept face, showing only those)."""
        return self._view(self._kept, "kept")

    @property
    def dropped(self):
        return self._view(~self._kept, "dropped")


def _tagged(samples, detections: str | None, tag: str):
    if detections:
        return samples.filter_labels(detections, F("tags").contains(tag))
    return samples.match_tags(tag)


def _retagged(current: str, names: list[str], added) -> dict:
    """Aggregation expression: the tags at ``current`` without this curation's ``names``, then ``added``."""
    others = {"$filter": {"input": {"$ifNull": [current, []]}, "as": "tag",
                          "cond": {"$not": [{"$in": ["$$tag", names]}]}}}
    return {"$concatArrays": [others, added]}


def _sample_updates(faces: _Faces, kept: np.ndarray, short: np.ndarray, names: dict[str, str], now) -> list:
    """One UpdateMany per batch of samples that get the same tags, writing only those whose tags change (so a
    rerun rewrites only the samples whose outcome changed)."""
    ids, ops = np.asarray(faces.sample_ids, dtype=object), []
    for is_kept in (True, False):
        for is_short in (True, False):
            where = np.flatnonzero((kept == is_kept) & (short == is_short))
            added = [names["kept" if is_kept else "dropped"]] + ([names["short"]] if is_short else [])
            changes = [*({"tags": {"$ne": name}} for name in added),
                       {"tags": {"$in": [name for name in names.values() if name not in added]}}]
            update = [{"$set": {"tags": _retagged("$tags", list(names.values()), added), "last_modified_at": now}}]
            ops += [UpdateMany({"_id": {"$in": batch}, "$or": changes}, update)
                    for batch in fou.iter_batches(ids[where], WRITE_BATCH)]
    return ops


def _face_updates(faces: _Faces, kept: np.ndarray, short: np.ndarray, names: dict[str, str], detections: str,
                  now) -> list:
    """One UpdateOne per sample with curated faces: each of them gets its tags, its other faces (outside the
    view) stay as they are. A sample's faces are contiguous in ``faces``."""
    path, label_ids = f"{detections}.detections", np.asarray(faces.label_ids, dtype=object)
    firsts = np.flatnonzero(np.r_[True, faces.sample_index[1:] != faces.sample_index[:-1]]) if len(kept) else []
    ops = []
    for first, stop in zip(firsts, [*firsts[1:], len(kept)]):
        curated, chosen = label_ids[first:stop].tolist(), label_ids[first:stop][kept[first:stop]].tolist()
        added = [{"$cond": [{"$in": ["$$face._id", chosen]}, [names["kept"]], [names["dropped"]]]},
                 [names["short"]] if short[first] else []]
        retag = {"$mergeObjects": ["$$face", {"tags": _retagged("$$face.tags", list(names.values()), {
            "$concatArrays": added})}]}
        faces_expr = {"$map": {"input": f"${path}", "as": "face",
                               "in": {"$cond": [{"$in": ["$$face._id", curated]}, retag, "$$face"]}}}
        ops.append(UpdateOne({"_id": faces.sample_ids[faces.sample_index[first]]},
                             [{"$set": {path: faces_expr, "last_modified_at": now}}]))
    return ops


def _write(curation: Curation, tag: str, saved_view: str | None, record: dict) -> None:
    """Tag every curated sample (face) in one write each, replacing this curation's earlier tags there; record
    the curation; save the view."""
    samples, detections, faces = curation.samples, curation.detections_field, curation._faces
    dataset = samples._root_dataset
    records = _records(dataset)
    names = tag_names(tag)
    previous = records.get(tag)
    if previous and previous["detections_field"] != detections:  # its tags are elsewhere: remove them there
        if previous["detections_field"] is None:
            samples.untag_samples(list(names.values()))
        elif samples.has_field(previous["detections_field"]):
            samples.untag_labels(list(names.values()), label_fields=previous["detections_field"])
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    kept, short = curation._kept, curation.short_mask()
    ops = (_face_updates(faces, kept, short, names, detections, now) if detections
           else _sample_updates(faces, kept, short, names, now))
    if ops:
        dataset._bulk_write(ops, ids=faces.sample_ids)
    views = sorted(set(previous["saved_views"] if previous else []) | ({saved_view} if saved_view else set()))
    dataset.info = {**(dataset.info or {}), RECORD: {**records, tag: {**record, "saved_views": views}}}
    dataset.save()
    curation.tags = names
    if saved_view:
        dataset.save_view(saved_view, _tagged(samples, detections, names["kept"]), overwrite=True,
                          description=f"kept by the FaceQAN curation {tag!r}")
        curation.saved_view = saved_view


def check_curation(samples, quality_field: str = "faceqan", identity_field: str = "ground_truth", *,
                   detections_field=None, best_k=None, min_quality=None, reject_rate=None, min_per_identity=0,
                   tag=DEFAULT_TAG, saved_view=None) -> tuple[_Target, Rules]:
    """Every check of ``curate_identities`` (raises ValueError with one line), for forms to run as they change."""
    target = _check_target(samples, quality_field, identity_field, detections_field)
    rules = check_rules(best_k, min_quality, reject_rate, min_per_identity)
    _check_outputs(samples, tag, saved_view)
    return target, rules


def curate_identities(samples, quality_field: str = "faceqan", identity_field: str = "ground_truth", *,
                      detections_field: str | None = None, best_k: int | None = None,
                      min_quality: float | None = None, reject_rate: float | None = None, min_per_identity: int = 0,
                      tag: str | None = DEFAULT_TAG, saved_view: str | None = None) -> Curation:
    """Keep the best faces of each identity of ``samples`` (a dataset or view; per face with
    ``detections_field``, the identity being the sample's) by the rules in this module's docstring.

    With ``tag`` it writes the tags ``<tag>_kept``, ``<tag>_dropped`` and ``<tag>_short`` (all faces of the
    identities left short) on the samples, or on the face labels, of ``samples`` only, replacing those an
    earlier curation of this tag wrote there; with ``saved_view`` also the kept samples as a saved view.
    ``tag=None`` writes nothing. Every argument is checked before anything is read or written."""
    target, rules = check_curation(samples, quality_field, identity_field, detections_field=detections_field,
                                   best_k=best_k, min_quality=min_quality, reject_rate=reject_rate,
                                   min_per_identity=min_per_identity, tag=tag, saved_view=saved_view)
    faces = _read(samples, target)
    threshold = threshold_for_rate(faces.quality, rules.reject_rate) if rules.reject_rate is not None \
        else rules.min_quality
    ranking = Ranking.of(faces.identity, faces.quality, faces.ids)
    curation = Curation(samples, target, rules, threshold, faces, ranking,
                        keep_mask(faces.quality, ranking, rules, threshold))
    if tag is not None:
        record = {"quality_field": target.quality.path, "identity_field": identity_field,
                  "detections_field": detections_field, **asdict(rules), "threshold": threshold,
                  "counts": curation.counts, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write(curation, tag, saved_view, record)
    return curation
