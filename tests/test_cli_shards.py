"""`faceqan score --shard i/N` and `faceqan merge` as a SLURM array uses them, on real LFW crops: the merged
shards are byte for byte the unsharded run's table and record; every kind of wrong set of shards, and every
bad --shard, is refused in one line with exit status 2 before anything is written."""

from __future__ import annotations

import json
import shutil

import pytest

from faceqan.cli import main
from faceqan.output import ScoreTable, read_table, table_groups
from lfw_data import subset_paths

QUICK = ["-k", "2", "-l", "1", "--quiet", "--workers", "0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three crops and an empty .jpg (an error row) in a folder, scored whole and as shards 0/3, 1/3, 2/3;
    shard 1 is given the same files as a --list in reverse order and written as Parquet."""
    root = tmp_path_factory.mktemp("run")
    faces = root / "faces"
    faces.mkdir()
    for path in subset_paths(3):
        shutil.copy(path, faces / path.name)
    (faces / "empty.jpg").write_bytes(b"")
    listed = root / "faces.txt"
    listed.write_text("\n".join(f"faces/{p.name}" for p in sorted(faces.iterdir(), reverse=True)))
    whole = root / "whole.csv"
    assert main(["score", str(faces), "--out", str(whole), *QUICK]) == 0
    shards = [root / "shard_0.csv", root / "shard_1.parquet", root / "shard_2.csv"]
    for i, (inputs, out) in enumerate(zip([[str(faces)], ["--list", str(listed)], [str(faces)]], shards)):
        assert main(["score", *inputs, "--shard", f"{i}/3", "--out", str(out), *QUICK]) == 0
    return faces, whole, shards


def _record(table) -> dict:
    return json.loads(ScoreTable(table).record.read_text())


def test_shards_cover_the_sorted_files_and_merge_into_the_unsharded_output(run, tmp_path, capsys):
    faces, whole, shards = run
    assert [list(table_groups(s)) for s in shards] == [[str(p)] for p in sorted(faces.iterdir())[:2]] + [
        [str(p) for p in sorted(faces.iterdir())[2:]]]
    assert _record(shards[1])["shard"] == "1/3" and _record(shards[1])["inputs"]["items"] == 4
    capsys.readouterr()
    assert main(["score", str(faces), "--shard", "2/3", "--out", str(shards[2]), "--resume", *QUICK]) == 0
    assert capsys.readouterr().err == (f"shard 2/3 (2 of 4 files): 0 scored, 1 failed; 2 rows in {shards[2]} "
                                       "(files kept from before: 1)\n")  # resumed: the failed file tried again

    merged = tmp_path / "all.csv"
    assert main(["merge", *map(str, reversed(shards)), "--out", str(merged)]) == 0
    assert capsys.readouterr().err.startswith("3 shards merged: 4 files, 1 failed (retry them with")
    assert merged.read_bytes() == whole.read_bytes()  # the same rows, order and values, to the last digit
    assert _record(merged) == _record(whole)  # so `faceqan score ... --out all.csv --resume` continues it
    assert read_table(merged)["error"].notna().tolist() == [False, False, False, True]


def _refused(argv: list[str], message: str, capsys, *folders) -> None:
    """Exit status 2, one line holding ``message``, and no file created or changed in ``folders``."""
    before = {p: p.stat().st_mtime_ns for folder in folders for p in folder.rglob("*")}
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("faceqan: ") and err.count("\n") == 1 and message in err, err
    assert {p: p.stat().st_mtime_ns for folder in folders for p in folder.rglob("*")} == before


def test_merge_refuses_missing_duplicate_and_unsharded_outputs(run, tmp_path, capsys):
    _, whole, (s0, s1, s2) = run
    out = str(tmp_path / "all.csv")
    _refused(["merge", str(s0), str(s2), "--out", out], "shard 1/3 missing (given 0/3, 2/3)", capsys,
             tmp_path, s0.parent)
    again = tmp_path / "copy_of_0.csv"
    shutil.copy(s0, again)
    shutil.copy(ScoreTable(s0).record, ScoreTable(again).record)
    _refused(["merge", str(s0), str(s1), str(again), str(s2), "--out", out],
             f"{again} and {s0} are both shard 0/3: give each shard once", capsys, tmp_path, s0.parent)
    _refused(["merge", str(s0), str(s1), str(s2), str(whole), "--out", out], f"{whole} was not made with --shard",
             capsys, tmp_path, s0.parent)
    _refused(["merge", str(s0), str(s1), str(s2), "--out", str(whole)], f"{whole} already exists", capsys,
             s0.parent)


def test_merge_refuses_an_unfinished_shard(run, tmp_path, capsys):
    _, _, (s0, s1, s2) = run
    resumed = tmp_path / "shard_2.csv"  # as a killed `--resume` leaves it: the table and the journal
    shutil.copy(s2, resumed)
    shutil.copy(ScoreTable(s2).record, ScoreTable(resumed).record)
    first = next(iter(table_groups(s2).values()))
    ScoreTable(resumed).journal.write_text(json.dumps(first) + "\n")
    _refused(["merge", str(s0), str(s1), str(resumed), "--out", str(tmp_path / "all.csv")],
             f"{resumed} is unfinished (shard_2.csv.partial.jsonl is there)", capsys, tmp_path, s0.parent)


def test_merge_refuses_shards_of_other_settings_inputs_or_shard_counts(run, tmp_path, capsys):
    faces, _, (s0, s1, _) = run
    other = {"settings": tmp_path / "copies.csv", "inputs": tmp_path / "inputs.csv", "count": tmp_path / "of4.csv"}
    crops = [str(p) for p in sorted(faces.iterdir()) if p.stat().st_size]
    assert main(["score", str(faces), "--shard", "2/3", "--out", str(other["settings"]), *QUICK, "-k", "3"]) == 0
    assert main(["score", *crops, "--shard", "2/3", "--out", str(other["inputs"]), *QUICK]) == 0
    assert main(["score", str(faces), "--shard", "3/4", "--out", str(other["count"]), *QUICK]) == 1  # empty.jpg
    messages = {"settings": f"{other['settings']} was made with other settings than {s0} (copies 2 -> 3)",
                "inputs": f"{other['inputs']} was made with other settings than {s0} (inputs {{'items': 4, ",
                "count": f"{other['count']} is shard 3/4 but {s0} is shard 0/3"}
    for kind, shard in other.items():
        _refused(["merge", str(s0), str(s1), str(shard), "--out", str(tmp_path / "all.csv")], messages[kind],
                 capsys, tmp_path, s0.parent)


@pytest.mark.parametrize("shard, message", [
    ("3/3", "got '3/3': shard must be i/N with N >= 1 and 0 <= i < N"),
    ("-1/3", "got '-1/3'"),
    ("0/0", "got '0/0'"),
    ("1", "shard must be written i/N (e.g. 0/4), got '1'"),
    ("a/3", "got 'a/3'"),
])
def test_bad_shards_are_refused_before_any_work(tmp_path, capsys, shard, message):
    image = shutil.copy(subset_paths(1)[0], tmp_path)
    _refused(["score", image, f"--shard={shard}", "--out", str(tmp_path / "s.csv"), *QUICK], message, capsys,
             tmp_path)
    _refused(["score", image, "--shard", "0/2", *QUICK], "--shard needs --out", capsys, tmp_path)


def test_a_shard_without_files_is_an_empty_table(run, tmp_path, capsys):
    faces, _, _ = run
    out = tmp_path / "shard_0.csv"
    capsys.readouterr()
    assert main(["score", str(faces), "--shard", "0/5", "--out", str(out), *QUICK]) == 0
    assert capsys.readouterr().err == f"shard 0/5 (0 of 4 files): 0 scored, 0 failed; 0 rows in {out}\n"
    assert read_table(out).empty and _record(out)["shard"] == "0/5"
