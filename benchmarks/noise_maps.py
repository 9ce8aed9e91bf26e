"""What keeping the adversarial-noise maps costs: N LFW crops (spread over the ERC subset, as the tests pick
them) scored with SFace at the given settings (default: the defaults) without and with maps, face by face and
side by side in one run (the order alternates per face, so load changes hit both alike); the "with" time
includes writing the 16-bit PNG as `faceqan score --maps` does. Prints the overhead (target <= 5 %), whether Q
is bit-identical, and the PNG storage per face.

    python benchmarks/noise_maps.py --images 20 | tee benchmarks/results/noise_maps.txt
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from faceqan import FaceQAN, FaceQANConfig, load_image, load_model
from faceqan.noise_maps import concentration, write_map_png

LFW_112 = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-112"


def spread_paths(count: int) -> list[Path]:
    """Every len/count-th face of the ERC subset (the rule of tests/lfw_data.py)."""
    lines = (LFW_112 / "erc_subset.txt").read_text().split()
    return [LFW_112 / rel for rel in lines[::max(1, len(lines) // count)][:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("-k", "--copies", type=int, default=FaceQANConfig.copies)
    parser.add_argument("-l", "--iterations", type=int, default=FaceQANConfig.iterations)
    args = parser.parse_args()
    print("$ python benchmarks/noise_maps.py " + " ".join(sys.argv[1:]))
    config = FaceQANConfig(copies=args.copies, iterations=args.iterations, device="cpu")
    scorer = FaceQAN(load_model("sface"), config)
    paths = spread_paths(args.images)
    scorer.score(load_image(paths[0], (112, 112)).unsqueeze(0))  # warm-up, untimed
    plain_s, maps_s, sizes, identical, spread = [], [], [], True, []
    with tempfile.TemporaryDirectory() as folder:
        for i, path in enumerate(paths):
            image = load_image(path, (112, 112)).unsqueeze(0)
            timed = {}
            for maps in ((False, True) if i % 2 == 0 else (True, False)):
                start = time.perf_counter()
                scores = scorer.score(image, maps=maps)
                if maps:
                    png = Path(folder) / f"{i}.png"
                    write_map_png(scores.noise_map[0].numpy(), config, png)
                timed[maps] = (time.perf_counter() - start, scores)
            (plain, without), (with_maps, kept) = timed[False], timed[True]
            plain_s.append(plain)
            maps_s.append(with_maps)
            identical &= torch.equal(without.quality, kept.quality)
            sizes.append(png.stat().st_size)
            spread.append(concentration(kept.noise_map[0].numpy()))
    total_plain, total_maps = sum(plain_s), sum(maps_s)
    ratios = [m / p for m, p in zip(maps_s, plain_s)]
    print(f"{args.images} LFW crops, SFace, k={config.copies} l={config.iterations} {config.variant}, CPU "
          f"({torch.get_num_threads()} threads), one face per step, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"without maps: {total_plain:.1f} s ({total_plain / args.images:.2f} s/face); with maps and PNG: "
          f"{total_maps:.1f} s ({total_maps / args.images:.2f} s/face)")
    print(f"overhead: {100 * (total_maps / total_plain - 1):.2f} % (total time); median per-face ratio "
          f"{100 * (statistics.median(ratios) - 1):.2f} %")
    print(f"Q bit-identical with and without maps: {identical}")
    print(f"storage: {statistics.mean(sizes):.0f} bytes per face (16-bit PNG 112x112; min {min(sizes)}, max "
          f"{max(sizes)}); noise_concentration {min(spread):.3f} to {max(spread):.3f}")


if __name__ == "__main__":
    main()
