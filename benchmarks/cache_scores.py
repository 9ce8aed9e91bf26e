"""Score a list of LFW crops with FaceQAN into a CSV cache that survives interruption.

Rows are appended after every step, and a rerun scores only the paths not yet in the cache, so a long
CPU run (the ERC subset is ~1,800 images, ~45 min with SFace here) can be stopped and resumed.

    python benchmarks/cache_scores.py --list ../shared/data/lfw-112/erc_subset.txt \
        --out benchmarks/results/lfw_erc_faceqan_sface.csv --model sface
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from faceqan import FaceQANConfig, iter_score_rows, load_model
from faceqan.aggregate import QualityScores

COLUMNS = ["path", *QualityScores.FIELDS, "error"]


def cached_paths(out: Path) -> set[str]:
    if not out.exists():
        return set()
    with open(out, newline="") as f:
        return {row["path"] for row in csv.DictReader(f)}


def cache_scores(root: Path, relative_paths: list[str], out: Path, model_name: str = "sface",
                 config: FaceQANConfig = FaceQANConfig()) -> Path:
    """Append a row per missing image (path relative to ``root``) to ``out``."""
    done = cached_paths(out)
    todo = [p for p in relative_paths if p not in done]
    print(f"{len(done)} cached, {len(todo)} to score -> {out}")
    if not todo:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not out.exists()
    model = load_model(model_name)
    with open(out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new_file:
            writer.writeheader()
        for rows in iter_score_rows([root / p for p in todo], model, config):
            for row in rows:
                row["path"] = str(Path(row["path"]).relative_to(root))
                writer.writerow(row)
            f.flush()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", required=True, type=Path, help="file of paths relative to its folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", default="sface")
    args = parser.parse_args()
    paths = [line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    cache_scores(args.list.parent, paths, args.out, args.model)


if __name__ == "__main__":
    main()
