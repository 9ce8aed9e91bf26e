"""Users' data is never overwritten and a refused call changes nothing: compute_face_quality, detect_faces and
evaluate_quality refuse FiftyOne's own fields and fields they did not write, and every setting, model and
weights file is checked before any image is read (the dataset's schema, values and runs compared before and
after). A rerun retries the faces whose last attempt failed."""

from __future__ import annotations

import shutil

import pytest

from lfw_data import DATA, subset_paths

FAST = {"copies": 2, "iterations": 1, "progress": False}  # the exact score does not matter here


def _snapshot(dataset):
    """Everything a call could change: schema (with label attributes), every value, the runs."""
    dataset.reload()
    schema = {name: type(field).__name__ for name, field in dataset.get_field_schema(flat=True).items()}
    return schema, [sample.to_dict() for sample in dataset], dataset.list_brain_runs()


@pytest.fixture
def users_dataset(fo_dataset, tmp_path):
    """Two real faces and a missing file, with the user's own fields: a sample field ``confidence``, a field
    ``faceqan_mean`` that only looks like FaceQAN's, and faces with an undeclared attribute ``quality``."""
    import fiftyone as fo

    def face():
        return fo.Detections(detections=[fo.Detection(label="face", bounding_box=[0.1, 0.1, 0.8, 0.8],
                                                      confidence=0.9, quality=0.5)])

    paths = [str(p) for p in subset_paths(2)] + [str(tmp_path / "missing.jpg")]
    fo_dataset.add_samples([fo.Sample(filepath=p, confidence=0.25, faceqan_mean=1.5, faces=face(),
                                      ground_truth=fo.Classification(label="someone")) for p in paths])
    return fo_dataset


def test_builtin_fields_are_refused_and_nothing_changes(users_dataset):
    from fiftyone.core.sample import get_default_sample_fields

    from fiftyone_faceqan import compute_face_quality

    before = _snapshot(users_dataset)
    builtins = get_default_sample_fields()
    assert {"filepath", "id", "metadata", "tags"} <= set(builtins)
    for name in builtins:
        with pytest.raises(ValueError, match=f"quality_field '{name}' is a built-in FiftyOne field"):
            compute_face_quality(users_dataset, quality_field=name, **FAST)
    with pytest.raises(ValueError, match="plain identifier not starting with '_'"):
        compute_face_quality(users_dataset, quality_field="_rand", **FAST)
    assert _snapshot(users_dataset) == before


@pytest.mark.parametrize("kwargs, field", [
    ({"quality_field": "confidence"}, "confidence"),
    ({"quality_field": "faceqan"}, "faceqan_mean"),  # a derived name is the user's
    ({"quality_field": "label", "detections_field": "faces"}, "faces.detections.label"),
    ({"quality_field": "confidence", "detections_field": "faces"}, "faces.detections.confidence"),
    ({"quality_field": "fresh"}, None),  # control: a free name runs and writes
    ({"quality_field": "quality", "detections_field": "faces"}, "faces.detections.quality"),  # undeclared
])
def test_users_fields_are_refused_with_one_line_naming_the_field(users_dataset, kwargs, field):
    from fiftyone_faceqan import compute_face_quality

    before = _snapshot(users_dataset)
    if field is None:
        results = compute_face_quality(users_dataset, **kwargs, **FAST)
        assert (results.scored, results.failed) == (2, 1)
        assert _snapshot(users_dataset) != before
        return
    with pytest.raises(ValueError, match=f"the field '{field}' already exists and no FaceQAN run") as error:
        compute_face_quality(users_dataset, **kwargs, **FAST)
    assert "\n" not in str(error.value)
    assert _snapshot(users_dataset) == before


def test_keys_of_other_runs_and_other_faces_are_refused(users_dataset):
    from fiftyone_faceqan import FaceQANBrain, FaceQANBrainConfig, compute_face_quality
    from fiftyone_faceqan.evaluation import FaceQANEvaluation, FaceQANEvaluationConfig

    FaceQANEvaluation(FaceQANEvaluationConfig(["confidence"])).register_run(users_dataset, "ev")
    FaceQANBrain(FaceQANBrainConfig(quality_field="whole")).register_run(users_dataset, "whole")
    before = _snapshot(users_dataset)
    with pytest.raises(ValueError, match=r"quality_field 'ev' is the key of another run \(faceqan_evaluation\)"):
        compute_face_quality(users_dataset, quality_field="ev", **FAST)
    with pytest.raises(ValueError, match="'whole' holds FaceQAN scores of whole images"):
        compute_face_quality(users_dataset, quality_field="whole", detections_field="faces", **FAST)
    with pytest.raises(ValueError, match="detections_field 'ground_truth' is not a Detections field"):
        compute_face_quality(users_dataset, quality_field="q", detections_field="ground_truth", **FAST)
    assert _snapshot(users_dataset) == before


@pytest.mark.parametrize("kwargs, error, message", [
    ({"device": "cuda:64"}, ValueError, "device 'cuda:64'"),
    ({"num_workers": -1}, ValueError, "num_workers must be"),
    ({"copies": 1}, ValueError, "copies must be at least 2"),
    ({"alignment": "sideways"}, ValueError, "alignment must be one of"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be a positive integer"),
    ({"model": "iresnet50"}, RuntimeError, "iresnet50 needs weights="),
    ({"model": "sface", "weights": "/no/such/backbone.pth"}, RuntimeError, "does not exist"),
    ({"model": "nosuchnet"}, ValueError, "unknown model 'nosuchnet'"),
])
def test_bad_settings_stop_before_any_work(users_dataset, kwargs, error, message):
    from fiftyone_faceqan import compute_face_quality

    before = _snapshot(users_dataset)
    settings = {**FAST, **kwargs}
    with pytest.raises(error, match=message):
        compute_face_quality(users_dataset, quality_field="q", **settings)
    assert _snapshot(users_dataset) == before


def test_detect_faces_writes_only_its_own_field(users_dataset, tmp_path):
    from fiftyone_faceqan import detect_faces
    from fiftyone_faceqan.fields import DETECTOR_INFO

    before = _snapshot(users_dataset)
    for kwargs, message in [
        ({"field": "filepath"}, "field 'filepath' is a built-in FiftyOne field"),
        ({"field": "_faces"}, "plain identifier"),
        ({"field": "ground_truth"}, "the field 'ground_truth' already exists and detect_faces did not write it"),
        ({"field": "faces"}, "the field 'faces' already exists and detect_faces did not write it"),
        ({"field": "found", "min_confidence": 2.0}, r"min_confidence must be in \[0, 1\]"),
        ({"field": "found", "detector": "nosuch"}, "unknown detector 'nosuch'"),
    ]:
        with pytest.raises(ValueError, match=message):
            detect_faces(users_dataset, progress=False, **kwargs)
    assert _snapshot(users_dataset) == before

    raw = DATA / "lfw-raw-fold1" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    if not raw.is_file():
        pytest.skip(f"{raw} not found (see ../shared/data/README.md)")
    view = users_dataset.limit(1)
    view.set_values("filepath", [str(shutil.copy(raw, tmp_path / raw.name))])
    assert detect_faces(view, field="found", progress=False) == 1
    assert users_dataset.get_field("found").info == {DETECTOR_INFO: "yunet"}
    assert detect_faces(view, field="found", overwrite=True, progress=False) == 1  # its own field: allowed


def test_a_rerun_scores_a_file_that_was_missing_and_keeps_the_rest(fo_dataset, tmp_path):
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality

    face = subset_paths(1)[0]
    late = tmp_path / "late.jpg"
    fo_dataset.add_samples([fo.Sample(filepath=str(face)), fo.Sample(filepath=str(late))])
    first = compute_face_quality(fo_dataset, **FAST)
    assert (first.scored, first.failed, first.skipped) == (1, 1, 0)
    kept = fo_dataset.values("faceqan")[0]
    assert "file not found" in fo_dataset.values("faceqan_error")[1]

    shutil.copy(face, late)
    again = compute_face_quality(fo_dataset, **FAST)
    assert (again.scored, again.failed, again.skipped) == (1, 0, 1)
    assert fo_dataset.values("faceqan_error") == [None, None]
    assert fo_dataset.values("faceqan")[0] == kept and fo_dataset.values("faceqan")[1] is not None
    third = compute_face_quality(fo_dataset, **FAST)
    assert (third.scored, third.failed, third.skipped) == (0, 0, 2)


def test_a_rerun_retries_faces_whose_file_was_missing(fo_dataset, tmp_path):
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality, detect_faces

    raw = DATA / "lfw-raw-fold1" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    if not raw.is_file():
        pytest.skip(f"{raw} not found (see ../shared/data/README.md)")
    photo = shutil.copy(raw, tmp_path / raw.name)
    fo_dataset.add_sample(fo.Sample(filepath=str(photo)))
    found = detect_faces(fo_dataset, progress=False)
    assert found >= 1
    hidden = shutil.move(photo, tmp_path / "away.jpg")
    first = compute_face_quality(fo_dataset, detections_field="faces", **FAST)
    assert (first.scored, first.failed) == (0, found)
    assert all("file not found" in e for e in fo_dataset.values("faces.detections.faceqan_error")[0])

    shutil.move(hidden, photo)
    again = compute_face_quality(fo_dataset, detections_field="faces", **FAST)
    assert (again.scored, again.failed, again.skipped) == (found, 0, 0)
    assert fo_dataset.values("faces.detections.faceqan_error")[0] == [None] * found
    assert None not in fo_dataset.values("faces.detections.faceqan")[0]
    assert compute_face_quality(fo_dataset, detections_field="faces", **FAST).skipped == found
