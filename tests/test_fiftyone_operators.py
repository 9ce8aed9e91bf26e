"""The plugin as FiftyOne sees it: found in FIFTYONE_PLUGINS_DIR, run immediately through
foo.execute_operator, queued and run by a delegated-operations worker, and per-face scores on detections."""

from __future__ import annotations

import pytest

from lfw_data import DATA, subset_paths

URI = "@faceqan/faceqan/compute_face_quality"
SMALL = {"copies": 3, "iterations": 2, "seed": 7}


@pytest.fixture
def three_faces(fo_dataset):
    import fiftyone as fo

    fo_dataset.add_samples([fo.Sample(filepath=str(p)) for p in subset_paths(3)])
    fo_dataset.persistent = True  # delegated operations reload the dataset by name
    return fo_dataset


def test_plugin_is_discovered(fo_database):
    import fiftyone.plugins as fop

    plugin = fop.get_plugin("@faceqan/faceqan")
    assert {"compute_face_quality", "detect_faces"} <= set(plugin.operators)


def test_immediate_execution(three_faces):
    import fiftyone.operators as foo

    result = foo.execute_operator(URI, ctx={"dataset": three_faces, "params": {**SMALL, "quality_field": "q"}})
    result.raise_exceptions()
    assert result.result["scored"] == 3
    assert three_faces.count("q") == 3 and three_faces.list_brain_runs() == ["q"]


def test_invalid_parameters_fail_clearly(three_faces):
    import fiftyone.operators as foo

    with pytest.raises(Exception, match="copies must be at least 2"):
        foo.execute_operator(URI, ctx={"dataset": three_faces, "params": {"copies": 1}}).raise_exceptions()


def test_delegated_execution(three_faces):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    params = {**SMALL, "quality_field": "delegated_q", "delegate": True}
    queued = foo.execute_operator(URI, ctx={"dataset": three_faces, "params": params, "request_delegation": True})
    assert queued.delegated
    assert not three_faces.has_sample_field("delegated_q")  # queued, not run
    DelegatedOperationService().execute_queued_operations(dataset_name=three_faces.name)
    three_faces.reload()
    assert three_faces.count("delegated_q") == 3
    assert "delegated_q" in three_faces.list_brain_runs()


def test_faces_detected_and_scored_per_detection(fo_dataset):
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality, detect_faces

    raw = DATA / "lfw-raw-fold1"
    paths = sorted(raw.rglob("*.jpg"))[:2]
    if not paths:
        pytest.skip(f"raw LFW photos not found at {raw}")
    fo_dataset.add_samples([fo.Sample(filepath=str(p)) for p in paths])
    found = detect_faces(fo_dataset, progress=False)
    assert found >= 2
    faces = fo_dataset.values("faces.detections")
    assert all(len(d.landmarks) == 5 for dets in faces for d in dets)

    results = compute_face_quality(fo_dataset, detections_field="faces", progress=False, **SMALL)
    assert results.scored == found
    patches = fo_dataset.to_patches("faces").sort_by("faces.faceqan", reverse=True)
    qualities = patches.values("faces.faceqan")
    assert len(qualities) == found and qualities == sorted(qualities, reverse=True)
    assert compute_face_quality(fo_dataset, detections_field="faces", progress=False, **SMALL).skipped == found
    fo_dataset.delete_brain_run("faceqan")
    assert not fo_dataset.has_sample_field("faces.detections.faceqan")
