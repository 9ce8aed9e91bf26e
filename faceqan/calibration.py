"""The unified quality score: an integer 0-100 (higher is better) from FaceQAN's Q, per model, in the spirit of
ISO/IEC 29794-1, so "which value is good?" has an answer that reads the same for every model.

A calibration is the Q of a reference set of faces at its 1st, 2nd, ..., 100th percentile (100 knots). A face's
unified score is the number of knots its Q reaches: ``u = k`` means the face scores at least as high as the
k-th percentile of the reference faces, i.e. about k % of the reference faces score lower. The map is monotone
(non-decreasing) in Q, so ranking or rejecting by the unified score is ranking or rejecting by Q up to ties.
A face that could not be assessed gets ``FAILURE_TO_ASSESS`` (255, ISO/IEC 29794-1's value) in files; the
FiftyOne layer stores None there instead, like the face's other values, so no filter ranks a failure as good.

A calibration holds only for the model weights and the score settings its reference set was scored with (a
different eps or p moves every Q): ``applies_to`` checks both. Models ship one in ``models/calibrations/``
when a reference set was scored with them (``shipped``); for any other model or settings, ``fit`` makes one
from the user's own scores in one call. It never changes Q, so it is not part of what a stored score depends
on: changing it rewrites only the unified scores.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .config import FaceQANConfig, setting_changes

SCALE = 100  # the unified score runs from 0 to SCALE
FAILURE_TO_ASSESS = 255  # ISO/IEC 29794-1: the value of a score that could not be computed
MIN_REFERENCE = 100  # fewer faces than percentiles would make knots repeat one face's Q
SHIPPED = Path(__file__).resolve().parent / "models" / "calibrations"
COLUMN = "score"  # the unified score's column in `faceqan score` tables
RECORD_KEY = "calibration"  # where a table's settings record keeps the calibration its column was made with


class CalibrationError(ValueError):
    """A calibration that cannot be fitted, read or used for these scores; the message says what to do."""


@dataclass(frozen=True)
class Calibration:
    """Q -> unified score for one model's weights (``model_sha256``) and score settings."""

    knots: tuple[float, ...]  # knots[k - 1]: the k-th percentile of the reference faces' Q, k = 1..100
    model: str
    model_sha256: str
    score_settings: dict  # faceqan.config.score_settings of the reference run
    reference: str  # what the reference faces were, in words
    faces: int

    def __post_init__(self):
        knots = np.asarray(self.knots, dtype=np.float64)
        if knots.shape != (SCALE,) or not np.all(np.isfinite(knots)) or np.any(np.diff(knots) < 0):
            raise CalibrationError(f"a calibration has {SCALE} finite non-decreasing knots, got {len(knots)}")
        kinds = {"model": str, "model_sha256": str, "score_settings": dict, "reference": str, "faces": int}
        wrong = [name for name, kind in kinds.items() if not isinstance(getattr(self, name), kind)]
        if wrong or isinstance(self.faces, bool):
            raise CalibrationError(f"not a FaceQAN calibration: {', '.join(wrong) or 'faces'} of the wrong type")

    def scores(self, quality) -> np.ndarray:
        """Unified scores (int) of an array of Q; None or NaN (not assessed) -> FAILURE_TO_ASSESS."""
        q = _qualities(quality)
        found = np.searchsorted(np.asarray(self.knots), q, side="right")
        return np.where(np.isnan(q), FAILURE_TO_ASSESS, found).astype(np.int64)

    def score(self, quality: float | None) -> int:
        return int(self.scores([quality])[0])

    def threshold(self, unified: int) -> float:
        """The lowest Q whose unified score is ``unified`` or more (``-inf`` for 0): the same cut on the Q scale."""
        if isinstance(unified, bool) or not isinstance(unified, (int, np.integer)) or not 0 <= unified <= SCALE:
            raise CalibrationError(f"a unified score is an integer 0-{SCALE}, got {unified!r}")
        return -math.inf if unified == 0 else float(self.knots[unified - 1])

    def applies_to(self, model_sha256: str | None, score_settings: dict) -> bool:
        """Whether scores of these weights and settings read on this calibration's scale."""
        return model_sha256 == self.model_sha256 and dict(score_settings) == dict(self.score_settings)

    def check_applies(self, model_sha256: str | None, score_settings: dict, what: str = "this calibration") -> None:
        """Refuses, naming what differs, scores of other weights or settings than the reference faces'."""
        if self.applies_to(model_sha256, score_settings):
            return
        changed = setting_changes({"weights": self.model_sha256[:12], **self.score_settings},
                                  {"weights": (model_sha256 or "unknown")[:12], **score_settings})
        raise CalibrationError(f"{what} was fitted on {self.model} scores of other weights or settings than these "
                               f"({'; '.join(changed)}): fit one on scores made with them (`faceqan calibrate` or "
                               "calibrate_quality)")

    def to_dict(self) -> dict:
        return {**asdict(self), "knots": list(self.knots)}

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        try:
            return cls(**{**values, "knots": tuple(float(k) for k in values["knots"]),
                          "score_settings": dict(values["score_settings"])})
        except CalibrationError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"not a FaceQAN calibration: {error}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CalibrationError(f"cannot read the calibration {path}: {error}") from None
        if not isinstance(values, dict):
            raise CalibrationError(f"{path} is not a FaceQAN calibration (a JSON object)")
        return cls.from_dict(values)


def _qualities(values) -> np.ndarray:
    """Q values as a flat float array, NaN where one is None (not assessed)."""
    return np.asarray(values, dtype=object).ravel().astype(np.float64)


def fit(quality, model: str, model_sha256: str, score_settings: dict, reference: str) -> Calibration:
    """A calibration from the Q of reference faces (failures, None or NaN, are left out)."""
    q = _qualities(quality)
    q = q[np.isfinite(q)]
    if len(q) < MIN_REFERENCE:
        raise CalibrationError(f"a calibration needs the Q of at least {MIN_REFERENCE} assessed faces, got {len(q)}")
    knots = np.quantile(q, np.arange(1, SCALE + 1) / SCALE, method="inverted_cdf")
    return Calibration(tuple(float(k) for k in knots), model, model_sha256, dict(score_settings), reference, len(q))


def as_calibration(value) -> Calibration:
    """A Calibration as given, or read from its JSON file."""
    if isinstance(value, Calibration):
        return value
    if isinstance(value, (str, Path)):
        return Calibration.load(value)
    raise CalibrationError(f"calibration must be a Calibration or the path of its JSON file, got {value!r}")


def shipped(model: str) -> Calibration | None:
    """The calibration that comes with a registered model, if one was fitted for it."""
    path = SHIPPED / f"{model}.json"
    return Calibration.load(path) if Path(model).name == model and path.is_file() else None


def choose(model: str, model_sha256: str | None, score_settings: dict, given: Calibration | None = None,
           kept: Calibration | None = None, what: str = "this calibration") -> Calibration | None:
    """The calibration scores of these weights and settings get their unified score from: ``given`` (refused
    unless it applies), else ``kept`` (the one the output or run being continued holds) while it applies, else
    the model's shipped one when it applies, else None."""
    if given is not None:
        given.check_applies(model_sha256, score_settings, what)
        return given
    for found in (kept, shipped(model)):
        if found is not None and found.applies_to(model_sha256, score_settings):
            return found
    return None


def recorded_score_settings(record: dict) -> dict:
    """The score settings a `faceqan score` settings record holds (every one a score depends on)."""
    names = FaceQANConfig().score_settings()
    missing = [name for name in names if name not in record]
    if missing:
        raise CalibrationError(f"the settings record has no {', '.join(missing)}: it was written by an older "
                               "faceqan; score the files again")
    return {name: record[name] for name in names}


def with_scores(rows: list[dict], calibration: Calibration | None) -> list[dict]:
    """Table rows with their unified score under ``calibration`` (FAILURE_TO_ASSESS for a failed face), or
    without that column when there is none."""
    rows = [{key: value for key, value in row.items() if key != COLUMN} for row in rows]
    if calibration is not None:
        for row in rows:
            row[COLUMN] = calibration.score(row["quality"])
    return rows

