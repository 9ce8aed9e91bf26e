"""Names of the fields a FaceQAN run writes, derived from one quality field name, and the one rule for which
fields the plugin may write at all.

``<field>`` holds Q; ``<field>_mean``, ``_std``, ``_q_adv`` and ``_symmetry`` its parts; ``<field>_error``
why a face could not be scored (None when it was); ``<field>_run`` the configuration fingerprint. A run that
keeps noise maps also writes per face ``<field>_noise_map`` (the crop's map PNG) and
``<field>_noise_concentration``, and per sample ``<field>_heatmap`` (the fo.Heatmap the App overlays); these
carry a mark in their field info, since a run need not write them.

Users' data is never overwritten: a name is refused when it is FiftyOne's own (a default sample field, a
built-in attribute of a label, anything starting with ``_``) or when the field already exists and was not
written by the FaceQAN run, detection or evaluation that now wants to write it. Every check runs before any
image is read, so a refused call leaves the dataset as it was.
"""

from __future__ import annotations

import fiftyone as fo
from fiftyone.core.sample import get_default_sample_fields

from faceqan.noise_maps import MAP_COLUMNS

# engine row key (faceqan.aggregate.QualityScores.FIELDS and "error") -> field suffix
PARTS = {"quality": "", "mean_similarity": "_mean", "std_similarity": "_std", "q_adv": "_q_adv",
         "symmetry": "_symmetry", "error": "_error"}
DETECTOR_INFO = "faceqan_detector"  # field info key that marks a Detections field detect_faces created
MAPS_INFO = "faceqan_maps"  # field info key that marks a map field, with the key of the run that wrote it


def field_names(quality_field: str) -> dict[str, str]:
    """Engine row key -> field name, for every value written per face."""
    return {key: quality_field + suffix for key, suffix in PARTS.items()}


def run_field(quality_field: str) -> str:
    return quality_field + "_run"


def output_fields(quality_field: str, detections_field: str | None = None) -> list[str]:
    """Full paths of the value fields (embedded in the detections when faces come from a detections field)."""
    names = list(field_names(quality_field).values())
    if detections_field:
        return [f"{detections_field}.detections.{name}" for name in names]
    return names


def map_field_names(quality_field: str) -> dict[str, str]:
    """Map column (faceqan.noise_maps.MAP_COLUMNS) -> field name, for the map values written per face."""
    return {column: f"{quality_field}_{column}" for column in MAP_COLUMNS}


def heatmap_field(quality_field: str) -> str:
    """The sample field of the fo.Heatmap that lays the maps of the sample's faces on its image."""
    return quality_field + "_heatmap"


def map_fields(quality_field: str, detections_field: str | None = None) -> list[str]:
    """Full paths of every map field (the per-face ones embedded in the detections when faces come from a
    detections field; the heatmap always on the sample)."""
    prefix = f"{detections_field}.detections." if detections_field else ""
    return [prefix + name for name in map_field_names(quality_field).values()] + [heatmap_field(quality_field)]


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
    prefix = f"{detections_field}.detections." if detections_field else ""
    existing = set(dataset.get_field_schema(flat=True))
    if detections_field:  # attributes of labels need not be declared in the schema
        existing |= set(dataset.get_dynamic_field_schema(fields=detections_field) or {})
    for name in [*field_names(quality_field).values(), run_field(quality_field)]:
        if prefix + name in existing:
            raise ValueError(f"quality_field {quality_field!r}: the field {prefix + name!r} already exists and no "
                             f"FaceQAN run of that key wrote it; choose another name")


def written_map_fields(dataset, quality_field: str, detections_field: str | None) -> list[str]:
    """The map fields the run of key ``quality_field`` wrote: they exist and carry its mark."""
    schema = dataset.get_field_schema(flat=True)
    return [path for path in map_fields(quality_field, detections_field)
            if path in schema and (schema[path].info or {}).get(MAPS_INFO) == quality_field]


def check_map_target(dataset, quality_field: str, detections_field: str | None) -> None:
    """The map fields a run of key ``quality_field`` would write are new or were written by that run."""
    existing = set(dataset.get_field_schema(flat=True))
    if detections_field:  # attributes of labels need not be declared in the schema
        existing |= set(dataset.get_dynamic_field_schema(fields=detections_field) or {})
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
