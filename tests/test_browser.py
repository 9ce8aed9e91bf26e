"""End to end in a real browser: the FiftyOne App (a server subprocess on the test database) with this
plugin, driven by headless Chromium. Opens both panels on 150 real LFW crops (quality: their FaceQAN scores
from the benchmark cache, made by this engine, and image sharpness; evaluation: SFace comparisons), moves the
rejection slider, filters the grid and checks its sample count; and overlays the noise maps of a group photo's
faces on it. Saves screenshots (to a temporary folder, or to $FACEQAN_SCREENSHOTS, e.g. docs/screenshots).
Skips when chromium or selenium is missing. Heavy (the App and Chromium on a shared CPU): run them alone when
iterating."""

from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from browser_app import app_server, chromium, require_browser, wait_for
from lfw_data import require_lfw
from test_align import insightface_image

COUNT = 150
REJECTS = re.compile(rf"rejects (\d+) of {COUNT}")
CACHED_SCORES = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "lfw_erc_faceqan_sface.csv"


@pytest.fixture
def scored(fo_database):
    import fiftyone as fo
    from faceqan.baselines import sharpness
    from fiftyone_faceqan.evaluation import evaluate_quality

    root = require_lfw()
    with open(CACHED_SCORES) as f:
        rows = [row for row in csv.DictReader(f) if not row["error"]][:COUNT]
    paths = [root / row["path"] for row in rows]
    dataset = fo.Dataset("faceqan-browser")
    dataset.persistent = True  # the App server is another process
    dataset.add_samples([fo.Sample(filepath=str(p), ground_truth=fo.Classification(label=p.parent.name),
                                   faceqan=float(row["quality"]), sharpness=float(s))
                         for p, row, s in zip(paths, rows, sharpness([str(p) for p in paths]))])
    evaluate_quality(dataset, ["faceqan", "sharpness"], model="sface", eval_key="faceqan_eval")
    yield dataset
    dataset.delete()


def _click_text(driver, text, tag="*"):
    from selenium.webdriver.common.by import By

    exact = f"//{tag}[normalize-space(text())='{text}']"
    element = driver.find_elements(By.XPATH, exact if tag == "*" else f"//{tag}[contains(., '{text}')]")[-1]
    driver.execute_script("arguments[0].click();", element)
    return element


def _grid_count(driver) -> int:
    from selenium.webdriver.common.by import By

    text = driver.find_element(By.CSS_SELECTOR, "[data-cy=entry-counts]").text
    return int(re.search(r"(\d+)\s+samples", text.replace(",", "")).group(1))


def _open_panel(driver, label):
    from selenium.webdriver.common.by import By

    driver.find_elements(By.CSS_SELECTOR, "[data-cy=new-panel-btn]")[-1].click()  # the right-most space
    wait_for(lambda: _click_text(driver, label), 30, what=f"the {label!r} entry in the new-panel menu")


def _focus_panel(driver, name, label):
    """Select the panel's tab when the App restored it, else open it again."""
    from selenium.webdriver.common.by import By

    tabs = driver.find_elements(By.CSS_SELECTOR, f"[data-cy=panel-tab-{name}]")
    if tabs:
        tabs[0].click()
    else:
        _open_panel(driver, label)


def _show_samples(driver):
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "[data-cy=panel-tab-samples]").click()


def _slide(driver, fraction):
    """Click the rejection slider's rail at ``fraction`` of its width (a click commits the value)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    rail = driver.find_elements(By.CSS_SELECTOR, ".MuiSlider-root")[-1]  # the grid's zoom sliders come first
    width = rail.size["width"]
    ActionChains(driver).move_to_element_with_offset(rail, int((fraction - 0.5) * width), 0).click().perform()


def _panel_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _grid_drawn(driver) -> bool:
    """Every thumbnail the grid shows has its image drawn."""
    from selenium.webdriver.common.by import By

    lookers = driver.find_elements(By.CSS_SELECTOR, "[data-cy=looker]")
    drawn = driver.find_elements(By.CSS_SELECTOR, "[data-cy=looker] canvas[canvas-loaded=true]")
    return bool(lookers) and len(drawn) == len(lookers)


def _plot_traces(driver, panel) -> set[str]:
    """Names in the legend of the plot in ``panel``."""
    from selenium.webdriver.common.by import By

    legend = f"[data-cy=panel-content-{panel}] .js-plotly-plot .legendtext"
    return {element.text for element in driver.find_elements(By.CSS_SELECTOR, legend)}


def _screenshot(driver, path):
    """Wait for the grid's thumbnails, move the pointer off the panels (no hover tooltips), save."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    wait_for(lambda: _grid_drawn(driver), 60, what="the grid's thumbnails")
    ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, "[data-cy=entry-counts]")).perform()
    time.sleep(0.5)
    driver.save_screenshot(str(path))


def _rejected(driver) -> int:
    return int(REJECTS.search(_panel_text(driver)).group(1))


def _steady(driver, rejected, mode, seconds=5.0):
    """The panel and the grid agree (``rejected`` of COUNT, the grid in ``mode``), and stay so for
    ``seconds``: the App must not fire the slider again by itself or set the view back."""
    grid = COUNT - rejected if mode == "kept" else COUNT

    def agree():
        text = _panel_text(driver)
        return f"rejects {rejected} of {COUNT}" in text and f"Grid: {mode}" in text and _grid_count(driver) == grid

    wait_for(agree, 60, what=f"the panel (rejects {rejected}, grid: {mode}) and the grid ({grid} samples)")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert agree(), f"the panel or the grid moved by itself: {REJECTS.search(_panel_text(driver))}, " \
                        f"grid {_grid_count(driver)} samples"
        time.sleep(0.5)


def _shots(tmp_path) -> Path:
    shots = Path(os.environ.get("FACEQAN_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_panels_in_the_app(scored, tmp_path):
    require_browser()
    shots = _shots(tmp_path)
    with app_server(tmp_path / "app.log") as url, chromium() as driver:
        try:
            _drive(driver, url, scored.name, shots)
        except BaseException:
            driver.save_screenshot(str(tmp_path / "failure.png"))  # what the page showed when it failed
            raise


def _drive(driver, url, name, shots):
    driver.get(f"{url}/datasets/{name}")
    assert wait_for(lambda: _grid_count(driver), 120, what="the sample grid") == COUNT
    try:
        _click_text(driver, "Dismiss")  # the App's product banner, when it shows
    except Exception:
        pass

    _open_panel(driver, "FaceQAN ERC")
    curves = {"faceqan", "sharpness", "random rejection", "theoretical best"}
    wait_for(lambda: curves <= _plot_traces(driver, "faceqan_erc") and "pAUC@0.2" in _panel_text(driver), 90,
             what="the ERC panel's curves and pAUC table")
    fnmr0 = float(re.search(r"FNMR0 (\d\.\d+) at threshold", _panel_text(driver)).group(1))
    assert fnmr0 > 0, "no false non-match at this FMR: the EDC curves would all be flat at 0"
    _screenshot(driver, shots / "erc_panel.png")

    _open_panel(driver, "FaceQAN rejection")
    wait_for(lambda: REJECTS.search(_panel_text(driver)), 90, what="the rejection panel's summary")
    initial = _rejected(driver)
    _slide(driver, 0.25)
    rejected = wait_for(lambda: (lambda n: n not in (0, initial) and n)(_rejected(driver)), 60,
                        what="the slider to change the rejected count")
    _steady(driver, rejected, "all")
    _click_text(driver, "Show kept", tag="button")
    _steady(driver, rejected, "kept")  # the panel keeps the slider's count; the grid shows the kept samples
    kept = COUNT - rejected
    _screenshot(driver, shots / "rejection_panel.png")

    driver.refresh()  # a browser reload keeps the view; the panel derives its state from it
    assert wait_for(lambda: _grid_count(driver), 120, what="the grid after a reload") == kept
    _focus_panel(driver, "faceqan_rejection", "FaceQAN rejection")
    wait_for(lambda: "Grid: kept" in _panel_text(driver) and f"rejects {rejected} of {COUNT}" in _panel_text(driver),
             90, what="the panel to read its state from the view")
    _slide(driver, 0.6)
    higher = wait_for(lambda: (lambda n: n > rejected and n)(_rejected(driver)), 60, what="a higher rejection rate")
    _show_samples(driver)
    _steady(driver, higher, "kept")  # the grid follows the slider: fewer samples than ``kept``
    assert _grid_count(driver) == COUNT - higher < kept


@pytest.fixture
def group_photo(fo_database):
    """insightface's group photo, its 6 faces detected and scored with noise maps (k=2, l=3: two sign steps, so
    the maps show texture)."""
    from fiftyone_faceqan import compute_face_quality, detect_faces

    dataset = fo_database.Dataset("faceqan-browser-maps")
    dataset.persistent = True  # the App server is another process
    dataset.add_sample(fo_database.Sample(filepath=str(insightface_image("t1.jpg"))))
    assert detect_faces(dataset, progress=False) == 6
    compute_face_quality(dataset, detections_field="faces", maps=True, copies=2, iterations=3, num_workers=0,
                         progress=False)
    yield dataset
    dataset.delete()


def _modal_image(driver, size) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A screenshot as an RGB array, and where the modal draws the image of ``size`` (width, height): the
    canvas's left, top and scale (the App fits the image into its canvas, centred)."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.CSS_SELECTOR, "[data-cy=modal] [data-cy=looker] canvas").rect
    scale = min(canvas["width"] / size[0], canvas["height"] / size[1])
    left = canvas["x"] + (canvas["width"] - scale * size[0]) / 2
    top = canvas["y"] + (canvas["height"] - scale * size[1]) / 2
    shot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"), dtype=np.int16)
    return shot, (left, top, scale)


def test_noise_map_overlay_in_the_app(group_photo, tmp_path):
    """Open the photo in the App, show its heatmap field and check where the App drew it. Measure: the pixels
    of the image that change when the heatmap is shown (a colour difference > 40). The detector's boxes cover
    about 2/3 of each aligned crop's footprint, so >= 40 % of the changed pixels lie inside the boxes and every
    box has >= 50 % of its pixels changed; a heatmap drawn elsewhere, stretched wrongly or not at all fails."""
    from selenium.webdriver.common.by import By

    require_browser()
    shots = _shots(tmp_path)
    sample = group_photo.first()
    size = (1280, 886)  # t1.jpg
    with app_server(tmp_path / "app.log") as url, chromium() as driver:
        try:
            driver.get(f"{url}/datasets/{group_photo.name}?id={sample.id}")  # the sample's modal
            toggle = wait_for(lambda: driver.find_elements(
                By.CSS_SELECTOR, "[data-cy=modal] [data-cy=checkbox-faceqan_heatmap]"), 120, what="the modal")
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "[data-cy=modal] canvas[canvas-loaded=true]"), 60,
                     what="the photo drawn")
            time.sleep(1)
            before, (left, top, scale) = _modal_image(driver, size)
            toggle[0].click()

            image = (slice(round(top), round(top + scale * size[1])), slice(round(left), round(left + scale * size[0])))

            def changed():
                diff = np.abs(_modal_image(driver, size)[0][image] - before[image]).sum(axis=2) > 40
                return [diff] if diff.mean() > 0.02 else None

            diff, = wait_for(changed, 60, what="the heatmap drawn")
            time.sleep(1)  # let the overlay settle before the screenshot
            driver.save_screenshot(str(shots / "noise_map_overlay.png"))
        except BaseException:
            driver.save_screenshot(str(tmp_path / "failure.png"))
            raise
    height, width = diff.shape
    inside = np.zeros_like(diff)
    for det in sample.faces.detections:
        x, y, w, h = det.bounding_box
        box = (slice(round(y * height), round((y + h) * height)), slice(round(x * width), round((x + w) * width)))
        assert diff[box].mean() >= 0.5, (det.bounding_box, diff[box].mean())
        inside[box] = True
    print(f"changed: {diff.mean():.3f} of the image, {diff[inside].sum() / diff.sum():.3f} of it inside the boxes")
    assert diff[inside].sum() / diff.sum() >= 0.4
