"""Names of the fields a FaceQAN run writes, derived from one quality field name, and the one rule for which
fields the plugin may write at all.

``<field>`` holds Q; ``<field>_mean``, ``_std``, ``_q_adv`` and ``_symmetry`` its parts; ``<field>_error``
why a face could not be scored (None when it was); ``<field>_run`` the configuration fingerprint;
``<field>_score`` the unified score 0-100 (faceqan.calibration), only when the run has a calibration, None where
the face could not be assessed. A run that keeps noise maps also writes per face ``<field>_noise_map`` (the
crop's map PNG) and ``<field>_noise_concentration``, and per sample ``<field>_heatmap`` (the fo.Heatmap the App
overlays). The score and map fields carry a mark in their field info, since a run need not write them.

Users' data is never overwritten: a name is refused when it is FiftyOne's own (a default sample field, a
built-in attribute of a label, anything starting with ``_``) or when the field already exists and was not
written by the FaceQAN run, detection or evaluation that now wants to write it (the unified score's field,
which a run may gain after it was created, carries a mark in its field info). Every check runs before any
image is read, so a refused call leaves the dataset as it was.
"""

from __future__ import annotations

import fiftyone as fo
from fiftyone.core.sample import get_default_sample_fields

from faceqan.noise_maps import MAP_COLUMNS

# engine row key (faceqan.aggregate.QualityScores.FIELDS and "error") -> field suffix
PARTS = {"quality": "", "mean_similarity": "_mean", "std_similarity": "_std", "q_adv": "_q_adv",
         "symmetry": "_symmetry", "error": "_error"}
NUMERIC_FIELDS = (fo.FloatField, fo.IntField)  # what can hold a quality score
DETECTOR_INFO = "faceqan_detector"  # field info key that marks a Detections field detect_faces created
SCORE_INFO = "faceqan_unified_score"  # field info key that marks a unified-score field a FaceQAN run created
MAPS_INFO = "faceqan_maps"  # field info key that marks a map field, with the key of the run that wrote it


def field_names(quality_field: str) -> dict[str, str]:
    """Engine row key -> field name, for every value written per face."""
    return {key: quality_field + suffix for key, suffix in PARTS.items()}


def run_field(quality_field: str) -> str:
    return quality_field + "_run"


def score_field(quality_field: str) -> str:
    return quality_field + "_score"


def label_path(name: str, detections_field: str | None = None) -> str:
    """A field's full path: on each face when faces come from a detections field."""
    return f"{detections_field}.detections.{name}" if detections_field else name


def output_fields(quality_field: str, detections_field: str | None = None) -> list[str]:
    """Full paths of the value fields, the unified score's included (which exists only once a calibration
    applied)."""
    return [label_path(name, detections_field)
            for name in [*field_names(quality_field).values(), score_field(quality_field)]]


def map_field_names(quality_field: str) -> dict[str, str]:
    """Map column (faceqan.noise_maps.MAP_COLUMNS) -> field name, for the map values written per face."""
    return {column: f"{quality_field}_{column}" for column in MAP_COLUMNS}


def heatmap_field(quality_field: str) -> str:
    """The sample field of the fo.Heatmap that lays the maps of the sample's faces on its image."""
    return quality_field + "_heatmap"


def map_fields(quality_field: str, detections_field: str | None = None) -> list[str]:
    """Full paths of every map field (the per-face ones embedded in the detections when faces come from a
    detections field; the heatmap always on the sample)."""
    return [label_path(name, detections_field) for name in map_field_names(quality_field).values()] + \
        [heatmap_field(quality_field)]


def validate_field_name(name: str, what: str = "quality_field") -> str:
    """A plain identifier that is not one of FiftyOne's own sample fields."""
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"{what} must be a plain identifier not starting with '_', such as 'faceqan', "
                         f"got {name!r}")
    if name in get_default_sample_fields(include_private=True):
        raise ValueError(f"{what} {name!r} is a built-in FiftyOne field; choose another name")
    return name


def check_quality_target(dataset, quality_field: str, detections_field: str | None) -> None:
    """The fields a FaceQAN run of key ``quality_field`` would write are new, or were written by the
    FaceQAN run of that key on the same faces (a rerun); faces come from an existing Detections field."""
    validate_field_name(quality_field)
    if detections_field is not None:
        check_detections_field(dataset, detections_field)
    if quality_field in dataset.list_brain_runs():
        config = dataset.get_brain_info(quality_field).config
        if config.method != "faceqan":
            raise ValueError(f"quality_field {quality_field!r} is the key of another run ({config.method}); "
                             f"choose another name")
        if config.detections_field != detections_field:
            where = f"detections field {config.detections_field!r}" if config.detections_field else "whole images"
            raise ValueError(f"quality_field {quality_field!r} holds FaceQAN scores of {where}; choose another "
                             f"name or delete that run first (dataset.delete_brain_run({quality_field!r}))")
        return
    existing = _existing(dataset, detections_field)
    for name in [*field_names(quality_field).values(), run_field(quality_field), score_field(quality_field)]:
        if label_path(name, detections_field) in existing:
            raise ValueError(f"quality_field {quality_field!r}: the field {label_path(name, detections_field)!r} "
                             "already exists and no FaceQAN run of that key wrote it; choose another name")


def _existing(dataset, detections_field: str | None) -> set[str]:
    """Every field path of the dataset; with a detections field, the attributes its labels hold too (they need
    not be declared in the schema)."""
    existing = set(dataset.get_field_schema(flat=True))
    if detections_field:
        existing |= set(dataset.get_dynamic_field_schema(fields=detections_field) or {})
    return existing


def check_score_target(dataset, quality_field: str, detections_field: str | None) -> None:
    """The unified score of run ``quality_field`` goes to a new field or to the one a FaceQAN run created (its
    field info carries the mark), never to a field of the user's that happens to have its name."""
    path = label_path(score_field(quality_field), detections_field)
    if path not in _existing(dataset, detections_field):
        return
    field = dataset.get_field(path)
    if field is None or (field.info or {}).get(SCORE_INFO) != quality_field:
        raise ValueError(f"the field {path!r} already exists and FaceQAN did not create it for run "
                         f"{quality_field!r}, so the unified score cannot be stored there; rename that field")


def declare_score_field(dataset, quality_field: str, detections_field: str | None) -> None:
    """Create the unified score's integer field with FaceQAN's mark, unless it is there (check_score_target)."""
    path = label_path(score_field(quality_field), detections_field)
    if not dataset.has_sample_field(path):
        dataset.add_sample_field(path, fo.IntField, info={SCORE_INFO: quality_field})


def written_map_fields(dataset, quality_field: str, detections_field: str | None) -> list[str]:
    """The map fields the run of key ``quality_field`` wrote: they exist and carry its mark."""
    schema = dataset.get_field_schema(flat=True)
    return [path for path in map_fields(quality_field, detections_field)
            if path in schema and (schema[path].info or {}).get(MAPS_INFO) == quality_field]


def check_map_target(dataset, quality_field: str, detections_field: str | None) -> None:
    """The map fields a run of key ``quality_field`` would write are new or were written by that run."""
    existing = _existing(dataset, detections_field)
    ours = written_map_fields(dataset, quality_field, detections_field)
    for path in map_fields(quality_field, detections_field):
        if path in existing and path not in ours:
            raise ValueError(f"quality_field {quality_field!r}: the field {path!r} already exists and no FaceQAN run "
                             f"of that key wrote it; choose another name")


def check_detections_field(dataset, field: str) -> None:
    """``field`` exists and holds fo.Detections (faces to score one by one)."""
    kind = dataset.get_field_schema().get(field)
    if kind is None:
        raise ValueError(f"the dataset has no field {field!r}; run detect_faces(samples, field={field!r}) first "
                         f"or name an existing Detections field")
    if not (isinstance(kind, fo.EmbeddedDocumentField) and issubclass(kind.document_type, fo.Detections)):
        raise ValueError(f"detections_field {field!r} is not a Detections field")


def check_detector_target(dataset, field: str) -> None:
    """detect_faces writes only a new field or one it created before."""
    validate_field_name(field, "field")
    if dataset.has_sample_field(field) and DETECTOR_INFO not in (dataset.get_field(field).info or {}):
        raise ValueError(f"field: the field {field!r} already exists and detect_faces did not write it; "
                         f"choose another name")
