"""The FiftyOne App in a subprocess and a headless Chromium driving it, for the end-to-end panel test.

The App server inherits this process's FiftyOne environment (the test database and plugins folder that
conftest.py sets). Chromium runs with the flags that keep it offline and quiet (DESIGN.md §6).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from servers import free_port, serving

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1920,1200")


def require_browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver, or skip with what to install."""
    pytest.importorskip("selenium", reason="selenium is not installed: pip install selenium")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium not installed: apt-get install -y chromium chromium-driver")
    return chromium, driver


@contextmanager
def app_server(log_path: Path, timeout: float = 180.0):
    """Start the App server on a free port; yield its base URL; stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    command = [sys.executable, "-m", "fiftyone.server.main", "--port", str(port), "--address", "127.0.0.1"]
    with serving(command, log_path, answers, "the App server", timeout, stop_timeout=30,
                 env={**os.environ, "FIFTYONE_DO_NOT_TRACK": "true"}):
        yield url


@contextmanager
def chromium():
    """A headless Chromium WebDriver with a throwaway profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = require_browser()
    profile = tempfile.mkdtemp(prefix="faceqan-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(predicate, timeout: float = 60.0, every: float = 0.5, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # the page is still rendering: the element may not exist yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
