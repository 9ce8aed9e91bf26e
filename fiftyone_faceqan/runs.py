"""FaceQAN as a FiftyOne brain run: listed by list_brain_runs, reloaded by load_brain_results and removed
(with its fields) by delete_brain_run. These classes live in the installed package because FiftyOne stores
their import path with the run and imports it again when the run is loaded."""

from __future__ import annotations

import hashlib
import json

import fiftyone.core.brain as fob

from faceqan.config import FaceQANConfig, score_settings, settings
from faceqan.models import DEFAULT_MODEL

from .fields import output_fields, run_field


class FaceQANBrainConfig(fob.BrainMethodConfig):
    """Everything a stored score depends on: model name and weights checksum, where the faces come from
    (whole images or a detections field), how they are aligned, and every setting of ``settings_class``
    under its own name (a run stored before a setting existed reads its default).

    ``fingerprint`` is written next to every score, so a rerun skips only faces scored exactly like this.
    """

    settings_class = FaceQANConfig

    def __init__(self, quality_field="faceqan", model=DEFAULT_MODEL, model_sha256=None, detections_field=None,
                 alignment=None, **kwargs):
        self.quality_field = quality_field
        self.model = model
        self.model_sha256 = model_sha256
        self.detections_field = detections_field
        self.alignment = alignment
        for setting in settings(self.settings_class):
            setattr(self, setting.name, kwargs.pop(setting.name, setting.default))
        super().__init__(**kwargs)

    @property
    def method(self):
        return "faceqan"

    @property
    def fingerprint(self) -> str:
        """sha256 over what changes a score: the model, its weights, the faces, their alignment, the version
        of the scoring arithmetic and the settings that decide the score (not the device or the batch size)."""
        decisive = {name: getattr(self, name) for name in ("model", "model_sha256", "detections_field", "alignment")}
        decisive.update(score_settings(self, self.settings_class))
        return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]


class FaceQANBrain(fob.BrainMethod):
    """The run's bookkeeping: which fields it wrote and how to remove them."""

    def get_fields(self, samples, key):
        return output_fields(self.config.quality_field, self.config.detections_field)

    def cleanup(self, samples, key):
        dataset = samples._root_dataset
        prefix = f"{self.config.detections_field}.detections." if self.config.detections_field else ""
        names = [*output_fields(self.config.quality_field, self.config.detections_field),
                 prefix + run_field(self.config.quality_field)]
        dataset.delete_sample_fields([n for n in names if dataset.has_sample_field(n)])

    def _validate_run(self, samples, key, existing_info):
        self._validate_fields_match(key, "detections_field", existing_info)


class FaceQANResults(fob.BrainResults):
    """What a run produced: counts of faces scored, skipped (already scored) and failed, and seconds taken."""

    def __init__(self, samples, config, brain_key, scored=0, skipped=0, failed=0, seconds=0.0, backend=None):
        super().__init__(samples, config, brain_key, backend=backend)
        self.scored = scored
        self.skipped = skipped
        self.failed = failed
        self.seconds = seconds

    def attributes(self):
        return ["cls", "scored", "skipped", "failed", "seconds"]

    @classmethod
    def _from_dict(cls, d, samples, config, brain_key):
        return cls(samples, config, brain_key, scored=d.get("scored", 0), skipped=d.get("skipped", 0),
                   failed=d.get("failed", 0), seconds=d.get("seconds", 0.0))
