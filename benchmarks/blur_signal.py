"""Does FaceQAN see blur, on more faces than the unit test scores? N crops spread evenly over the ERC subset
(every len/N-th, the rule of tests/lfw_data.py: N=100 is the unit test's sample) and 8-bit Gaussian-blurred
copies (sigma 2, made as tests/test_quality_signal.py makes them, saved as PNG): prints the share of faces with
q_adv(clean) > q_adv(blurred) and Q(clean) > Q(blurred), for these N and for every face in the cache (earlier
runs with other N included). Scores go to CSV caches (the clean ones are the ERC benchmark's), so a rerun scores
only what is missing.

    python benchmarks/blur_signal.py --images 300
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import torch
from torchvision.io import write_png
from torchvision.transforms.functional import gaussian_blur

from cache_scores import cache_scores
from faceqan.io import load_image

RESULTS = Path(__file__).resolve().parent / "results"
LFW_112 = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-112"


def write_blurred(root: Path, relative_paths: list[str], out_dir: Path) -> list[str]:
    """Blurred 8-bit PNG copies of the crops under ``out_dir``; returns their relative paths."""
    names = []
    for rel in relative_paths:
        image = load_image(root / rel, (112, 112))
        blurred = (gaussian_blur(image, kernel_size=13, sigma=2.0) * 255.0).round().to(torch.uint8)
        name = str(Path(rel).with_suffix(".png"))
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        write_png(blurred, str(out_dir / name))
        names.append(name)
    return names


def read_scores(path: Path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def share(clean: list[dict], blurred: list[dict], column: str) -> float:
    return sum(float(c[column]) > float(b[column]) for c, b in zip(clean, blurred)) / len(clean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--data", type=Path, default=LFW_112, help="folder with erc_subset.txt")
    args = parser.parse_args()
    lines = (args.data / "erc_subset.txt").read_text().split()
    paths = lines[:: max(1, len(lines) // args.images)][: args.images]

    clean_cache = cache_scores(args.data, paths, RESULTS / "lfw_erc_faceqan_sface.csv")
    with tempfile.TemporaryDirectory() as tmp:
        blurred_paths = write_blurred(args.data, paths, Path(tmp))
        blurred_cache = cache_scores(Path(tmp), blurred_paths, RESULTS / "blur_signal_sface.csv")
    clean_rows, blurred_rows = read_scores(clean_cache), read_scores(blurred_cache)
    every = [name for name in blurred_rows if name.replace(".png", ".jpg") in clean_rows]  # earlier runs too
    for label, names in ((f"{len(paths)} faces", blurred_paths), (f"all {len(every)} faces in the cache", every)):
        clean = [clean_rows[name.replace(".png", ".jpg")] for name in names]
        blurred = [blurred_rows[name] for name in names]
        print(f"{label}: q_adv(clean) > q_adv(blur) {share(clean, blurred, 'q_adv'):.1%}, "
              f"Q(clean) > Q(blur) {share(clean, blurred, 'quality'):.1%}")

if __name__ == "__main__":
    main()
