"""`faceqan merge`: the outputs of `faceqan score --shard i/N` as the one table an unsharded run writes.

Every check runs before anything is written: each output must be finished (no journal) and carry the record
of a shard; all must share the settings, model, weights, inputs and unified-score calibration recorded with
them, and cover every shard of the run exactly once. The merged table lists the files in the stable order the
shards were cut from, and its record is an unsharded run's, so ``faceqan score ... --out merged.csv --resume``
retries its failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .calibration import RECORD_KEY
from .output import OutputError, ScoreTable, setting_changes, table_groups, write_record, write_table
from .pipeline import rows_to_frame
from .shards import INPUTS_KEY, SHARD_KEY, parse_shard, shard_bounds


def _shard_of(table: ScoreTable) -> tuple[dict, int, int]:
    """(record, index, count) of a finished shard output."""
    record = table.finished_record("merge", "faceqan score --shard i/N --out ...")
    if SHARD_KEY not in record:
        raise OutputError(f"{table.out} was not made with --shard: only the shards of one run can be merged")
    return record, *parse_shard(record[SHARD_KEY])


def _run_settings(record: dict) -> dict:
    """What every shard of one run records alike, but the calibration (compared on its own)."""
    return {key: value for key, value in record.items() if key not in (SHARD_KEY, RECORD_KEY)}


def checked_shards(outputs: Sequence[Path]) -> list[tuple[ScoreTable, dict]]:
    """The shard outputs in shard order with their records, or OutputError naming the first problem."""
    shards = [(table, *_shard_of(table)) for table in (ScoreTable(p, "a shard output") for p in outputs)]
    first, first_record, first_index, count = shards[0]
    by_index: dict[int, tuple[ScoreTable, dict]] = {}
    for table, record, index, n in shards:
        changed = setting_changes(_run_settings(first_record), _run_settings(record))
        if changed:
            raise OutputError(f"{table.out} was made with other settings than {first.out} ({'; '.join(changed)}): "
                              "merge only the shards of one run")
        if record.get(RECORD_KEY) != first_record.get(RECORD_KEY):
            raise OutputError(f"{table.out} has its unified scores from another calibration than {first.out} (or "
                              f"none): rewrite its score column with `faceqan score <the same inputs> --shard "
                              f"{index}/{n} --out {table.out} --resume` and the calibration of the others "
                              "(--calibration FILE), then merge")
        if n != count:
            raise OutputError(f"{table.out} is shard {index}/{n} but {first.out} is shard {first_index}/{count}: "
                              "merge only the shards of one run")
        if index in by_index:
            raise OutputError(f"{table.out} and {by_index[index][0].out} are both shard {index}/{count}: give each "
                              "shard once")
        by_index[index] = table, record
    missing = [f"{i}/{count}" for i in range(count) if i not in by_index]
    if missing:
        given = ", ".join(f"{i}/{count}" for i in sorted(by_index))
        raise OutputError(f"shard {', '.join(missing)} missing (given {given}): score it with "
                          "`faceqan score ... --shard i/N`, then merge all of them")
    return [by_index[i] for i in range(count)]


def merge_shards(outputs: Sequence[Path], out: Path) -> pd.DataFrame:
    """Checks the shard outputs, then writes their rows to ``out`` with an unsharded run's record."""
    target = ScoreTable(out)
    if target.out.exists() or target.journal.exists():
        raise OutputError(f"{out} already exists: give another --out")
    shards = checked_shards(outputs)
    rows, seen = [], set()
    for index, (table, record) in enumerate(shards):
        groups = table_groups(table.out)
        start, stop = shard_bounds(record[INPUTS_KEY]["items"], index, len(shards))
        if len(groups) != stop - start or seen & set(groups):
            raise OutputError(f"{table.out} does not hold the {stop - start} files of shard {index}/{len(shards)} "
                              "(was it edited?): score that shard again into a new --out")
        seen.update(groups)
        rows.extend(row for group in groups.values() for row in group)
    frame = rows_to_frame(rows)
    write_record({k: v for k, v in shards[0][1].items() if k not in (SHARD_KEY, INPUTS_KEY)}, target.record)
    write_table(frame, target.out)
    return frame
