"""The README's noise-map figure made the FiftyOne way: N LFW crops (spread over the ERC subset, as
benchmarks/noise_maps.py picks them) scored with SFace at the default settings and maps=True into a throwaway
dataset, then fiftyone_faceqan.noise_map_figure draws its 4 lowest-Q and 4 highest-Q faces beside their maps.
Prints the scoring time and the storage the maps took per face.

    python benchmarks/noise_map_figure.py --images 20 | tee benchmarks/results/noise_map_figure.txt

Uses the FiftyOne database configured for this user (a non-persistent dataset, deleted at the end; the maps go
to a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from noise_maps import spread_paths

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "noise_maps_fiftyone.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="number of LFW crops (default %(default)s)")
    parser.add_argument("--count", type=int, default=4, help="faces per row of the figure (default %(default)s)")
    parser.add_argument("--out", type=Path, default=FIGURE, help="the figure (default docs/noise_maps_fiftyone.png)")
    args = parser.parse_args()
    print("$ python benchmarks/noise_map_figure.py " + " ".join(sys.argv[1:]))

    import fiftyone as fo
    import torch

    from faceqan.config import FaceQANConfig
    from fiftyone_faceqan import compute_face_quality, noise_map_figure

    config = FaceQANConfig(device="cpu")
    dataset = fo.Dataset()
    try:
        dataset.add_samples([fo.Sample(filepath=str(p)) for p in spread_paths(args.images)], progress=False)
        with tempfile.TemporaryDirectory() as maps_dir:
            start = time.perf_counter()
            results = compute_face_quality(dataset, config=config, maps=True, maps_dir=maps_dir, progress=False)
            seconds = time.perf_counter() - start
            sizes = [Path(p).stat().st_size for p in dataset.values("faceqan_noise_map")]
            faces = noise_map_figure(dataset, "faceqan", args.out, count=args.count)
        print(f"{results.scored} LFW crops scored with maps ({results.failed} failed), SFace, k={config.copies} "
              f"l={config.iterations} {config.variant}, CPU ({torch.get_num_threads()} threads), load average "
              f"{os.getloadavg()[0]:.2f}: {seconds:.1f} s ({seconds / max(results.scored, 1):.2f} s/face, "
              "end to end with the PNGs and the database writes)")
        print(f"maps: {sum(sizes) / len(sizes):.0f} bytes per face (an aligned crop's map is its own heatmap: one "
              f"16-bit PNG per face)")
        low, high = dataset.bounds("faceqan")
        print(f"figure: {args.out.name}, the {args.count} lowest and {args.count} highest of {faces} faces "
              f"(Q {low:.3f} to {high:.3f})")
    finally:
        dataset.delete()


if __name__ == "__main__":
    main()
