"""Engine vs the per-image reference (what the official code does), on the same real faces in one run.

    python benchmarks/engine_vs_reference.py --model sface --images 16

Both score every image with the same initial noise; the timings alternate image by image so that machine
noise hits both alike. The last line is `ratio: <engine img/s / reference img/s>`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from faceqan import FaceQAN, FaceQANConfig, load_model, load_image, reference_score
from faceqan.engine import content_key
from faceqan.noise import initial_noise

LFW_112 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw-112"


def subset_crops(count: int, size) -> torch.Tensor:
    lines = (LFW_112 / "erc_subset.txt").read_text().split()
    step = max(1, len(lines) // count)
    return torch.stack([load_image(LFW_112 / rel, size) for rel in lines[::step][:count]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sface")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variant", default="official", choices=["official", "paper"])
    args = parser.parse_args()

    config = FaceQANConfig(device=args.device, variant=args.variant)
    model = load_model(args.model)
    engine = FaceQAN(model, config)
    images = subset_crops(args.images, model.input_size)
    noise = torch.stack([initial_noise(config.seed, content_key(im), config.copies, tuple(im.shape), config.eps)
                         for im in images])
    engine.score(images[:1], noise=noise[:1])  # warm-up, not timed
    engine_seconds = reference_seconds = 0.0
    engine_q, reference_q = [], []
    for i in range(len(images)):
        start = time.perf_counter()
        reference_q.append(reference_score(engine.model, images[i], config, noise[i]).quality.item())
        reference_seconds += time.perf_counter() - start
        start = time.perf_counter()
        engine_q.append(engine.score(images[i:i + 1], noise=noise[i:i + 1]).quality.item())
        engine_seconds += time.perf_counter() - start
    n = len(images)
    max_dq = max(abs(a - b) for a, b in zip(engine_q, reference_q))
    print(f"model {args.model}, device {engine.device}, {torch.get_num_threads()} threads, {n} LFW crops, "
          f"variant {config.variant}, k={config.copies}, l={config.iterations}")
    print(f"reference: {n / reference_seconds:.3f} img/s ({reference_seconds / n:.2f} s/img)")
    print(f"engine:    {n / engine_seconds:.3f} img/s ({engine_seconds / n:.2f} s/img)")
    print(f"max |Q_engine - Q_reference| with the same noise: {max_dq:.2e}")
    print(f"ratio: {reference_seconds / engine_seconds:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
