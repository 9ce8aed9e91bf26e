"""compute_face_quality on a real FiftyOne database: the values are the engine's, runs are brain runs,
failures are recorded per sample, an interrupted run resumes without scoring anything twice."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest

from lfw_data import subset_paths

SMALL = {"copies": 3, "iterations": 2, "seed": 7}  # reduced k/l: the suite stays fast
PARTS = ("quality", "mean_similarity", "std_similarity", "q_adv", "symmetry")


@pytest.fixture(scope="module")
def faces():
    return [str(p) for p in subset_paths(6)]


@pytest.fixture(scope="module")
def engine_scores(faces):
    """The engine's own scores for the same files and settings: what the SDK must store."""
    from faceqan.align import FacePreparer
    from faceqan.config import FaceQANConfig
    from faceqan.models import load_model
    from faceqan.pipeline import score_files

    model = load_model("sface")
    frame = score_files(faces, model, FaceQANConfig(**SMALL), prepare=FacePreparer.for_model(model),
                        progress=False)
    return {row["path"]: row for row in frame.to_dict("records")}


def _stored(dataset, field="faceqan"):
    from fiftyone_faceqan import field_names

    names = field_names(field)
    rows = {}
    for sample in dataset:
        rows[sample.filepath] = {key: sample[name] for key, name in names.items()}
    return rows


def test_values_equal_engine_and_run_is_recorded(fo_dataset, faces, engine_scores):
    from fiftyone_faceqan import compute_face_quality

    fo_dataset.add_samples([__import__("fiftyone").Sample(filepath=p) for p in faces])
    results = compute_face_quality(fo_dataset, progress=False, **SMALL)
    assert (results.scored, results.skipped, results.failed) == (6, 0, 0)
    for path, stored in _stored(fo_dataset).items():
        assert stored["error"] is None
        for part in PARTS:
            assert stored[part] == engine_scores[path][part], part

    assert fo_dataset.list_brain_runs() == ["faceqan"]
    info = fo_dataset.get_brain_info("faceqan")
    assert info.config.model == "sface" and len(info.config.model_sha256) == 64
    assert (info.config.copies, info.config.iterations, info.config.variant) == (3, 2, "official")
    loaded = fo_dataset.load_brain_results("faceqan")
    assert type(loaded).__name__ == "FaceQANResults" and loaded.scored == 6

    again = compute_face_quality(fo_dataset, progress=False, **SMALL)
    assert (again.scored, again.skipped) == (0, 6)

    fo_dataset.delete_brain_run("faceqan")
    assert fo_dataset.list_brain_runs() == []
    assert not any(name.startswith("faceqan") for name in fo_dataset.get_field_schema())


def test_missing_and_corrupt_files_are_recorded(fo_dataset, faces, tmp_path):
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality

    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    missing = tmp_path / "missing.jpg"
    fo_dataset.add_samples([fo.Sample(filepath=p) for p in [faces[0], str(missing), str(corrupt), faces[1]]])
    results = compute_face_quality(fo_dataset, progress=False, **SMALL)
    assert (results.scored, results.failed) == (2, 2)
    stored = _stored(fo_dataset)
    assert "file not found" in stored[str(missing)]["error"]
    assert "not an image" in stored[str(corrupt)]["error"] or "corrupt" in stored[str(corrupt)]["error"]
    assert stored[str(missing)]["quality"] is None
    assert all(stored[p]["error"] is None and stored[p]["quality"] is not None for p in faces[:2])


def test_bad_parameters_are_refused(fo_dataset):
    from fiftyone_faceqan import compute_face_quality

    with pytest.raises(ValueError, match="quality_field"):
        compute_face_quality(fo_dataset, quality_field="bad name")
    with pytest.raises(ValueError, match="copies"):
        compute_face_quality(fo_dataset, copies=1)
    with pytest.raises(TypeError, match="unknown FaceQAN setting"):
        compute_face_quality(fo_dataset, k=3)
    with pytest.raises(ValueError, match="no field 'faces'"):
        compute_face_quality(fo_dataset, detections_field="faces", **SMALL)


RUN_IN_CHILD = """
import sys
import fiftyone as fo
from fiftyone_faceqan import compute_face_quality
compute_face_quality(fo.load_dataset(sys.argv[1]), chunk_size=1, progress=False, maps=True, **{small})
"""


def test_resume_after_kill_scores_every_sample_once(fo_dataset, faces, engine_scores):
    """Killed while keeping noise maps: the resumed run scores only what was left, and every face has its map."""
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality, run_field

    fo_dataset.add_samples([fo.Sample(filepath=p) for p in faces])
    fo_dataset.persistent = True  # the child process opens it by name
    child = subprocess.Popen([sys.executable, "-c", RUN_IN_CHILD.format(small=SMALL), fo_dataset.name],
                             env=os.environ.copy())
    deadline = time.monotonic() + 300
    mark = run_field("faceqan")
    while True:
        fo_dataset.reload()  # the child declares the fields: refresh the schema
        done = fo_dataset.count(mark) if fo_dataset.has_sample_field(mark) else 0
        if done >= 2:
            child.send_signal(signal.SIGKILL)
            break
        assert child.poll() is None and time.monotonic() < deadline, "the child ended before it was killed"
        time.sleep(0.05)
    child.wait()
    killed_after = fo_dataset.count(mark)
    assert 2 <= killed_after < len(faces), "the kill did not land mid-run"

    results = compute_face_quality(fo_dataset, progress=False, maps=True, **SMALL)
    assert (results.skipped, results.scored) == (killed_after, len(faces) - killed_after)
    for path, stored in _stored(fo_dataset).items():
        assert not math.isnan(stored["quality"])
        assert all(stored[part] == engine_scores[path][part] for part in PARTS)
    assert all(os.path.isfile(png) for png in fo_dataset.values("faceqan_noise_map"))
