"""Error-versus-discard curves of quality measures on one set of comparisons, as pandas tables.

Two curve types, labelled in every output:
- ``edc``: the ISO/IEC 29794-1:2024 FNM-EDC. The threshold is fixed once from all non-mated pairs; mated
  pairs are discarded by pair quality min(q(a), q(b)), lowest first, ties together; FNMR over the mated pairs
  left. A step curve from (0, FNMR0) to (1, 0); x is the fraction of mated pairs discarded.
- ``erc``: the legacy ERC of the MagFace / CR-FIQA evaluation code (the FaceQAN paper's plots). For
  r = 0, 0.05, ..., 0.95 keep the pairs, mated and non-mated, whose pair quality is at least the r-quantile of
  all pair qualities, recompute the threshold on the kept non-mated pairs, FNMR on the kept mated pairs;
  trapezoid areas; x is r.
A failed quality assessment (NaN) counts as the lowest quality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .comparisons import Comparisons
from .threshold import Selection, thresholds

CURVE_LABELS = {
    "edc": "FNM-EDC (ISO/IEC 29794-1:2024, fixed threshold)",
    "erc": "ERC (legacy, threshold recomputed per discard fraction)",
    "reference": "reference",
}
RANDOM, BEST = "random rejection", "theoretical best"
ERC_FRACTIONS = tuple(round(0.05 * i, 2) for i in range(20))
FNMR_AT = (0.1, 0.2, 0.4)
PAUC_AT = (0.1, 0.2, 0.3, 0.4, 0.8)
CURVE_COLUMNS = ["measure", "curve", "discard", "fnmr", "tau", "kept_mated", "kept_non_mated", "quality_cut"]


def quality_levels(quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Dense ranks of image qualities (equal qualities share a level; NaN is the lowest) and the values."""
    q = np.asarray(quality, dtype=np.float64)
    q = np.where(np.isnan(q), -np.inf, q)
    values, levels = np.unique(q, return_inverse=True)
    return levels.ravel().astype(np.int64), values


def _mated_levels(comparisons: Comparisons, levels: np.ndarray) -> np.ndarray:
    return np.minimum(levels[comparisons.mated.a], levels[comparisons.mated.b])


def edc_curve(comparisons: Comparisons, levels: np.ndarray, values: np.ndarray, tau: float) -> pd.DataFrame:
    """FNM-EDC points: one per discarded tie group of mated pair qualities."""
    pair_level = _mated_levels(comparisons, levels)
    errors = comparisons.mated.score <= tau
    count = np.bincount(pair_level, minlength=len(values))
    err = np.bincount(pair_level, weights=errors, minlength=len(values))
    used = np.flatnonzero(count)
    discard, fnmr, kept = edc_steps(count[used], err[used])
    return pd.DataFrame({
        "curve": "edc",
        "discard": discard,
        "fnmr": fnmr,
        "tau": tau,
        "kept_mated": kept,
        "kept_non_mated": comparisons.n_non_mated,
        "quality_cut": np.concatenate([[-np.inf], values[used]]),  # pairs with pair quality <= cut are gone
    })


def edc_steps(count: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FNM-EDC points from the mated pairs and errors of each tie group, lowest quality first (last axis;
    leading axes are independent curves): discard fraction, FNMR, pairs kept."""
    n, e = count.sum(axis=-1, keepdims=True), err.sum(axis=-1, keepdims=True)
    gone = np.cumsum(count, axis=-1)
    left = n - gone
    fnmr = np.divide(e - np.cumsum(err, axis=-1), left, out=np.zeros(left.shape), where=left > 0)
    discard = np.concatenate([np.zeros(n.shape), gone / n], axis=-1)
    return discard, np.concatenate([e / n, fnmr], axis=-1), np.concatenate([n, left], axis=-1)


def _erc_cuts(comparisons: Comparisons, levels: np.ndarray, n_levels: int, fractions: Sequence[float]):
    """Per fraction r: the lowest pair-quality level kept and how many mated / non-mated pairs it keeps."""
    mated = np.bincount(_mated_levels(comparisons, levels), minlength=n_levels)
    non_mated = comparisons.non_mated_level_counts(levels, n_levels)
    cumulative = np.cumsum(mated + non_mated)
    kept_mated = np.cumsum(mated[::-1])[::-1]
    kept_non_mated = np.cumsum(non_mated[::-1])[::-1]
    cuts = []
    for r in fractions:
        position = int(np.floor(r * cumulative[-1] + 1e-9))  # index of the r-quantile pair, ascending
        level = int(np.searchsorted(cumulative, position, side="right"))
        cuts.append((level, int(kept_mated[level]), int(kept_non_mated[level])))
    return cuts


def _trapezoid(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    inside = x <= limit
    xs, ys = x[inside], y[inside]
    if xs[-1] < limit and limit <= x[-1]:
        xs, ys = np.append(xs, limit), np.append(ys, np.interp(limit, x, y))
    return float(np.trapezoid(ys, xs))


def step_area(x: np.ndarray, y: np.ndarray, limit: float):
    """Area under a step curve (y holds from each x to the next, the last to 1) up to x = limit; last axis."""
    right = np.minimum(np.concatenate([x[..., 1:], np.ones_like(x[..., :1])], axis=-1), limit)
    return np.sum(y * np.clip(right - np.minimum(x, limit), 0, None), axis=-1)


def _step_value(x: np.ndarray, y: np.ndarray, at: float) -> float:
    return float(y[np.searchsorted(x, at + 1e-12, side="right") - 1])


def _pct(d: float) -> str:
    return f"{round(d * 100):d}"


def summarise(curve: pd.DataFrame, fnmr_at: Sequence[float] = FNMR_AT,
              pauc_at: Sequence[float] = PAUC_AT) -> dict:
    """FNMR at discard fractions, raw pAUC and pAUC / (FNMR0 * d) (1 = random rejection), total AUC."""
    kind = curve["curve"].iloc[0]
    x, y = curve["discard"].to_numpy(float), curve["fnmr"].to_numpy(float)
    valid = ~np.isnan(y)
    x, y = x[valid], y[valid]
    value = _step_value if kind == "edc" else lambda xs, ys, d: float(np.interp(d, xs, ys))
    area = step_area if kind == "edc" else _trapezoid
    fnmr0 = float(y[0])
    row = {"fnmr_0": fnmr0, **{f"fnmr_{_pct(d)}": value(x, y, d) for d in fnmr_at}}
    for d in pauc_at:
        raw = area(x, y, d)
        row[f"pauc_{_pct(d)}"] = raw
        row[f"pauc_{_pct(d)}_norm"] = raw / (fnmr0 * d) if fnmr0 > 0 else np.nan
    row["auc"] = area(x, y, float(x[-1]))
    return row


def thin(curves: pd.DataFrame, points: int) -> pd.DataFrame:
    """At most ``points`` + 1 points per measure and curve type: of a longer curve (an EDC has a point per
    distinct pair quality, ~10^6 at 10^6 images), the point in force at every 1/points of discard and the
    last point, so the thinned step curve is exact there. For storing and plotting; summaries are computed
    on the full curve."""
    parts = []
    for _, group in curves.groupby(["measure", "curve"], sort=False):
        if len(group) > points + 1:
            at = np.searchsorted(group["discard"].to_numpy(), np.linspace(0, 1, points + 1), side="right") - 1
            group = group.iloc[sorted({*at.tolist(), len(group) - 1})]
        parts.append(group)
    return pd.concat(parts, ignore_index=True)


def reference_curves(fnmr0: float, points: int = 101) -> pd.DataFrame:
    """Random rejection (FNMR stays FNMR0) and the theoretical best max(0, FNMR0 - d)."""
    d = np.unique(np.concatenate([np.linspace(0, 1, points), [min(max(fnmr0, 0.0), 1.0)]]))
    return pd.concat([
        pd.DataFrame({"measure": RANDOM, "curve": "reference", "discard": d, "fnmr": fnmr0}),
        pd.DataFrame({"measure": BEST, "curve": "reference", "discard": d, "fnmr": np.maximum(0.0, fnmr0 - d)}),
    ], ignore_index=True)


def _reference_summary(fnmr0: float, fnmr_at: Sequence[float], pauc_at: Sequence[float]) -> list[dict]:
    """Closed forms, so the reference rows are exact at every limit."""
    def best_area(d: float) -> float:
        return fnmr0 * d - d * d / 2 if d <= fnmr0 else fnmr0 * fnmr0 / 2

    rows = []
    for name, value, area in ((RANDOM, lambda d: fnmr0, lambda d: fnmr0 * d),
                              (BEST, lambda d: max(0.0, fnmr0 - d), best_area)):
        row = {"measure": name, "curve": "reference", "fnmr_0": fnmr0,
               **{f"fnmr_{_pct(d)}": value(d) for d in fnmr_at}}
        for d in pauc_at:
            row[f"pauc_{_pct(d)}"] = area(d)
            row[f"pauc_{_pct(d)}_norm"] = area(d) / (fnmr0 * d) if fnmr0 > 0 else np.nan
        row["auc"] = area(1.0)
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Evaluation:
    """``curves``: long-form points (measure, curve, discard, fnmr, tau, kept counts, quality_cut), the
    references included; ``summary``: one row per (measure, curve); ``tau``: the threshold on all pairs."""

    curves: pd.DataFrame
    summary: pd.DataFrame
    tau: float
    fmr: float
    n_mated: int
    n_non_mated: int


def evaluate(comparisons: Comparisons, qualities: Mapping[str, Sequence[float]] | pd.DataFrame,
             fmr: float = 1e-3, curves: Sequence[str] = ("edc", "erc"),
             erc_fractions: Sequence[float] = ERC_FRACTIONS, fnmr_at: Sequence[float] = FNMR_AT,
             pauc_at: Sequence[float] = PAUC_AT) -> Evaluation:
    """Every quality measure (one value per image, in the comparisons' image order) on the same pairs."""
    unknown = set(curves) - {"edc", "erc"}
    if unknown:
        raise ValueError(f"unknown curve types {sorted(unknown)}; use 'edc' and/or 'erc'")
    if len(comparisons.mated) == 0:
        raise ValueError("no mated comparisons: every identity has a single image")
    if comparisons.n_non_mated == 0:
        raise ValueError("no non-mated comparisons")
    measures = {name: quality_levels(q) for name, q in dict(qualities).items()}
    for name, (levels, _) in measures.items():
        if len(levels) != comparisons.n_images:
            raise ValueError(f"quality {name!r} has {len(levels)} values for {comparisons.n_images} images")

    selections = [Selection(None, 0, comparisons.n_non_mated)]
    cuts = {}
    if "erc" in curves:
        for name, (levels, values) in measures.items():
            cuts[name] = _erc_cuts(comparisons, levels, len(values), erc_fractions)
            selections += [Selection(levels, level, nm) for level, _, nm in cuts[name]]
    taus = iter(thresholds(comparisons, selections, fmr))
    tau = next(taus)

    tables = []
    for name, (levels, values) in measures.items():
        if "edc" in curves:
            tables.append(edc_curve(comparisons, levels, values, tau).assign(measure=name))
        if "erc" in curves:
            pair_level = _mated_levels(comparisons, levels)
            rows = []
            for r, (level, kept_mated, kept_non_mated) in zip(erc_fractions, cuts[name]):
                t = next(taus)
                kept = comparisons.mated.score[pair_level >= level]
                rows.append({"curve": "erc", "discard": float(r),
                             "fnmr": float(np.mean(kept <= t)) if len(kept) and not np.isnan(t) else np.nan,
                             "tau": t, "kept_mated": kept_mated, "kept_non_mated": kept_non_mated,
                             "quality_cut": values[level - 1] if level > 0 else -np.inf})
            tables.append(pd.DataFrame(rows).assign(measure=name))
    fnmr0 = float(np.mean(comparisons.mated.score <= tau))
    curve_table = pd.concat(tables + [reference_curves(fnmr0)], ignore_index=True)[CURVE_COLUMNS]
    summary = [{"measure": name, "curve": kind, **summarise(group, fnmr_at, pauc_at)}
               for (name, kind), group in curve_table[curve_table["curve"] != "reference"]
               .groupby(["measure", "curve"], sort=False)]
    summary += _reference_summary(fnmr0, fnmr_at, pauc_at)
    summary_table = pd.DataFrame(summary)
    summary_table.insert(2, "curve_label", summary_table["curve"].map(CURVE_LABELS))
    return Evaluation(curve_table, summary_table, tau, fmr, len(comparisons.mated), comparisons.n_non_mated)
