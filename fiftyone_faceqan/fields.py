"""Names of the fields a FaceQAN run writes, derived from one quality field name.

``<field>`` holds Q; ``<field>_mean``, ``_std``, ``_q_adv`` and ``_symmetry`` its parts; ``<field>_error``
why a face could not be scored (None when it was); ``<field>_run`` the configuration fingerprint.
"""

from __future__ import annotations

# engine row key (faceqan.aggregate.QualityScores.FIELDS and "error") -> field suffix
PARTS = {"quality": "", "mean_similarity": "_mean", "std_similarity": "_std", "q_adv": "_q_adv",
         "symmetry": "_symmetry", "error": "_error"}


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


def validate_field_name(quality_field: str) -> str:
    if not isinstance(quality_field, str) or not quality_field.isidentifier() or quality_field.startswith("_"):
        raise ValueError(f"quality_field must be a plain identifier such as 'faceqan', got {quality_field!r}")
    return quality_field
