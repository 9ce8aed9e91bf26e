"""The table ``faceqan score --out`` writes: every scored file kept on disk as it is scored, resumable.

Parquet cannot be appended to and a killed writer leaves no footer, so rows go first to a journal beside
the output (``<out>.partial.jsonl``): one JSON line per image file holding all its rows, flushed after every
batch, so a kill loses no scored file and never leaves half of one (a cut last line is dropped). The run's
end writes the CSV or Parquet table under a temporary name, renames it and removes the journal. The settings
the scores depend on are recorded in ``<out>.faceqan.json``; a resume continues only under the same ones,
keeps every file with scores and scores again every file that failed.
"""

from __future__ import annotations

import json
import os
import time
from itertools import groupby
from pathlib import Path

import pandas as pd

from .calibration import RECORD_KEY
from .config import setting_changes
from .pipeline import rows_to_frame

TABLE_SUFFIXES = (".csv", ".parquet")
SYNC_SECONDS = 10.0  # the journal is flushed after every batch and forced to disk at least this often


class OutputError(ValueError):
    """An output that cannot be written or continued; the message says what to do."""


def check_table_path(path: Path, option: str = "--out") -> None:
    """A name pandas can write in a place that can hold it, checked before any work."""
    if path.suffix not in TABLE_SUFFIXES:
        raise OutputError(f"{option} must end in .csv or .parquet, got {path}")
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder: give a file name ending in .csv or .parquet")
    check_creatable(path, option)


def check_maps_folder(folder: Path, option: str = "--maps") -> None:
    """The folder for the map PNGs: there or can be made, checked before any work."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {folder} is a file: give a folder for the map PNGs")
    check_creatable(folder, option)


def check_creatable(path: Path, option: str) -> None:
    """``path`` can be created: the nearest of its parents that exists is a folder."""
    existing = next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise OutputError(f"{option} {path} cannot be created: {existing} is a file, not a folder")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table; paths stay text even when a name is all digits."""
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"path": str})


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Written under a temporary name and renamed, so the path never holds half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".writing")
    if path.suffix == ".parquet":
        frame.to_parquet(partial, index=False)
    else:
        frame.to_csv(partial, index=False)
    os.replace(partial, path)


def table_groups(path: Path) -> dict[str, list[dict]]:
    """A finished table's rows by path, files in the table's order."""
    rows = read_table(path).to_dict("records")
    return {path: list(same) for path, same in groupby(rows, key=lambda row: row["path"])}


def read_record(path: Path) -> dict:
    return json.loads(path.read_text())


def write_record(settings: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")


def failed(rows: list[dict]) -> bool:
    """Whether a file's rows record a failure (its error is text; a score's is empty, None or NaN)."""
    return any(isinstance(row.get("error"), str) and row["error"] for row in rows)


def _json(value):
    """numpy values and pandas' missing value, as read back from a table, for json.dumps."""
    return None if value is pd.NA else value.tolist()


class ScoreTable:
    """``--out`` with its journal and its settings record."""

    def __init__(self, out: Path, option: str = "--out"):
        check_table_path(out, option)
        self.out = out
        self.journal = out.with_name(out.name + ".partial.jsonl")
        self.record = out.with_name(out.name + ".faceqan.json")

    def check(self, resume: bool) -> None:
        """An existing output is refused without ``resume``, and with it when its settings were not recorded."""
        if not (self.out.exists() or self.journal.exists()):
            return
        what = self.out if self.out.exists() else f"{self.journal} (an interrupted run)"
        if not resume:
            raise OutputError(f"{what} already exists: use --resume to continue it, or another --out")
        if not self.record.is_file():
            raise OutputError(f"{what} has no settings record {self.record.name}, so it cannot be continued "
                              "safely: use another --out")

    def finished_record(self, then: str, made_by: str) -> dict:
        """The settings record of a finished output, or one line saying why it is not one: unfinished (finish it,
        then ``then``), missing, or not made by ``made_by`` with --out."""
        if self.journal.exists():
            raise OutputError(f"{self.out} is unfinished ({self.journal.name} is there): finish it with "
                              f"`faceqan score ... --resume`, then {then}")
        if not self.out.is_file():
            raise OutputError(f"{self.out} not found")
        if not self.record.is_file():
            raise OutputError(f"{self.out} has no settings record {self.record.name}: only outputs of "
                              f"`{made_by}` can be used here")
        return read_record(self.record)

    def previous(self, settings: dict) -> dict[str, list[dict]]:
        """The rows already written, by path (nothing is written here); refused if they were scored with
        other settings. The calibration may differ: it changes only the unified score, which the run writes
        again for every row."""
        if not (self.out.exists() or self.journal.exists()):
            return {}
        recorded = {key: value for key, value in read_record(self.record).items() if key != RECORD_KEY}
        changed = setting_changes(recorded, settings)
        if changed:
            raise OutputError(f"{self.out} was scored with other settings ({'; '.join(changed)}): give the same "
                              "settings to continue it, or use another --out")
        groups = table_groups(self.out) if self.out.exists() else {}
        groups.update(self._journal_groups())
        return groups

    def _journal_groups(self) -> dict[str, list[dict]]:
        """The journal's files, the last attempt of each; a line cut by a kill is ignored."""
        groups = {}
        if self.journal.exists():
            for line in self.journal.read_text().splitlines(keepends=True):
                if line.endswith("\n"):
                    rows = json.loads(line)
                    groups[rows[0]["path"]] = rows
        return groups

    def start(self, settings: dict, kept: dict[str, list[dict]]) -> None:
        """Records the settings and starts the journal with the rows kept from before."""
        write_record(settings, self.record)
        fresh = self.journal.with_name(self.journal.name + ".writing")
        fresh.write_text("".join(json.dumps(rows, default=_json) + "\n" for rows in kept.values()))
        os.replace(fresh, self.journal)
        self._file = open(self.journal, "a")
        self._synced = time.monotonic()

    def append(self, rows: list[dict]) -> None:
        """Each file's rows as one line, flushed at once (a kill keeps them) and synced every 10 s."""
        self._file.write("".join(json.dumps(list(same)) + "\n" for _, same in groupby(rows, key=lambda r: r["path"])))
        self._file.flush()
        if time.monotonic() - self._synced >= SYNC_SECONDS:
            os.fsync(self._file.fileno())
            self._synced = time.monotonic()

    def finish(self, order: list[str]) -> pd.DataFrame:
        """The journal as the final table, files in ``order`` (others first, as they were); the journal goes."""
        self._file.close()
        groups = self._journal_groups()
        rank = {path: i for i, path in enumerate(order)}
        paths = sorted(groups, key=lambda path: rank.get(path, -1))
        frame = rows_to_frame([row for path in paths for row in groups[path]])
        write_table(frame, self.out)
        self.journal.unlink()
        return frame
