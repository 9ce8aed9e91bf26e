"""Does FaceQAN predict recognition errors better than simple baselines? FNM-EDC / ERC on LFW crops.

    python benchmarks/lfw_erc.py                    # score what is missing, then evaluate
    python benchmarks/lfw_erc.py --cached-only      # evaluate the images already scored (no FaceQAN run)
    python benchmarks/lfw_erc.py --synthetic        # speed/memory: 13,233 x 128 embeddings, all 87 M pairs

Quality measures: FaceQAN with SFace (cached by cache_scores.py) and every baseline of faceqan.baselines
(q_adv only, symmetry only, SFace embedding norm, Laplacian sharpness, seeded random). Comparisons: every
mated and every non-mated pair of the images (identity = folder name), scored by each comparison model in
turn (SFace: same model; dlib-resnet: cross-model). Embeddings are cached next to the scores.
Writes results/lfw_erc.csv (one row per quality measure and comparison model), results/lfw_erc_curves.csv
and results/lfw_erc_<model>.png.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faceqan.baselines import baseline_qualities, embed_files  # noqa: E402
from faceqan.metrics import Comparisons, evaluate  # noqa: E402
from faceqan.models import ModelFileError, load_model  # noqa: E402
from faceqan.plots import save_png  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SUBSET = HERE.parent.parent / "shared" / "data" / "lfw-112" / "erc_subset.txt"
COLUMNS = ["fnmr_0", "fnmr_10", "fnmr_20", "fnmr_40", "pauc_20", "pauc_20_norm", "pauc_40", "pauc_40_norm"]


def cached_embeddings(model_name: str, root: Path, rel_paths: list[str]) -> np.ndarray:
    """Raw embeddings aligned with rel_paths; only images not in results/lfw_erc_emb_<model>.npy are run."""
    npy = RESULTS / f"lfw_erc_emb_{model_name}.npy"
    sidecar = npy.with_suffix(".paths.txt")
    known: dict[str, np.ndarray] = {}
    if npy.exists() and sidecar.exists():
        known = dict(zip(sidecar.read_text().splitlines(), np.load(npy)))
    todo = [p for p in rel_paths if p not in known]
    if todo:
        print(f"{model_name}: embedding {len(todo)} images ({len(known)} cached)")
        model = load_model(model_name)
        known.update(zip(todo, embed_files([root / p for p in todo], model)))
        order = sorted(known)
        np.save(npy, np.stack([known[p] for p in order]))
        sidecar.write_text("\n".join(order) + "\n")
    return np.stack([known[p] for p in rel_paths])


def load_scores(root: Path, rel_paths: list[str], cached_only: bool) -> pd.DataFrame:
    out = RESULTS / "lfw_erc_faceqan_sface.csv"
    if not cached_only:
        from cache_scores import cache_scores

        cache_scores(root, rel_paths, out, "sface")
    scores = pd.read_csv(out).drop_duplicates("path").set_index("path")
    present = [p for p in rel_paths if p in scores.index]
    scores = scores.loc[present]
    ok = scores["error"].isna() & np.isfinite(scores["quality"])
    print(f"FaceQAN scores: {len(present)} of {len(rel_paths)} images cached, {int((~ok).sum())} failed")
    return scores[ok]


def run_lfw(args: argparse.Namespace) -> None:
    root = args.list.parent
    rel_paths = [line.strip() for line in args.list.read_text().splitlines() if line.strip()]
    scores = load_scores(root, rel_paths, args.cached_only)
    paths = list(scores.index)
    identities = [p.split("/")[0] for p in paths]
    qualities = {"FaceQAN (sface)": scores["quality"].to_numpy(float)}
    baselines = baseline_qualities([root / p for p in paths], scores, cached_embeddings("sface", root, paths), seed=0)
    qualities.update({"embedding norm (sface)" if k == "embedding norm" else k: v for k, v in baselines.items()})
    summaries, curves = [], []
    for model_name in args.models:
        try:
            embeddings = cached_embeddings(model_name, root, paths)
        except (ValueError, ModelFileError) as exc:
            print(f"skipping comparison model {model_name}: {exc}")
            continue
        start = time.perf_counter()
        result = evaluate(Comparisons.from_labels(embeddings, identities), qualities, fmr=args.fmr)
        print(f"{model_name}: {len(paths)} images, {len(set(identities))} identities, {result.n_mated} mated, "
              f"{result.n_non_mated} non-mated; tau {result.tau:.4f} at FMR {args.fmr:g}; "
              f"evaluated in {time.perf_counter() - start:.1f} s")
        save_png(result.curves, RESULTS / f"lfw_erc_{model_name}.png",
                 title=f"LFW ERC subset ({len(paths)} images), comparisons by {model_name}, FMR {args.fmr:g}")
        fnmr0 = float(result.summary["fnmr_0"].iloc[0])
        info = {"comparison_model": model_name, "n_images": len(paths), "n_mated": result.n_mated,
                "n_non_mated": result.n_non_mated, "false_non_matches": round(fnmr0 * result.n_mated),
                "tau": result.tau}
        summaries.append(wide(result.summary).assign(**info))
        curves.append(result.curves.assign(comparison_model=model_name))
    if not summaries:
        raise SystemExit("no comparison model could be loaded")
    table = pd.concat(summaries, ignore_index=True)
    table = table[["quality", "comparison_model", *COLUMNS, *[c for c in table.columns
                                                                if c not in ("quality", "comparison_model",
                                                                             *COLUMNS)]]]
    table.to_csv(RESULTS / "lfw_erc.csv", index=False)
    pd.concat(curves, ignore_index=True).to_csv(RESULTS / "lfw_erc_curves.csv", index=False)
    with pd.option_context("display.width", 200):
        print(table[["quality", "comparison_model", *COLUMNS, "erc_pauc_20_norm", "erc_auc"]]
              .to_string(index=False, float_format="%.4f"))


def wide(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per measure: FNM-EDC values as the plain columns, legacy ERC values prefixed erc_."""
    values = [c for c in summary.columns if c not in ("measure", "curve", "curve_label")]
    edc = summary[summary["curve"].isin(["edc", "reference"])].set_index("measure")[values]
    erc = summary[summary["curve"] == "erc"].set_index("measure")[values].add_prefix("erc_")
    return edc.join(erc).rename_axis("quality").reset_index()


def run_synthetic(measures: int = 6) -> None:
    """All 87,534,251 non-mated pairs of 13,233 images (LFW's size) with random 128-d embeddings."""
    rng = np.random.default_rng(0)
    n, identities = 13_233, 5_749
    labels = rng.integers(0, identities, n)
    embeddings = (0.6 * rng.normal(size=(identities, 128))[labels] + rng.normal(size=(n, 128))).astype(np.float32)
    qualities = {f"q{i}": rng.random(n) for i in range(measures)}
    start = time.perf_counter()
    comparisons = Comparisons.from_labels(embeddings, labels)
    result = evaluate(comparisons, qualities, fmr=1e-3)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{n} images, {result.n_mated} mated + {result.n_non_mated} non-mated pairs, {measures} measures, "
          f"EDC + ERC: {seconds:.1f} s, peak RSS {peak:.0f} MiB (whole process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", type=Path, default=SUBSET, help="image list (paths relative to its folder)")
    parser.add_argument("--models", nargs="+", default=["sface", "dlib-resnet"], help="comparison models")
    parser.add_argument("--fmr", type=float, default=1e-3)
    parser.add_argument("--cached-only", action="store_true", help="evaluate only images already scored")
    parser.add_argument("--synthetic", action="store_true", help="the 87 M-pair speed and memory check")
    args = parser.parse_args()
    if args.synthetic:
        run_synthetic()
        return
    if not args.list.is_file():
        raise SystemExit(f"{args.list} not found (see ../shared/data/README.md)")
    RESULTS.mkdir(exist_ok=True)
    run_lfw(args)


if __name__ == "__main__":
    main()
