"""Per-identity curation at scale (issue #15): ``curate_identities`` on benchmarks/scale_fiftyone.py's synthetic
dataset (N samples, ~N/20 identities in ``ground_truth``, a random quality in ``synthetic_quality``), in a
private MongoDB. Figures:

    curate_s     best 10 per identity, cut rejecting 20 % of the faces but keeping 3 per identity, tags written
                 on every sample (the benchmark's tags are removed first)
    recurate_s   the same curation again: nothing changes, nothing is written
    changed_s    again with best 8: only the samples whose outcome changed are written
    summary_s    the per-identity table of a curation that writes nothing (read, rank, summarise)
    tag_samples_s  for reference: FiftyOne's own ``tag_samples`` writing one tag on every sample

The output goes to stdout and to benchmarks/results/scale_curation.txt (the command on the first line).

    python benchmarks/scale_curation.py --samples 1000000
    python benchmarks/scale_curation.py --samples 100000 --db /tmp/scale-db   # keep the database to reuse it
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from scale_fiftyone import build, dataset_parser, private_database

RESULTS = Path(__file__).parent / "results" / "scale_curation.txt"
RULES = {"quality_field": "synthetic_quality", "identity_field": "ground_truth", "best_k": 10, "reject_rate": 0.2,
         "min_per_identity": 3}


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def measure(dataset, say) -> None:
    from fiftyone_faceqan.curation import curate_identities, tag_names

    dataset.untag_samples(list(tag_names("scale").values()))  # a reused database: start from no tags
    for name, rules in (("curate_s", RULES), ("recurate_s", RULES), ("changed_s", {**RULES, "best_k": 8})):
        started = time.monotonic()
        curation = curate_identities(dataset, tag="scale", **rules)
        counts = curation.counts
        say(f"{name}: {time.monotonic() - started:.2f} s   ({counts['kept']} kept, {counts['dropped']} dropped of "
            f"{counts['total']}; {counts['identities']} identities, {counts['short_identities']} short; cut "
            f"{curation.threshold:.4f}; tags {dataset.count_sample_tags()})")
    started = time.monotonic()
    summary = curate_identities(dataset, tag=None, **RULES).summary
    say(f"summary_s: {time.monotonic() - started:.2f} s")
    say(f"summary: {len(summary)} rows, median kept {summary['kept'].median():g}")
    started = time.monotonic()
    dataset.tag_samples("scale_reference")
    say(f"tag_samples_s: {time.monotonic() - started:.2f} s   (FiftyOne's tag_samples on all {len(dataset)} samples)")
    dataset.untag_samples("scale_reference")


def main() -> None:
    args = dataset_parser(__doc__.splitlines()[0]).parse_args()
    lines = [" ".join(["python", *sys.argv])]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    dbpath = args.db or Path(tempfile.mkdtemp(prefix="faceqan-scale-")) / "db"
    say(f"samples: {args.samples}; database: {dbpath}; {os.cpu_count()} CPUs, {load()}")
    try:
        with private_database(dbpath):
            dataset, seconds = build(f"scale-{args.samples}", args.samples, args.seed)
            say(f"build_s: {seconds:.1f}" if seconds else "build_s: reused")
            say(f"before: {load()}")
            measure(dataset, say)
            say(f"after: {load()}")
    finally:
        if args.db is None:
            shutil.rmtree(dbpath.parent, ignore_errors=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
