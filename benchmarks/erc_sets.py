"""The two image sets of the full-pipeline ERC benchmark, made reproducibly from the raw LFW photos.

aligned: every raw 250x250 photo of ../shared/data/lfw-raw-erc detected and aligned to SFace's (ArcFace)
template exactly as `faceqan score --align auto` does (YuNet, largest face, confidence >= 0.6), saved as
lossless 112x112 PNGs under benchmarks/cache/lfw-erc-aligned/ (git-ignored: LFW images are never committed).

degraded: a seeded half of those crops, each with one degradation of a seeded kind and strength, in the
spirit of XQLFW's cross-quality pairs; saved as 8-bit PNGs under benchmarks/cache/lfw-erc-degraded/. The
cross-quality set is these plus the undegraded other half. Each folder has a list.txt for cache_scores.py.
Records: results/lfw_erc_alignment.csv (faces found, confidence or error per photo) and
results/lfw_erc_degradations.csv (kind and strength per degraded face).

    python benchmarks/erc_sets.py [--seed 0]            # make the sets (~1 min)
    python benchmarks/erc_sets.py --score               # then FaceQAN on both (hours on 2 CPU cores; resumable)
    python benchmarks/erc_sets.py --report              # how the scores moved per degradation kind
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from faceqan.align import FacePreparer
from faceqan.models import get_entry

HERE = Path(__file__).resolve().parent
RAW = HERE.parents[1] / "shared" / "data" / "lfw-raw-erc"
CACHE, RESULTS = HERE / "cache", HERE / "results"
ALIGNED, DEGRADED = CACHE / "lfw-erc-aligned", CACHE / "lfw-erc-degraded"

# strength ranges on 112x112 crops, drawn uniformly; each is strong enough to hurt recognition sometimes
STRENGTHS = {
    "blur": (1.0, 3.0),          # Gaussian sigma, px
    "downup": (0.12, 0.4),       # scale of the down-sampled side (112 -> 13..45 px -> 112)
    "jpeg": (5, 30),             # JPEG quality
    "noise": (0.04, 0.12),       # sensor-noise std on [0, 1] pixels
    "low_light": (0.15, 0.45),   # exposure factor: brightness and contrast both scaled by it
}


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def degrade(image: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """One 8-bit RGB crop with one degradation applied (8-bit RGB out)."""
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), strength)
    if kind == "downup":
        h, w = image.shape[:2]
        small = cv2.resize(image, (round(w * strength), round(h * strength)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(strength))
        return np.asarray(Image.open(buffer).convert("RGB"))
    if kind == "noise":
        return to_uint8(image / 255.0 + rng.normal(0.0, strength, image.shape))
    if kind == "low_light":
        return to_uint8(image / 255.0 * strength)
    raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(STRENGTHS)}")


def draw(rng: np.random.Generator) -> tuple[str, float]:
    kind = str(rng.choice(list(STRENGTHS)))
    low, high = STRENGTHS[kind]
    strength = int(rng.integers(low, high + 1)) if kind == "jpeg" else round(float(rng.uniform(low, high)), 3)
    return kind, strength


def write_list(folder: Path, rel_paths: list[str]) -> None:
    (folder / "list.txt").write_text("\n".join(rel_paths) + "\n")


def align_all(rel_paths: list[str]) -> list[str]:
    """Aligned PNG per photo with a face; returns their relative PNG paths and records every photo."""
    prepare = FacePreparer.for_model(get_entry("sface"))
    records, done = [], []
    for rel in rel_paths:
        try:
            info, crop = prepare(RAW / rel)[0]
        except ValueError as exc:  # NoFaceError or an unreadable file
            records.append({"path": rel, "faces_found": 0, "confidence": None, "error": str(exc)})
            continue
        png = str(Path(rel).with_suffix(".png"))
        (ALIGNED / png).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(crop.numpy().transpose(1, 2, 0))).save(ALIGNED / png)
        records.append({"path": rel, "faces_found": info["faces_found"], "confidence": info["confidence"],
                        "error": None})
        done.append(png)
    write_list(ALIGNED, done)
    pd.DataFrame(records).to_csv(RESULTS / "lfw_erc_alignment.csv", index=False)
    return done


def degrade_half(aligned: list[str], seed: int) -> pd.DataFrame:
    """Degrade a seeded half of the aligned crops; one row (path, kind, strength) per degraded crop."""
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(aligned), len(aligned) // 2, replace=False))
    rows = []
    for i in chosen:
        kind, strength = draw(rng)
        image = np.asarray(Image.open(ALIGNED / aligned[i]).convert("RGB"))
        out = degrade(image, kind, strength, np.random.default_rng([seed, int(i)]))
        (DEGRADED / aligned[i]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out).save(DEGRADED / aligned[i])
        rows.append({"path": aligned[i], "kind": kind, "strength": strength})
    table = pd.DataFrame(rows)
    write_list(DEGRADED, list(table["path"]))
    table.to_csv(RESULTS / "lfw_erc_degradations.csv", index=False)
    return table


def score_all(model_name: str = "sface", chunk: int = 10, seed: int = 0) -> None:
    """FaceQAN scores of both sets into resumable caches, identity chunk by chunk in a seeded order, so a run
    stopped early leaves whole identities with every score both sets need."""
    from cache_scores import cache_scores

    aligned = (ALIGNED / "list.txt").read_text().split()
    degraded = set((DEGRADED / "list.txt").read_text().split())
    names = np.random.default_rng(seed).permutation(sorted({p.split("/")[0] for p in aligned}))
    for start in range(0, len(names), chunk):
        group = set(names[start:start + chunk])
        mine = [p for p in aligned if p.split("/")[0] in group]
        cache_scores(ALIGNED, mine, score_cache("aligned", model_name), model_name)
        cache_scores(DEGRADED, [p for p in mine if p in degraded], score_cache("degraded", model_name), model_name)


def report(model_name: str = "sface") -> None:
    """Per degradation kind: mean FaceQAN score of the degraded crops and of their originals, and how often
    each factor fell (over the faces scored in both sets)."""
    kinds = pd.read_csv(RESULTS / "lfw_erc_degradations.csv").set_index("path")
    degraded, aligned = (pd.read_csv(score_cache(n, model_name)).set_index("path") for n in ("degraded", "aligned"))
    both = degraded.merge(aligned, left_index=True, right_index=True, suffixes=("", "_orig")).join(kinds)
    table = both.groupby("kind").agg(faces=("quality", "size"), Q=("quality", "mean"), Q_orig=("quality_orig", "mean"))
    for column in ("quality", "q_adv", "symmetry"):
        table[f"{column} fell"] = (both[column] < both[f"{column}_orig"]).groupby(both["kind"]).mean()
    print(table.to_string(float_format="%.3f"))


def score_cache(name: str, model_name: str = "sface") -> Path:
    return RESULTS / f"lfw_erc_{name}_faceqan_{model_name}.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", action="store_true", help="score the sets made before with FaceQAN (resumable)")
    parser.add_argument("--report", action="store_true", help="how FaceQAN's scores moved per degradation kind")
    args = parser.parse_args()
    if args.score:
        score_all(seed=args.seed)
        return
    if args.report:
        report()
        return
    listing = RAW / "erc_subset.txt"
    if not listing.is_file():
        raise SystemExit(f"{listing} not found (see ../shared/data/README.md)")
    rel_paths = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    aligned = align_all(rel_paths)
    missing = len(rel_paths) - len(aligned)
    print(f"aligned {len(aligned)} of {len(rel_paths)} photos ({missing} without a face) -> {ALIGNED}")
    table = degrade_half(aligned, args.seed)
    print(f"degraded {len(table)} crops -> {DEGRADED}")
    print(table.groupby("kind")["strength"].describe()[["count", "min", "max"]].to_string())


if __name__ == "__main__":
    main()
