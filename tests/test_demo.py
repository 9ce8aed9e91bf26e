"""`faceqan demo` as a user runs it: a real CLI process on the test database. With no argument and no network,
every face of the photos that ship with installed packages, scored and listed worst first; with --source DIR,
raw LFW photos (detected and aligned), a corrupt file recorded as a failure, the summary and the EDC evaluation
printed; --zoo offline, the message that says what to pass."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lfw_data import raw_photo_folder


@pytest.fixture
def source(tmp_path):
    """Raw photos of two people, three each, plus one corrupt file."""
    folder = raw_photo_folder(tmp_path / "faces")
    (folder / "Abel_Pacheco" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


# faces YuNet finds in the photos insightface (test extra) and scikit-image (a FiftyOne dependency) ship
PACKAGED_FACES = {"t1.jpg": 6, "Tom_Hanks_54745.png": 1, "astronaut.png": 1}
FACE_LINE = re.compile(r"^(\S+) #(\d) \[x=\d+ y=\d+ w=\d+ h=\d+\]  Q (-?\d\.\d{4})  mean ", re.MULTILINE)


def _demo(*args, env=None):
    return subprocess.run([sys.executable, "-m", "faceqan.cli", "demo", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def _offline(tmp_path) -> dict:
    """The environment with every download going to a closed local port and an empty zoo folder."""
    return {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
            "FIFTYONE_DATASET_ZOO_DIR": str(tmp_path / "zoo")}


def test_demo_without_arguments_scores_every_packaged_face_offline_worst_first(fo_database, tmp_path):
    run = _demo(env=_offline(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    dataset = fo_database.load_dataset("faceqan-demo")
    try:
        paths, faces = dataset.values(["filepath", "faces.detections"])
        assert {Path(p).name: len(f) for p, f in zip(paths, faces)} == PACKAGED_FACES
        qualities = dataset.values("faces.detections.faceqan", unwind=True)
        assert len(qualities) == sum(PACKAGED_FACES.values()) and all(math.isfinite(q) for q in qualities)
        printed = FACE_LINE.findall(run.stdout)
        assert sorted((name, int(i)) for name, i, _ in printed) == [
            (name, i) for name, count in sorted(PACKAGED_FACES.items()) for i in range(count)]
        assert [float(q) for *_, q in printed] == sorted(round(q, 4) for q in qualities)
        assert "faceqan demo --source DIR" in run.stdout and "faceqan demo --zoo" in run.stdout
        assert "add --app" in run.stdout
    finally:
        dataset.delete()


def test_demo_without_packaged_faces_says_what_to_install_or_pass(fo_database, monkeypatch):
    from fiftyone_faceqan import demo

    monkeypatch.setattr(demo, "PACKAGED_FACES", (("faceqan_no_such_package", "face.jpg"), ("faceqan", "no.jpg")))
    with pytest.raises(SystemExit, match=r"pip install scikit-image .*: faceqan demo --source DIR$"):
        demo.main(["--name", "faceqan-demo-none"])
    assert "faceqan-demo-none" not in fo_database.list_datasets()


def test_demo_scores_a_seeded_sample_of_a_local_folder(fo_database, source):
    run = _demo("--source", str(source), "--name", "faceqan-demo-test", "--sample-size", "4")
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "scoring a seeded sample of 4 of 7 faces" in out
    dataset = fo_database.load_dataset("faceqan-demo-test")
    try:
        assert len(dataset) == 7
        scored, failed = len(dataset.exists("faceqan")), len(dataset.exists("faceqan_error"))
        assert scored + failed == 4 and f"{scored} faces scored, {failed} failed" in out
        assert "median" in out and "worst:" in out and ("EDC (run 'faceqan_demo_eval'" in out
                                                        or "no ERC evaluation" in out)
    finally:
        dataset.delete()


def test_demo_scores_everything_with_all_and_records_the_corrupt_file(fo_database, source):
    run = _demo("--source", str(source), "--name", "faceqan-demo-all", "--all")
    assert run.returncode == 0, run.stderr[-3000:]
    dataset = fo_database.load_dataset("faceqan-demo-all")
    try:
        assert len(dataset.exists("faceqan")) == 6
        (error,) = dataset.exists("faceqan_error").values("faceqan_error")
        assert "corrupt.jpg" in run.stdout and error
        assert "EDC (run 'faceqan_demo_eval', 6 mated" in run.stdout
        assert dataset.get_brain_info("faceqan_demo_eval") is not None
    finally:
        dataset.delete()


def test_demo_zoo_offline_says_what_to_pass(fo_database, tmp_path):
    """--zoo without internet: one clear message, exit 1."""
    run = _demo("--zoo", "--name", "faceqan-demo-offline", env=_offline(tmp_path))
    assert run.returncode == 1
    assert "could not download FiftyOne's LFW zoo dataset" in run.stderr
    assert "faceqan demo --source ../shared/data/lfw-raw-fold1" in run.stderr
    assert "faceqan-demo-offline" not in fo_database.list_datasets()
