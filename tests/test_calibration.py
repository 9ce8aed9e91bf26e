"""The unified score (0-100) on real LFW faces: integer and monotone in Q, the shipped SFace calibration is the
fit of its reference faces, its EDC is Q's at every level boundary, and the command line and the FiftyOne layer
write it (255 / None for a face that could not be assessed), refusing a calibration of other weights or
settings before any work."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from faceqan.calibration import FAILURE_TO_ASSESS, SCALE, Calibration, CalibrationError, fit, shipped
from faceqan.cli import main
from faceqan.config import FaceQANConfig
from faceqan.models import get_entry
from faceqan.output import ScoreTable, read_table
from lfw_data import RESULTS, aligned_scores, cached_faceqan_run, subset_paths

SFACE = shipped("sface")


def _count_reached(knots, quality) -> np.ndarray:
    """The oracle: for each Q, how many knots are <= it, by comparing every pair (no search)."""
    q = np.asarray(quality, dtype=np.float64)
    return (np.asarray(knots)[None, :] <= q[:, None]).sum(axis=1)


def _cached_q() -> np.ndarray:
    """Every real Q cached in benchmarks/results: our aligned crops and the lfw-112 reference crops."""
    reference = pd.read_csv(RESULTS / "lfw_erc_faceqan_sface.csv")["quality"].to_numpy(float)
    return np.concatenate([[row["quality"] for row in aligned_scores()], reference])


# --- the map ----------------------------------------------------------------------------------------------

def test_the_unified_score_is_an_integer_monotone_in_q_and_255_for_a_failure():
    q = _cached_q()
    unified = SFACE.scores(q)
    assert unified.dtype.kind == "i" and unified.min() >= 0 and unified.max() <= SCALE
    assert np.array_equal(unified, _count_reached(SFACE.knots, q))
    assert np.all(np.diff(unified[np.argsort(q, kind="stable")]) >= 0)  # non-decreasing in Q
    assert len(set(unified.tolist())) > 90  # the real faces spread over the scale
    assert SFACE.scores([np.nan, None, q[0]]).tolist() == [FAILURE_TO_ASSESS, FAILURE_TO_ASSESS, unified[0]]
    for k in (1, 37, SCALE):  # threshold(k) is where score k begins
        cut = SFACE.threshold(k)
        assert SFACE.score(cut) >= k > SFACE.score(np.nextafter(cut, -math.inf))
    assert SFACE.threshold(0) == -math.inf and SFACE.score(-1.0) == 0


def test_the_shipped_sface_calibration_is_the_fit_of_its_reference_faces():
    """Guards the shipped file: its knots are the inverted-CDF percentiles of the first ``faces`` scored faces of
    the cache it was fitted on (benchmarks/calibrate_lfw.py), computed here by rank, and u = k then means about
    k % of the reference faces score lower."""
    assert get_entry("sface").calibration == SFACE
    assert SFACE.model_sha256 == get_entry("sface").sha256
    assert SFACE.score_settings == FaceQANConfig().score_settings()
    q = np.array([row["quality"] for row in aligned_scores(SFACE.faces)])
    assert len(q) == SFACE.faces >= 1000
    ranked = np.sort(q)
    n = len(q)
    assert list(SFACE.knots) == [ranked[-(-k * n // SCALE) - 1] for k in range(1, SCALE + 1)]
    unified = SFACE.scores(q)
    for k in range(1, SCALE + 1):
        assert k / SCALE - 1 / n <= np.mean(unified < k) < k / SCALE


def test_a_calibration_applies_only_to_its_weights_and_settings_and_bad_files_are_refused(tmp_path):
    settings = FaceQANConfig().score_settings()
    assert SFACE.applies_to(get_entry("sface").sha256, settings)
    with pytest.raises(CalibrationError, match=r"copies 10 -> 3"):
        SFACE.check_applies(get_entry("sface").sha256, {**settings, "copies": 3})
    with pytest.raises(CalibrationError, match=r"weights 'fb143eea0783' -> 'aaaaaaaaaaaa'"):
        SFACE.check_applies("a" * 64, settings)
    with pytest.raises(CalibrationError, match="at least 100"):
        fit(np.linspace(0, 1, 99), "sface", "x", settings, "too few")
    broken = tmp_path / "broken.json"
    for text, message in (("{", "cannot read"), ("[1, 2]", "a JSON object"),
                          (json.dumps({**SFACE.to_dict(), "knots": SFACE.knots[::-1]}), "non-decreasing"),
                          (json.dumps({**SFACE.to_dict(), "faces": "many"}), "faces of the wrong type")):
        broken.write_text(text)
        with pytest.raises(CalibrationError, match=message):
            Calibration.load(broken)
    SFACE.save(tmp_path / "again.json")
    assert Calibration.load(tmp_path / "again.json") == SFACE  # floats survive JSON exactly


def test_the_edc_of_the_unified_score_equals_qs_at_every_level_boundary():
    """FNM-EDC of Q and of the unified score on the real cached scores and SFace embeddings of the lfw-112 ERC
    subset (benchmarks/lfw_erc.py's reference set). The map is non-decreasing, so a pair's unified quality
    min(u(a), u(b)) is u(min(Q(a), Q(b))): discarding the pairs below a unified level discards exactly the mated
    pairs whose pair Q is below that level's knot, a set Q's own curve also discards at that point. The threshold
    is fixed on all non-mated pairs, so the same pairs are left and the FNMR is the same number. Only there: inside
    a level the unified score ties every face, so its curve jumps over the points where Q discards part of it."""
    from faceqan.metrics import Comparisons, evaluate

    scores = pd.read_csv(RESULTS / "lfw_erc_faceqan_sface.csv").drop_duplicates("path").set_index("path")
    keys = (RESULTS / "lfw_erc_emb_sface.paths.txt").read_text().split()
    embeddings = dict(zip(keys, np.load(RESULTS / "lfw_erc_emb_sface.npy")))
    keys = [k for k in scores.index if k in embeddings and pd.isna(scores.loc[k, "error"])]
    q = scores.loc[keys, "quality"].to_numpy(float)
    comparisons = Comparisons.from_labels(np.stack([embeddings[k] for k in keys]), [k.split("/")[0] for k in keys])
    curves = evaluate(comparisons, {"Q": q, "unified": SFACE.scores(q).astype(float)}, curves=("edc",)).curves
    by_q = {d: f for d, f in curves.query("measure == 'Q'")[["discard", "fnmr"]].itertuples(index=False)}
    unified = curves.query("measure == 'unified'")
    assert len(unified) > 50 and len(by_q) > 10 * len(unified)
    for discard, fnmr in unified[["discard", "fnmr"]].itertuples(index=False):
        assert by_q[discard] == fnmr, discard  # the same point, to the last bit
    between = [f for d, f in by_q.items() if d not in set(unified["discard"])]
    assert len(set(between)) > 1  # Q's curve has points of its own between the boundaries


# --- the command line -------------------------------------------------------------------------------------

def _record(table) -> dict:
    return json.loads(ScoreTable(table).record.read_text())


def _refused(argv, message, capsys, folder) -> None:
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("faceqan: ") and err.count("\n") == 1 and message in err, err
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


def test_cli_calibrate_score_resume_and_merge_keep_one_unified_scale(tmp_path, capsys):
    """`faceqan calibrate` on a table of the cached aligned faces (with the record `faceqan score` writes for
    them) gives the shipped calibration's knots; a shard scored with it and one scored with the shipped one are
    refused by merge until a resume gives the second the same calibration: a resume rewrites only the unified
    score of the rows it keeps, and keeps the output's calibration unless given another. The merged table's
    score is the number of knots Q reaches, 255 for a failure."""
    from faceqan.align import FacePreparer
    from faceqan.pipeline import score_settings

    reference = tmp_path / "reference.csv"
    pd.DataFrame(aligned_scores(SFACE.faces)).assign(model="sface").to_csv(reference, index=False)
    sface = get_entry("sface")
    model = type("Scored", (), {"name": "sface", "sha256": sface.sha256})
    record = score_settings(model, FaceQANConfig(), FacePreparer.for_model(sface))
    ScoreTable(reference).record.write_text(json.dumps(record))
    mine = tmp_path / "mine.json"
    assert main(["calibrate", str(reference), "--out", str(mine)]) == 0
    calibration = Calibration.load(mine)
    assert calibration == dataclasses.replace(SFACE, reference="the faces scored into reference.csv")
    _refused(["calibrate", str(reference), "--out", str(mine)], "already exists", capsys, tmp_path)

    folder = tmp_path / "faces"  # sorted: a missing file, then a real crop (upper-case name)
    folder.mkdir()
    crop = shutil.copy(subset_paths(1)[0], folder)
    faces = [str(folder / "0_missing.jpg"), str(crop)]
    shards = [tmp_path / "shard_0.csv", tmp_path / "shard_1.parquet"]
    assert main(["score", *faces, "--shard", "0/2", "--out", str(shards[0]), "--quiet",
                 "--calibration", str(mine)]) == 1  # nothing scored: the file is missing
    capsys.readouterr()
    assert main(["score", *faces, "--shard", "1/2", "--out", str(shards[1]), "--workers", "0"]) == 0
    assert "no calibration" not in capsys.readouterr().err  # the shipped one applies
    assert _record(shards[1])["calibration"] == SFACE.to_dict()
    merged = tmp_path / "merged.csv"
    _refused(["merge", *map(str, shards), "--out", str(merged)], "from another calibration", capsys, tmp_path)

    q = read_table(shards[1])["quality"].tolist()
    shifted = fit(np.array([row["quality"] for row in aligned_scores(200)]) - 0.05, "sface", SFACE.model_sha256,
                  SFACE.score_settings, "200 reference faces, 0.05 lower")
    shifted.save(tmp_path / "shifted.json")
    for given, used in (("shifted.json", shifted), (None, shifted), ("mine.json", calibration)):  # None: kept
        assert main(["score", *faces, "--shard", "1/2", "--out", str(shards[1]), "--resume", "--quiet",
                     *(["--calibration", str(tmp_path / given)] if given else [])]) == 0
        assert capsys.readouterr().err.endswith(f"0 scored, 0 failed; 1 rows in {shards[1]} (files kept from "
                                                "before: 1)\n")
        table = read_table(shards[1])
        assert table["quality"].tolist() == q and table["score"].tolist() == _count_reached(used.knots, q).tolist()
        assert _record(shards[1])["calibration"] == used.to_dict()
    assert _count_reached(shifted.knots, q).tolist() != _count_reached(SFACE.knots, q).tolist()  # seen rewritten

    assert main(["merge", *map(str, shards), "--out", str(merged)]) == 0
    table = read_table(merged)
    assert list(table.columns[-2:]) == ["score", "error"] and table["score"].dtype.kind == "i"
    assert table["score"].tolist() == [FAILURE_TO_ASSESS, *_count_reached(SFACE.knots, q)]
    assert _record(merged)["calibration"] == calibration.to_dict()


def test_cli_refuses_a_calibration_of_other_settings_and_says_how_to_get_one(tmp_path, capsys):
    mine = tmp_path / "sface.json"
    SFACE.save(mine)
    face = str(subset_paths(1)[0])
    _refused(["score", face, "-k", "3", "--calibration", str(mine), "--out", str(tmp_path / "s.csv")],
             f"--calibration {mine} was fitted on sface scores of other weights or settings than these (copies 10 "
             "-> 3)", capsys, tmp_path)
    _refused(["score", face, "--calibration", str(tmp_path / "none.json")], "cannot read the calibration",
             capsys, tmp_path)
    out = tmp_path / "few.csv"
    assert main(["score", str(tmp_path / "missing.jpg"), "-k", "3", "--out", str(out)]) == 1
    assert "no calibration of the unified score applies to sface" in capsys.readouterr().err
    assert "score" not in read_table(out).columns and "calibration" not in _record(out)
    _refused(["calibrate", str(out), "--out", str(tmp_path / "c.json")], "at least 100 assessed faces, got 0",
             capsys, tmp_path)
    ScoreTable(out).record.unlink()
    _refused(["calibrate", str(out), "--out", str(tmp_path / "c.json")], "has no settings record", capsys, tmp_path)


# --- FiftyOne -------------------------------------------------------------------------------------------

def _stored(dataset, path) -> list:
    return dataset.values(path, unwind=True)


@pytest.mark.parametrize("faces", [None, "faces"])
def test_calibrate_quality_writes_the_scores_numpy_computes_from_the_stored_q(fo_dataset, faces):
    """A run of 150 cached faces and one failure; calibrate_quality fits on a view of 120 of them and writes
    every face of the run in the database: the knots are the view's percentiles, the stored scores are the knots
    each stored Q reaches (counted in numpy), None for the failure; the run keeps the calibration and deleting
    the run deletes the field."""
    from fiftyone_faceqan import calibrate_quality

    rows = aligned_scores(150)
    failure = {**rows[0], "path": "missing.png", "error": "ImageLoadError: file not found",
               **{k: float("nan") for k in ("quality", "mean_similarity", "std_similarity", "q_adv", "symmetry")}}
    cached_faceqan_run(fo_dataset, [*rows, failure], detections_field=faces)
    prefix = f"{faces}.detections." if faces else ""
    assert not fo_dataset.has_sample_field(prefix + "faceqan_score")  # user's weights: no calibration yet

    view = fo_dataset.limit(120)
    calibration = calibrate_quality(view, "faceqan")
    ranked = np.sort([row["quality"] for row in rows[:120]])
    assert list(calibration.knots) == [ranked[-(-k * 120 // SCALE) - 1] for k in range(1, SCALE + 1)]
    assert calibration.faces == 120 and calibration.model_sha256 == get_entry("sface").sha256
    q, stored = _stored(fo_dataset, prefix + "faceqan"), _stored(fo_dataset, prefix + "faceqan_score")
    expected = _count_reached(calibration.knots, [np.nan if v is None else v for v in q])
    assert stored == [None if v is None else int(e) for v, e in zip(q, expected)]
    assert stored[-1] is None and q[-1] is None and len(stored) == 151
    assert fo_dataset.get_brain_info("faceqan").config.calibration == calibration.to_dict()

    assert calibrate_quality(fo_dataset, "faceqan", calibration=SFACE) == SFACE  # the shipped one, as given
    assert _stored(fo_dataset, prefix + "faceqan_score")[:-1] == SFACE.scores(q[:-1]).tolist()
    fo_dataset.delete_brain_run("faceqan")
    assert not fo_dataset.has_sample_field(prefix + "faceqan_score")


def test_calibrate_quality_refuses_other_settings_and_a_users_field_before_writing(fo_dataset):
    import fiftyone as fo
    from fiftyone_faceqan import calibrate_quality

    cached_faceqan_run(fo_dataset, aligned_scores(3))
    other = dataclasses.replace(SFACE, score_settings={**SFACE.score_settings, "power": 1})
    with pytest.raises(CalibrationError, match="power 1 -> 5"):
        calibrate_quality(fo_dataset, "faceqan", calibration=other)
    with pytest.raises(CalibrationError, match="at least 100 assessed faces, got 3"):
        calibrate_quality(fo_dataset, "faceqan")
    fo_dataset.add_sample_field("faceqan_score", fo.IntField)  # the user's own field of that name
    fo_dataset.set_values("faceqan_score", [7, 8, 9])
    with pytest.raises(ValueError, match="'faceqan_score' already exists and FaceQAN did not create it"):
        calibrate_quality(fo_dataset, "faceqan", calibration=SFACE)
    assert fo_dataset.values("faceqan_score") == [7, 8, 9]
    assert fo_dataset.get_brain_info("faceqan").config.calibration is None


def test_compute_face_quality_writes_the_shipped_score_and_refuses_a_wrong_calibration_first(fo_dataset,
                                                                                            tmp_path):
    """A real face at the default settings gets SFace's shipped unified score, a missing file None; a calibration
    of other settings is refused before anything is written; a rerun with another calibration scores nothing
    again but rewrites the kept face's unified score (the calibration is not part of the fingerprint)."""
    import fiftyone as fo
    from faceqan.models import load_model
    from fiftyone_faceqan import compute_face_quality

    model = load_model("sface")
    face, missing = str(subset_paths(1)[0]), str(tmp_path / "missing.jpg")
    fo_dataset.add_samples([fo.Sample(filepath=face), fo.Sample(filepath=missing)])
    with pytest.raises(CalibrationError, match="copies 10 -> 3"):
        compute_face_quality(fo_dataset, model=model, calibration=SFACE, copies=3, progress=False)
    assert fo_dataset.list_brain_runs() == [] and not fo_dataset.has_sample_field("faceqan")

    compute_face_quality(fo_dataset, model=model, progress=False)  # default settings: the shipped calibration
    q, unified = fo_dataset.values("faceqan"), fo_dataset.values("faceqan_score")
    assert unified == [int(_count_reached(SFACE.knots, [q[0]])[0]), None] and q[1] is None
    assert fo_dataset.get_field("faceqan_score").info == {"faceqan_unified_score": "faceqan"}
    assert fo_dataset.get_brain_info("faceqan").config.calibration == SFACE.to_dict()

    other = fit(np.array([row["quality"] for row in aligned_scores(200)]) - 0.05, "sface", SFACE.model_sha256,
                SFACE.score_settings, "200 of the reference faces, 0.05 lower")
    mine = tmp_path / "mine.json"
    other.save(mine)
    again = compute_face_quality(fo_dataset, model=model, calibration=str(mine), progress=False)
    assert (again.scored, again.skipped, again.failed) == (0, 1, 1)
    assert fo_dataset.values("faceqan") == q  # Q kept, its unified score on the new scale
    rescaled = int(_count_reached(other.knots, [q[0]])[0])
    assert fo_dataset.values("faceqan_score") == [rescaled, None] and rescaled != unified[0]
    assert fo_dataset.get_brain_info("faceqan").config.calibration == other.to_dict()
