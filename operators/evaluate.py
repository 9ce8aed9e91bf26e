"""Operator "Evaluate FaceQAN quality": a thin App front end to ``fiftyone_faceqan.evaluation``.

Everything is computed and validated by ``evaluate_quality``; this module only offers the dataset's
fields as choices, turns the form into keyword arguments and reports progress and the outcome.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_faceqan.evaluation import MAX_NON_MATED, embeddings_field_name, evaluate_quality
from fiftyone_faceqan.fields import NUMERIC_FIELDS
from fiftyone_faceqan.groups import categorical_fields, split_by
from fiftyone_faceqan.runs import run_output_fields

from .compute_quality import DEFAULT_MODEL, model_input, refuse

DEFAULTS = {"model": DEFAULT_MODEL, "eval_key": "faceqan_eval", "fmr": 1e-3}


def _fields(dataset, kinds) -> list[str]:
    return sorted(n for n, f in dataset.get_field_schema().items() if not n.startswith("_") and isinstance(f, kinds))


def identity_fields(dataset) -> list[str]:
    """String and Classification fields, but not the filepath or what a FaceQAN run wrote (its errors)."""
    skipped = {"filepath"} | run_output_fields(dataset)
    return sorted(n for n, f in dataset.get_field_schema().items() if n not in skipped and (
        isinstance(f, fo.StringField)
        or isinstance(f, fo.EmbeddedDocumentField) and issubclass(f.document_type, fo.Classification)))


def sdk_kwargs(params: dict) -> dict:
    """Form values -> evaluate_quality keyword arguments (empty optional inputs mean 'not given')."""
    pairs = (params.get("pairs") or "").strip() or None
    sample = params.get("non_mated_sample")
    kwargs = {
        "quality_fields": list(params.get("quality_fields") or []),
        "identity_field": params.get("identity_field") or "ground_truth",
        "pairs": pairs,
        "model": params.get("model") or DEFAULTS["model"],
        "eval_key": params.get("eval_key") or DEFAULTS["eval_key"],
        "fmr": float(params.get("fmr", DEFAULTS["fmr"])),
        "embeddings_field": (params.get("embeddings_field") or "").strip() or None,
        "by": params.get("by") or None,
    }
    if sample not in (None, "", 0):  # empty: the SDK's default (all pairs, or a seeded sample when there are more)
        kwargs["non_mated_sample"] = int(sample)
    return kwargs


class EvaluateQuality(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="evaluate_faceqan_quality",
            label="Evaluate FaceQAN quality",
            description="EDC/ERC curves and pAUC of quality fields against face-recognition comparisons",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx)
        numeric = _fields(ctx.dataset, NUMERIC_FIELDS)
        if not numeric:
            refuse(inputs, "No numeric field to evaluate: compute FaceQAN quality first")
            return types.Property(inputs)
        choices = types.DropdownView(multiple=True)
        for name in numeric:
            choices.add_choice(name, label=name)
        inputs.list("quality_fields", types.String(), required=True, label="Quality fields",
                    description="Numeric fields to compare (e.g. FaceQAN and baselines)", view=choices)
        identities = identity_fields(ctx.dataset)
        inputs.str("pairs", required=False, label="Pairs file (optional)",
                   description="LFW-style protocol file; images are matched by file name. Empty: use identities")
        identity = None
        if not ctx.params.get("pairs"):
            if not identities:
                refuse(inputs, "No Classification or string field holds identities: give a pairs file")
            else:
                default = "ground_truth" if "ground_truth" in identities else identities[0]
                identity = ctx.params.get("identity_field") or default
                inputs.enum("identity_field", identities, required=True, label="Identity field", default=default,
                            view=types.DropdownView())
                inputs.int("non_mated_sample", required=False, min=1, label="Non-mated pairs to sample",
                           description=f"Empty: all, or a seeded sample of {MAX_NON_MATED:,} when there are more")
        splits = [name for name in categorical_fields(ctx.dataset) if name != identity]
        if splits:
            inputs.enum("by", splits, required=False, label="Split by (optional)", view=types.DropdownView(),
                        description="A categorical field (pose, source, ...): each of its groups is also "
                                    "evaluated alone, to see whether quality works as well for every group")
        model_input(inputs, "model", "Comparison model", default=DEFAULTS["model"], required=True,
                    description="Face-recognition model for the comparison scores")
        inputs.float("fmr", default=DEFAULTS["fmr"], min=0, max=1, required=True, label="Target FMR")
        inputs.str("eval_key", default=DEFAULTS["eval_key"], required=True, label="Evaluation key")
        inputs.str("embeddings_field", required=False, label="Embeddings field (optional)",
                   description="Where the comparison embeddings are kept; another evaluation's field is reused "
                               "as is. Empty: <evaluation key>_embedding")
        try:
            chosen = sdk_kwargs(ctx.params)
            embeddings_field_name(chosen["eval_key"], chosen["embeddings_field"])
            if chosen["by"]:
                split_by(ctx.target_view(), chosen["by"])  # one count: at most 50 values
        except (ValueError, TypeError) as exc:
            refuse(inputs, str(exc))
        return types.Property(inputs, view=types.View(label="Evaluate FaceQAN quality"))

    def execute(self, ctx):
        def progress(done, total):
            ctx.set_progress(progress=done / max(total, 1), label=f"embedding {done}/{total} images")

        results = evaluate_quality(ctx.target_view(), on_progress=progress, **sdk_kwargs(ctx.params))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        info = results.info
        return {"eval_key": info["eval_key"], "n_evaluated": info["n_evaluated"],
                "excluded": info["excluded"]["samples"], "n_mated": info["n_mated"],
                "n_non_mated": info["n_non_mated"], "tau": info["tau"],
                "groups": 0 if results.groups is None else len(results.groups)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("eval_key", label="Evaluation key")
        outputs.int("n_evaluated", label="Samples evaluated")
        outputs.int("excluded", label="Samples excluded (no quality, identity or embedding)")
        outputs.int("n_mated", label="Mated comparisons")
        outputs.int("n_non_mated", label="Non-mated comparisons")
        outputs.float("tau", label="Threshold at the target FMR")
        outputs.int("groups", label="Groups evaluated alone (split by a field; 0: no split)")
        return types.Property(outputs, view=types.View(label="FaceQAN evaluation stored"))
