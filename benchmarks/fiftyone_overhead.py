"""What the FiftyOne integration costs on top of the engine: the same N LFW crops scored by the engine
alone (faceqan.pipeline.score_files) and end to end by compute_face_quality on a throwaway dataset
(reads, DataLoader decoding, chunked writes, run bookkeeping), in the order engine, SDK, SDK, engine.
The last line is ``overhead: <percent>`` (total SDK time / total engine time - 1).

    python benchmarks/fiftyone_overhead.py --images 100

Uses the FiftyOne database configured for this user (a temporary, non-persistent dataset, deleted at the end).
"""

from __future__ import annotations

import argparse
import os
import time

from lfw_subset import add_data_argument, subset_paths

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="number of LFW crops (default %(default)s)")
    parser.add_argument("--device", default="cpu")
    add_data_argument(parser)
    args = parser.parse_args()
    paths = subset_paths(args.data, args.images)

    import fiftyone as fo
    from faceqan.align import FacePreparer
    from faceqan.config import FaceQANConfig
    from faceqan.models import load_model
    from faceqan.pipeline import score_files
    from fiftyone_faceqan import compute_face_quality

    model = load_model("sface")
    config = FaceQANConfig(device=args.device)
    print(f"{len(paths)} images, SFace, {args.device}, k={config.copies} l={config.iterations}")

    def engine_run() -> tuple[float, list]:
        start = time.perf_counter()
        frame = score_files(paths, model, config, prepare=FacePreparer.for_model(model), progress=False)
        seconds = time.perf_counter() - start
        print(f"engine only: {seconds:.2f} s ({seconds / len(paths):.3f} s/image, "
              f"{frame['error'].notna().sum()} failed)")
        return seconds, frame["quality"].tolist()

    def sdk_run(expected) -> float:
        dataset = fo.Dataset()
        try:
            dataset.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
            start = time.perf_counter()
            results = compute_face_quality(dataset, model=model, config=config, progress=False)
            seconds = time.perf_counter() - start
            same = dataset.values("faceqan") == expected
            print(f"SDK end to end: {seconds:.2f} s ({seconds / len(paths):.3f} s/image, {results.failed} failed, "
                  f"scores equal to the engine's: {same})")
        finally:
            dataset.delete()
        return seconds

    # A B B A: machine noise that drifts during the run hits both sides alike
    first, expected = engine_run()
    sdk = sdk_run(expected) + sdk_run(expected)
    engine = first + engine_run()[0]
    print(f"overhead: {100.0 * (sdk - engine) / engine:.1f}%")


if __name__ == "__main__":
    main()
