"""How well quality fields predict recognition errors on a FiftyOne collection (FNM-EDC / ERC, pAUC).

The comparison embeddings are computed once with the evaluation model and kept in a vector field, so a
second evaluation (other quality fields, another FMR) costs no model run. The evaluation is stored as a
brain run, like the FaceQAN scoring run: its curves and summary are JSON in the run's results, so
``load_evaluation`` reloads them without recomputing anything, and ``delete_evaluation`` removes the
embedding field the evaluation created.

Quality fields may come from another model than the comparisons (the paper's cross-model protocol).
Samples without a quality value (failed scoring), identity or embedding are left out and counted.

At scale (10^6 samples) the defaults keep an evaluation to minutes and a few GB: embeddings are read once
into one float32 matrix, all mated pairs are compared but at most 10^7 non-mated pairs (a seeded sample
when there are more), the identity bootstrap uses fewer resamples when the mated pairs are many, and the
stored curves keep at most 2,000 points each.

Split by a categorical field (``by``), each group is also evaluated alone: its own comparisons (pairs with
both samples in the group), its own threshold at the FMR, its own discard fractions and bootstrap; so a
group's results are exactly those of ``evaluate_quality`` on that group's samples, from the embeddings read
once for the whole collection.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fiftyone as fo
import fiftyone.core.brain as fob
import numpy as np
import pandas as pd
from tqdm import tqdm

from faceqan import load_model
from faceqan.pipeline import embed_paths
from faceqan.metrics import PAUC_AT, Comparisons, bootstrap_pauc, count_non_mated, evaluate, read_lfw_pairs, thin
from faceqan.models import DEFAULT_MODEL, list_models

from .fields import NUMERIC_FIELDS, validate_field_name
from .groups import group_path, split_by
from .runs import FaceQANBrainConfig

METHOD = "faceqan_evaluation"
EMBED_BATCH = 32
INTERVAL_AT = 0.2  # the discard limit whose normalised pAUC gets bootstrap intervals
MAX_NON_MATED = 10**7  # default: compare at most this many non-mated pairs (a seeded sample when more exist)
RESAMPLES = 1000  # default bootstrap resamples, fewer when resamples x mated pairs would exceed BOOTSTRAP_WORK
BOOTSTRAP_WORK, MIN_RESAMPLES = 2 * 10**9, 200  # 10^7 mated pairs (10^6 images): 200 resamples, ~30 s
CURVE_POINTS = 2000  # stored points per curve (exact at every 1/2000 of discard); summaries use every point
GROUP_TABLES = ("curves", "summary", "intervals", "differences")  # stored per group, long-form with "group"


class FaceQANEvaluationConfig(fob.BrainMethodConfig):
    """The parameters an evaluation ran with: enough to tell what its numbers mean and to repeat it."""

    def __init__(self, quality_fields=(), identity_field=None, model=None, embeddings_field=None, pairs=None,
                 fmr=1e-3, discard_limits=PAUC_AT, non_mated_sample=None, seed=0, resamples=1000, by=None,
                 **kwargs):
        self.quality_fields = list(quality_fields)
        self.identity_field = identity_field
        self.model = model
        self.embeddings_field = embeddings_field
        self.pairs = pairs
        self.fmr = fmr
        self.discard_limits = list(discard_limits)
        self.non_mated_sample = non_mated_sample
        self.seed = seed
        self.resamples = resamples
        self.by = by
        super().__init__(**kwargs)

    @property
    def method(self):
        return METHOD


class FaceQANEvaluation(fob.BrainMethod):
    """Bookkeeping: the embedding field belongs to the evaluation whose key is written in its info."""

    def get_fields(self, samples, key):
        return [self.config.embeddings_field]

    def cleanup(self, samples, key):
        dataset = samples._root_dataset
        name = self.config.embeddings_field
        if dataset.has_sample_field(name) and _field_info(dataset, name).get("faceqan_eval_key") == key:
            dataset.delete_sample_field(name)


class FaceQANEvaluationResults(fob.BrainResults):
    """``curves`` (long-form points, references included), ``summary`` (one row per measure and curve
    type: FNMR at discard fractions, raw and normalised pAUC), ``info`` (counts, threshold, models) and,
    when identities are known, ``intervals`` (95 % identity-bootstrap interval of each field's normalised
    pAUC@20 %) and ``differences`` (of each two fields on the same resamples: an interval without 0 is real).
    Split by a field (``info["by"]``): ``groups`` (one row per value: counts, threshold, or why it was not
    evaluated), ``group_summary`` (the summaries with a ``group`` column) and ``group(value)``, that group's
    own results."""

    def __init__(self, samples, config, brain_key, curves, summary, info, intervals=None, differences=None,
                 groups=None, backend=None):
        super().__init__(samples, config, brain_key, backend=backend)
        self._curves = _frame(curves)
        self._summary = _frame(summary)
        self.info = dict(info)
        self._intervals = _frame(intervals) if intervals is not None else None
        self._differences = _frame(differences) if differences is not None else None
        self._groups = None if groups is None else {
            "info": [dict(g) for g in groups["info"]],
            **{k: None if groups.get(k) is None else _frame(groups[k]) for k in GROUP_TABLES}}

    @property
    def intervals(self) -> pd.DataFrame | None:
        return None if self._intervals is None else self._intervals.copy()

    @property
    def differences(self) -> pd.DataFrame | None:
        return None if self._differences is None else self._differences.copy()

    @property
    def curves(self) -> pd.DataFrame:
        return self._curves.copy()

    @property
    def summary(self) -> pd.DataFrame:
        return self._summary.copy()

    @property
    def groups(self) -> pd.DataFrame | None:
        """One row per value of ``by``: group, n_samples, n_evaluated, excluded, n_mated, n_non_mated, tau,
        skipped (why a group too small to compare was not evaluated; None when it was)."""
        if self._groups is None:
            return None
        infos = self._groups["info"]
        frame = pd.DataFrame([{"group": g["group"], "n_samples": g["n_samples"], "n_evaluated": g["n_evaluated"],
                               "excluded": g["excluded"]["samples"], "n_mated": g.get("n_mated", 0),
                               "n_non_mated": g.get("n_non_mated", 0), "tau": g.get("tau", np.nan)} for g in infos])
        frame["skipped"] = pd.Series([g.get("skipped") for g in infos], dtype=object)  # None, not NaN
        return frame

    @property
    def group_summary(self) -> pd.DataFrame | None:
        """``summary`` of every evaluated group, with the group's value first."""
        return None if self._groups is None else self._groups["summary"].copy()

    def group(self, value) -> FaceQANEvaluationResults:
        """The results of one group of ``by``: what ``evaluate_quality`` gives on that group's samples alone."""
        groups = self._groups or {"info": []}
        info = next((g for g in groups["info"] if g["group"] == value), None)
        if info is None:
            raise ValueError(f"no group {value!r} in this evaluation (split by {self.info.get('by')}); groups: "
                             f"{[g['group'] for g in groups['info']]}")
        if info.get("skipped"):
            raise ValueError(f"group {value!r} was not evaluated: {info['skipped']}")

        def part(name):
            table = groups[name]
            rows = None if table is None else table[table["group"] == value]
            return None if rows is None or rows.empty else rows.drop(columns="group").reset_index(drop=True)

        return FaceQANEvaluationResults(self.samples, self.config, self.key, part("curves"), part("summary"),
                                        {**self.info, **info}, part("intervals"), part("differences"),
                                        backend=self.backend)

    def plot(self, curve: str = "edc"):
        """Plotly figure of one curve type ('edc' or 'erc') with the random and best references."""
        from faceqan.plots import figure

        return figure(self._curves, curve, title=self._title(curve))

    def save_png(self, path: str | Path) -> Path:
        from faceqan.plots import save_png

        return save_png(self._curves, path, title=self._title(None))

    def _title(self, curve: str | None) -> str:
        info = self.info
        head = f"{curve.upper()}: " if curve else ""
        group = f"{info['by']} = {info['group']}: " if "group" in info else ""
        return (f"{head}{group}{info['n_evaluated']} samples, comparisons by "
                f"{info['model'] or info['embeddings_field']}, FMR {info['fmr']:g}")

    def serialize(self, reflective=False):
        optional = {k: _columns(v) for k, v in (("intervals", self._intervals),
                                                ("differences", self._differences)) if v is not None}
        if self._groups is not None:
            optional["groups"] = {"info": self._groups["info"], **{
                k: None if self._groups[k] is None else _columns(self._groups[k]) for k in GROUP_TABLES}}
        return {"cls": self.cls, "curves": _columns(self._curves), "summary": _columns(self._summary),
                "info": self.info, **optional}

    @classmethod
    def _from_dict(cls, d, samples, config, brain_key):
        return cls(samples, config, brain_key, d["curves"], d["summary"], d["info"], d.get("intervals"),
                   d.get("differences"), d.get("groups"))


def _columns(frame: pd.DataFrame) -> dict:
    """Column name -> list of Python scalars (JSON; -inf/NaN survive bson's json_util)."""
    return {"columns": list(frame.columns), "data": {c: frame[c].tolist() for c in frame.columns}}


def _frame(value) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value.reset_index(drop=True)
    return pd.DataFrame(value["data"], columns=value["columns"])


def _field_info(dataset, name: str) -> dict:
    return dict(dataset.get_field(name).info or {})


# --- validation -----------------------------------------------------------------------------------------

def _numeric_fields(samples) -> list[str]:
    return sorted(name for name, f in samples.get_field_schema().items() if isinstance(f, NUMERIC_FIELDS))


def _check_quality_fields(samples, quality_fields) -> list[str]:
    if isinstance(quality_fields, str):
        quality_fields = [quality_fields]
    fields = list(quality_fields or [])
    if not fields:
        raise ValueError("quality_fields: give at least one numeric field holding a quality score per sample")
    if len(set(fields)) != len(fields):
        raise ValueError(f"quality_fields has duplicates: {fields}")
    numeric = _numeric_fields(samples)
    for name in fields:
        if name not in numeric:
            raise ValueError(f"quality field {name!r} is not a numeric sample field of this collection; "
                             f"numeric fields: {numeric or 'none'} (per-face quality in detections is not "
                             f"supported here)")
    return fields


def identity_path(samples, identity_field: str) -> str:
    """The value path of the identity: ``<field>.label`` for a Classification, the field for a string."""
    field = samples.get_field(identity_field) if isinstance(identity_field, str) else None
    if isinstance(field, fo.StringField):
        return identity_field
    if isinstance(field, fo.EmbeddedDocumentField) and issubclass(field.document_type, fo.Classification):
        return f"{identity_field}.label"
    raise ValueError(f"identity_field {identity_field!r} must be a Classification or string field of this "
                     f"collection (or give pairs=<LFW-style pairs file>)")


def _check_params(eval_key, fmr, discard_limits, non_mated_sample, model, pairs) -> tuple[float, ...]:
    if not isinstance(eval_key, str) or not eval_key.isidentifier():
        raise ValueError(f"eval_key must be a valid identifier such as 'faceqan_eval', got {eval_key!r}")
    if not isinstance(fmr, (int, float)) or not 0 < fmr < 1:
        raise ValueError(f"fmr must be a fraction in (0, 1), e.g. 1e-3, got {fmr!r}")
    limits = tuple(float(d) for d in discard_limits)
    if not limits or any(not 0 < d <= 1 for d in limits):
        raise ValueError(f"discard_limits must be fractions in (0, 1], e.g. (0.1, 0.2, 0.4), got {discard_limits!r}")
    if non_mated_sample is not None and (isinstance(non_mated_sample, bool) or not isinstance(non_mated_sample, int)
                                         or non_mated_sample < 1):
        raise ValueError(f"non_mated_sample must be a positive number of pairs (the most to compare) or None (all), "
                         f"got {non_mated_sample!r}")
    if model is not None and model not in {m.name for m in list_models()}:
        raise ValueError(f"unknown model {model!r}; available: {sorted(m.name for m in list_models())}")
    if pairs is not None and not Path(pairs).is_file():
        raise ValueError(f"pairs file not found: {pairs}")
    return limits


def embeddings_field_name(eval_key: str, embeddings_field: str | None = None) -> str:
    """The field the comparison embeddings go to (``<eval_key>_embedding`` unless named): never a
    built-in FiftyOne field."""
    return validate_field_name(embeddings_field or f"{eval_key}_embedding", "embeddings_field")


def _check_key_free(dataset, eval_key: str) -> None:
    if eval_key in dataset.list_brain_runs() and eval_key not in list_evaluations(dataset):
        raise ValueError(f"brain key {eval_key!r} is used by another kind of run; choose another eval_key")


# --- embeddings -----------------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def comparison_model(name: str):
    """Loaded once per process: an App server runs many evaluations and loading costs seconds."""
    return load_model(name)


def _ensure_embeddings(samples, field: str, model: str | None, eval_key: str, on_progress) -> tuple[int, str | None]:
    """Fill ``field`` where it is empty. Returns how many embeddings were computed (0: the model was not
    loaded) and the model that made the field (None: embeddings from elsewhere)."""
    dataset = samples._root_dataset
    stored = None
    if dataset.has_sample_field(field):
        stored = _field_info(dataset, field).get("faceqan_model")
        if not isinstance(dataset.get_field(field), fo.VectorField):
            raise ValueError(f"embeddings_field {field!r} exists and is not a vector field; choose another name")
        if model is not None and stored is not None and stored != model:
            raise ValueError(f"field {field!r} holds {stored!r} embeddings, not {model!r}: pass model={stored!r}, "
                             f"or another embeddings_field, or delete the field")
    elif model is None:
        raise ValueError(f"embeddings_field {field!r} does not exist; give model=... to compute it")
    todo = samples.exists(field, False)
    if len(todo) == 0:
        return 0, stored or model
    if model is None or (dataset.has_sample_field(field) and stored is None):
        raise ValueError(f"{len(todo)} samples have no embedding in {field!r}, a field FaceQAN did not make: "
                         f"fill it, or pass a new embeddings_field and model=... to compute one")
    embedder = comparison_model(model)  # a model that cannot load stops here, before the field exists
    if not dataset.has_sample_field(field):
        dataset.add_sample_field(field, fo.VectorField, info={"faceqan_model": model, "faceqan_eval_key": eval_key})
    ids, paths = todo.values(["id", "filepath"])
    vectors = embed_paths(paths, embedder, EMBED_BATCH, on_progress)
    dataset.set_values(field, {i: v for i, v in zip(ids, vectors) if v is not None}, key_field="id")
    return sum(v is not None for v in vectors), stored or model


# --- comparisons ----------------------------------------------------------------------------------------

def _pair_indices(pairs, names: list[str]) -> tuple[list, list, int]:
    """Protocol pairs mapped to row indices by file name; pairs touching an excluded sample are dropped."""
    position = {name: i for i, name in enumerate(names)}
    if len(position) != len(names):
        raise ValueError("pairs are matched by file name, but several evaluated samples share a file name")
    mated, non_mated = read_lfw_pairs(pairs)
    dropped = 0
    out = []
    for listed in (mated, non_mated):
        kept = []
        for a, b in listed:
            ia, ib = position.get(Path(a).name), position.get(Path(b).name)
            if ia is None or ib is None:
                dropped += 1
            else:
                kept.append((ia, ib))
        out.append(kept)
    return out[0], out[1], dropped


def _usable(quality: dict[str, np.ndarray], ok_embedding: np.ndarray,
            identities: list | None) -> tuple[np.ndarray, dict]:
    """Rows with every quality value, an embedding and (when labels are used) an identity; and the counts
    of what is missing (a failed FaceQAN score is None)."""
    ok_quality = np.all([~np.isnan(q) for q in quality.values()], axis=0)
    ok_identity = np.array([v is not None for v in identities], dtype=bool) if identities else ok_embedding
    keep = np.flatnonzero(ok_quality & ok_embedding & ok_identity)
    excluded = {"missing_quality": {f: int(np.isnan(q).sum()) for f, q in quality.items()},
                "missing_embedding": int((~ok_embedding).sum()),
                "missing_identity": int((~ok_identity).sum()) if identities is not None else 0,
                "samples": int(len(ok_quality) - len(keep))}
    return keep, excluded


class _TooSmall(ValueError):
    """Too few samples or comparisons to evaluate: the whole collection stops, a group is reported skipped."""


@dataclass
class _Job:
    """The evaluable samples (every quality value, an embedding and an identity), read once, and the
    settings: ``run(rows)`` evaluates the rows at those positions (a group) alone, ``run()`` all of them."""

    embeddings: np.ndarray | None
    quality: dict[str, np.ndarray]
    identities: np.ndarray | None  # None with a pairs file
    names: np.ndarray | None  # file names, with a pairs file
    pairs: str | None
    fmr: float
    limits: tuple[float, ...]
    non_mated_sample: int | None
    seed: int
    resamples: int | None

    def run(self, rows: np.ndarray | None = None) -> tuple:
        """(evaluation, intervals, differences, the counts of ``info``); ``run()`` comes last: the embeddings
        are freed as soon as they are compared (10^6 x 512 floats are 2 GB)."""
        if rows is None:
            embeddings, self.embeddings, rows = self.embeddings, None, slice(None)
        else:
            embeddings = self.embeddings[rows]
        if len(embeddings) < 2:
            raise _TooSmall("fewer than 2 samples with every quality field, an embedding and an identity")
        dropped, sampled, labels = 0, False, None
        if self.pairs is not None:
            mated, non_mated, dropped = _pair_indices(self.pairs, self.names[rows].tolist())
            comparisons = Comparisons.from_pairs(embeddings, mated, non_mated)
        else:
            labels = np.unique(self.identities[rows], return_inverse=True)[1].ravel()
            sampled = self.non_mated_sample is not None and self.non_mated_sample < count_non_mated(labels)
            comparisons = Comparisons.from_labels(embeddings, labels, self.non_mated_sample if sampled else None,
                                                  self.seed)
        del embeddings
        if len(comparisons.mated) == 0 or comparisons.n_non_mated == 0:
            raise _TooSmall("no mated comparison: every identity has a single image" if len(comparisons.mated) == 0
                            else "no non-mated comparison: a single identity")
        quality = {f: q[rows] for f, q in self.quality.items()}
        evaluation = evaluate(comparisons, quality, fmr=self.fmr, pauc_at=self.limits)
        resamples = _resamples(self.resamples, evaluation.n_mated)
        intervals = differences = None
        if labels is not None and resamples:
            intervals, differences = _intervals(comparisons, quality, labels, evaluation.tau, resamples, self.seed)
        counts = {"pairs_dropped": dropped, "n_mated": evaluation.n_mated, "n_non_mated": evaluation.n_non_mated,
                  "non_mated_sampled": sampled, "tau": evaluation.tau, "resamples": resamples}
        return evaluation, intervals, differences, counts


def _matrix(stored: list) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of a VectorField, read raw, as one (samples, dims) float32 matrix (zero rows where a
    sample has none) and which samples have one. FiftyOne stores a vector as zlib-compressed .npy bytes:
    the header every vector shares is parsed once (np.load parses it again for every vector, the larger
    part of reading 10^6 embeddings); a value in any other form goes through FiftyOne's own reader."""
    from fiftyone.core.utils import deserialize_numpy_array

    def read(value) -> np.ndarray:
        return (deserialize_numpy_array(value) if isinstance(value, bytes) else np.asarray(value)).ravel()

    present = np.array([v is not None for v in stored], dtype=bool)
    if not present.any():
        return np.zeros((len(stored), 0), dtype=np.float32), present
    example = stored[present.argmax()]
    first = read(example)
    header = zlib.decompress(example)[:-first.nbytes] if isinstance(example, bytes) else None
    matrix = np.empty((len(stored), len(first)), dtype=np.float32)
    matrix[~present] = 0
    for i in np.flatnonzero(present):
        value = stored[i]
        data = zlib.decompress(value) if header is not None and isinstance(value, bytes) else None
        if data is not None and len(data) == len(header) + first.nbytes and data.startswith(header):
            matrix[i] = np.frombuffer(data, first.dtype, offset=len(header))
        else:
            matrix[i] = read(value)
        stored[i] = None  # freed as it is copied
    return matrix, present


def _resamples(resamples: int | None, mated: int) -> int:
    """The bootstrap resamples to draw: as asked, or by default 1000, fewer when the mated pairs are many."""
    if resamples is not None:
        return resamples
    return min(RESAMPLES, max(MIN_RESAMPLES, BOOTSTRAP_WORK // max(mated, 1)))


def _quality_models(dataset, quality_fields: list[str]) -> dict[str, str | None]:
    """Which model scored each quality field, when a FaceQAN run of this dataset wrote it."""
    found = {}
    for key in dataset.list_brain_runs():
        config = dataset.get_brain_info(key).config
        if isinstance(config, FaceQANBrainConfig) and config.quality_field in quality_fields:
            found[config.quality_field] = config.model
    return {f: found.get(f) for f in quality_fields}


def evaluate_quality(samples, quality_fields: Sequence[str], identity_field: str = "ground_truth",
                     model: str | None = DEFAULT_MODEL, embeddings_field: str | None = None, pairs: str | None = None,
                     fmr: float = 1e-3, discard_limits: Sequence[float] = PAUC_AT, eval_key: str = "faceqan_eval",
                     non_mated_sample: int | None = MAX_NON_MATED, seed: int = 0, resamples: int | None = None,
                     by: str | None = None, on_progress: Callable[[int, int], None] | None = None,
                     progress: bool = True) -> FaceQANEvaluationResults:
    """Evaluate quality fields against the comparisons of ``model``'s embeddings; store the run as ``eval_key``.

    Comparisons come from ``pairs`` (an LFW-style protocol file, images matched by file name) or else from
    the identity labels: all mated pairs, and at most ``non_mated_sample`` non-mated pairs (10^7 by default):
    a seeded uniform sample of that many when there are more (10^5 samples have 5x10^9), all of them when
    there are not; ``None`` compares all of them, however many. ``info["non_mated_sampled"]`` says which.
    ``model=None`` with ``embeddings_field`` uses precomputed embeddings only. Rerunning a key replaces it.
    With identity labels, ``resamples`` identity-bootstrap resamples (seeded by ``seed``; 0: none; by
    default 1000, down to 200 when there are more than 2x10^6 mated pairs) give the results' ``intervals``
    and ``differences``. ``by``, a categorical field (string, bool or int, or a Classification; at most 50
    values), also evaluates each of its groups alone (``results.groups``, ``group_summary``, ``group(value)``):
    samples without a value are in no group (``info["by_missing"]``), a group without a mated or non-mated
    pair is reported skipped. ``on_progress(done, total)`` follows the embedding of images; ``progress``
    shows the stages of the evaluation on the console.
    """
    dataset = samples._root_dataset
    fields = _check_quality_fields(samples, quality_fields)
    limits = _check_params(eval_key, fmr, discard_limits, non_mated_sample, model, pairs)
    if resamples is not None and (isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 0):
        raise ValueError(f"resamples must be a number of bootstrap resamples >= 0 (0: no intervals) or None "
                         f"(the default), got {resamples!r}")
    identity = None if pairs is not None else identity_path(samples, identity_field)
    _check_key_free(dataset, eval_key)
    field = embeddings_field_name(eval_key, embeddings_field)
    if by is not None and group_path(samples, by) == identity:
        raise ValueError(f"by {by!r} is the identity: each group would hold one person and no non-mated pair")
    groups = None if by is None else split_by(samples, by)  # refuses a field that is not categorical

    computed, model = _ensure_embeddings(samples, field, model, eval_key, on_progress)
    stages = tqdm(total=5 if groups else 4, desc="FaceQAN evaluation", unit="stage", disable=not progress)
    stages.set_postfix_str("reading the samples")
    columns = ["filepath", *fields] + ([identity] if identity else []) + ([groups.path] if groups else [])
    values = dict(zip([*columns, field], samples.values([*columns, field], _raw=True)))  # vectors: _matrix
    matrix, has_embedding = _matrix(values.pop(field))
    quality = {f: np.array([np.nan if v is None else v for v in values[f]], dtype=np.float64) for f in fields}
    identities = values[identity] if identity else None
    keep, excluded = _usable(quality, has_embedding, identities)
    if len(keep) < 2:
        raise ValueError(f"only {len(keep)} of {len(has_embedding)} samples have every quality field, an embedding "
                         f"and an identity: nothing to compare ({excluded})")
    job = _Job(matrix if len(keep) == len(matrix) else matrix[keep], {f: q[keep] for f, q in quality.items()},
               None if pairs is not None else np.asarray(identities)[keep],
               None if pairs is None else np.array([Path(values["filepath"][i]).name for i in keep]),
               pairs, fmr, limits, non_mated_sample, seed, resamples)
    del matrix
    stages.update()

    group_parts = None
    if groups:
        stages.set_postfix_str(f"{len(groups.values)} groups")
        group_parts = _evaluate_groups(job, groups, values[groups.path], keep, quality, has_embedding, identities)
        stages.update()
    stages.set_postfix_str("comparing, curves, bootstrap")
    evaluation, intervals, differences, counts = job.run()
    stages.update(3)
    stages.close()

    config = FaceQANEvaluationConfig(fields, identity_field if identity else None, model, field, pairs and str(pairs),
                                     fmr, limits, non_mated_sample, seed, counts.pop("resamples"), by)
    info = {"eval_key": eval_key, "model": model, "embeddings_field": field, "quality_models":
            _quality_models(dataset, fields), "n_samples": len(has_embedding), "n_evaluated": int(len(keep)),
            "excluded": excluded, **counts, "fmr": fmr, "embeddings_computed": computed, "by": by,
            "by_missing": groups.missing if groups else 0}
    results = FaceQANEvaluationResults(samples, config, eval_key, thin(evaluation.curves, CURVE_POINTS),
                                       evaluation.summary, info, intervals, differences, group_parts)
    _release_old_field(dataset, eval_key, field)
    FaceQANEvaluation(config).register_run(samples, eval_key, overwrite=True, cleanup=False)
    FaceQANEvaluation(config).save_run_results(samples, eval_key, results)
    return results


def _evaluate_groups(job: _Job, groups, by_values: list, keep: np.ndarray, quality: dict, has_embedding: np.ndarray,
                     identities: list | None) -> dict:
    """Each group alone, as ``evaluate_quality`` on its samples would: the stored tables, long-form with the
    group's value first, and per group its counts, or why it was skipped (too small to compare)."""
    index = {value: i for i, value in enumerate(groups.values)}
    code = np.array([index.get(v, -1) for v in by_values])
    infos, tables = [], {name: [] for name in GROUP_TABLES}
    for i, value in enumerate(groups.values):
        rows = np.flatnonzero(code == i)
        usable, excluded = _usable({f: q[rows] for f, q in quality.items()}, has_embedding[rows],
                                   None if identities is None else [identities[r] for r in rows])
        info = {"group": value, "n_samples": len(rows), "n_evaluated": len(usable), "excluded": excluded}
        try:
            evaluation, intervals, differences, counts = job.run(np.searchsorted(keep, rows[usable]))
        except _TooSmall as exc:
            infos.append({**info, "skipped": str(exc)})
            continue
        infos.append({**info, **counts})
        for name, table in zip(GROUP_TABLES, (thin(evaluation.curves, CURVE_POINTS), evaluation.summary,
                                              intervals, differences)):
            if table is not None:
                tables[name].append(table.assign(group=value)[["group", *table.columns]])
    return {"info": infos, **{name: pd.concat(parts, ignore_index=True) if parts else None
                              for name, parts in tables.items()}}


def _intervals(comparisons, qualities: dict, labels, tau: float, resamples: int, seed: int):
    """The identity-bootstrap interval table and the paired differences of every two fields (None for one)."""
    boot = bootstrap_pauc(comparisons, qualities, labels, tau, limit=INTERVAL_AT, resamples=resamples, seed=seed)
    names = list(qualities)
    rows = [{"a": a, "b": b, **dict(zip(("difference", "lo", "hi"), boot.difference(a, b)))}
            for i, a in enumerate(names) for b in names[i + 1:]]
    return boot.table(), pd.DataFrame(rows) if rows else None


def _release_old_field(dataset, eval_key: str, new_field: str) -> None:
    """A rerun under the same key keeps the embedding field it reuses and drops one it no longer uses."""
    if eval_key in list_evaluations(dataset):
        old = dataset.get_brain_info(eval_key).config.embeddings_field
        if old != new_field:
            FaceQANEvaluation(dataset.get_brain_info(eval_key).config).cleanup(dataset, eval_key)


def list_evaluations(dataset) -> list[str]:
    return dataset.list_brain_runs(method=METHOD)


def _require(dataset, eval_key: str) -> None:
    known = list_evaluations(dataset)
    if eval_key not in known:
        raise ValueError(f"no FaceQAN evaluation {eval_key!r} on this dataset; evaluations: {known}")


def load_evaluation(dataset, eval_key: str, cache: bool = True) -> FaceQANEvaluationResults:
    """The stored results (curves, summary, info), read back without recomputing anything."""
    _require(dataset, eval_key)
    return dataset.load_brain_results(eval_key, cache=cache)


def delete_evaluation(dataset, eval_key: str) -> None:
    """Remove the run and the embedding field it created (a field it only reused is kept)."""
    _require(dataset, eval_key)
    dataset.delete_brain_run(eval_key)
