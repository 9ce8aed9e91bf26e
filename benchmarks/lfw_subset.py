"""The LFW crops most benchmarks run on: the first N images of the fixed ERC subset (../shared/data/lfw-112)."""

from __future__ import annotations

import argparse
from pathlib import Path

LFW_112 = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-112"


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=LFW_112, help="folder with erc_subset.txt")


def subset_paths(data: Path, count: int) -> list[str]:
    """The first ``count`` paths of ``data``/erc_subset.txt, or SystemExit saying where the data should be."""
    subset = data / "erc_subset.txt"
    if not subset.is_file():
        raise SystemExit(f"{subset} not found: pass --data <lfw-112 folder> (see ../shared/data/README.md)")
    return [str(data / rel) for rel in subset.read_text().split()[:count]]
