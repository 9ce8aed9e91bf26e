"""Does the noise map's summary number add anything over Q? FNM-EDC of ``noise_concentration`` (std/mean of a
face's adversarial-noise map, faceqan.noise_maps; higher read as better: the paper's high-quality faces get
structured, face-like noise) beside FaceQAN's Q and the baselines, on the LFW cross-quality set of
benchmarks/erc_sets.py (the maps need the attack again, so only the first ``--identities`` identities in name
order, every one of their photos; the maps are kept from that attack, Q must come out as cached).

    python benchmarks/noise_concentration_edc.py --identities 60 | tee benchmarks/results/noise_concentration_edc.txt

Maps are scored into a resumable cache, results/lfw_erc_maps_faceqan_sface.csv (path, Q, concentration).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_erc import RESULTS, pipeline_set, run_lfw  # noqa: E402

from faceqan import FaceQANConfig, iter_score_rows, load_model  # noqa: E402
from faceqan.noise_maps import concentration  # noqa: E402

CACHE = RESULTS / "lfw_erc_maps_faceqan_sface.csv"
MEASURE = "noise concentration"


def score_maps(images, keys: list[str]) -> pd.DataFrame:
    """Q and concentration of each key's file, appended to CACHE as each batch is scored (resumable)."""
    done = set(pd.read_csv(CACHE)["path"]) if CACHE.exists() else set()
    todo = [k for k in keys if k not in done]
    print(f"{len(done)} cached, {len(todo)} to score with maps -> {CACHE.name}", flush=True)
    if todo:
        files = {str(images.files[images.scores.index.get_loc(k)]): k for k in todo}
        new = not CACHE.exists()
        with open(CACHE, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["path", "quality", "noise_concentration"])
            for rows in iter_score_rows(list(files), load_model("sface"), FaceQANConfig(), maps=True):
                for row in rows:
                    writer.writerow([files[row["path"]], row["quality"], concentration(row["noise_map"])])
                f.flush()
    return pd.read_csv(CACHE).drop_duplicates("path").set_index("path")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=60)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    images = pipeline_set("degraded", cached_only=True)
    chosen = sorted({k.split("/")[-2] for k in images.scores.index})[:args.identities]
    keys = [k for k in images.scores.index if k.split("/")[-2] in chosen]
    maps = score_maps(images, keys).loc[keys]
    print(f"$ python benchmarks/noise_concentration_edc.py --identities {args.identities}\n{len(keys)} faces of "
          f"{len(chosen)} identities; Q with maps vs cached without: max |difference| "
          f"{np.abs(maps['quality'].to_numpy() - images.scores.loc[keys, 'quality'].to_numpy()).max():.2e}")
    rows = images.scores.index.get_indexer(keys)
    subset = dataclasses.replace(images, table="lfw_erc_maps", scores=images.scores.loc[keys],
                                 files=[images.files[i] for i in rows], kinds=images.kinds[rows],
                                 extra={MEASURE: maps["noise_concentration"].to_numpy(float)})
    run_lfw(subset, ["sface", "dlib-resnet"], fmr=1e-3, resamples=args.resamples)


if __name__ == "__main__":
    main()
