"""Identity-clustered bootstrap of the normalised FNM-EDC pAUC: which differences between measures are real.

The images of one person are not independent samples (one hard identity can hold many of the false
non-matches), so the resampling unit is the identity: each resample draws the identities that have mated
pairs with replacement, and every mated pair of an identity drawn k times counts k times. The threshold stays
the one fixed on all non-mated pairs (the operating point under evaluation), so only the mated side varies.
A difference between two measures is taken on the same resamples (paired), which is much tighter than
comparing their two intervals. Intervals are percentile intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .comparisons import Comparisons
from .curves import _mated_levels, _pct, quality_levels, step_area


@dataclass(frozen=True)
class Bootstrap:
    """``estimates``: normalised pAUC per measure on the data as it is (= evaluate()'s ``pauc_<d>_norm``);
    ``samples``: one row per resample, one column per measure (NaN where a resample has no error)."""

    estimates: pd.Series
    samples: pd.DataFrame
    limit: float
    level: float

    @property
    def column(self) -> str:
        return f"pauc_{_pct(self.limit)}_norm"

    def _bounds(self, values: np.ndarray) -> tuple[float, float]:
        tail = 50.0 * (1.0 - self.level)
        if np.isnan(values).all():  # no resample has an error (a group without false non-matches)
            return np.nan, np.nan
        low, high = np.nanpercentile(values, [tail, 100.0 - tail])
        return float(low), float(high)

    def interval(self, measure: str) -> tuple[float, float]:
        return self._bounds(self.samples[measure].to_numpy())

    def difference(self, a: str, b: str) -> tuple[float, float, float]:
        """a - b: the estimate and its interval over the same resamples (excludes 0: a real difference)."""
        low, high = self._bounds(self.samples[a].to_numpy() - self.samples[b].to_numpy())
        return float(self.estimates[a] - self.estimates[b]), low, high

    def table(self) -> pd.DataFrame:
        """measure, pauc_<d>_norm, pauc_<d>_norm_lo, pauc_<d>_norm_hi."""
        bounds = [self.interval(m) for m in self.estimates.index]
        return pd.DataFrame({"measure": self.estimates.index, self.column: self.estimates.to_numpy(),
                             f"{self.column}_lo": [b[0] for b in bounds],
                             f"{self.column}_hi": [b[1] for b in bounds]})


def identity_counts(n_identities: int, resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, n_identities): how often each identity is drawn when drawing n_identities with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_identities, np.full(n_identities, 1.0 / n_identities), size=resamples)


def bootstrap_pauc(comparisons: Comparisons, qualities: Mapping[str, Sequence[float]], labels: Sequence,
                   tau: float, limit: float = 0.2, resamples: int = 1000, seed: int = 0,
                   level: float = 0.95) -> Bootstrap:
    """Normalised FNM-EDC pAUC up to ``limit`` of every measure, on identity resamples of the mated pairs.

    labels: the identity of each image (mated pairs must join images of one identity); tau: the threshold
    of the evaluation (``Evaluation.tau``). Memory stays bounded at 10^7 mated pairs: resamples are taken in
    blocks, and each reads only the lowest-quality pairs that its curve discards before ``limit``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    codes = np.unique(np.asarray(labels), return_inverse=True)[1].ravel()
    if len(codes) != comparisons.n_images:
        raise ValueError(f"{len(codes)} labels for {comparisons.n_images} images")
    mated = comparisons.mated
    if np.any(codes[mated.a] != codes[mated.b]):
        raise ValueError("a mated pair joins images of two identities")
    clusters, pair_cluster = np.unique(codes[mated.a], return_inverse=True)
    pair_cluster = pair_cluster.ravel()
    weights = np.vstack([np.ones(len(clusters), dtype=np.int64),  # row 0: the data as it is
                         identity_counts(len(clusters), resamples, seed)])
    errors = mated.score <= tau
    totals = (weights @ np.bincount(pair_cluster, minlength=len(clusters)),
              weights @ np.bincount(pair_cluster[errors], minlength=len(clusters)))
    values = {}
    for name, quality in qualities.items():
        levels, _ = quality_levels(quality)
        if len(levels) != comparisons.n_images:
            raise ValueError(f"quality {name!r} has {len(levels)} values for {comparisons.n_images} images")
        pair_level = _mated_levels(comparisons, levels)
        order = np.argsort(pair_level, kind="stable")
        ends = np.append(np.flatnonzero(np.diff(pair_level[order])) + 1, len(order))  # tie group ends
        area = _edc_areas(weights, pair_cluster[order], errors[order], ends, totals, limit)
        fnmr0 = totals[1] / totals[0]
        values[name] = np.divide(area, fnmr0 * limit, out=np.full(len(area), np.nan), where=fnmr0 > 0)
    table = pd.DataFrame(values)
    return Bootstrap(table.iloc[0], table.iloc[1:].reset_index(drop=True), limit, level)


BLOCK_VALUES = 1 << 24  # weights of pairs held per block of resamples (128 MB of int64)
PREFIX = 1.25  # the first pass reads the pairs up to PREFIX * limit of the unweighted discard


def _edc_areas(weights, cluster, errors, ends, totals, limit) -> np.ndarray:
    """Area under each resample's FNM-EDC up to ``limit``: pairs sorted by quality with their identity
    cluster and error flag, ``ends`` closing each tie group; ``totals`` (pairs, errors) per resample.
    A resample whose curve does not reach ``limit`` within the first pass is done again on every pair."""
    cut = np.searchsorted(ends, min(len(cluster), int(np.ceil(PREFIX * limit * len(cluster)))))
    first = ends[:cut + 1]
    area = np.empty(len(weights))
    again = []
    step = max(1, BLOCK_VALUES // int(first[-1]))
    for start in range(0, len(weights), step):
        rows = slice(start, start + step)
        area[rows], reached = _areas_of(weights[rows], cluster, errors, first, totals[0][rows], totals[1][rows],
                                        limit)
        again.extend(np.flatnonzero(~reached) + start)
    for row in again:
        one = slice(row, row + 1)
        area[one], _ = _areas_of(weights[one], cluster, errors, ends, totals[0][one], totals[1][one], limit)
    return area


def _areas_of(weights, cluster, errors, ends, pairs, errs, limit):
    """edc_steps and step_area on the pairs up to ends[-1]; and whether each curve got to ``limit``.
    Pairs run down the first axis (a row per pair holds its weight in every resample: contiguous reads)."""
    by_cluster = np.ascontiguousarray(weights.T)
    gone = np.cumsum(by_cluster[cluster[:ends[-1]]], axis=0)[ends - 1].T
    wrong = np.flatnonzero(errors[:ends[-1]])  # few: the errors' weights alone
    err = np.vstack([np.zeros((1, len(weights)), np.int64), np.cumsum(by_cluster[cluster[wrong]], axis=0)])
    err = err[np.searchsorted(wrong, ends, side="left")].T
    pairs, errs = pairs[:, None].astype(np.float64), errs[:, None].astype(np.float64)
    left = pairs - gone
    discard = np.concatenate([np.zeros_like(pairs), gone / pairs], axis=1)
    fnmr = np.concatenate([errs / pairs, np.divide(errs - err, left, out=np.zeros(left.shape), where=left > 0)],
                          axis=1)
    return step_area(discard, fnmr, limit), discard[:, -1] >= limit
