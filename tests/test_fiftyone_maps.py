"""Noise maps in FiftyOne (compute_face_quality(..., maps=True)) on a real database: off by default, kept from
the same attack (Q and the fingerprint unchanged), deterministic and reproduced from a stored run's settings, laid
back on the right face of a group photo, resumable, refused where a field is the user's, removed with the run, and
drawn as the paper's figure by the SDK function and the "Show noise maps" operator."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lfw_data import subset_paths
from test_align import insightface_image

MAPS = {"copies": 2, "iterations": 3, "seed": 3, "progress": False, "num_workers": 0}  # l=3: 2 steps, maps vary
PLAIN = {**MAPS, "iterations": 2}  # where a map's values do not matter: one sign step, a uniform map


@pytest.fixture(scope="module")
def sface():
    from faceqan import load_model

    return load_model("sface")


def _levels(png) -> np.ndarray:
    return np.asarray(Image.open(png))


def _snapshot(dataset):
    dataset.reload()
    return list(dataset.get_field_schema(flat=True)), [s.to_dict() for s in dataset], dataset.list_brain_runs()


def test_maps_are_off_by_default_and_a_maps_rerun_rescores_keeps_q_and_resumes(fo_dataset, sface, tmp_path):
    """Without maps nothing map-like is written; maps=True then scores every face again (its map needs the
    attack) to bit-identical Q under the same fingerprint; a rerun without maps keeps them; a face whose PNG is
    gone is scored again; delete_brain_run removes the fields and the PNGs."""
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality

    fo_dataset.add_samples([fo.Sample(filepath=str(p)) for p in subset_paths(2)])
    plain_run = {**PLAIN, "model": sface}
    assert compute_face_quality(fo_dataset, **plain_run).scored == 2
    assert not [name for name in fo_dataset.get_field_schema() if "map" in name]
    assert not (Path(fo.config.default_dataset_dir) / "faceqan-maps" / fo_dataset.slug).exists()
    plain = fo_dataset.values(["faceqan", "faceqan_run"])

    kept = compute_face_quality(fo_dataset, maps=True, maps_dir=str(tmp_path), **plain_run)
    assert (kept.scored, kept.skipped) == (2, 0)
    assert fo_dataset.values(["faceqan", "faceqan_run"]) == plain  # bit-identical Q, the same fingerprint
    pngs = fo_dataset.values("faceqan_noise_map")
    folder = tmp_path / fo_dataset.slug / "faceqan"
    assert sorted(Path(p).name for p in pngs) == sorted(p.name for p in folder.iterdir())
    heatmaps = fo_dataset.values("faceqan_heatmap")
    assert all(isinstance(h, fo.Heatmap) and h.range == [0, 65535] for h in heatmaps)
    assert [h.map_path for h in heatmaps] == pngs  # an aligned crop is its own photo: one PNG, no overlay
    assert all(0 <= c < 1 for c in fo_dataset.values("faceqan_noise_concentration"))

    stamps = [Path(p).stat().st_mtime_ns for p in pngs]
    assert (compute_face_quality(fo_dataset, **plain_run).skipped, fo_dataset.values("faceqan_noise_map")) == \
        (2, pngs)
    assert [Path(p).stat().st_mtime_ns for p in pngs] == stamps  # kept, not written again

    lost = _levels(pngs[1])
    Path(pngs[1]).unlink()
    again = compute_face_quality(fo_dataset, maps=True, maps_dir=str(tmp_path), **plain_run)
    assert (again.scored, again.skipped) == (1, 1)
    assert np.array_equal(_levels(pngs[1]), lost) and Path(pngs[0]).stat().st_mtime_ns == stamps[0]

    fo_dataset.delete_brain_run("faceqan")
    assert not [name for name in fo_dataset.get_field_schema() if name.startswith("faceqan")]
    assert not folder.exists()


def test_a_rerun_with_other_settings_and_no_maps_clears_the_stale_maps(fo_dataset, sface, tmp_path):
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality

    fo_dataset.add_samples([fo.Sample(filepath=str(subset_paths(1)[0]))])
    compute_face_quality(fo_dataset, model=sface, maps=True, maps_dir=str(tmp_path), **PLAIN)
    png = fo_dataset.values("faceqan_noise_map")[0]
    assert Path(png).is_file()
    assert compute_face_quality(fo_dataset, model=sface, **{**PLAIN, "seed": 4}).scored == 1  # a new attack, no map
    assert list(fo_dataset.values(["faceqan_noise_map", "faceqan_heatmap", "faceqan_noise_concentration"])) == \
        [[None], [None], [None]]
    assert not Path(png).exists()


def test_a_map_is_deterministic_and_reproduced_from_the_stored_runs_settings(fo_dataset, sface):
    """The run's stored config, given back to compute_face_quality, writes the same PNG values; the engine
    given the stored settings computes them too; another seed gives another map."""
    import dataclasses

    import fiftyone as fo
    from faceqan import FaceQAN, load_image
    from faceqan.noise_maps import to_levels
    from fiftyone_faceqan import compute_face_quality

    path = subset_paths(1)[0]
    fo_dataset.add_sample(fo.Sample(filepath=str(path)))
    compute_face_quality(fo_dataset, model=sface, maps=True, **MAPS)
    stored = fo_dataset.get_brain_info("faceqan").config
    config = stored.faceqan_config()
    compute_face_quality(fo_dataset, model=stored.model, quality_field="again", config=config, maps=True,
                         progress=False)
    first, again = (fo_dataset.values(f"{key}_noise_map")[0] for key in ("faceqan", "again"))
    assert first != again and np.array_equal(_levels(first), _levels(again))
    assert sface.sha256 == stored.model_sha256
    crop = load_image(path, (112, 112)).unsqueeze(0)
    engine, other = (FaceQAN(sface, dataclasses.replace(config, seed=seed)).score(crop, maps=True).noise_map[0]
                     for seed in (config.seed, config.seed + 1))
    assert np.array_equal(_levels(first), to_levels(engine.numpy(), config))
    assert not np.array_equal(_levels(first), to_levels(other.numpy(), config))


@pytest.fixture(scope="module")
def group_photo(fo_database):
    """insightface's group photo, its 6 faces detected and scored with maps (one sign step: a uniform map, which
    is all the placement test needs)."""
    from fiftyone_faceqan import compute_face_quality, detect_faces

    dataset = fo_database.Dataset("faceqan-maps-group")
    dataset.add_sample(fo_database.Sample(filepath=str(insightface_image("t1.jpg"))))
    assert detect_faces(dataset, progress=False) == 6
    assert compute_face_quality(dataset, detections_field="faces", maps=True, **PLAIN).scored == 6
    yield dataset
    dataset.delete()


def _box_masks(detections, shape):
    height, width = shape
    masks = []
    for det in detections:
        x, y, w, h = det.bounding_box
        mask = np.zeros(shape, bool)
        mask[round(y * height):round((y + h) * height), round(x * width):round((x + w) * width)] = True
        masks.append(mask)
    return masks


def test_per_detection_maps_land_on_their_own_face(group_photo):
    """Measure: the share of a map's mass (sum of its levels laid back on the photo) inside a detection's box.
    The detector's box covers about 2/3 of the ArcFace crop's footprint (the crop adds forehead and chin), so a
    face's own map puts >= 0.5 of its mass in its own box and < 0.01 in any other; the sample's heatmap, all six
    laid on one image, puts >= 0.5 of its mass inside the boxes and some on every face. A map laid back without
    the inverse of the alignment (or on another face) fails this."""
    from faceqan.noise_maps import photo_levels

    sample = group_photo.first()
    detections = sample.faces.detections
    overlay = _levels(sample.faceqan_heatmap.map_path).astype(np.float64)
    assert overlay.shape == (709, 1024)  # 1280x886 scaled to at most 1024 pixels a side
    boxes = _box_masks(detections, overlay.shape)
    for i, det in enumerate(detections):
        own = photo_levels([det.faceqan_noise_map]).astype(np.float64)
        shares = [own[box].sum() / own.sum() for box in boxes]
        assert shares[i] >= 0.5, (i, shares)
        assert max(shares[:i] + shares[i + 1:]) < 0.01, (i, shares)
        assert overlay[boxes[i]].sum() / overlay.sum() > 0.05
        assert isinstance(det.faceqan_noise_concentration, float)
        print(f"face {i}: {shares[i]:.3f} of its map's mass in its box, {max(shares[:i] + shares[i + 1:]):.4f} in "
              "another's")
    assert overlay[np.any(boxes, axis=0)].sum() / overlay.sum() >= 0.5


def test_the_figure_from_the_sdk_and_the_operator(group_photo, tmp_path):
    import fiftyone.operators as foo
    from fiftyone_faceqan import noise_map_figure

    path = tmp_path / "figure.png"
    assert noise_map_figure(group_photo, "faceqan", path, count=3) == 6
    assert Image.open(path).size[0] > Image.open(path).size[1]
    with pytest.raises(ValueError, match="no FaceQAN run 'nothing'"):
        noise_map_figure(group_photo, "nothing", path)
    with pytest.raises(ValueError, match="0 face.s. with noise maps"):
        noise_map_figure(group_photo.limit(0), "faceqan", path)

    result = foo.execute_operator("@faceqan/faceqan/show_noise_maps",
                                  ctx={"dataset": group_photo, "params": {"quality_field": "faceqan", "count": 3}})
    result.raise_exceptions()
    assert result.result["faces"] == 6
    head, data = result.result["figure"].split(",", 1)
    assert head == "data:image/png;base64" and base64.b64decode(data) == path.read_bytes()


def test_shards_keep_maps_and_count_a_face_without_one_as_unfinished(fo_dataset, sface, tmp_path):
    """The sharded path passes maps through: workers write them; queuing again finds every shard finished."""
    import fiftyone as fo
    from fiftyone.operators.delegated import DelegatedOperationService

    from fiftyone_faceqan import compute_face_quality

    fo_dataset.add_samples([fo.Sample(filepath=str(p)) for p in subset_paths(2)])
    fo_dataset.persistent = True  # the delegated operations open it by name
    compute_face_quality(fo_dataset, model=sface, **PLAIN)  # scored, but without maps: every shard has work left
    assert len(compute_face_quality(fo_dataset, shards=2, maps=True, maps_dir=str(tmp_path), **PLAIN).queued) == 2
    ran = DelegatedOperationService().execute_queued_operations(dataset_name=fo_dataset.name)
    assert sorted(r.result["scored"] for r in ran) == [1, 1]
    fo_dataset.reload()
    assert all(Path(png).is_file() for png in fo_dataset.values("faceqan_noise_map"))
    again = compute_face_quality(fo_dataset, shards=2, maps=True, maps_dir=str(tmp_path), **PLAIN)
    assert (again.queued, again.finished) == ({}, ["0/2", "1/2"])


def test_map_fields_of_the_user_are_refused_and_kept(fo_dataset, sface, tmp_path):
    import fiftyone as fo
    from fiftyone_faceqan import compute_face_quality

    face = fo.Detection(label="face", bounding_box=[0.1, 0.1, 0.8, 0.8], q_noise_map="mine")
    faces = fo.Detections(detections=[face])
    fo_dataset.add_sample(fo.Sample(filepath=str(subset_paths(1)[0]), faceqan_heatmap=fo.Classification(label="x"),
                                    faces=faces))
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    before = _snapshot(fo_dataset)
    for kwargs, message in [
        ({}, "the field 'faceqan_heatmap' already exists and no FaceQAN run"),
        ({"quality_field": "q", "detections_field": "faces"}, "the field 'faces.detections.q_noise_map' already"),
        ({"quality_field": "q", "iterations": 1}, "noise maps need at least 2 iterations"),
        ({"quality_field": "q", "maps_dir": str(blocker / "sub")}, "cannot be created"),
        ({"quality_field": "q", "maps_dir": 3}, "maps_dir must be a folder path"),
    ]:
        with pytest.raises(ValueError, match=message):
            compute_face_quality(fo_dataset, maps=True, **{**PLAIN, **kwargs})
    with pytest.raises(ValueError, match="maps must be True or False"):
        compute_face_quality(fo_dataset, maps="yes", **PLAIN)
    assert _snapshot(fo_dataset) == before

    compute_face_quality(fo_dataset, model=sface, **{**PLAIN, "iterations": 1})  # no maps: the field is no concern
    fo_dataset.delete_brain_run("faceqan")
    assert fo_dataset.values("faceqan_heatmap")[0].label == "x"
