"""`faceqan demo`: a FiftyOne dataset of real faces scored with FaceQAN, with a short summary.

Faces come from FiftyOne's LFW zoo dataset when online, or from a local folder (``--source DIR``, one
sub-folder per identity, e.g. ../shared/data/lfw-raw-fold1). Raw photos are detected and aligned before
scoring (alignment="auto"); crops already at the model's input size are scored as they are.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from faceqan.io import find_images
from faceqan.models import DEFAULT_MODEL

SECONDS_PER_IMAGE_CPU = 1.5  # SFace, k=10, l=5, measured on a 2-core CPU (DESIGN.md §3)
OFFLINE_HELP = ("could not download FiftyOne's LFW zoo dataset (offline?). Pass a local folder with one "
                "sub-folder per identity instead, e.g.\n  faceqan demo --source ../shared/data/lfw-raw-fold1")


def _from_folder(source: Path, dataset_name: str):
    import fiftyone as fo

    paths = find_images([source])
    if not paths:
        raise SystemExit(f"no images found under {source}")
    dataset = fo.Dataset(dataset_name, overwrite=True)
    dataset.add_samples([fo.Sample(filepath=str(p.resolve()), identity=fo.Classification(label=p.parent.name))
                         for p in paths])
    return dataset


def _from_zoo(dataset_name: str):
    import fiftyone.zoo as foz

    try:
        dataset = foz.load_zoo_dataset("lfw", split="test", dataset_name=dataset_name)
    except Exception as exc:  # noqa: BLE001 - any download failure means: use a local folder
        raise SystemExit(f"{OFFLINE_HELP}\n({type(exc).__name__}: {exc})") from None
    dataset.rename_sample_field("ground_truth", "identity")
    return dataset


def _summary(dataset, field: str) -> str:
    scored = dataset.exists(field)
    lines = [f"{len(scored)} faces scored, {len(dataset.exists(field + '_error'))} failed"]
    if len(scored):
        low, high = scored.bounds(field)
        q = scored.quantiles(field, [0.1, 0.5, 0.9])
        lines.append(f"{field}: min {low:.4f}  p10 {q[0]:.4f}  median {q[1]:.4f}  p90 {q[2]:.4f}  max {high:.4f}")
        for title, view in (("worst", scored.sort_by(field).limit(3)),
                            ("best", scored.sort_by(field, reverse=True).limit(3))):
            lines.append(f"{title}: " + ", ".join(f"{Path(p).name} ({v:.4f})"
                                                  for p, v in zip(*view.values(["filepath", field]))))
    for path, error in zip(*dataset.exists(field + "_error").limit(3).values(["filepath", field + "_error"])):
        lines.append(f"failed: {Path(path).name}: {error}")
    return "\n".join(lines)


def _evaluation(samples, model: str) -> str:
    """EDC of the scores against the model's own comparisons, when the identities allow any."""
    from .evaluation import evaluate_quality

    try:
        results = evaluate_quality(samples.exists("faceqan"), ["faceqan"], identity_field="identity", model=model,
                                   eval_key="faceqan_demo_eval")
    except ValueError as exc:  # e.g. no mated pair among the scored faces
        return f"no ERC evaluation: {exc}"
    row = results.summary.query("measure == 'faceqan' and curve == 'edc'").iloc[0]
    info = results.info
    head = (f"EDC (run 'faceqan_demo_eval', {info['n_mated']} mated / {info['n_non_mated']} non-mated pairs, "
            f"FMR {info['fmr']:g})")
    if row["fnmr_0"] == 0:
        return f"{head}: no false non-match at all, so there is no error for the scores to predict"
    return (f"{head}: FNMR {row['fnmr_0']:.4f} -> {row['fnmr_20']:.4f} after discarding the worst 20 %; "
            f"pAUC20 normalised {row['pauc_20_norm']:.3f} (1 = random rejection, lower is better)")


def run_demo(source: str | Path | None = None, all_images: bool = False, sample_size: int = 200, seed: int = 0,
             app: bool = False, dataset_name: str = "faceqan-demo", model: str = DEFAULT_MODEL, device: str = "auto"):
    """Build the dataset, score it (a seeded sample of ``sample_size`` faces on a CPU unless ``all_images``),
    print a summary and optionally open the App. Returns the dataset."""
    import torch

    import fiftyone as fo
    from . import compute_face_quality

    dataset = _from_folder(Path(source), dataset_name) if source else _from_zoo(dataset_name)
    dataset.persistent = True
    target = dataset
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if on_cpu and not all_images and len(dataset) > sample_size:
        target = dataset.take(sample_size, seed=seed)
        print(f"CPU only: scoring a seeded sample of {sample_size} of {len(dataset)} faces "
              f"(pass --all to score everything)")
    if on_cpu:
        print(f"estimated time: ~{len(target) * SECONDS_PER_IMAGE_CPU:.0f} s "
              f"(~{SECONDS_PER_IMAGE_CPU} s per face on an idle 2-core CPU)")
    started = time.monotonic()
    compute_face_quality(target, model=model, device=device, progress=True)
    print(f"done in {time.monotonic() - started:.0f} s; dataset {dataset.name!r}")
    print(_summary(target, "faceqan"))
    print(_evaluation(target, model))
    if app:
        session = fo.launch_app(target.sort_by("faceqan"))
        session.wait()
    return dataset


def main(argv: list[str]) -> int:
    """`faceqan demo ARGS`: faceqan's command line finds this through the entry point group faceqan.commands."""
    parser = argparse.ArgumentParser(prog="faceqan demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="local folder of faces, one sub-folder per identity "
                                                    "(default: FiftyOne's LFW zoo dataset, needs internet)")
    parser.add_argument("--all", dest="all_images", action="store_true", help="score every image, even on a CPU")
    parser.add_argument("--sample-size", type=int, default=200, help="faces scored on a CPU (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--name", dest="dataset_name", default="faceqan-demo", help="FiftyOne dataset name")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registered model name (see `faceqan models`)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--app", action="store_true", help="open the FiftyOne App on the scored faces")
    run_demo(**vars(parser.parse_args(argv)))
    return 0
