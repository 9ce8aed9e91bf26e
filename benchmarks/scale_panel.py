"""The rejection panel at scale (issue #14): how long opening the panel and a slider move take, driving the
real panel the way tests/test_panels.py does (one operator execution per event through a real
ExecutionContext, the operations it triggers applied to an App-side state, the App's view event after each
``set_view``). A move in the kept view includes that view event (the echo of the panel's own ``set_view``).

``measure_panel(dataset, field)`` is what benchmarks/scale_fiftyone.py calls on its dataset; ``main`` builds
its own synthetic dataset in a private MongoDB (random ``quality`` with the index a FaceQAN run creates on
its field, identities, and 512-d embeddings on EVALUATED samples for an evaluation, so the FNMR is part of
every answer) and prints the figures:

    python benchmarks/scale_panel.py --samples 100000
    python benchmarks/scale_panel.py --samples 1000000 --db /tmp/scale-panel-db   # keep the database
    python benchmarks/scale_panel.py --samples 100000 --no-index                 # a field without an index
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PANEL = "faceqan_rejection"
EVALUATED = 2000  # samples with embeddings and identities in the evaluation (its cost does not grow with N)
INSERT_BATCH = 10_000


def _plugin_found() -> None:
    """Make FiftyOne find this plugin (a folder with a link to the repository, as tests/conftest.py does)."""
    import fiftyone as fo
    import fiftyone.plugins as fop

    if "@faceqan/faceqan" not in [plugin.name for plugin in fop.list_plugins()]:
        folder = Path(tempfile.mkdtemp(prefix="faceqan-plugins-"))
        (folder / "faceqan").symlink_to(REPO)
        fo.config.plugins_dir = str(folder)


def _rates(moves: int, offset: int) -> list[float]:
    """Slider positions that differ from one move to the next and cover the range."""
    return [((offset + 37 * i) % 97 + 2) / 100 for i in range(moves)]


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure_panel(dataset, field: str, moves: int = 20) -> dict:
    """Seconds to open the panel on ``field`` and the median of ``moves`` slider moves, with the grid showing
    all samples and then the kept ones."""
    _plugin_found()
    sys.path.insert(0, str(REPO / "tests"))
    from test_panels import AppPanel

    panel = AppPanel(PANEL, dataset)
    opened = _timed(lambda: panel.event("on_load"))
    if panel.model()["field"] != field:
        opened += _timed(lambda: panel.change("field", field, "on_change_field"))
    slider = [_timed(lambda: panel.change("rate", rate, "on_change_rate")) for rate in _rates(moves, 0)]
    panel.event("show_kept")
    kept_view = [_timed(lambda: panel.change("rate", rate, "on_change_rate")) for rate in _rates(moves, 50)]
    model = panel.model()
    assert len(panel.view()) == model["table"]["scored"] - model["rejected"]
    fnmr = model["fnmr"] and f"{model['fnmr']['fnmr']:.4f} ({model['fnmr']['eval_key']})"
    print(f"last answer: rate {model['rate']}, threshold {model['threshold']:.6f}, rejects {model['rejected']} "
          f"of {model['table']['scored']}, FNMR {fnmr}, grid shows {len(panel.view())} kept", flush=True)
    return {"panel_open_s": opened, "slider_s": statistics.median(slider),
            "slider_kept_view_s": statistics.median(kept_view)}


def build(name: str, n: int, indexed: bool):
    """``n`` samples with a random ``quality`` (the index a FaceQAN run would create on it when ``indexed``),
    identities, and embeddings on the first EVALUATED; one evaluation of ``quality`` over those."""
    import fiftyone as fo
    from fiftyone.core.odm import get_db_conn
    from fiftyone_faceqan.evaluation import evaluate_quality

    if fo.dataset_exists(name):
        fo.load_dataset(name).delete()
    dataset = fo.Dataset(name)
    dataset.add_sample_field("quality", fo.FloatField)
    dataset.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    dataset.add_sample_field("embedding", fo.VectorField)
    rng = np.random.default_rng(0)
    quality, identity = rng.random(n), rng.integers(0, max(2, n // 20), size=n)
    centres = rng.standard_normal((identity.max() + 1, 512), dtype=np.float32)
    collection = get_db_conn()[dataset._sample_collection_name]
    vector = dataset.get_field("embedding")
    for start in range(0, n, INSERT_BATCH):
        docs = []
        for i in range(start, min(n, start + INSERT_BATCH)):
            sample = fo.Sample(filepath=f"/synthetic/{i:07d}.jpg", quality=float(quality[i]),
                               ground_truth=fo.Classification(label=f"person_{identity[i]:06d}"))
            doc = dataset._make_dict(sample)
            if i < EVALUATED:  # noisier the lower the quality, as a real score predicts errors
                noise = rng.standard_normal(512, dtype=np.float32) * (0.6 + 1.2 * (1 - quality[i]))
                doc["embedding"] = vector.to_mongo(centres[identity[i]] + noise)
            docs.append(doc)
        collection.insert_many(docs, ordered=False)
    if indexed:
        dataset.create_index("quality")
    evaluate_quality(dataset.exists("embedding"), ["quality"], model=None, embeddings_field="embedding",
                     eval_key="quality_eval", resamples=0)
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--no-index", action="store_true", help="measure a quality field without an index")
    parser.add_argument("--db", type=Path, help="database folder to keep (default: a temporary one)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from scale_fiftyone import private_database

    dbpath = args.db or Path(tempfile.mkdtemp(prefix="faceqan-scale-panel-")) / "db"
    with private_database(dbpath):
        started = time.perf_counter()
        dataset = build("faceqan-scale-panel", args.samples, indexed=not args.no_index)
        print(f"{args.samples} samples, index on quality: {not args.no_index}, built in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        for name, seconds in measure_panel(dataset, "quality", args.moves).items():
            print(f"{name}: {seconds:.3f} s", flush=True)
        dataset.delete()


if __name__ == "__main__":
    main()
