"""End to end in a real browser: the FiftyOne App (a server subprocess on the test database) with this
plugin, driven by headless Chromium. Opens both panels on 150 real LFW crops (quality: their FaceQAN scores
from the benchmark cache, made by this engine, and image sharpness; evaluation: SFace comparisons), moves the
rejection slider, filters the grid and checks its sample count, and saves screenshots (to a temporary folder,
or to $FACEQAN_SCREENSHOTS, e.g. docs/screenshots). Skips when chromium or selenium is missing. Heavy (the
App and Chromium on a shared CPU): one test, run it alone when iterating."""

from __future__ import annotations

import csv
import os
import re
import time
from pathlib import Path

import pytest

from browser_app import app_server, chromium, require_browser, wait_for
from lfw_data import require_lfw

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


def test_panels_in_the_app(scored, tmp_path):
    require_browser()
    shots = Path(os.environ.get("FACEQAN_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
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
