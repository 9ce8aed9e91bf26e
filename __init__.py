"""FiftyOne plugin entry point: FiftyOne loads this file as a module of its own and calls register()."""

import importlib.util
import sys
from pathlib import Path

# Downloaded by `fiftyone plugins download` rather than pip-installed: the folder carries the packages faceqan
# and fiftyone_faceqan, which become importable from here (appended, so an installed copy always wins).
if importlib.util.find_spec("fiftyone_faceqan") is None:
    sys.path.append(str(Path(__file__).parent))

from .operators import OPERATORS  # noqa: E402 - needs the path above
from .operators.panels import PANELS  # noqa: E402


def register(plugin):
    for operator in (*OPERATORS, *PANELS):
        plugin.register(operator)
