"""Install: the ranges users may install (requirements.txt for the engine, pyproject.toml's extras), the versions
CI tests (constraints.txt), the plugin's metadata (fiftyone.yml) and the FiftyOne way of installing it
(`fiftyone plugins download` + `fiftyone plugins requirements --install`) agree."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PLUGIN_FILES = ("fiftyone.yml", "__init__.py", "requirements.txt", "operators", "faceqan", "fiftyone_faceqan")


def requirements(lines: list[str]) -> list[Requirement]:
    return [Requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def declared() -> list[Requirement]:
    """Every requirement of the engine and of each extra."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return requirements((REPO / "requirements.txt").read_text().splitlines() + sum(extras.values(), []))


def test_fiftyone_installs_the_engine_requirements_that_pip_installs():
    import fiftyone.core.utils as fou

    engine = [r for r in requirements(importlib.metadata.requires("faceqan")) if r.marker is None]
    assert {str(r) for r in requirements(fou.load_requirements(REPO / "requirements.txt"))} == set(map(str, engine))
    assert "fiftyone" not in {r.name for r in engine}


def test_constraints_pin_each_requirement_to_a_version_in_its_range():
    pins = {canonicalize_name(r.name): str(r.specifier) for r in
            requirements((REPO / "constraints.txt").read_text().splitlines())}
    assert all(re.fullmatch(r"==[\w.]+", pin) for pin in pins.values())
    ranges = declared()
    assert {canonicalize_name(r.name) for r in ranges} == pins.keys()
    assert [str(r) for r in ranges if pins[canonicalize_name(r.name)][2:] not in r.specifier] == []


def test_fiftyone_yml_states_the_range_of_the_fiftyone_extra():
    plugin = yaml.safe_load((REPO / "fiftyone.yml").read_text())
    extra = [r for r in declared() if r.name == "fiftyone"]
    assert len(extra) == 1 and Requirement("fiftyone" + plugin["fiftyone"]["version"]).specifier == extra[0].specifier


def test_ci_installs_as_the_readme_says_through_the_constraints():
    install = 'python -m pip install -e ".[fiftyone,test]" -c constraints.txt'
    readme = (REPO / "README.md").read_text().splitlines()
    assert f"    {install}" in readme and "    python -m pytest -q" in readme
    assert (REPO / ".ci" / "run").read_text().splitlines()[-2:] == [install, "python -m pytest -q"]


def test_a_downloaded_plugin_folder_runs_from_the_packages_it_carries(tmp_path):
    """The folder as `fiftyone plugins download` copies it, with the pip-installed packages hidden: FiftyOne
    loads the operators, which import faceqan and fiftyone_faceqan from the folder."""
    plugin = tmp_path / "plugins" / "@faceqan" / "faceqan"
    plugin.mkdir(parents=True)
    for name in PLUGIN_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, plugin / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, plugin / name)
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if not f.__module__.startswith('__editable__')]; "
            "import fiftyone.operators as foo; foo.get_operator('@faceqan/faceqan/compute_face_quality'); "
            "import faceqan, fiftyone_faceqan; print(faceqan.__file__, fiftyone_faceqan.__file__)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "FIFTYONE_PLUGINS_DIR": str(tmp_path / "plugins")})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == [str(plugin / "faceqan" / "__init__.py"),
                                  str(plugin / "fiftyone_faceqan" / "__init__.py")]
