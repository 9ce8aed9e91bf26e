"""Operator "Show noise maps": the paper's Fig. 1 and Fig. 4 for the current view, a thin App front end to
``fiftyone_faceqan.noise_map_figure`` (the worst and best faces of a FaceQAN run with maps, beside their maps)."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_faceqan import noise_map_figure
from fiftyone_faceqan.map_figure import runs_with_maps

from .compute_quality import refuse

MAX_COUNT = 8  # faces per row; more would not fit the operator's output


def figure_kwargs(ctx) -> dict:
    """The form as noise_map_figure keyword arguments, checked (ValueError with one line)."""
    runs = runs_with_maps(ctx.dataset)
    field = ctx.params.get("quality_field") or (runs[0] if runs else None)
    if field not in runs:
        raise ValueError("no FaceQAN run with noise maps here: run Compute FaceQAN quality with 'Keep noise maps'"
                         if not runs else f"{field!r} is not a FaceQAN run with noise maps; choose one of {runs}")
    count = ctx.params.get("count", 4)
    if isinstance(count, float) and count.is_integer():  # the App sends whole numbers as floats
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ValueError(f"faces per row must be a whole number from 1 to {MAX_COUNT}, got {count!r}")
    return {"quality_field": field, "count": count}


class ShowNoiseMaps(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="show_noise_maps", label="Show noise maps",
            description="The worst and best faces of a FaceQAN run beside their adversarial-noise maps",
            dynamic=True, allow_immediate_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()  # opts the form into the target view choice (dataset, current view, selection)
        runs = runs_with_maps(ctx.dataset)
        if runs:
            inputs.enum("quality_field", runs, default=runs[0], label="FaceQAN run",
                        description="A run scored with 'Keep noise maps'")
        inputs.int("count", default=4, min=1, max=MAX_COUNT, label="Faces per row",
                   description="The lowest-Q faces in the top row, the highest-Q faces in the bottom row")
        try:
            figure_kwargs(ctx)
        except ValueError as exc:
            refuse(inputs, str(exc))
        return types.Property(inputs, view=types.View(label="Show noise maps"))

    def execute(self, ctx):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "noise_maps.png"
            faces = noise_map_figure(ctx.target_view(), path=path, **figure_kwargs(ctx))
            image = base64.b64encode(path.read_bytes()).decode()
        return {"figure": f"data:image/png;base64,{image}", "faces": faces}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("faces", label="Faces with noise maps in the view")
        outputs.str("figure", label="Lowest Q (top) and highest Q (bottom), each beside its noise map",
                    view=types.ImageView(width="100%"))
        return types.Property(outputs, view=types.View(label="Noise maps"))
