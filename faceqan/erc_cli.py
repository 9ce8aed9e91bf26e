"""`faceqan erc`: how well quality scores predict recognition errors (FNM-EDC and legacy ERC).

    faceqan erc --scores scores.csv --identities-from-folders --model dlib-resnet --plot erc.png
    faceqan erc --scores scores.csv --pairs lfw-112/pairs.txt --model sface --out summary.csv

The comparison model may differ from the model that produced the quality scores (cross-model evaluation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .models.registry import DEFAULT_MODEL


def add_erc_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("erc", help="EDC/ERC curves: do low scores predict false non-matches?",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", required=True, help="table from `faceqan score` (.csv or .parquet)")
    parser.add_argument("--quality-column", action="append", dest="quality_columns",
                        help="column to evaluate, repeatable (default: quality)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", help="LFW-style protocol file (header, 'Name i j', 'Name1 i Name2 j')")
    source.add_argument("--identities-from-folders", action="store_true",
                        help="identity = an image's folder name: all mated pairs, all (or --non-mated) non-mated")
    parser.add_argument("--paths-root", help="folder the relative paths in --scores start from (default: .)")
    parser.add_argument("--images-root", help="folder the protocol's Name/Name_0001.jpg paths start from "
                                              "(default: the folder of --pairs)")
    parser.add_argument("--non-mated", type=int, help="sample this many non-mated pairs (seeded) instead of all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the non-mated sample")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="comparison model (see `faceqan models`)")
    parser.add_argument("--weights", help="weights file overriding the comparison model's default")
    parser.add_argument("--fmr", type=float, default=1e-3, help="target false match rate (default %(default)s)")
    parser.add_argument("--out", help="summary table (.csv or .parquet; default: printed)")
    parser.add_argument("--curves-out", help="long-form curve table (.csv or .parquet)")
    parser.add_argument("--plot", help="PNG with the EDC and ERC panels")
    parser.set_defaults(func=cmd_erc)
    return parser


def read_scores(path: Path, columns: list[str]) -> pd.DataFrame:
    """One row per image with a quality value; failed rows are dropped (their image has no embedding)."""
    from .output import read_table

    frame = read_table(path)
    missing = [c for c in ["path", *columns] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} has no column(s) {missing}; it has {list(frame.columns)}")
    if frame["path"].duplicated().any():
        raise ValueError(f"{path} has several rows per image (detected faces): evaluate aligned crops, "
                         "one face per file")
    if "error" in frame.columns:
        failed = frame["error"].notna() & (frame["error"].astype(str) != "")
        if failed.any():
            print(f"dropping {int(failed.sum())} rows that failed to score", file=sys.stderr)
        frame = frame[~failed]
    return frame.reset_index(drop=True)


def build_comparisons(args: argparse.Namespace, paths: list[Path], embeddings: np.ndarray):
    from .metrics import Comparisons, index_pairs, read_lfw_pairs

    if args.identities_from_folders:
        return Comparisons.from_labels(embeddings, [p.parent.name for p in paths], args.non_mated, args.seed)
    root = Path(args.images_root or Path(args.pairs).parent).resolve()
    keys = []
    for p in paths:
        try:
            keys.append(p.resolve().relative_to(root).as_posix())
        except ValueError:
            keys.append(str(p))  # outside the protocol's folder: never matched
    mated, non_mated = read_lfw_pairs(args.pairs)
    return Comparisons.from_pairs(embeddings, index_pairs(mated, keys), index_pairs(non_mated, keys))


def cmd_erc(args: argparse.Namespace) -> int:
    from .metrics import evaluate
    from .metrics.threshold import kept_for_threshold
    from .models import load_model
    from .output import check_table_path, write_table
    from .pipeline import embed_paths
    from .plots import save_png

    # Every input, output and setting is checked before the images are embedded (the slow part).
    for option, value in (("--out", args.out), ("--curves-out", args.curves_out)):
        if value:
            check_table_path(Path(value), option)
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise ValueError(f"--plot must end in .png, got {args.plot}")
    kept_for_threshold(1, args.fmr)  # a bad --fmr is refused now, not after the embeddings
    for option, value in (("--scores", args.scores), ("--pairs", args.pairs)):
        if value and not Path(value).is_file():
            raise ValueError(f"{option} {value} is not a file")
    columns = args.quality_columns or ["quality"]
    frame = read_scores(Path(args.scores), columns)
    paths = [Path(args.paths_root or ".") / p for p in frame["path"]]
    model = load_model(args.model, weights=args.weights)
    print(f"embedding {len(paths)} images with {model.name}", file=sys.stderr)
    embeddings = embed_paths(paths, model)
    found = [i for i, row in enumerate(embeddings) if row is not None]
    if len(found) < len(paths):
        print(f"dropping {len(paths) - len(found)} images without an embedding (unreadable or no face)",
              file=sys.stderr)
    frame, paths = frame.iloc[found].reset_index(drop=True), [paths[i] for i in found]
    comparisons = build_comparisons(args, paths, np.stack([embeddings[i] for i in found]))
    result = evaluate(comparisons, {c: frame[c].to_numpy(float) for c in columns}, fmr=args.fmr)
    print(f"{result.n_mated} mated, {result.n_non_mated} non-mated comparisons; tau = {result.tau:.4f} "
          f"at FMR {args.fmr:g} ({model.name})", file=sys.stderr)
    summary = result.summary.assign(comparison_model=model.name, fmr=args.fmr, tau=result.tau)
    if args.out:
        write_table(summary, Path(args.out))
    else:
        print(summary.drop(columns="curve_label").to_string(index=False, float_format="%.4f"))
    if args.curves_out:
        write_table(result.curves, Path(args.curves_out))
    if args.plot:
        save_png(result.curves, args.plot, title=f"comparisons by {model.name}, FMR {args.fmr:g}")
    return 0
