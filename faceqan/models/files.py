"""Finding model files shipped inside pip wheels, and verifying them before anything parses them."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path


class ModelFileError(RuntimeError):
    """A model file is missing, altered or unsafe; the message says what to do."""


def first_line(error: BaseException) -> str:
    """An exception as one short line (library messages can run to many lines of advice)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> str:
    actual = sha256_file(path)
    if actual != expected:
        raise ModelFileError(f"{path} has sha256 {actual}, expected {expected}: the file is corrupt or was "
                             "replaced; reinstall the package that ships it")
    return actual


def package_file(package: str, relative: str, requirement: str) -> Path:
    """A file inside an installed distribution, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root) / relative
            if path.is_file():
                return path
    raise ModelFileError(f"{package}/{relative} not found: install it with `pip install {requirement}` "
                         "(from PyPI; no other download is needed)")
