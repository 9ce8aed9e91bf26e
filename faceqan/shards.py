"""Shards of one run: N disjoint, contiguous slices of a stable order of its items, so any worker can take
any shard in any order, and a shard run again (after a killed worker) covers the same items.

The CLI slices its sorted file paths with them and the FiftyOne layer its sorted sample ids; both name a
shard ``i/N`` with ``0 <= i < N`` (a SLURM array's ``$SLURM_ARRAY_TASK_ID/N`` with ``--array=0-(N-1)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SHARD_KEY, INPUTS_KEY = "shard", "inputs"  # the keys shard_record adds to an output's record


def check_shard(index: int, count: int) -> tuple[int, int]:
    """``(index, count)`` as given, or ValueError naming the problem."""
    for name, value in (("shard index", index), ("shard count", count)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be i/N with N >= 1 and 0 <= i < N, got {index}/{count}")
    return index, count


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)``, checked."""
    index, slash, count = str(text).partition("/")
    try:
        if not slash:
            raise ValueError
        return check_shard(int(index), int(count))
    except ValueError as exc:
        detail = f": {exc}" if str(exc) else ""
        raise ValueError(f"shard must be written i/N (e.g. 0/4), got {text!r}{detail}") from None


def shard_bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """``[start, stop)`` of shard ``index`` of ``count`` over ``total`` ordered items; sizes differ by <= 1."""
    check_shard(index, count)
    return total * index // count, total * (index + 1) // count


def shard_slice(items: Sequence, index: int, count: int) -> list:
    """The items of one shard, from items already in their stable order."""
    start, stop = shard_bounds(len(items), index, count)
    return list(items[start:stop])


def shard_record(items: Sequence, index: int, count: int) -> dict:
    """What an output of shard ``index``/``count`` records beside its settings: the shard, and the whole order
    it was cut from (how many items, a hash of them in order), so a merge can tell the shards of one run."""
    check_shard(index, count)
    digest = hashlib.sha256("\n".join(map(str, items)).encode()).hexdigest()
    return {SHARD_KEY: f"{index}/{count}", INPUTS_KEY: {"items": len(items), "sha256": digest}}
