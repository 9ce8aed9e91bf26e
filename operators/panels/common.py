"""What both FaceQAN panels need from the App context: the view as the view bar holds it, and plot data
that survives JSON (numpy arrays and NaN do not)."""

from __future__ import annotations

import math

import numpy as np


def stage_view(ctx):
    """The current view without the sidebar filters: what ``ctx.ops.set_view`` should extend, so filters
    are not written into the view bar (the App applies them on top of any view anyway)."""
    import fiftyone.server.view as fosv

    name = ctx.request_params.get("view_name")
    if name:
        return ctx.dataset.load_saved_view(name)
    return fosv.get_view(ctx.dataset, stages=ctx.request_params.get("view") or [])


def jsonable(value):
    """Plain JSON values: numpy -> Python, NaN and +-inf -> None (plotly draws a gap)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def figure_traces(fig) -> list[dict]:
    """A plotly figure's traces as JSON-ready dicts (the layout goes into the PlotlyView)."""
    return [jsonable(trace.to_plotly_json()) for trace in fig.data]
