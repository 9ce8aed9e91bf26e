"""Mated and non-mated comparisons from embeddings, without ever holding all non-mated scores.

All 13,233 LFW images give ~87 M non-mated pairs; what EDC/ERC need from them is only a threshold (a high
quantile) and how many pairs each quality cut keeps. So mated pairs (few) are stored with their scores, an
explicit non-mated list (a protocol file, a sample) too, but "all non-mated pairs" stays implicit: its scores
are produced block by block from the similarity matrix, filtered by a caller-supplied floor, and its counts
per pair-quality level come from a closed formula.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK_PAIRS = 4_000_000  # scores produced per block: ~16 MB of float32 plus masks


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so a dot product is the cosine similarity."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (images, dims) array, got shape {emb.shape}")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("embeddings contain zero or non-finite rows: drop those images first")
    return emb / norms


def pair_scores(unit: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = CHUNK_PAIRS // 64) -> np.ndarray:
    """Cosine similarity of listed pairs, in chunks (no (pairs, dims) array of the full size)."""
    out = np.empty(len(a), dtype=np.float32)
    for start in range(0, len(a), chunk):
        sl = slice(start, start + chunk)
        out[sl] = np.einsum("ij,ij->i", unit[a[sl]], unit[b[sl]])
    return out


@dataclass(frozen=True)
class PairSet:
    """Pairs of image indices (a, b) with their comparison scores."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    @classmethod
    def from_indices(cls, unit: np.ndarray, a, b) -> PairSet:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        if np.any(a == b):
            raise ValueError("a pair compares an image with itself")
        return cls(a, b, pair_scores(unit, a, b))


# A floor callback returns the lowest score still of interest; blocks drop everything below it.
Floor = Callable[[], float]


@dataclass(frozen=True)
class Comparisons:
    """The comparisons an evaluation runs on: explicit mated pairs, and non-mated pairs that are either
    explicit (``non_mated``) or every cross-identity pair of ``labels`` (``non_mated is None``)."""

    n_images: int
    mated: PairSet
    non_mated: PairSet | None = None
    unit: np.ndarray | None = None  # unit embeddings, kept only for implicit non-mated pairs
    labels: np.ndarray | None = None

    @property
    def n_non_mated(self) -> int:
        if self.non_mated is not None:
            return len(self.non_mated)
        return self.n_images * (self.n_images - 1) // 2 - len(self.mated)

    @classmethod
    def from_pairs(cls, embeddings: np.ndarray, mated: Sequence[tuple[int, int]],
                   non_mated: Sequence[tuple[int, int]]) -> Comparisons:
        """Explicit pairs of row indices (a protocol file, or any list)."""
        unit = normalise(embeddings)
        return cls(len(unit), _pair_set(unit, mated), _pair_set(unit, non_mated))

    @classmethod
    def from_labels(cls, embeddings: np.ndarray, labels: Sequence, non_mated: int | None = None,
                    seed: int = 0) -> Comparisons:
        """All mated pairs of the identity labels; all non-mated pairs (``non_mated=None``, implicit)
        or a seeded uniform sample of ``non_mated`` of them (drawn with replacement of rejects)."""
        unit = normalise(embeddings)
        codes = np.unique(np.asarray(labels), return_inverse=True)[1].ravel()
        if len(codes) != len(unit):
            raise ValueError(f"{len(codes)} labels for {len(unit)} embeddings")
        mated = _same_label_pairs(unit, codes)
        if non_mated is None:
            return cls(len(unit), mated, None, unit, codes)
        return cls(len(unit), mated, PairSet.from_indices(unit, *_sample_non_mated(codes, non_mated, seed)))

    def non_mated_level_counts(self, levels: np.ndarray, n_levels: int) -> np.ndarray:
        """How many non-mated pairs have each pair-quality level (min of the two image levels)."""
        if self.non_mated is not None:
            return np.bincount(np.minimum(levels[self.non_mated.a], levels[self.non_mated.b]),
                               minlength=n_levels)
        # All pairs whose lower level is L: C(n_{>=L}, 2) - C(n_{>L}, 2); then remove the mated ones.
        at_least = np.cumsum(np.bincount(levels, minlength=n_levels)[::-1])[::-1].astype(np.int64)
        above = np.append(at_least[1:], 0)
        all_pairs = at_least * (at_least - 1) // 2 - above * (above - 1) // 2
        mated = np.bincount(np.minimum(levels[self.mated.a], levels[self.mated.b]), minlength=n_levels)
        return all_pairs - mated

    def non_mated_blocks(self, floor: Floor) -> Iterator[PairSet]:
        """Non-mated pairs with score >= floor(), block by block (floor is read before each block)."""
        if self.non_mated is not None:
            nm = self.non_mated
            for start in range(0, len(nm), CHUNK_PAIRS):
                sl = slice(start, start + CHUNK_PAIRS)
                keep = np.flatnonzero(nm.score[sl] >= floor()) + start
                yield PairSet(nm.a[keep], nm.b[keep], nm.score[keep])
            return
        n, unit, labels = self.n_images, self.unit, self.labels
        start = 0
        while start < n - 1:
            rows = max(1, min(n - 1 - start, CHUNK_PAIRS // (n - start)))
            block = unit[start:start + rows] @ unit[start:].T  # row i against columns start.. (j >= start)
            r, c = np.nonzero(block >= floor())
            a, b = r + start, c + start
            keep = (b > a) & (labels[a] != labels[b])
            yield PairSet(a[keep], b[keep], block[r[keep], c[keep]])
            start += rows


def _pair_set(unit: np.ndarray, pairs: Sequence[tuple[int, int]]) -> PairSet:
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if arr.size and (arr.min() < 0 or arr.max() >= len(unit)):
        raise ValueError(f"pair index out of range for {len(unit)} images")
    return PairSet.from_indices(unit, arr[:, 0], arr[:, 1])


GRAM_ROWS = 65_536  # images gathered at once for the mated scores: ~128 MB of 512-d float32


def _same_label_pairs(unit: np.ndarray, codes: np.ndarray) -> PairSet:
    """Every pair (a < b) of images with the same label, scored from one Gram matrix per identity, and
    identities of equal size together: each image is read once, not once per pair (10^7 mated pairs at
    10^6 images)."""
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.diff(codes[order], prepend=-1))
    sizes = np.diff(np.append(starts, len(order)))
    parts = []
    for size in np.unique(sizes[sizes > 1]):
        members = order[starts[sizes == size][:, None] + np.arange(size)]  # (identities, size), ascending
        i, j = np.triu_indices(size, k=1)
        step = max(1, GRAM_ROWS // size)
        for block in range(0, len(members), step):
            rows = members[block:block + step]
            vectors = unit[rows]
            gram = vectors @ vectors.transpose(0, 2, 1)
            parts.append((rows[:, i].ravel(), rows[:, j].ravel(), gram[:, i, j].ravel()))
    if not parts:
        return PairSet(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    a, b, score = (np.concatenate(column) for column in zip(*parts))
    return PairSet(a.astype(np.int64), b.astype(np.int64), score)


def count_non_mated(codes: np.ndarray) -> int:
    """How many pairs of images have different labels."""
    n, sizes = len(codes), np.bincount(codes)
    return n * (n - 1) // 2 - int((sizes * (sizes - 1) // 2).sum())


def _sample_non_mated(codes: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct cross-identity pairs (a < b) drawn uniformly, returned in (a, b) order so that scoring them
    reads the images of side a in sequence; fails clearly if there are too few."""
    n = len(codes)
    available = count_non_mated(codes)
    if count > available:
        raise ValueError(f"asked for {count} non-mated pairs, only {available} exist")
    rng = np.random.default_rng(seed)
    found = np.empty(0, dtype=np.int64)
    while len(found) < count:
        a, b = rng.integers(0, n, size=(2, 2 * (count - len(found)) + 16))
        a, b = np.minimum(a, b), np.maximum(a, b)
        ok = (a != b) & (codes[a] != codes[b])
        found = _distinct(np.concatenate([found, a[ok] * n + b[ok]]))
    found = np.sort(rng.permutation(found)[:count])
    return found // n, found % n


def _distinct(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique without return_inverse is far slower on 10^7 integers)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def read_lfw_pairs(path: str | Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """An LFW-style protocol file as (mated, non-mated) lists of relative image paths.

    Format: one header line, then ``Name i j`` (mated) or ``Name1 i Name2 j`` (non-mated) lines, index i
    meaning ``Name/Name_{i:04d}.jpg``.
    """
    def rel(name: str, index: str) -> str:
        return f"{name}/{name}_{int(index):04d}.jpg"

    mated, non_mated = [], []
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split()
        try:
            if len(parts) == 3:
                mated.append((rel(parts[0], parts[1]), rel(parts[0], parts[2])))
            elif len(parts) == 4:
                non_mated.append((rel(parts[0], parts[1]), rel(parts[2], parts[3])))
            elif parts:
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}:{number}: expected 'Name i j' or 'Name1 i Name2 j', got {line!r}") from None
    return mated, non_mated


def index_pairs(pairs: Sequence[tuple[str, str]], keys: Sequence[str]) -> list[tuple[int, int]]:
    """Image keys to row indices; every key must be known (a protocol is evaluated whole or not at all)."""
    position = {key: i for i, key in enumerate(keys)}
    missing = sorted({k for pair in pairs for k in pair if k not in position})
    if missing:
        raise ValueError(f"{len(missing)} protocol images have no embedding/quality, e.g. {missing[:3]}")
    return [(position[x], position[y]) for x, y in pairs]
