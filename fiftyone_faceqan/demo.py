"""`faceqan demo`: a FiftyOne dataset of real faces scored with FaceQAN, with a short summary.

With no argument it needs no data and no network: the face photos that ship inside installed packages
(insightface's group photo, scikit-image's astronaut) are detected, every face is scored and the faces are
listed worst first, in seconds on a CPU. Bigger: a local folder (``--source DIR``, one sub-folder per identity,
e.g. ../shared/data/lfw-raw-fold1) or FiftyOne's LFW zoo dataset (``--zoo``, needs internet), whose raw photos
are detected and aligned before scoring (alignment="auto"; crops at the model's input size are scored as
they are) and evaluated against their identities.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from faceqan.io import find_images
from faceqan.models import DEFAULT_MODEL

from .fields import PARTS, field_names

SECONDS_PER_IMAGE_CPU = 1.5  # SFace, k=10, l=5, measured on a 2-core CPU (DESIGN.md §3)
OFFLINE_HELP = ("could not download FiftyOne's LFW zoo dataset (offline?). Pass a local folder with one "
                "sub-folder per identity instead, e.g.\n  faceqan demo --source ../shared/data/lfw-raw-fold1")
# (package, file inside it): face photos that ship with installed packages, the default demo's input
PACKAGED_FACES = (("insightface", "data/images/t1.jpg"), ("insightface", "data/images/Tom_Hanks_54745.png"),
                  ("skimage", "data/astronaut.png"))
NO_PACKAGED_FACES = ("no face photos ship with the installed packages: pip install scikit-image (or insightface), "
                     "or pass a folder of faces: faceqan demo --source DIR")
GO_BIGGER = ("Go bigger: faceqan demo --source DIR (a folder with one sub-folder per identity, e.g. "
             "../shared/data/lfw-raw-fold1) or faceqan demo --zoo (FiftyOne's LFW, needs internet); "
             "add --app to browse the faces sorted by quality in the FiftyOne App.")
FACES = "faces"  # the detections field of the default demo


def packaged_faces() -> list[Path]:
    """The PACKAGED_FACES present here, found through the import system (installing a package is enough)."""
    found = []
    for package, relative in PACKAGED_FACES:
        spec = importlib.util.find_spec(package)  # locates the package without importing it
        folders = spec.submodule_search_locations if spec else None
        path = Path(folders[0], relative) if folders else None
        if path and path.is_file():
            found.append(path)
    return found


def _new_dataset(dataset_name: str, paths: list[Path], identities: bool):
    """A persistent dataset of ``paths``; with ``identities`` each labelled with its folder's name."""
    import fiftyone as fo

    dataset = fo.Dataset(dataset_name, overwrite=True, persistent=True)
    dataset.add_samples([fo.Sample(filepath=str(p.resolve()), **(
        {"identity": fo.Classification(label=p.parent.name)} if identities else {})) for p in paths])
    return dataset


def _from_folder(source: Path, dataset_name: str):
    paths = find_images([source])
    if not paths:
        raise SystemExit(f"no images found under {source}")
    return _new_dataset(dataset_name, paths, identities=True)


def _from_packages(dataset_name: str):
    paths = packaged_faces()
    if not paths:
        raise SystemExit(NO_PACKAGED_FACES)
    return _new_dataset(dataset_name, paths, identities=False)


def _from_zoo(dataset_name: str):
    import fiftyone.zoo as foz

    try:
        dataset = foz.load_zoo_dataset("lfw", split="test", dataset_name=dataset_name, persistent=True)
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


def _score(samples, faces: int, on_cpu: bool, model: str, device: str, **kwargs) -> None:
    """compute_face_quality, with the time it will take on a CPU said first and the time it took after."""
    from . import compute_face_quality

    if on_cpu:
        print(f"estimated time: ~{faces * SECONDS_PER_IMAGE_CPU:.0f} s "
              f"(~{SECONDS_PER_IMAGE_CPU} s per face on an idle 2-core CPU)")
    started = time.monotonic()
    compute_face_quality(samples, model=model, device=device, progress=True, **kwargs)
    print(f"done in {time.monotonic() - started:.0f} s; dataset {samples._root_dataset.name!r}")


def _score_photos(dataset, on_cpu: bool, all_images: bool, sample_size: int, seed: int, model: str, device: str):
    """One face per photo (a seeded sample on a CPU unless ``all_images``), summarised and evaluated
    against the identities; returns the scored photos, worst first."""
    target = dataset
    if on_cpu and not all_images and len(dataset) > sample_size:
        target = dataset.take(sample_size, seed=seed)
        print(f"CPU only: scoring a seeded sample of {sample_size} of {len(dataset)} faces "
              f"(pass --all to score everything)")
    _score(target, len(target), on_cpu, model, device)
    print(_summary(target, "faceqan"))
    print(_evaluation(target, model))
    return target.sort_by("faceqan")


def _face_lines(patches) -> list[str]:
    """Per face of ``patches``, in their order: the photo, the face's index in it (most confident first),
    its box in pixels, Q and its parts (or why it failed)."""
    names = {key: f"{FACES}.{name}" for key, name in field_names("faceqan").items()}
    parts = {(suffix.lstrip("_") or "Q"): names[key] for key, suffix in PARTS.items() if key != "error"}
    index = {label: i for labels in patches._root_dataset.values(f"{FACES}.detections.id")
             for i, label in enumerate(labels or [])}
    rows = zip(*patches.values(["filepath", "metadata.width", "metadata.height", f"{FACES}.id",
                                f"{FACES}.bounding_box", names["error"], *parts.values()]))
    lines = []
    for path, width, height, label, (x, y, w, h), error, *values in rows:
        face = (f"{Path(path).name} #{index[label]} [x={x * width:.0f} y={y * height:.0f} w={w * width:.0f} "
                f"h={h * height:.0f}]")
        scores = f"failed: {error}" if error else "  ".join(f"{name} {v:.4f}" for name, v in zip(parts, values))
        lines.append(f"{face}  {scores}")
    return lines


def _score_packaged_faces(dataset, on_cpu: bool, model: str, device: str):
    """Every face of the packaged photos; returns them as patches, worst first."""
    from . import detect_faces

    found = detect_faces(dataset, FACES, progress=False)
    dataset.compute_metadata(num_workers=1, progress=False)
    print(f"{found} faces found in {len(dataset)} photos that ship with installed packages "
          f"({', '.join(Path(p).name for p in dataset.values('filepath'))})")
    _score(dataset, found, on_cpu, model, device, detections_field=FACES)
    patches = dataset.to_patches(FACES).sort_by(f"{FACES}.faceqan")
    print("faces by FaceQAN quality, worst first:", *_face_lines(patches), GO_BIGGER, sep="\n")
    return patches


def run_demo(source: str | Path | None = None, zoo: bool = False, all_images: bool = False, sample_size: int = 200,
             seed: int = 0, app: bool = False, dataset_name: str = "faceqan-demo", model: str = DEFAULT_MODEL,
             device: str = "auto"):
    """Build the dataset and score it: the photos of ``source`` or of the LFW zoo dataset (``zoo``), else
    every face of the photos that ship with installed packages; optionally open the App on the faces sorted
    by quality. Returns the dataset."""
    import torch

    import fiftyone as fo

    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if source or zoo:
        dataset = _from_folder(Path(source), dataset_name) if source else _from_zoo(dataset_name)
        view = _score_photos(dataset, on_cpu, all_images, sample_size, seed, model, device)
    else:
        dataset = _from_packages(dataset_name)
        view = _score_packaged_faces(dataset, on_cpu, model, device)
    if app:
        fo.launch_app(view).wait()
    return dataset


def main(argv: list[str]) -> int:
    """`faceqan demo ARGS`: faceqan's command line finds this through the entry point group faceqan.commands."""
    parser = argparse.ArgumentParser(prog="faceqan demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--source", type=Path, help="local folder of faces, one sub-folder per identity "
                                                    "(default: the face photos that ship with installed packages)")
    inputs.add_argument("--zoo", action="store_true", help="FiftyOne's LFW zoo dataset (needs internet)")
    parser.add_argument("--all", dest="all_images", action="store_true",
                        help="score every image of --source or --zoo, even on a CPU")
    parser.add_argument("--sample-size", type=int, default=200,
                        help="faces of --source or --zoo scored on a CPU (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--name", dest="dataset_name", default="faceqan-demo", help="FiftyOne dataset name")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registered model name (see `faceqan models`)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    parser.add_argument("--app", action="store_true", help="open the FiftyOne App on the faces sorted by quality")
    run_demo(**vars(parser.parse_args(argv)))
    return 0
