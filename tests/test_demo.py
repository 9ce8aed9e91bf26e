"""`faceqan demo --source DIR` as a user runs it: a real CLI process on the test database, raw LFW photos
(detected and aligned), a corrupt file recorded as a failure, the summary and the EDC evaluation printed;
offline without --source, the message that says what to pass."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lfw_data import raw_photo_folder


@pytest.fixture
def source(tmp_path):
    """Raw photos of two people, three each, plus one corrupt file."""
    folder = raw_photo_folder(tmp_path / "faces")
    (folder / "Abel_Pacheco" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _demo(*args, env=None):
    return subprocess.run([sys.executable, "-m", "faceqan.cli", "demo", *args], capture_output=True, text=True,
                          timeout=600, env=env)


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


def test_demo_offline_without_source_says_what_to_pass(fo_database, tmp_path):
    """No --source and no internet (every download goes to a closed local port): one clear message, exit 1."""
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "FIFTYONE_DATASET_ZOO_DIR": str(tmp_path / "zoo")}
    run = _demo("--name", "faceqan-demo-offline", env=env)
    assert run.returncode == 1
    assert "could not download FiftyOne's LFW zoo dataset" in run.stderr
    assert "faceqan demo --source ../shared/data/lfw-raw-fold1" in run.stderr
    assert "faceqan-demo-offline" not in fo_database.list_datasets()
