"""Bad and unusual image files: converted correctly or recorded as an error row, never fatal
(tests/test_bad_input_corpus.py holds the whole table of bad inputs and settings)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceqan import FaceQANConfig, ImageLoadError, load_model, score_files
from faceqan.cli import main
from faceqan.io import MAX_PIXELS, find_images, read_image
from lfw_data import subset_paths

FAST = FaceQANConfig(copies=2, iterations=1)


@pytest.fixture(scope="module")
def face_rgb():
    return np.asarray(Image.open(subset_paths(1)[0]).convert("RGB"))


def test_grayscale_rgba_and_16_bit_are_converted(tmp_path, face_rgb):
    grey = Image.fromarray(face_rgb).convert("L")
    grey.save(tmp_path / "grey.png")
    assert np.allclose(read_image(tmp_path / "grey.png"), np.asarray(grey)[..., None] / 255.0)

    rgba = np.dstack([face_rgb, np.full(face_rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.allclose(read_image(tmp_path / "rgba.png"), face_rgb / 255.0)
    rgba[..., 3] = 0  # fully transparent: the official code's convert("RGB") keeps the colours
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert np.allclose(read_image(tmp_path / "clear.png"), face_rgb / 255.0)

    sixteen = (np.asarray(grey, dtype=np.uint16) * 257)
    Image.fromarray(sixteen).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode.startswith("I")
    assert np.allclose(read_image(tmp_path / "deep.png")[..., 0], np.asarray(grey) / 255.0, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path, face_rgb):
    img = Image.fromarray(face_rgb).rotate(90, expand=True)  # stored rotated, EXIF says rotate back
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    upright = read_image(tmp_path / "rotated.jpg")
    assert upright.shape == face_rgb.shape
    assert np.abs(upright - face_rgb / 255.0).mean() < 0.02


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"plain text, not an image", "not an image"),
])
def test_unreadable_files_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message):
        read_image(path)


def test_truncated_missing_and_huge_files_raise_clear_errors(tmp_path):
    data = subset_paths(1)[0].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageLoadError, match="file not found"):
        read_image(tmp_path / "nowhere.jpg")
    side = int(MAX_PIXELS ** 0.5) + 10
    Image.new("1", (side, side)).save(tmp_path / "huge.png")  # 1-bit: small on disk, huge when decoded
    with pytest.raises(ImageLoadError, match="too large"):
        read_image(tmp_path / "huge.png")


def _folder_with_bad_files(tmp_path):
    good = subset_paths(3)
    folder = tmp_path / "imgs"
    (folder / "nested").mkdir(parents=True)
    for i, path in enumerate(good):
        (folder / ("nested" if i else "") / path.name).write_bytes(path.read_bytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "note.png").write_text("not an image")
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    return folder


def test_a_run_continues_past_bad_files(tmp_path):
    folder = _folder_with_bad_files(tmp_path)
    paths = find_images([folder])
    assert len(paths) == 5 and not any(p.suffix == ".txt" for p in paths)
    frame = score_files(paths + [tmp_path / "missing.jpg"], load_model("sface"), FAST, progress=False)
    assert len(frame) == 6
    failed = frame[frame["error"].notna()]
    assert set(failed["path"].map(lambda p: p.rsplit("/", 1)[1])) == {"empty.jpg", "note.png", "missing.jpg"}
    assert failed["quality"].isna().all()
    scored = frame[frame["error"].isna()]
    assert len(scored) == 3 and scored["quality"].between(-1, 1).all() and (scored["symmetry"] > 0.5).all()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_score_writes_one_row_per_file(tmp_path, suffix, capsys):
    folder = _folder_with_bad_files(tmp_path)
    out = tmp_path / f"scores{suffix}"
    assert main(["score", str(folder), "--out", str(out), "-k", "2", "-l", "1", "--quiet"]) == 0
    frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(frame.columns) == ["path", "model", "face", "alignment", "quality", "mean_similarity",
                                   "std_similarity", "q_adv", "symmetry", "error"]
    assert set(frame["alignment"].dropna()) == {"passthrough"}  # 112x112 crops are scored as they are
    assert len(frame) == 5 and frame["error"].notna().sum() == 2 and (frame["model"] == "sface").all()
    assert capsys.readouterr().err.endswith(f"3 scored, 2 failed; 5 rows in {out}\n")
