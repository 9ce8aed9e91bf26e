"""The `faceqan` command as a user runs it: listing models, a missing weights file, exit status and summary,
a run killed with SIGKILL and resumed, failed files retried, raw photos scored per face, and cross-model
evaluation (quality from SFace, comparisons by dlib) of raw photos."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from faceqan.cli import main
from faceqan.models import list_models
from faceqan.output import ScoreTable, read_table
from lfw_data import raw_photo_folder, subset_paths

QUICK = ["-k", "2", "-l", "1", "--quiet"]


def test_models_lists_every_model_with_licence_and_source(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for entry in list_models():
        assert entry.name in out and entry.licence in out and entry.source in out


def test_a_missing_weights_file_is_one_line_that_says_where_to_get_it(capsys):
    assert main(["score", str(subset_paths(1)[0]), "--model", "iresnet100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faceqan: iresnet100 needs weights=") and "arcface_torch model zoo" in err
    assert err.count("\n") == 1


def test_exit_status_is_1_when_nothing_could_be_scored(tmp_path, capsys):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert main(["score", str(tmp_path / "empty.jpg"), str(tmp_path / "gone.jpg"), *QUICK]) == 1
    out, err = capsys.readouterr()
    assert err.endswith("0 scored, 2 failed\n")
    table = pd.read_csv(io.StringIO(out))  # without --out the table goes to stdout
    assert table["error"].tolist() == [f"ImageLoadError: empty file: {tmp_path / 'empty.jpg'}",
                                       f"ImageLoadError: file not found: {tmp_path / 'gone.jpg'}"]


def test_failed_files_are_scored_again_on_resume_and_scored_ones_kept(tmp_path, capsys):
    good, later = subset_paths(2)
    pending = tmp_path / "later.jpg"
    pending.write_bytes(b"")  # not there yet: an empty file
    out = tmp_path / "scores.parquet"
    argv = ["score", str(good), str(pending), "--out", str(out), *QUICK]
    assert main(argv) == 0
    first = read_table(out)
    assert first["error"].isna().tolist() == [True, False]
    shutil.copy(later, pending)
    capsys.readouterr()
    assert main([*argv, "--resume", "--device", "cpu", "--batch-size", "2"]) == 0  # speed settings may differ
    assert capsys.readouterr().err.endswith(f"1 scored, 0 failed; 2 rows in {out} (files kept from before: 1)\n")
    second = read_table(out)
    assert second["error"].isna().all() and second["path"].tolist() == first["path"].tolist()
    kept = ["path", "model", "quality", "mean_similarity", "std_similarity", "q_adv", "symmetry"]
    pd.testing.assert_frame_equal(second.loc[:0, kept], first.loc[:0, kept])  # the kept row, untouched


def _complete_lines(path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _ctrl_c_as_in_a_terminal():
    """SIGINT handled as in a terminal even when the tests run in the background (a shell starts background jobs
    with SIGINT ignored, children inherit that, and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_wait_for_rows(argv: list[str], journal, rows: int) -> subprocess.Popen:
    """`faceqan score` in a process of its own, returned once ``rows`` files are in its journal."""
    run = subprocess.Popen([sys.executable, "-m", "faceqan.cli", *argv], start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           preexec_fn=_ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 300
    while _complete_lines(journal) < rows and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return run


def test_ctrl_c_exits_130_and_keeps_the_scored_files(tmp_path):
    out = tmp_path / "scores.csv"
    run = _start_and_wait_for_rows(["score", *map(str, subset_paths(4)), "--out", str(out), *QUICK,
                                    "--workers", "0"], ScoreTable(out).journal, 1)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130 and err.endswith("interrupted; the files scored so far are kept: rerun with "
                                                  "--resume\n"), err
    assert not out.exists() and 1 <= _complete_lines(ScoreTable(out).journal) < 4


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_run_killed_at_a_random_point_resumes_to_the_uninterrupted_result(tmp_path, suffix):
    paths = [str(p) for p in subset_paths(6)]
    argv = ["score", *paths, *QUICK, "--workers", "0"]
    whole = tmp_path / f"whole{suffix}"
    assert main([*argv, "--out", str(whole)]) == 0

    out = tmp_path / f"killed{suffix}"
    journal = ScoreTable(out).journal
    kill_after = random.Random(f"kill{suffix}").randint(1, len(paths) - 3)  # seeded random point
    run = _start_and_wait_for_rows([*argv, "--out", str(out)], journal, kill_after)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL and not out.exists()
    assert kill_after <= _complete_lines(journal) < len(paths)
    with open(journal, "a") as f:  # a line cut by the kill: never half a file's rows
        f.write('[{"path": "' + paths[-1][:20])

    assert main([*argv, "--out", str(out), "--resume"]) == 0
    assert not journal.exists()
    resumed = read_table(out)
    assert resumed["path"].tolist() == paths  # every path exactly once, in order
    pd.testing.assert_frame_equal(resumed, read_table(whole))  # the same scores, to the last bit


@pytest.fixture
def raw_photos(tmp_path):
    return raw_photo_folder(tmp_path / "raw")


@pytest.mark.parametrize("option, value, message", [
    ("--out", "summary.txt", "--out must end in .csv or .parquet"),
    ("--curves-out", "curves", "--curves-out must end in .csv or .parquet"),
    ("--plot", "erc.pdf", "--plot must end in .png"),
    ("--fmr", "0", "fmr must be in (0, 1]"),
    ("--scores", "missing.csv", "--scores missing.csv is not a file"),
])
def test_erc_refuses_bad_options_before_embedding_anything(tmp_path, capsys, monkeypatch, option, value, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scores.csv").write_text("path,quality\n")
    argv = {"--scores": "scores.csv", "--out": "summary.csv", option: value}
    assert main(["erc", "--identities-from-folders", *(x for pair in argv.items() for x in pair)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"faceqan: {message}") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


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


def test_demo_is_the_command_the_fiftyone_layer_adds():
    run = subprocess.run([sys.executable, "-m", "faceqan.cli", "demo", "--help"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and run.stdout.startswith("usage: faceqan demo"), run.stdout + run.stderr
    assert "--sample-size SAMPLE_SIZE" in run.stdout and "--source SOURCE" in run.stdout


def test_demo_without_the_fiftyone_extra_says_what_to_install():
    code = "import sys; sys.modules['fiftyone'] = None; from faceqan.cli import main; sys.exit(main(['demo']))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert (run.returncode, run.stderr) == (2, "faceqan: demo needs fiftyone: pip install 'faceqan[fiftyone]'\n")
