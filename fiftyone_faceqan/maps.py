"""Adversarial-noise maps in FiftyOne (``compute_face_quality(..., maps=True)``), kept from the scoring attack itself.

Per face, ``<field>_noise_map`` is the path of the crop's map PNG exactly as ``faceqan score --maps`` writes it
(faceqan.noise_maps: 16-bit, in units of the attack budget) plus where the crop lies in the photo, and
``<field>_noise_concentration`` its summary number. Per sample, ``<field>_heatmap`` is a fo.Heatmap the App
overlays: the maps of the sample's faces laid back on the photo through the inverse of each face's alignment,
with ``range`` [0, 65535], so its colour scale runs from "never moved" to "moved the whole attack budget". A
Heatmap is drawn only as a sample field stretched over the whole image (a label inside a Detection is not), so
the faces of a detections field share one full-image heatmap, each face at its place.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo

from faceqan.config import FaceQANConfig
from faceqan.noise_maps import (PNG_LEVELS, MapWriter, check_maps, map_file_name, photo_levels, read_placement,
                                write_levels_png)
from faceqan.output import check_maps_folder

from .fields import MAPS_INFO, check_map_target, heatmap_field, map_field_names

DEFAULT_ROOT = "faceqan-maps"  # maps_dir=None: this folder in fo.config.default_dataset_dir


def maps_root(maps_dir: str | Path | None = None) -> Path:
    """The folder the user chose for maps, or ``<fo.config.default_dataset_dir>/faceqan-maps``, absolute."""
    return (Path(maps_dir).expanduser() if maps_dir else Path(fo.config.default_dataset_dir) / DEFAULT_ROOT).absolute()


def maps_folder(dataset, quality_field: str, maps_dir: str | Path | None = None) -> Path:
    """Where a run writes its map PNGs: ``<maps root>/<dataset slug>/<quality_field>/``, so runs and datasets
    sharing a folder never share a file."""
    return maps_root(maps_dir) / dataset.slug / quality_field


def check_maps_request(dataset, quality_field: str, detections_field: str | None, config: FaceQANConfig,
                       maps_dir) -> Path:
    """Everything keeping maps needs, checked before any work; returns the folder."""
    if maps_dir is not None and not isinstance(maps_dir, (str, Path)):
        raise ValueError(f"maps_dir must be a folder path or None, got {maps_dir!r}")
    check_maps(config)
    folder = maps_folder(dataset, quality_field, maps_dir)
    check_maps_folder(folder, "maps_dir")
    check_map_target(dataset, quality_field, detections_field)
    return folder


def heatmap(path: str) -> dict:
    """The fo.Heatmap of an overlay PNG, as stored: its levels are shares of the attack budget."""
    return fo.Heatmap(map_path=path, range=[0, PNG_LEVELS]).to_dict()


class MapStore:
    """The map side of storing a chunk of scored faces (used by store.ScoreWriter). Keeping maps (``folder``
    given), it writes each face's map PNG and each touched sample's overlay before the chunk's values are stored,
    and gives the map values to store with each face. Not keeping them, it clears the map of every face scored
    again: that map belongs to an earlier attack. Files that the faces' earlier values named and the new ones do
    not are deleted once the new values are stored."""

    def __init__(self, dataset, quality_field: str, detections_field: str | None, config: FaceQANConfig,
                 folder: Path | None):
        self.dataset, self.detections_field, self.folder = dataset, detections_field, folder
        self.names, self.heat = map_field_names(quality_field), heatmap_field(quality_field)
        self.prefix = f"{detections_field}.detections." if detections_field else ""
        self.write_map = MapWriter(folder, config, face_key="label_id" if detections_field else "face") \
            if folder else None
        self.replaced = set()
        if folder:
            self._declare(quality_field)

    def _declare(self, quality_field):
        """The map fields with their types and this run's mark (fields.check_map_target allows only those)."""
        mark = {MAPS_INFO: quality_field}
        kinds = {"noise_map": fo.StringField, "noise_concentration": fo.FloatField}
        for column, name in self.names.items():
            if not self.dataset.has_sample_field(self.prefix + name):
                self.dataset.add_sample_field(self.prefix + name, kinds[column], info=mark)
        if not self.dataset.has_sample_field(self.heat):
            self.dataset.add_sample_field(self.heat, fo.EmbeddedDocumentField, embedded_doc_type=fo.Heatmap,
                                          info=mark)

    def _stored(self, sample_ids) -> dict[str, tuple[str | None, dict]]:
        """Per sample: its overlay's path and its faces' map paths (by label id; None for a whole image)."""
        view = self.dataset.select(list(sample_ids))
        heats = view.values(self.heat + ".map_path")
        if self.detections_field:
            ids, labels, maps = view.values(["id", self.prefix + "id", self.prefix + self.names["noise_map"]])
            faces = [dict(zip(lab or [], m or [])) for lab, m in zip(labels, maps)]
        else:
            ids, maps = view.values(["id", self.names["noise_map"]])
            faces = [{None: m} for m in maps]
        return {i: (h, f) for i, h, f in zip(ids, heats, faces)}

    def values(self, pending: list[tuple]) -> list[tuple[dict, dict]]:
        """Per pending (target, row) of store.ScoreWriter: the map values to set on the face and on its sample."""
        faces = [(target if self.detections_field else (target, None)) for target, _ in pending]
        before = self._stored({sample for sample, _ in faces})
        maps = {sample: {label: path for label, path in stored.items() if path} for sample, (_, stored) in
                before.items()}  # sample -> label -> map PNG, once this chunk is stored
        written = {}  # id(row) -> the row with its map PNG written (a row may serve several faces)
        for (sample, label), (_, row) in zip(faces, pending):
            if self.write_map and id(row) not in written:
                written[id(row)] = self.write_map(row)
            png = written.get(id(row), {}).get("noise_map")
            maps[sample][label] = png if isinstance(png, str) else None
        paths = {sample: row["path"] for (sample, _), (_, row) in zip(faces, pending)}
        overlays = {sample: self._overlay(sample, paths[sample], maps[sample]) for sample in paths}
        old = {path for heat, stored in before.values() for path in (heat, *stored.values()) if path}
        new = {path for sample in paths for path in (overlays[sample], *maps[sample].values()) if path}
        self.replaced |= old - new
        out = []
        for (sample, label), (_, row) in zip(faces, pending):
            png = maps[sample][label]
            concentration = written[id(row)]["noise_concentration"] if png else None
            face = {self.names["noise_map"]: png, self.names["noise_concentration"]: concentration}
            out.append((face, {self.heat: heatmap(overlays[sample]) if overlays[sample] else None}))
        return out

    def _overlay(self, sample: str, path: str, maps: dict) -> str | None:
        """The sample's overlay PNG (written, unless its one map is already the whole photo's), or None."""
        pngs = [p for p in maps.values() if p and Path(p).is_file()]
        if not self.folder or not pngs:
            return None
        if len(pngs) == 1 and read_placement(pngs[0]).is_identity():
            return pngs[0]
        target = self.folder / f"{Path(map_file_name(path)).stem}-{sample}-heatmap.png"
        write_levels_png(photo_levels(pngs), target)
        return str(target)

    def stored(self) -> None:
        """After the chunk's values are stored: delete the files no stored value names any more."""
        for path in self.replaced:
            Path(path).unlink(missing_ok=True)
        self.replaced = set()


def delete_map_files(dataset, fields: list[str]) -> None:
    """Delete the PNGs that a run's map ``fields`` (fields.written_map_fields) name, then their folders when left
    empty (for delete_brain_run)."""
    names = [path + ".map_path" if isinstance(dataset.get_field(path), fo.EmbeddedDocumentField) else path
             for path in fields]
    files = {f for values in (dataset.values(names, unwind=True) if names else []) for f in values
             if isinstance(f, str)}
    for path in files:
        Path(path).unlink(missing_ok=True)
    for folder in {Path(f).parent for f in files}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
