"""fiftyone_faceqan.store on a real FiftyOne database: the database picks what a rerun still has to score
(never scored, scored with other settings, failed), the writer stores every value of a face with its
fingerprint in one update (NaN as None), per sample and per face, in chunks or after FLUSH_SECONDS, and the
quality field gets an index; then one real FaceQAN run end to end."""

from __future__ import annotations

import numpy as np
import pytest

from lfw_data import subset_paths

SMALL = {"copies": 3, "iterations": 2, "seed": 7}


def _row(path, quality=0.5, error=None, **info):
    parts = {"quality": quality, "mean_similarity": quality, "std_similarity": 0.01, "q_adv": quality,
             "symmetry": 0.25}
    if error is not None:
        parts = dict.fromkeys(parts, float("nan"))
    return {"path": path, **info, **parts, "error": error}


def _write(dataset, rows, fingerprint, detections_field=None, targets=None, chunk_size=32):
    from fiftyone_faceqan.store import ScoreWriter

    writer = ScoreWriter(dataset, "q", detections_field, fingerprint, targets or (lambda row: [row["path"]]),
                         chunk_size)
    writer.add(rows)
    writer.flush()
    return writer


@pytest.fixture
def images(fo_dataset):
    """Eight samples: two scored with fingerprint 'fp', one failed, one scored with 'old', four never."""
    import fiftyone as fo

    fo_dataset.add_samples([fo.Sample(filepath=f"/faces/{i}.jpg") for i in range(8)])
    ids = fo_dataset.values("id")
    _write(fo_dataset, [_row(ids[0], 0.9), _row(ids[1], 0.1), _row(ids[2], error="no face to score")], "fp")
    _write(fo_dataset, [_row(ids[3], 0.7)], "old")
    return fo_dataset, ids


def test_a_rerun_gets_only_what_is_left_to_score(images):
    from fiftyone_faceqan.store import image_work

    dataset, ids = images
    owners, skipped = image_work(dataset, "fp", "q", overwrite=False)
    assert skipped == 2
    assert owners == {f"/faces/{i}.jpg": [ids[i]] for i in range(2, 8)}  # failed, other settings, never scored
    owners, skipped = image_work(dataset, "old", "q", overwrite=False)
    assert (sorted(owners), skipped) == (sorted(f"/faces/{i}.jpg" for i in range(8) if i != 3), 1)
    owners, skipped = image_work(dataset.limit(2), "fp", "q", overwrite=True)  # a view, everything again
    assert (len(owners), skipped) == (2, 0)
    owners, skipped = image_work(dataset.skip(4), "fp", "q", overwrite=False)
    assert (len(owners), skipped) == (4, 0)


def test_samples_sharing_a_file_all_take_its_score(fo_dataset):
    import fiftyone as fo

    from fiftyone_faceqan.store import image_work

    fo_dataset.add_samples([fo.Sample(filepath="/faces/same.jpg") for _ in range(3)])
    owners, skipped = image_work(fo_dataset, "fp", "q", overwrite=False)
    assert owners == {"/faces/same.jpg": fo_dataset.values("id")} and skipped == 0


def test_values_round_trip_and_a_retried_failure_is_cleared(images):
    dataset, ids = images
    stored = {i: dataset[i] for i in ids[:4]}
    assert stored[ids[0]]["q"] == 0.9 and stored[ids[0]]["q_symmetry"] == 0.25 and stored[ids[0]]["q_run"] == "fp"
    assert stored[ids[2]]["q"] is None and stored[ids[2]]["q_mean"] is None  # NaN is stored as None
    assert stored[ids[2]]["q_error"] == "no face to score" and stored[ids[3]]["q_run"] == "old"
    assert dataset[ids[5]]["q"] is None and dataset[ids[5]]["q_run"] is None  # untouched

    _write(dataset, [_row(ids[2], np.float32(0.375))], "fp")  # numpy scalars, as the engine gives them
    sample = dataset[ids[2]]
    assert (sample["q"], sample["q_error"], sample["q_run"]) == (0.375, None, "fp")
    assert type(sample["q"]) is float


def test_writes_in_chunks_or_after_flush_seconds(fo_dataset, monkeypatch):
    import fiftyone as fo

    import fiftyone_faceqan.store as store

    fo_dataset.add_samples([fo.Sample(filepath=f"/faces/{i}.jpg") for i in range(5)])
    ids = fo_dataset.values("id")
    writer = store.ScoreWriter(fo_dataset, "q", None, "fp", lambda row: [row["path"]], chunk_size=3)
    writer.add([_row(ids[0]), _row(ids[1])])
    assert fo_dataset.count("q_run") == 0  # the chunk is not full
    writer.add([_row(ids[2])])
    assert fo_dataset.count("q_run") == 3
    monkeypatch.setattr(store, "FLUSH_SECONDS", 0.0)  # a slow run: written although the chunk is not full
    writer.add([_row(ids[3])])
    assert fo_dataset.count("q_run") == 4 and (writer.scored, writer.failed) == (4, 0)


def test_quality_field_is_indexed_and_the_index_goes_with_the_run(images):
    from fiftyone_faceqan.runs import FaceQANBrainConfig

    dataset, ids = images
    assert "q" in dataset.list_indexes()
    FaceQANBrainConfig(quality_field="q").build().register_run(dataset, "q")
    plan = dataset.sort_by("q", reverse=True).limit(1)
    assert plan.first().id == ids[0]
    dataset.delete_brain_run("q")
    assert "q" not in dataset.list_indexes() and not dataset.has_sample_field("q")


@pytest.fixture
def faces(fo_dataset):
    """Two samples with two detected faces each (boxes and landmarks are placeholders: nothing is scored)."""
    import fiftyone as fo

    def face(x):
        return fo.Detection(label="face", bounding_box=[x, 0.1, 0.3, 0.3], confidence=0.9,
                            landmarks=[[x + 0.1, 0.2]] * 5)

    fo_dataset.add_samples([fo.Sample(filepath=f"/photos/{i}.jpg", faces=fo.Detections(detections=[face(0.1),
                                                                                                  face(0.5)]))
                            for i in range(2)])
    return fo_dataset


def test_faces_are_written_one_by_one_and_a_rerun_gets_the_rest(faces):
    from fiftyone_faceqan.store import face_work

    todo, owner, skipped = face_work(faces, "faces", "fp", "q", overwrite=False)
    assert skipped == 0 and sum(map(len, todo.values())) == 4
    first, second = todo["/photos/0.jpg"]
    other = todo["/photos/1.jpg"][0]
    assert first[1] == [[0.2, 0.2]] * 5 and first[2] == [0.1, 0.1, 0.3, 0.3]

    rows = [_row("/photos/0.jpg", 0.8, label_id=first[0]), _row("/photos/0.jpg", error="too small",
                                                                 label_id=second[0]),
            _row("/photos/1.jpg", 0.6, label_id=other[0])]
    _write(faces, rows, "fp", "faces", lambda row: [(owner[row["label_id"]], row["label_id"])])
    assert "faces.detections.q" in faces.list_indexes()
    stored = {det.id: det for dets in faces.values("faces.detections") for det in dets}
    assert (stored[first[0]]["q"], stored[first[0]]["q_run"], stored[first[0]]["q_error"]) == (0.8, "fp", None)
    assert stored[second[0]]["q"] is None and stored[second[0]]["q_error"] == "too small"
    assert stored[other[0]]["q_symmetry"] == 0.25
    assert stored[first[0]].label == "face" and stored[first[0]].confidence == 0.9  # the user's values stay

    todo, owner, skipped = face_work(faces, "faces", "fp", "q", overwrite=False)
    assert skipped == 2  # the failed face and the never scored one are left
    assert sorted(label for items in todo.values() for label, _, _ in items) == sorted([second[0],
                                                                                        todo["/photos/1.jpg"][0][0]])
    assert set(owner.values()) == set(faces.values("id"))
    _, _, skipped = face_work(faces, "faces", "fp", "q", overwrite=True)
    assert skipped == 0


def test_a_real_run_indexes_its_field_and_rescores_only_a_failure(fo_dataset):
    import fiftyone as fo

    from fiftyone_faceqan import compute_face_quality

    paths = [str(p) for p in subset_paths(2)]
    fo_dataset.add_samples([fo.Sample(filepath=p) for p in paths])
    first = compute_face_quality(fo_dataset, progress=False, **SMALL)
    assert (first.scored, first.skipped, first.failed) == (2, 0, 0)
    assert "faceqan" in fo_dataset.list_indexes()
    scores = fo_dataset.values("faceqan")
    fo_dataset.limit(1).set_values("faceqan_error", ["lost in a crash"])  # as if its last attempt failed
    again = compute_face_quality(fo_dataset, progress=False, **SMALL)
    assert (again.scored, again.skipped, again.failed) == (1, 1, 0)
    assert fo_dataset.values("faceqan") == scores and fo_dataset.count("faceqan_error") == 0
