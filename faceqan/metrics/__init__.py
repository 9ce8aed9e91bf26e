"""Evaluating quality scores against recognition errors: comparisons, FNM-EDC / ERC curves, pAUC.

numpy and pandas only (no torch, no FiftyOne): embeddings come in as arrays.

>>> comps = Comparisons.from_labels(embeddings, identities)            # all mated + all non-mated pairs
>>> result = evaluate(comps, {"faceqan": q, "sharpness": s}, fmr=1e-3)
>>> result.summary                                                     # one row per (measure, curve)
>>> bootstrap_pauc(comps, {"faceqan": q}, identities, result.tau).table()  # 95 % intervals of pAUC@20 %
"""

from .bootstrap import Bootstrap, bootstrap_pauc, identity_counts
from .comparisons import Comparisons, PairSet, count_non_mated, index_pairs, read_lfw_pairs
from .curves import (BEST, CURVE_LABELS, ERC_FRACTIONS, FNMR_AT, PAUC_AT, RANDOM, Evaluation, evaluate,
                     reference_curves, summarise, thin)
from .threshold import kept_for_threshold

__all__ = ["BEST", "Bootstrap", "CURVE_LABELS", "Comparisons", "ERC_FRACTIONS", "Evaluation", "FNMR_AT",
           "PAUC_AT", "PairSet", "RANDOM", "bootstrap_pauc", "count_non_mated", "evaluate", "identity_counts",
           "index_pairs", "kept_for_threshold", "read_lfw_pairs", "reference_curves", "summarise", "thin"]
