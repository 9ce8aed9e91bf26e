"""LFW verification accuracy of a registered FR model (View 2: 10 folds x 600 pairs).

For each fold the threshold with the best accuracy on the other 9 folds is applied to it; the printed
accuracy is the mean over folds. Embeddings are computed once per image, forward only. Comparison score:
cosine similarity, or minus the Euclidean distance of the raw embeddings for models trained for it (dlib).

    python benchmarks/lfw_verification.py --model sface
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from faceqan import load_image, load_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = ROOT.parent / "shared" / "data" / "lfw-112"
NATIVE_METRIC = {"dlib-resnet": "euclidean"}  # dlib's metric loss trains distances, threshold 0.6


def read_pairs(root: Path) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """(image a, image b) relative paths, mated flags and fold numbers from pairs.txt."""
    lines = (root / "pairs.txt").read_text().splitlines()
    folds, per_fold = map(int, lines[0].split())
    pairs, mated = [], []
    for line in lines[1:1 + 2 * folds * per_fold]:
        parts = line.split()
        if len(parts) == 3:
            a, i, j = parts
            b = a
        else:
            a, i, b, j = parts
        pairs.append((f"{a}/{a}_{int(i):04d}.jpg", f"{b}/{b}_{int(j):04d}.jpg"))
        mated.append(len(parts) == 3)
    fold = np.repeat(np.arange(folds), 2 * per_fold)
    return pairs, np.array(mated), fold


@torch.no_grad()
def embed(model, root: Path, names: list[str], batch_size: int) -> dict[str, torch.Tensor]:
    size = model.input_size
    out = {}
    for start in range(0, len(names), batch_size):
        chunk = names[start:start + batch_size]
        batch = torch.stack([load_image(root / name, size) for name in chunk])
        out.update(zip(chunk, model(batch)))
    return out


def compare(embeddings: dict[str, torch.Tensor], pairs: list[tuple[str, str]], metric: str) -> np.ndarray:
    a = torch.stack([embeddings[x] for x, _ in pairs])
    b = torch.stack([embeddings[y] for _, y in pairs])
    if metric == "euclidean":
        return -(a - b).norm(dim=1).numpy()
    return torch.cosine_similarity(a, b).numpy()


def best_threshold(scores: np.ndarray, mated: np.ndarray) -> float:
    candidates = np.unique(scores)
    accuracy = [((scores >= t) == mated).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def ten_fold_accuracy(scores: np.ndarray, mated: np.ndarray, fold: np.ndarray) -> list[float]:
    accuracies = []
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        threshold = best_threshold(scores[train], mated[train])
        accuracies.append(float(((scores[test] >= threshold) == mated[test]).mean()))
    return accuracies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sface")
    parser.add_argument("--weights", default=None, help="weights file for models without a default")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="aligned LFW 112 crops with pairs.txt")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--metric", choices=["cosine", "euclidean"], default=None,
                        help="comparison score (default: the model's own, cosine for most)")
    parser.add_argument("--cache", type=Path, default=None, help="embeddings .pt file to reuse or write")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)

    pairs, mated, fold = read_pairs(args.lfw)
    metric = args.metric or NATIVE_METRIC.get(args.model, "cosine")
    model = load_model(args.model, args.weights)
    started = time.perf_counter()
    if args.cache and args.cache.is_file():
        embeddings = torch.load(args.cache, weights_only=True)
    else:
        embeddings = embed(model, args.lfw, sorted({name for pair in pairs for name in pair}), args.batch_size)
        if args.cache:
            torch.save(embeddings, args.cache)
    seconds = time.perf_counter() - started
    cosine = compare(embeddings, pairs, "cosine")
    scores = compare(embeddings, pairs, metric)
    accuracies = ten_fold_accuracy(scores, mated, fold)
    lines = [
        f"command: python {shlex.join(['benchmarks/lfw_verification.py', *(argv or sys.argv[1:])])}",
        f"model: {args.model} (sha256 {model.sha256})",
        f"images: {len(embeddings)} embedded in {seconds:.1f} s; pairs: {len(pairs)} ({mated.sum()} mated)",
        f"mean cosine same: {cosine[mated].mean():.4f}  different: {cosine[~mated].mean():.4f}",
        f"metric: {metric}" + (f"; mean distance same: {-scores[mated].mean():.4f}  different: "
                               f"{-scores[~mated].mean():.4f}" if metric == "euclidean" else ""),
        f"fold accuracies: {' '.join(f'{100 * a:.2f}' for a in accuracies)} (std {100 * np.std(accuracies):.2f})",
        f"accuracy: {100 * np.mean(accuracies):.2f}",
    ]
    print("\n".join(lines))
    output = args.output or ROOT / "benchmarks" / "results" / f"lfw_verification_{args.model}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
