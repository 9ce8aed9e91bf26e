"""The paper's Fig. 1 and Fig. 4 for a user's own faces: the worst and best faces of a FiftyOne collection,
each aligned as it was scored, beside its adversarial-noise map (a FaceQAN run with ``maps=True``)."""

from __future__ import annotations

from pathlib import Path

from faceqan.align import warp
from faceqan.io import read_image
from faceqan.noise_maps import read_map_png, read_placement, save_figure

from .fields import field_names, map_field_names, written_map_fields
from .runs import FaceQANBrainConfig, stored_run_config


def runs_with_maps(dataset) -> list[str]:
    """The keys of the dataset's FaceQAN runs that kept noise maps."""
    configs = {key: dataset.get_brain_info(key).config for key in dataset.list_brain_runs()}
    return [key for key, config in configs.items() if isinstance(config, FaceQANBrainConfig)
            and written_map_fields(dataset, key, config.detections_field)]


def faces_with_maps(samples, quality_field: str) -> list[tuple[float, str, str]]:
    """(Q, map PNG, image path) of every face of ``samples`` that run ``quality_field`` scored with a map."""
    config = stored_run_config(samples, quality_field)
    prefix = f"{config.detections_field}.detections." if config.detections_field else ""
    names = [prefix + field_names(quality_field)["quality"], prefix + map_field_names(quality_field)["noise_map"]]
    if not samples._root_dataset.has_field(names[1]):
        return []
    paths, qualities, pngs = samples.values(["filepath", *names])
    if not config.detections_field:
        qualities, pngs = [[q] for q in qualities], [[m] for m in pngs]
    return [(q, png, path) for path, face_q, face_png in zip(paths, qualities, pngs)
            for q, png in zip(face_q or [], face_png or []) if q is not None and png and Path(png).is_file()]


def noise_map_figure(samples, quality_field: str = "faceqan", path: str | Path = "noise_maps.png",
                     count: int = 4) -> int:
    """Write the figure of the ``count`` lowest-Q faces (top row) and ``count`` highest-Q faces (bottom) of
    ``samples`` (a dataset or view) that run ``quality_field`` kept maps for, each beside its map on one colour
    scale (faceqan.noise_maps.save_figure), to ``path`` (PNG). Returns how many faces with maps there were."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a whole number >= 1, got {count!r}")
    faces = sorted(faces_with_maps(samples, quality_field))
    if len(faces) < 2:
        raise ValueError(f"{len(faces)} face(s) with noise maps of run {quality_field!r} here; the figure needs 2: "
                         f"score with compute_face_quality(..., quality_field={quality_field!r}, maps=True)")
    count = min(count, len(faces) // 2)
    chosen = faces[:count] + faces[-count:]
    config = stored_run_config(samples, quality_field).faceqan_config()
    maps = [read_map_png(png, config) for _, png, _ in chosen]
    images = [warp(read_image(image), read_placement(png).to_crop, noise_map.shape).numpy()
              for (_, png, image), noise_map in zip(chosen, maps)]
    save_figure(images, maps, [q for q, _, _ in chosen], path, count,
                title=f"{quality_field}: the {count} lowest and highest of {len(faces)} faces with noise maps")
    return len(faces)
