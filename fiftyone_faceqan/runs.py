"""FaceQAN as a FiftyOne brain run: listed by list_brain_runs, reloaded by load_brain_results and removed
(with its fields) by delete_brain_run. These classes live in the installed package because FiftyOne stores
their import path with the run and imports it again when the run is loaded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import fiftyone.core.brain as fob

from faceqan.config import FaceQANConfig, score_settings, settings
from faceqan.models import DEFAULT_MODEL

from .fields import field_names, label_path, output_fields, run_field, written_map_fields


class FaceQANBrainConfig(fob.BrainMethodConfig):
    """Everything a stored score depends on: model name and weights checksum, where the faces come from
    (whole images or a detections field), how they are aligned, and every setting of ``settings_class``
    under its own name (a run stored before a setting existed reads its default).

    ``fingerprint`` is written next to every score, so a rerun skips only faces scored exactly like this.
    ``calibration`` (the dict of a faceqan.calibration.Calibration, or None) maps Q to the unified score in
    ``<field>_score``; it does not change Q, so it is not part of the fingerprint.
    """

    settings_class = FaceQANConfig

    def __init__(self, quality_field="faceqan", model=DEFAULT_MODEL, model_sha256=None, detections_field=None,
                 alignment=None, calibration=None, **kwargs):
        self.quality_field = quality_field
        self.model = model
        self.model_sha256 = model_sha256
        self.detections_field = detections_field
        self.alignment = alignment
        self.calibration = calibration
        for setting in settings(self.settings_class):
            setattr(self, setting.name, kwargs.pop(setting.name, setting.default))
        super().__init__(**kwargs)

    @property
    def method(self):
        return "faceqan"

    def faceqan_config(self) -> FaceQANConfig:
        """The run's FaceQAN settings as a config to score with again (device "auto": the one recorded may not
        exist on this machine, and it never changes a score)."""
        values = {s.name: getattr(self, s.name) for s in settings(self.settings_class)}
        return self.settings_class(**{**values, "device": "auto"})

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
        dataset = samples._root_dataset  # the unified score's field exists only once a calibration applied
        return [f for f in output_fields(self.config.quality_field, self.config.detections_field)
                if dataset.has_sample_field(f)] + written_map_fields(dataset, self.config.quality_field,
                                                                     self.config.detections_field)

    def cleanup(self, samples, key):
        """Deletes the fields the run wrote and the map PNGs they name."""
        from .maps import delete_map_files

        dataset = samples._root_dataset
        quality_field, detections_field = self.config.quality_field, self.config.detections_field
        maps = written_map_fields(dataset, quality_field, detections_field)
        delete_map_files(dataset, maps)
        names = [*output_fields(quality_field, detections_field), label_path(run_field(quality_field), detections_field),
                 *maps]
        dataset.delete_sample_fields([n for n in names if dataset.has_sample_field(n)])

    def _validate_run(self, samples, key, existing_info):
        self._validate_fields_match(key, "detections_field", existing_info)


class FaceQANResults(fob.BrainResults):
    """What one call produced: faces scored, skipped (already scored) and failed, and seconds taken; for a run
    split into ``shards`` the call that queued them (the shards report their own counts). ``progress()`` is the
    run's state over its whole target, read from the stored scores."""

    def __init__(self, samples, config, brain_key, scored=0, skipped=0, failed=0, seconds=0.0, shards=None,
                 backend=None):
        super().__init__(samples, config, brain_key, backend=backend)
        self.scored = scored
        self.skipped = skipped
        self.failed = failed
        self.seconds = seconds
        self.shards = shards

    def attributes(self):
        return ["cls", "scored", "skipped", "failed", "seconds", "shards"]

    def progress(self) -> "RunProgress":
        return run_progress(self.samples, self.key)

    @classmethod
    def _from_dict(cls, d, samples, config, brain_key):
        return cls(samples, config, brain_key, scored=d.get("scored", 0), skipped=d.get("skipped", 0),
                   failed=d.get("failed", 0), seconds=d.get("seconds", 0.0), shards=d.get("shards"))


@dataclass(frozen=True)
class RunProgress:
    """Targets (samples, or faces of a detections field) of a run: scored, failed (error stored, retried by the
    next call) and total. ``complete``: every target has its result."""

    scored: int
    failed: int
    total: int

    @property
    def pending(self) -> int:
        return self.total - self.scored - self.failed

    @property
    def complete(self) -> bool:
        return self.pending == 0


def faceqan_runs(dataset) -> dict[str, FaceQANBrainConfig]:
    """The quality path of every FaceQAN run of the dataset, with the run's config."""
    runs = {}
    for key in dataset.list_brain_runs():
        config = dataset.get_brain_info(key).config
        if isinstance(config, FaceQANBrainConfig):
            runs[label_path(config.quality_field, config.detections_field)] = config
    return runs


def run_output_fields(dataset) -> set[str]:
    """The paths FaceQAN runs of the dataset write (Q, its parts, errors, fingerprints, unified scores): never
    an identity or a group."""
    return {path for config in faceqan_runs(dataset).values()
            for path in (*output_fields(config.quality_field, config.detections_field),
                         label_path(run_field(config.quality_field), config.detections_field))}


def stored_run_config(samples, quality_field: str) -> FaceQANBrainConfig:
    """The stored config of the FaceQAN run ``quality_field``, or one line saying there is none."""
    dataset = samples._root_dataset
    config = dataset.get_brain_info(quality_field).config if quality_field in dataset.list_brain_runs() else None
    if not isinstance(config, FaceQANBrainConfig):
        raise ValueError(f"dataset {dataset.name!r} has no FaceQAN run {quality_field!r}: compute_face_quality "
                         "makes one")
    return config


def run_progress(samples, quality_field: str = "faceqan") -> RunProgress:
    """Progress of the FaceQAN run ``quality_field`` over ``samples`` (a dataset: the run's own target view),
    counted in the stored scores, so any number of workers can write while anyone reads: a target counts
    once it carries the run's fingerprint."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    dataset = samples._root_dataset
    config = stored_run_config(samples, quality_field)
    if isinstance(samples, fo.Dataset):
        samples = dataset.load_brain_view(quality_field)
    marked = F(run_field(quality_field)) == config.fingerprint  # the writer stores the mark after the values
    matches = marked, marked & (F(field_names(quality_field)["error"]) != None)  # noqa: E711
    if config.detections_field:  # label attributes workers add are matched without this process's schema
        path = f"{config.detections_field}.detections"
        total = samples.count(path)
        finished, failed = (samples.filter_labels(config.detections_field, m).count(path) for m in matches)
    else:
        total = samples.count()
        finished, failed = (samples.match(m).count() for m in matches)
    return RunProgress(finished - failed, failed, total)
