"""Operators over the SDK: "Compute FaceQAN quality" and "Detect faces". They only read and check the
form, then call fiftyone_faceqan, so the App, the SDK and delegated runs compute the same thing."""

from __future__ import annotations


import fiftyone.operators as foo
import fiftyone.operators.types as types

try:
    import fiftyone_faceqan
    from faceqan.config import PRECISIONS, VARIANTS, FaceQANConfig
    from faceqan.models import list_models
except ImportError as exc:  # the plugin folder is found, but the package is not installed
    raise ImportError("the FaceQAN plugin needs its Python package: run `pip install -e .` in the plugin "
                      f"folder ({exc})") from exc

SETTINGS = ("eps", "iterations", "copies", "power", "variant", "precision", "device", "batch_size", "seed")


def face_settings(params: dict) -> dict:
    """The FaceQAN settings of the form, checked by FaceQANConfig (its errors name the setting)."""
    chosen = {name: params[name] for name in SETTINGS if params.get(name) is not None}
    for name in ("iterations", "copies", "power", "seed", "batch_size"):
        if name in chosen and float(chosen[name]).is_integer():
            chosen[name] = int(chosen[name])  # the App sends numbers as floats
    FaceQANConfig(**chosen)
    return chosen


def _delegate_choice(inputs: types.Object) -> None:
    inputs.bool("delegate", default=False, label="Delegate",
                description="Queue the run for a delegated-operations worker (`fiftyone delegated launch`) "
                            "instead of running it now; recommended on a CPU or for large datasets")


class ComputeFaceQuality(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_face_quality", label="Compute FaceQAN quality",
            description="Face image quality from adversarial noise (FaceQAN), per sample or per detected face",
            dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()  # opts the form into the target view choice (dataset, current view, selection)
        defaults = FaceQANConfig()
        models = types.Dropdown()
        for entry in list_models():
            models.add_choice(entry.name, label=entry.name, description=entry.summary)
        inputs.enum("model", models.values(), default="sface", label="Model", view=models)
        inputs.str("quality_field", default="faceqan", label="Quality field",
                   description="Q is stored here; its parts in <field>_mean, _std, _q_adv, _symmetry, _error")
        inputs.str("detections_field", label="Faces field (optional)",
                   description="A Detections field: score each face and store the quality on the detection")
        inputs.enum("variant", list(VARIANTS), default=defaults.variant, label="Variant",
                    view=types.RadioGroup())
        inputs.int("copies", default=defaults.copies, label="k (noisy copies)")
        inputs.int("iterations", default=defaults.iterations, label="l (attack iterations)")
        inputs.float("eps", default=defaults.eps, label="eps (noise and step size)")
        inputs.int("power", default=defaults.power, label="p (power)")
        inputs.enum("precision", list(PRECISIONS), default=defaults.precision, label="Precision")
        inputs.str("device", default=defaults.device, label="Device", description="auto, cpu, cuda, cuda:1, ...")
        inputs.int("batch_size", label="Batch size (optional)", description="Images per step; empty: per device")
        inputs.int("seed", default=defaults.seed, label="Seed")
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Rescore faces already scored with the same settings")
        _delegate_choice(inputs)
        try:
            face_settings(ctx.params)
            fiftyone_faceqan.fields.validate_field_name(ctx.params.get("quality_field", "faceqan"))
        except (ValueError, TypeError) as exc:
            inputs.view("invalid", types.Error(label="Invalid settings", description=str(exc)))
        return types.Property(inputs, view=types.View(label="Compute FaceQAN quality"))

    def execute(self, ctx):
        params = ctx.params
        settings = face_settings(params)

        def progress(done, total):
            ctx.set_progress(progress=done / max(total, 1), label=f"FaceQAN: {done}/{total} files")

        results = fiftyone_faceqan.compute_face_quality(
            ctx.target_view(), model=params.get("model", "sface"),
            quality_field=params.get("quality_field", "faceqan"),
            detections_field=params.get("detections_field") or None, overwrite=bool(params.get("overwrite")),
            progress=False, on_progress=progress, **settings)
        ctx.trigger("reload_dataset")
        return {"scored": results.scored, "skipped": results.skipped, "failed": results.failed,
                "seconds": results.seconds}

    def resolve_output(self, ctx):
        outputs = types.Object()
        for name in ("scored", "skipped", "failed"):
            outputs.int(name, label=f"Faces {name}")
        outputs.float("seconds", label="Seconds")
        return types.Property(outputs, view=types.View(label="FaceQAN finished"))


class DetectFaces(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="detect_faces", label="Detect faces (YuNet)",
            description="Faces with boxes and 5 landmarks, as a Detections field for per-face FaceQAN",
            dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True)

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()
        inputs.str("field", default="faces", label="Detections field")
        inputs.float("min_confidence", default=0.6, label="Minimum confidence", min=0.0, max=1.0)
        inputs.bool("overwrite", default=False, label="Overwrite", description="Detect again where the field is set")
        _delegate_choice(inputs)
        return types.Property(inputs, view=types.View(label="Detect faces"))

    def execute(self, ctx):
        def progress(done, total):
            ctx.set_progress(progress=done / max(total, 1), label=f"Detecting faces: {done}/{total}")

        found = fiftyone_faceqan.detect_faces(
            ctx.target_view(), field=ctx.params.get("field", "faces"),
            min_confidence=float(ctx.params.get("min_confidence", 0.6)),
            overwrite=bool(ctx.params.get("overwrite")), progress=False, on_progress=progress)
        ctx.trigger("reload_dataset")
        return {"faces": found}
