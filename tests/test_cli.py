"""The `faceqan` command as a user runs it: listing models, a missing weights file, raw photos scored per
face, and cross-model evaluation (quality from SFace, comparisons by dlib) of raw photos."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from faceqan.cli import main
from faceqan.models import list_models
from lfw_data import raw_photo_folder, subset_paths

QUICK = ["-k", "2", "-l", "1", "--quiet"]


def test_models_lists_every_model_with_licence_and_source(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for entry in list_models():
        assert entry.name in out and entry.licence in out and entry.source in out


def test_a_missing_weights_file_is_one_line_that_says_where_to_get_it():
    with pytest.raises(SystemExit, match="^faceqan: .*arcface_torch model zoo"):
        main(["score", str(subset_paths(1)[0]), "--model", "iresnet100"])


@pytest.fixture
def raw_photos(tmp_path):
    return raw_photo_folder(tmp_path / "raw")


def test_raw_photos_are_aligned_scored_and_evaluated_across_models(raw_photos, tmp_path, capsys):
    scores = tmp_path / "scores.csv"
    assert main(["score", str(raw_photos), "--out", str(scores), *QUICK]) == 0
    frame = pd.read_csv(scores)
    assert len(frame) == 6 and frame["error"].isna().all() and (frame["alignment"] == "detected").all()
    assert frame["confidence"].min() >= 0.6 and frame["quality"].notna().all()

    summary = tmp_path / "summary.csv"
    assert main(["erc", "--scores", str(scores), "--identities-from-folders", "--model", "dlib-resnet",
                 "--fmr", "0.1", "--out", str(summary)]) == 0
    assert "6 mated, 9 non-mated comparisons" in capsys.readouterr().err
    table = pd.read_csv(summary)
    assert (table["comparison_model"] == "dlib-resnet").all() and "quality" in set(table["measure"])


def test_every_face_of_a_group_photo_gets_a_row(tmp_path):
    from faceqan.models.files import package_file

    photo = package_file("insightface", "data/images/t1.jpg", "insightface==2.1")
    out = tmp_path / "faces.csv"
    assert main(["score", str(photo), "--faces", "all", "--out", str(out), *QUICK]) == 0
    frame = pd.read_csv(out)
    assert sorted(frame["face"]) == list(range(6)) and frame["error"].isna().all()
    assert (frame["faces_found"] == 6).all() and frame["quality"].notna().all()


def test_the_engine_and_its_command_line_never_import_fiftyone():
    code = ("import sys, faceqan, faceqan.align, faceqan.metrics, faceqan.baselines, faceqan.plots, faceqan.cli; "
            "faceqan.cli.build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0].startswith('fiftyone')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr
