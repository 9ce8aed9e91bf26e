"""Exact decision thresholds at a target FMR over streamed non-mated scores.

A threshold is the (k+1)-th highest of n non-mated scores with k = floor(fmr * n); a comparison is a match
when its score is strictly above it, so the achieved FMR is <= fmr even with tied scores. Only the k+1
highest scores of each selection are ever kept, and the lowest running threshold is pushed down to the
score producer as a floor, so after the first block almost every non-mated score is dropped unread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .comparisons import Comparisons


def kept_for_threshold(n: int, fmr: float) -> int:
    """How many of the highest scores decide the threshold: k + 1."""
    if not 0 < fmr <= 1:
        raise ValueError(f"fmr must be in (0, 1], got {fmr}")
    return int(np.floor(fmr * n + 1e-9)) + 1


class _Top:
    """The ``k`` largest values seen so far (exact); ``floor`` never exceeds the final k-th largest."""

    def __init__(self, k: int):
        self.k = k
        self.values = np.empty(0, dtype=np.float32)
        self.floor = -np.inf

    def add(self, values: np.ndarray) -> None:
        values = values[values >= self.floor]
        if not len(values):
            return
        merged = np.concatenate([self.values, values])
        if len(merged) >= self.k:
            cut = len(merged) - self.k
            merged = np.partition(merged, cut)[cut:].copy()  # a copy: a view would pin the whole array
            self.floor = float(merged.min())
        self.values = merged

    def kth(self) -> float:
        if len(self.values) < self.k:
            raise RuntimeError(f"only {len(self.values)} scores reached the selection, expected {self.k}")
        return float(self.values.min())


@dataclass(frozen=True)
class Selection:
    """Non-mated pairs whose pair-quality level (min of the two image levels) is >= ``min_level``;
    ``levels=None`` selects every non-mated pair. ``count`` is how many pairs that is."""

    levels: np.ndarray | None
    min_level: int
    count: int


def thresholds(comparisons: Comparisons, selections: list[Selection], fmr: float) -> list[float]:
    """The threshold of each selection in one pass over the non-mated scores.

    NaN where a selection is empty, -inf where fmr lets every non-mated pair match.
    """
    out: list[float] = [np.nan] * len(selections)
    tops: dict[int, _Top] = {}
    groups: dict[int, tuple[np.ndarray | None, list[tuple[int, int]]]] = {}
    for index, sel in enumerate(selections):
        k = kept_for_threshold(sel.count, fmr)
        if sel.count == 0:
            continue
        if k > sel.count:
            out[index] = -np.inf
            continue
        tops[index] = _Top(k)
        key = id(sel.levels) if sel.levels is not None else 0
        groups.setdefault(key, (sel.levels, []))[1].append((index, sel.min_level))
    if not tops:
        return out

    def floor() -> float:
        return min(top.floor for top in tops.values())

    for block in comparisons.non_mated_blocks(floor):
        for levels, members in groups.values():
            pair_level = None if levels is None else np.minimum(levels[block.a], levels[block.b])
            for index, min_level in members:
                tops[index].add(block.score if pair_level is None else block.score[pair_level >= min_level])
    for index, top in tops.items():
        out[index] = top.kth()
    return out
