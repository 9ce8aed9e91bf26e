"""Does FaceQAN predict recognition errors better than simple baselines? FNM-EDC / ERC on LFW crops.

    python benchmarks/lfw_erc.py                    # score what is missing, then evaluate
    python benchmarks/lfw_erc.py --cached-only      # evaluate the images already scored (no FaceQAN run)
    python benchmarks/lfw_erc.py --set aligned --cached-only    # our own detection + alignment (erc_sets.py)
    python benchmarks/lfw_erc.py --set degraded --cached-only   # the cross-quality set: half of those degraded
    python benchmarks/lfw_erc.py --synthetic        # speed/memory: 13,233 x 128 embeddings, all 87 M pairs

Quality measures: FaceQAN with SFace (cached by cache_scores.py) and every baseline of faceqan.baselines
(q_adv only, symmetry only, SFace embedding norm, Laplacian sharpness, seeded random). Comparisons: every
mated and every non-mated pair of the images (identity = folder name), scored by each comparison model in
turn (SFace: same model; dlib-resnet: cross-model). Sets: ``reference`` (the lfw-112 crops, not on the
ArcFace template), ``aligned`` and ``degraded`` (made by erc_sets.py from the raw photos). Embeddings are
cached next to the scores.
Writes results/<table>.csv (one row per quality measure and comparison model, with the 95 % interval of
pAUC@20 % from an identity-clustered bootstrap), results/<table>_curves.csv and results/<table>_<model>.png,
<table> being lfw_erc, lfw_erc_aligned or lfw_erc_degraded.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import erc_sets  # noqa: E402
from faceqan.baselines import baseline_qualities  # noqa: E402
from faceqan.metrics import Comparisons, bootstrap_pauc, evaluate  # noqa: E402
from faceqan.models import ModelFileError, load_model  # noqa: E402
from faceqan.pipeline import embed_files  # noqa: E402
from faceqan.plots import save_png  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SUBSET = HERE.parent.parent / "shared" / "data" / "lfw-112" / "erc_subset.txt"
FACEQAN = "FaceQAN (sface)"
BY_KIND_MEASURES = (FACEQAN, "q_adv only", "symmetry only", "embedding norm (sface)", "sharpness", "noise concentration")
COLUMNS = ["fnmr_0", "fnmr_10", "fnmr_20", "fnmr_40", "pauc_20", "pauc_20_norm", "pauc_40", "pauc_40_norm"]


def cached_embeddings(model_name: str, files: list[Path], keys: list[str], npy: Path) -> np.ndarray:
    """Raw embeddings of files (cached under their keys in npy + a .paths.txt sidecar); only new keys are run."""
    sidecar = npy.with_suffix(".paths.txt")
    known: dict[str, np.ndarray] = {}
    if npy.exists() and sidecar.exists():
        known = dict(zip(sidecar.read_text().splitlines(), np.load(npy)))
    todo = [(f, k) for f, k in zip(files, keys) if k not in known]
    if todo:
        print(f"{model_name}: embedding {len(todo)} images ({len(known)} cached)")
        model = load_model(model_name)
        known.update(zip([k for _, k in todo], embed_files([f for f, _ in todo], model)))
        order = sorted(known)
        np.save(npy, np.stack([known[k] for k in order]))
        sidecar.write_text("\n".join(order) + "\n")
    return np.stack([known[k] for k in keys])


def read_scores(out: Path, keys: list[str]) -> pd.DataFrame:
    """The successful FaceQAN rows of a cache, for the keys it holds, in the order of keys."""
    scores = pd.read_csv(out).drop_duplicates("path").set_index("path")
    scores = scores.loc[[k for k in keys if k in scores.index]]
    ok = scores["error"].isna() & np.isfinite(scores["quality"])
    print(f"{out.name}: {len(scores)} of {len(keys)} images scored, {int((~ok).sum())} failed")
    return scores[ok]


@dataclass(frozen=True)
class ImageSet:
    """The images of one table: FaceQAN rows indexed by key (a relative path; identity = the file's folder)
    and the file of each row."""

    table: str
    scores: pd.DataFrame
    files: list[Path]
    embedding_cache: Path  # prefix of the per-model embedding caches
    kinds: np.ndarray | None = None  # the degradation kind of each row ("none": undegraded), cross-quality set only
    extra: dict | None = None  # more quality measures to compare, name -> one value per row


def reference_set(listing: Path, cached_only: bool) -> ImageSet:
    root = listing.parent
    keys = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    out = RESULTS / "lfw_erc_faceqan_sface.csv"
    if not cached_only:
        from cache_scores import cache_scores

        cache_scores(root, keys, out, "sface")
    scores = read_scores(out, keys)
    return ImageSet("lfw_erc", scores, [root / k for k in scores.index], RESULTS / "lfw_erc")


def pipeline_set(name: str, cached_only: bool) -> ImageSet:
    """``aligned``: our crops of the raw photos; ``degraded``: the same with the degraded half swapped in.
    Both hold the same identities: those with every score of both sets (all of them once scoring is done).
    Keys name the file under benchmarks/cache (the two sets share one embedding cache)."""
    if not cached_only:
        erc_sets.score_all()
    keys = (erc_sets.ALIGNED / "list.txt").read_text().split()
    degraded = set((erc_sets.DEGRADED / "list.txt").read_text().split())
    aligned_scores = read_scores(erc_sets.score_cache("aligned"), keys)
    degraded_scores = read_scores(erc_sets.score_cache("degraded"), [k for k in keys if k in degraded])
    missing = {k.split("/")[0] for k in keys
               if k not in aligned_scores.index or (k in degraded and k not in degraded_scores.index)}
    keys = [k for k in keys if k.split("/")[0] not in missing]
    swapped = [k for k in keys if k in degraded] if name == "degraded" else []
    scores = pd.concat([aligned_scores.loc[[k for k in keys if k not in swapped]]
                        .rename(index=lambda k: f"{erc_sets.ALIGNED.name}/{k}"),
                        degraded_scores.loc[swapped].rename(index=lambda k: f"{erc_sets.DEGRADED.name}/{k}")])
    scores = scores.iloc[np.argsort([k.split("/", 1)[1] for k in scores.index], kind="stable")]
    print(f"{name}: {len(scores)} images of {len({k.split('/')[0] for k in keys})} identities with every score "
          f"({len(missing)} identities left out), {len(swapped)} degraded")
    kinds = None
    if name == "degraded":
        recorded = pd.read_csv(RESULTS / "lfw_erc_degradations.csv").set_index("path")["kind"]
        kinds = np.array([recorded[k.split("/", 1)[1]] if k.startswith(erc_sets.DEGRADED.name) else "none"
                          for k in scores.index])
    return ImageSet(f"lfw_erc_{name}", scores, [erc_sets.CACHE / k for k in scores.index], erc_sets.CACHE / "lfw_erc",
                    kinds)


def run_lfw(images: ImageSet, models: list[str], fmr: float, resamples: int) -> None:
    files, keys = images.files, list(images.scores.index)
    identities = [k.split("/")[-2] for k in keys]

    def embeddings(model_name: str) -> np.ndarray:
        return cached_embeddings(model_name, files, keys, Path(f"{images.embedding_cache}_emb_{model_name}.npy"))

    qualities = {FACEQAN: images.scores["quality"].to_numpy(float)}
    baselines = baseline_qualities(files, images.scores, embeddings("sface"), seed=0)
    qualities.update({"embedding norm (sface)" if k == "embedding norm" else k: v for k, v in baselines.items()})
    qualities.update(images.extra or {})
    summaries, curves, differences, kinds = [], [], [], []
    for model_name in models:
        try:
            emb = embeddings(model_name)
        except (ValueError, ModelFileError) as exc:
            print(f"skipping comparison model {model_name}: {exc}")
            continue
        start = time.perf_counter()
        comparisons = Comparisons.from_labels(emb, identities)
        result = evaluate(comparisons, qualities, fmr=fmr)
        boot = bootstrap_pauc(comparisons, qualities, identities, result.tau, resamples=resamples)
        print(f"{model_name}: {len(keys)} images, {len(set(identities))} identities, {result.n_mated} mated, "
              f"{result.n_non_mated} non-mated; tau {result.tau:.4f} at FMR {fmr:g}; "
              f"evaluated with {resamples} bootstrap resamples in {time.perf_counter() - start:.1f} s")
        save_png(result.curves, RESULTS / f"{images.table}_{model_name}.png",
                 title=f"{images.table} ({len(keys)} images), comparisons by {model_name}, FMR {fmr:g}")
        fnmr0 = float(result.summary["fnmr_0"].iloc[0])
        info = {"model": model_name, "n_images": len(keys), "n_mated": result.n_mated,
                "n_non_mated": result.n_non_mated, "false_non_matches": round(fnmr0 * result.n_mated),
                "tau": result.tau}
        intervals = boot.table().drop(columns=boot.column)
        summaries.append(wide(result.summary).merge(intervals, on="measure", how="left").assign(**info))
        curves.append(result.curves.assign(model=model_name))
        differences += [{"model": model_name, "measure": m, **dict(zip(("difference", "lo", "hi"),
                                                                        boot.difference(FACEQAN, m)))}
                        for m in qualities if m != FACEQAN]
        if images.kinds is not None:
            kinds.append(by_kind(images.kinds, comparisons.mated, result.tau, qualities).assign(model=model_name))
    if not summaries:
        raise SystemExit("no comparison model could be loaded")
    table = pd.concat(summaries, ignore_index=True)
    first = ["measure", "model", *COLUMNS, "pauc_20_norm_lo", "pauc_20_norm_hi"]
    table = table[[*first, *[c for c in table.columns if c not in first]]]
    table.to_csv(RESULTS / f"{images.table}.csv", index=False)
    pd.concat(curves, ignore_index=True).to_csv(RESULTS / f"{images.table}_curves.csv", index=False)
    with pd.option_context("display.width", 220):
        print(table[[*first, "erc_pauc_20_norm"]].to_string(index=False, float_format="%.4f"))
        print(f"\n{FACEQAN} minus each measure, pauc_20_norm (95 % interval; below 0: FaceQAN better):")
        print(pd.DataFrame(differences).to_string(index=False, float_format="%.4f"))
    print("\n" + markdown(table))
    if kinds:
        frame = pd.concat(kinds, ignore_index=True)
        frame.to_csv(RESULTS / f"{images.table}_by_kind.csv", index=False)
        print("\nPer degradation kind: faces, the share of their mated comparisons that fail at tau, and the share of"
              "\nthem among the 20 % each measure would discard first:")
        print(frame.to_string(index=False, float_format="%.3f"))


def by_kind(kinds: np.ndarray, mated, tau: float, qualities: dict[str, np.ndarray],
            discard: float = 0.2) -> pd.DataFrame:
    """Per degradation kind ("none" for undegraded faces): how often its faces' mated comparisons fail, and
    which share of them each measure puts among the worst ``discard`` of all faces: a measure that helps
    curation discards the kinds that fail, not those the comparison model copes with."""
    failed = mated.score <= tau  # a comparison matches above tau (as fnmr_0 counts)
    pairs = np.concatenate([mated.a, mated.b])
    fails = np.bincount(pairs, weights=np.concatenate([failed, failed]), minlength=len(kinds))
    totals = np.bincount(pairs, minlength=len(kinds))
    worst = {name: q <= np.quantile(q, discard) for name, q in qualities.items() if name in BY_KIND_MEASURES}
    rows = []
    for kind in sorted(set(kinds)):
        mine = kinds == kind
        rows.append({"kind": kind, "faces": int(mine.sum()),
                     "fnmr_of_its_pairs": fails[mine].sum() / max(totals[mine].sum(), 1),
                     **{f"in_worst_{round(100 * discard)}pc: {name}": w[mine].mean() for name, w in worst.items()}})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The README's table: FNM-EDC values with the bootstrap interval of pAUC20 norm."""
    lines = ["| quality measure | comparisons by | FNMR0 | FNMR at 20 % | pAUC20 norm [95 % interval] | pAUC40 norm |",
             "|---|---|---|---|---|---|"]
    for r in table.itertuples():
        interval = f" [{r.pauc_20_norm_lo:.3f}, {r.pauc_20_norm_hi:.3f}]" if np.isfinite(r.pauc_20_norm_lo) else ""
        lines.append(f"| {r.measure} | {r.model} | {r.fnmr_0:.4f} | {r.fnmr_20:.4f} | {r.pauc_20_norm:.3f}{interval} "
                     f"| {r.pauc_40_norm:.3f} |")
    return "\n".join(lines)


def wide(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per measure: FNM-EDC values as the plain columns, legacy ERC values prefixed erc_."""
    values = [c for c in summary.columns if c not in ("measure", "curve", "curve_label")]
    edc = summary[summary["curve"].isin(["edc", "reference"])].set_index("measure")[values]
    erc = summary[summary["curve"] == "erc"].set_index("measure")[values].add_prefix("erc_")
    return edc.join(erc).rename_axis("measure").reset_index()


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
    parser.add_argument("--set", choices=("reference", "aligned", "degraded"), default="reference")
    parser.add_argument("--list", type=Path, default=SUBSET, help="reference image list (relative to its folder)")
    parser.add_argument("--models", nargs="+", default=["sface", "dlib-resnet"], help="comparison models")
    parser.add_argument("--fmr", type=float, default=1e-3)
    parser.add_argument("--resamples", type=int, default=1000, help="identity bootstrap resamples")
    parser.add_argument("--cached-only", action="store_true", help="evaluate only images already scored")
    parser.add_argument("--synthetic", action="store_true", help="the 87 M-pair speed and memory check")
    args = parser.parse_args()
    if args.synthetic:
        run_synthetic()
        return
    if args.set == "reference":
        if not args.list.is_file():
            raise SystemExit(f"{args.list} not found (see ../shared/data/README.md)")
        images = reference_set(args.list, args.cached_only)
    else:
        if not (erc_sets.ALIGNED / "list.txt").is_file():
            raise SystemExit("make the sets first: python benchmarks/erc_sets.py")
        images = pipeline_set(args.set, args.cached_only)
    RESULTS.mkdir(exist_ok=True)
    run_lfw(images, args.models, args.fmr, args.resamples)


if __name__ == "__main__":
    main()
