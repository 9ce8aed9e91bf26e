"""Operators over the SDK: "Compute FaceQAN quality" and "Detect faces". They only read and check the
form, then call fiftyone_faceqan, so the App, the SDK and delegated runs compute the same thing.

"Compute FaceQAN quality" also runs the shards that ``compute_face_quality(..., shards=N)`` (or its own "Split
into N tasks" choice) queues: a queued shard carries the SDK's arguments, not a form."""

from __future__ import annotations

from pathlib import Path

import fiftyone.operators as foo
import fiftyone.operators.types as types

try:
    import fiftyone_faceqan
    from fiftyone_faceqan import DEFAULT_MODEL, FaceQANConfig, list_models, settings
    from fiftyone_faceqan.calibration import Calibration
    from fiftyone_faceqan.fields import check_detector_target, check_quality_target
    from fiftyone_faceqan.maps import DEFAULT_ROOT, check_maps_request
    from fiftyone_faceqan.sharding import check_split, shard_request
except ImportError as exc:  # the plugin folder is found, but its third-party requirements are not installed
    raise ImportError("the FaceQAN plugin needs its requirements: `fiftyone plugins requirements @faceqan/faceqan "
                      f"--install` ({exc})") from exc

INPUTS = {int: "int", float: "float", str: "str"}  # a setting's type -> the types.Object method of its input


def settings_inputs(inputs: types.Object, config_cls: type = FaceQANConfig) -> None:
    """One input per setting the config declares, with its label, help and default."""
    for s in settings(config_cls):
        options = {"label": s.label, "description": s.help}
        if s.default is not None:
            options["default"] = s.default
        if s.choices:
            inputs.enum(s.name, list(s.choices), view=types.RadioGroup(), **options)
        else:
            getattr(inputs, INPUTS[s.kind])(s.name, **options)


def face_settings(params: dict, config_cls: type = FaceQANConfig) -> dict:
    """The settings given in the form, checked by the config (its errors name the setting)."""
    chosen = {}
    for s in settings(config_cls):
        value = params.get(s.name)
        if value is not None:  # the App sends numbers as floats
            chosen[s.name] = int(value) if s.kind is int and float(value).is_integer() else value
    config_cls(**chosen)
    return chosen


def runnable_models(weights: str | None = None) -> list[str]:
    """What a form can offer: with a weights file any model, else those whose default weights are here
    (the iresnets have none, model packs only once downloaded)."""
    return [entry.name for entry in list_models() if weights or entry.available()]


def model_input(inputs: types.Object, name: str, label: str, weights: str | None = None, default: str = DEFAULT_MODEL,
                **kwargs) -> None:
    """A dropdown of the runnable models."""
    choices = types.DropdownView()
    summaries = {entry.name: entry.summary for entry in list_models()}
    for model in runnable_models(weights):
        choices.add_choice(model, label=model, description=summaries[model])
    inputs.enum(name, choices.values(), default=default, label=label, view=choices, **kwargs)


def refuse(inputs: types.Object, problem: str) -> None:
    """Show why the form cannot run and keep Execute disabled (FiftyOne validates ``invalid`` properties)."""
    inputs.view("invalid", types.Error(label="Cannot run", description=problem), invalid=True,
                error_message=problem)


def _weights(params: dict) -> str | None:
    return (params.get("weights") or "").strip() or None


def quality_kwargs(ctx) -> dict:
    """The form as compute_face_quality keyword arguments, checked as the SDK checks them before it runs
    (raises ValueError or TypeError with one line; the model's file itself is checked when it loads)."""
    params = ctx.params
    weights = _weights(params)
    model = params.get("model") or DEFAULT_MODEL
    if weights is not None and not Path(weights).is_file():
        raise ValueError(f"weights file {weights} does not exist")
    if model not in runnable_models(weights):
        raise ValueError(f"model {model!r} has no weights file here: give its weights file")
    chosen = face_settings(params)
    kwargs = {"model": model, "weights": weights, "quality_field": params.get("quality_field") or "faceqan",
              "detections_field": (params.get("detections_field") or "").strip() or None,
              "overwrite": bool(params.get("overwrite")), **chosen}
    calibration = (params.get("calibration") or "").strip() or None
    if calibration is not None:  # refused now unless it is a calibration; whether it applies: once the model loads
        Calibration.load(calibration)
        kwargs["calibration"] = calibration
    shards = _shards(params)
    if shards != 1:  # "Split into N tasks"
        check_split(shards, kwargs["overwrite"])
        kwargs["shards"] = shards
    dataset = ctx.target_view()._root_dataset
    check_quality_target(dataset, kwargs["quality_field"], kwargs["detections_field"])
    if params.get("maps"):
        maps_dir = (params.get("maps_dir") or "").strip() or None
        if maps_dir is not None and not Path(maps_dir).is_absolute():
            raise ValueError(f"maps folder must be an absolute path, got {maps_dir!r}")
        check_maps_request(dataset, kwargs["quality_field"], kwargs["detections_field"], FaceQANConfig(**chosen),
                           maps_dir)
        kwargs.update(maps=True, maps_dir=maps_dir)
    return kwargs


def _shards(params: dict):
    """The "Split into N tasks" choice (the App sends whole numbers as floats)."""
    value = params.get("shards", 1)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _progress_outputs(results: dict, dataset, quality_field: str) -> dict:
    """The run's state over its whole target (all shards), read from the stored scores."""
    progress = fiftyone_faceqan.run_progress(dataset, quality_field)
    return {**results, "run_scored": progress.scored, "run_failed": progress.failed, "run_total": progress.total,
            "run_complete": progress.complete}


OUTPUTS = {"shard": ("str", "Shard"), "queued": ("int", "Shards queued"), "finished": ("int", "Shards already done"),
           "in_progress": ("int", "Shards already queued or running"), "scored": ("int", "Faces scored"),
           "skipped": ("int", "Faces skipped"), "failed": ("int", "Faces failed"), "seconds": ("float", "Seconds"),
           "run_scored": ("int", "Run: faces scored (all shards)"), "run_failed": ("int", "Run: faces failed"),
           "run_total": ("int", "Run: faces in total"), "run_complete": ("bool", "Run complete")}


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
            dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True,
            allow_distributed_execution=True)  # FiftyOne Enterprise splits the view itself; open source ignores it

    def resolve_delegation(self, ctx):
        split = _shards(ctx.params) != 1  # queuing the shards takes a moment: done now, they are the delegated work
        return not split and bool(ctx.params.get("delegate", False))

    def resolve_input(self, ctx):
        inputs = types.Object()
        if "shard" in ctx.params:  # a queued shard: the SDK's arguments, checked again as it starts
            try:
                shard_request(ctx.params)
            except (KeyError, TypeError, ValueError) as exc:
                refuse(inputs, f"not a FaceQAN shard: {exc}")
            return types.Property(inputs)
        ctx.target_view()  # opts the form into the target view choice (dataset, current view, selection)
        model_input(inputs, "model", "Model", _weights(ctx.params))
        inputs.str("weights", label="Weights file (optional)",
                   description="The model's weights instead of its default file; needed for iresnet18..200")
        inputs.str("quality_field", default="faceqan", label="Quality field",
                   description="Q is stored here; its parts in <field>_mean, _std, _q_adv, _symmetry, _error")
        inputs.str("detections_field", label="Faces field (optional)",
                   description="A Detections field: score each face and store the quality on the detection")
        settings_inputs(inputs)
        inputs.str("calibration", label="Unified score calibration (optional)",
                   description="A calibration JSON (`faceqan calibrate`, or Calibration.save) fitted on "
                               "scores of this model's weights and these settings; by default the run keeps its "
                               "own, else the model's shipped one when it applies. Writes <field>_score, 0-100")
        inputs.bool("maps", default=False, label="Keep noise maps",
                    description="Also keep each face's adversarial-noise map from the same attack (no extra time, "
                                "~18 kB per face): a heatmap per sample for the App and 'Show noise maps'")
        if ctx.params.get("maps"):
            inputs.str("maps_dir", label="Maps folder (optional)",
                       description=f"An absolute path; default: {DEFAULT_ROOT}/ in FiftyOne's default dataset "
                                   "folder. The PNGs go to <folder>/<dataset>/<quality field>/")
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Rescore faces already scored with the same settings")
        _delegate_choice(inputs)
        inputs.int("shards", default=1, min=1, label="Split into N tasks",
                   description="Queue N delegated operations over disjoint parts of the target, for N workers "
                               "(`fiftyone delegated launch` or `faceqan workers`, one per GPU, any machine on "
                               "this database); queuing again queues only unfinished parts")
        try:
            quality_kwargs(ctx)
        except (ValueError, TypeError) as exc:
            refuse(inputs, str(exc))
        return types.Property(inputs, view=types.View(label="Compute FaceQAN quality"))

    def execute(self, ctx):
        if "shard" in ctx.params:
            kwargs, view = shard_request(ctx.params), ctx.view
            task = f"FaceQAN shard {kwargs['shard'].name}"
        else:
            kwargs, view, task = quality_kwargs(ctx), ctx.target_view(), "FaceQAN"

        def progress(done, total):  # also the heartbeat by which a stalled shard is recognised
            ctx.set_progress(progress=done / max(total, 1), label=f"{task}: {done}/{total} files")

        results = fiftyone_faceqan.compute_face_quality(view, progress=False, on_progress=progress, **kwargs)
        if "shards" in kwargs:
            counts = {"queued": len(results.queued), "finished": len(results.finished),
                      "in_progress": len(results.in_progress)}
        else:
            counts = {"scored": results.scored, "skipped": results.skipped, "failed": results.failed,
                      "seconds": results.seconds}
            if "shard" in kwargs:
                counts["shard"] = kwargs["shard"].name
            ctx.trigger("reload_dataset")
        return _progress_outputs(counts, view._root_dataset, kwargs["quality_field"])

    def resolve_output(self, ctx):
        outputs = types.Object()
        for name, (kind, label) in OUTPUTS.items():
            if name in (ctx.results or OUTPUTS):
                getattr(outputs, kind)(name, label=label)
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
        try:
            check_detector_target(ctx.target_view()._root_dataset, ctx.params.get("field") or "faces")
        except ValueError as exc:
            refuse(inputs, str(exc))
        return types.Property(inputs, view=types.View(label="Detect faces"))

    def execute(self, ctx):
        def progress(done, total):
            ctx.set_progress(progress=done / max(total, 1), label=f"Detecting faces: {done}/{total}")

        found = fiftyone_faceqan.detect_faces(
            ctx.target_view(), field=ctx.params.get("field") or "faces",
            min_confidence=float(ctx.params.get("min_confidence", 0.6)),
            overwrite=bool(ctx.params.get("overwrite")), progress=False, on_progress=progress)
        ctx.trigger("reload_dataset")
        return {"faces": found}
