"""FiftyOne plugin entry point: FiftyOne loads this file as a module of its own and calls register()."""

from .operators import OPERATORS
from .operators.panels import PANELS


def register(plugin):
    for operator in (*OPERATORS, *PANELS):
        plugin.register(operator)
