"""Detection + alignment on raw LFW photos, judged by an FR model (SFace by default) against the reference 112 crops.

For the 807 raw 250x250 photos of LFW fold 1 (../shared/data/lfw-raw-fold1): the share with a face found,
the SFace cosine between our aligned crop and the reference crop of the same file (lfw-112), and the
verification accuracy on the fold's 600 pairs from our crops. The threshold is chosen by 10-fold
cross-validation inside the 600 pairs (30 mated + 30 non-mated per fold); the best-threshold (oracle)
accuracy is printed too. A pair with an image where no face was found counts as an error.

The reference crops are NOT on the ArcFace template: their faces sit 8 px left of it (the 96x112
SphereFace/CosFace template put in a 112x112 frame without its 8 px margin; YuNet's landmarks on the
reference crops give eyes at x ~30 and ~65 instead of 38.3 and 73.5). So the crop agreement is printed
twice: for our ArcFace-aligned crops (what the product gives models) and, as a check of the landmarks
themselves, for the same landmarks aligned to the reference's convention (ArcFace shifted 8 px left).

    python benchmarks/align_lfw.py [--model sface] [--faces central|largest|confident] [--min-confidence 0.6]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from faceqan.align import FACE_POLICIES, FacePreparer, align, template_points
from faceqan.io import load_image, read_image
from faceqan.models import load_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAW, REFERENCE = DATA / "lfw-raw-fold1", DATA / "lfw-112"
REFERENCE_SHIFT = (-8.0, 0.0)  # the reference crops' convention relative to the ArcFace template


def read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """(relative path a, relative path b, mated) per protocol line."""
    pairs = []
    for line in path.read_text().splitlines()[1:]:
        parts = line.split()
        a, i, b, j = (parts[0], parts[1], parts[0], parts[2]) if len(parts) == 3 else parts
        pairs.append((f"{a}/{a}_{int(i):04d}.jpg", f"{b}/{b}_{int(j):04d}.jpg", len(parts) == 3))
    return pairs


def embed(model, crops: list[torch.Tensor], batch: int = 64) -> torch.Tensor:
    with torch.no_grad():
        out = torch.cat([model(torch.stack(crops[i:i + batch])) for i in range(0, len(crops), batch)])
    return torch.nn.functional.normalize(out, dim=1)


def best_threshold(scores: np.ndarray, mated: np.ndarray) -> float:
    """The threshold (midpoint between consecutive scores) with the highest accuracy on these pairs."""
    ordered = np.sort(scores)
    cuts = np.concatenate([[ordered[0] - 1e-6], (ordered[1:] + ordered[:-1]) / 2, [ordered[-1] + 1e-6]])
    accuracy = [((scores >= t) == mated).mean() for t in cuts]
    return float(cuts[int(np.argmax(accuracy))])


def cross_validated_accuracy(scores: np.ndarray, mated: np.ndarray, folds: int = 10) -> float:
    """Mean test accuracy, each fold's threshold chosen on the other nine (folds interleave mated and non-mated)."""
    fold = np.empty(len(scores), dtype=int)
    for label in (True, False):
        index = np.flatnonzero(mated == label)
        fold[index] = np.arange(len(index)) % folds
    accuracies = []
    for f in range(folds):
        test = fold == f
        threshold = best_threshold(scores[~test], mated[~test])
        accuracies.append(((scores[test] >= threshold) == mated[test]).mean())
    return float(np.mean(accuracies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # LFW photos are centred on the named person by construction (1 of the 807 has a larger face elsewhere)
    parser.add_argument("--faces", choices=FACE_POLICIES[:-1], default="central")
    parser.add_argument("--min-confidence", type=float, default=FacePreparer.min_confidence)
    parser.add_argument("--detector", default=FacePreparer.detector)
    parser.add_argument("--model", default="sface", help="the FR model that embeds the crops (cosine of its embeddings)")
    args = parser.parse_args()
    if not (RAW / "pairs_fold1.txt").is_file():
        raise SystemExit(f"raw LFW photos not found at {RAW} (see ../shared/data/README.md)")

    model = load_model(args.model)
    prepare = FacePreparer.for_model(model, align="always", faces=args.faces, min_confidence=args.min_confidence,
                                     detector=args.detector)
    files = sorted(p.relative_to(RAW).as_posix() for p in RAW.glob("*/*.jpg"))
    start = time.perf_counter()
    crops, landmarks, failures = {}, {}, {}
    for rel in files:
        try:
            (info, crops[rel]), = prepare(RAW / rel)
            landmarks[rel] = info["landmarks"]
        except ValueError as exc:
            failures[rel] = str(exc)
    seconds = time.perf_counter() - start
    print(f"model {model.name}, detector {args.detector}, faces={args.faces}, min_confidence={args.min_confidence}")
    print(f"face found: {len(crops)}/{len(files)} = {100 * len(crops) / len(files):.2f} % "
          f"({1000 * seconds / len(files):.1f} ms/image detect+align)")
    for rel, message in failures.items():
        print(f"  {rel}: {message}")

    found = sorted(crops)
    ours = dict(zip(found, embed(model, [crops[r] for r in found])))
    reference = dict(zip(files, embed(model, [load_image(REFERENCE / r, (112, 112)) for r in files])))
    shifted = template_points("arcface", (112, 112)) + REFERENCE_SHIFT
    as_reference = embed(model, [align(read_image(RAW / r), landmarks[r], (112, 112), shifted) for r in found])
    for name, table in (("ArcFace template", ours), ("reference convention", dict(zip(found, as_reference)))):
        agreement = np.array([float(table[r] @ reference[r]) for r in found])
        print(f"{model.name} cosine, our crop ({name}) vs reference crop: median {np.median(agreement):.4f}, "
              f"5th percentile {np.percentile(agreement, 5):.4f}, min {agreement.min():.4f}")

    pairs = read_pairs(RAW / "pairs_fold1.txt")
    mated = np.array([m for _, _, m in pairs])
    for name, table in (("reference lfw-112 crops", reference), ("our alignment", ours)):
        # a missing face scores -2: below any threshold, so a mated pair with it counts as an error
        scores = np.array([float(table[a] @ table[b]) if a in table and b in table else -2.0 for a, b, _ in pairs])
        best = max(((scores >= t) == mated).mean() for t in np.unique(scores))
        print(f"{name}: 10-fold CV accuracy {100 * cross_validated_accuracy(scores, mated):.2f} %, "
              f"best-threshold accuracy {100 * best:.2f} % ({len(pairs)} pairs)")
    print(f"accuracy: {100 * cross_validated_accuracy(scores, mated):.2f}")


if __name__ == "__main__":
    main()
