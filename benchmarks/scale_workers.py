"""What splitting one FaceQAN run over delegated workers gains: the same N LFW crops, queued as the same
shards (compute_face_quality(..., shards=S)), scored by 1 and then by 2 CPU workers (`faceqan workers --cpu W`:
real `fiftyone delegated launch` processes with one torch thread each), timed from queuing until the run's
progress (read from the stored scores) says complete. Worker start-up (imports) is not timed: a worker
started once serves any number of runs; each shard's model load is. The last line is ``speedup: <x>``
(1-worker seconds / 2-worker seconds); 2.0 on 2 idle cores means the coordination costs nothing.

    python benchmarks/scale_workers.py --images 40

Uses the FiftyOne database configured for this user (two temporary datasets, deleted at the end); the plugin
is made visible to the workers through a temporary FIFTYONE_PLUGINS_DIR.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lfw_subset import add_data_argument, subset_paths

REPO = Path(__file__).resolve().parents[1]
PLUGINS = Path(tempfile.mkdtemp(prefix="faceqan-plugins-"))
(PLUGINS / "faceqan").symlink_to(REPO)
os.environ.update({"FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_PLUGINS_DIR": str(PLUGINS)})


def load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine depresses the speedup."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed_run(paths: list[str], workers: int, shards: int) -> tuple[float, dict]:
    """Seconds from queuing ``shards`` to a complete run with ``workers`` CPU workers; the stored scores."""
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality, run_progress

    dataset = fo.Dataset()
    dataset.persistent = True  # the workers load it by name
    log = Path(tempfile.mkstemp(prefix="faceqan-workers-", suffix=".log")[1])
    command = subprocess.Popen([sys.executable, "-m", "fiftyone_faceqan.workers", "--cpu", str(workers)],
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        dataset.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
        while log.read_text().count("Delegated operation service running") < workers:
            if command.poll() is not None:
                raise SystemExit(f"the workers ended: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        start = time.perf_counter()
        compute_face_quality(dataset, model="sface", device="cpu", shards=shards)
        while not run_progress(dataset).complete:
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        progress = run_progress(dataset)
        print(f"{workers} worker(s): {seconds:.2f} s ({seconds / len(paths):.3f} s/image, {progress.scored} scored, "
              f"{progress.failed} failed; load average {load()})", flush=True)
        dataset.reload()  # the workers declared the score fields
        return seconds, dict(zip(dataset.values("filepath"), dataset.values("faceqan")))
    finally:
        command.send_signal(signal.SIGTERM)
        command.wait()
        dataset.delete()
        log.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="number of LFW crops (default %(default)s)")
    parser.add_argument("--shards", type=int, default=4, help="shards of the run, the same for both (default 4)")
    add_data_argument(parser)
    args = parser.parse_args()
    paths = subset_paths(args.data, args.images)
    print(f"{len(paths)} images, SFace, cpu, k=10 l=5, {args.shards} shards, one torch thread per worker; "
          f"load average before: {load()}", flush=True)
    one, scores_one = timed_run(paths, 1, args.shards)
    two, scores_two = timed_run(paths, 2, args.shards)
    print(f"scores equal between the two runs: {scores_one == scores_two}")
    print(f"speedup: {one / two:.2f}")


if __name__ == "__main__":
    main()
