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
    assert {"compute_face_quality", "detect_faces", "show_noise_maps"} <= set(plugin.operators)


def test_immediate_execution(three_faces):
    import fiftyone.operators as foo

    result = foo.execute_operator(URI, ctx={"dataset": three_faces, "params": {**SMALL, "quality_field": "q"}})
    result.raise_exceptions()
    assert result.result["scored"] == 3
    assert three_faces.count("q") == 3 and three_faces.list_brain_runs() == ["q"]


def _form(uri, dataset, params):
    """The input form as the App gets it (FiftyOne's resolve_type) and whether FiftyOne finds it invalid."""
    import asyncio

    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext, ValidationContext, resolve_type

    form = asyncio.run(resolve_type(foo.OperatorRegistry(), uri, {"dataset_name": dataset.name, "params": params}))
    ctx = ExecutionContext({"dataset_name": dataset.name, "params": params})
    return form, ValidationContext(ctx, form, foo.get_operator(uri))


@pytest.mark.parametrize("uri, params, reason", [
    (URI, {"copies": 1}, "copies must be at least 2"),
    (URI, {"device": "cuda:64"}, "device 'cuda:64'"),
    (URI, {"quality_field": "filepath"}, "quality_field 'filepath' is a built-in FiftyOne field"),
    (URI, {"quality_field": "uniqueness"}, "the field 'uniqueness' already exists"),
    (URI, {"detections_field": "uniqueness"}, "detections_field 'uniqueness' is not a Detections field"),
    (URI, {"model": "iresnet50"}, "model 'iresnet50' has no weights file here"),
    (URI, {"weights": "/no/such/backbone.pth"}, "weights file /no/such/backbone.pth does not exist"),
    (URI, {"calibration": "/no/such/calibration.json"}, "cannot read the calibration /no/such/calibration.json"),
    (URI, {"shards": 0}, "shards must be a whole number >= 1"),
    (URI, {"shards": 2.5}, "shards must be a whole number >= 1"),
    (URI, {"shards": 2, "overwrite": True}, "shards cannot be combined with overwrite"),
    ("@faceqan/faceqan/detect_faces", {"field": "tags"}, "field 'tags' is a built-in FiftyOne field"),
    (URI, {"maps": True, "iterations": 1}, "noise maps need at least 2 iterations"),
    (URI, {"maps": True, "maps_dir": "relative/maps"}, "maps folder must be an absolute path"),
    ("@faceqan/faceqan/show_noise_maps", {}, "no FaceQAN run with noise maps here"),
])
def test_invalid_form_cannot_be_executed(three_faces, uri, params, reason):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    three_faces.set_values("uniqueness", [0.5] * len(three_faces))  # a user's field

    def state():
        dataset = three_faces
        return list(dataset.get_field_schema(flat=True)), dataset.values("uniqueness"), dataset.list_brain_runs()

    before = state()
    form, validation = _form(uri, three_faces, params)
    shown = form.type.properties["invalid"]
    assert shown.invalid and reason in shown.error_message and "\n" not in shown.error_message
    assert validation.invalid and any(reason in error.reason for error in validation.errors)
    with pytest.raises(ExecutionError, match="Validation error"):
        foo.execute_operator(uri, ctx={"dataset": three_faces, "params": params})
    assert state() == before


def test_model_choices_are_the_models_that_can_run(three_faces, tmp_path):
    from faceqan.models import get_entry, list_models

    assert get_entry("sface").available() and not get_entry("iresnet50").available()
    runnable = [m.name for m in list_models() if m.available()]
    form, validation = _form(URI, three_faces, {})
    assert form.type.properties["model"].type.values == runnable and "sface" in runnable
    assert not any(name.startswith("iresnet") for name in runnable)
    assert not validation.invalid and "invalid" not in form.type.properties

    weights = tmp_path / "backbone.pth"
    weights.write_bytes(b"not checked until the model loads")
    form, validation = _form(URI, three_faces, {"model": "iresnet50", "weights": str(weights)})
    assert form.type.properties["model"].type.values == [m.name for m in list_models()]
    assert not validation.invalid


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


def test_split_into_tasks_queues_shards_that_workers_run(three_faces):
    """The form's "Split into N tasks" queues N shard operations at once (no worker needed to queue them);
    a worker runs them; each reports its shard and the run's progress over all shards."""
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    params = {**SMALL, "quality_field": "split_q", "shards": 2, "delegate": True}
    queued = foo.execute_operator(URI, ctx={"dataset": three_faces, "params": params})
    queued.raise_exceptions()
    assert not queued.delegated  # queuing happens now; the shards are the delegated work
    assert (queued.result["queued"], queued.result["run_total"], queued.result["run_complete"]) == (2, 3, False)
    assert three_faces.list_brain_runs() == ["split_q"] and not three_faces.has_sample_field("split_q")

    ran = DelegatedOperationService().execute_queued_operations(dataset_name=three_faces.name)
    assert sorted((r.result["shard"], r.result["scored"]) for r in ran) == [("0/2", 1), ("1/2", 2)]
    assert (ran[-1].result["run_scored"], ran[-1].result["run_complete"]) == (3, True)  # the last one to finish
    three_faces.reload()
    assert three_faces.count("split_q") == 3
    assert three_faces.load_brain_results("split_q").progress().complete


def test_faces_detected_and_scored_per_detection(fo_dataset):
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality, detect_faces, run_progress

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
    progress = run_progress(fo_dataset)  # counted on the detections
    assert (progress.scored, progress.failed, progress.total, progress.complete) == (found, 0, found, True)
    fo_dataset.delete_brain_run("faceqan")
    assert not fo_dataset.has_sample_field("faces.detections.faceqan")
