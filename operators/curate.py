"""Operator "Curate identities": a thin App front end to ``fiftyone_faceqan.curation``.

The form offers the collection's quality fields (per sample and per face) and identity fields and the rules;
``check_curation`` validates it as it changes; execute runs ``curate_identities`` on the target view and shows
the counts and the per-identity table."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_faceqan.curation import DEFAULT_TAG, check_curation, curate_identities
from fiftyone_faceqan.rejection import QualityField, quality_fields

from .compute_quality import refuse
from .evaluate import identity_fields
from .panels.common import jsonable

CUTS = {"none": "No quality cut", "min_quality": "Minimum quality", "reject_rate": "Reject a share of the faces"}
TABLE_ROWS = 1000  # identities shown in the App (short ones first); the SDK's summary has them all
COUNTS = {"total": "{unit} curated", "scorable": "Scorable", "unscored": "Without a score (never kept)",
          "no_identity": "Without an identity (dropped)", "kept": "Kept", "dropped": "Dropped",
          "identities": "Identities", "short_identities": "Identities left short"}
DIGITS = 4  # qualities as the App's table shows them
COLUMNS = {"identity": "Identity", "count": "Faces", "scorable": "Scorable", "kept": "Kept",
           "min_quality": "Min quality", "median_quality": "Median quality", "kept_min_quality": "Lowest kept",
           "short": "Short"}


def _whole(value):
    """The App sends numbers as floats: whole ones become ints (others are left for the SDK to refuse)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _text(params: dict, key: str) -> str | None:
    """A text input, stripped; None when empty."""
    value = params.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be text, got {value!r}")
    return (value or "").strip() or None


def sdk_kwargs(params: dict) -> dict:
    """Form values -> curate_identities keyword arguments (empty optional inputs mean 'not given')."""
    where = QualityField(_text(params, "quality") or "faceqan")
    cut = params.get("cut") or "none"
    if cut not in CUTS:
        raise ValueError(f"cut must be one of {list(CUTS)}, got {cut!r}")
    kwargs = {"quality_field": where.attribute, "detections_field": where.labels,
              "identity_field": _text(params, "identity_field") or "ground_truth",
              "best_k": _whole(params.get("best_k")), "min_per_identity": _whole(params.get("min_per_identity") or 0),
              "tag": _text(params, "tag"), "saved_view": _text(params, "saved_view")}
    if cut != "none":
        kwargs[cut] = params.get(cut)
        if kwargs[cut] is None:
            raise ValueError(f"give the {'minimum quality' if cut == 'min_quality' else 'share to reject'}")
    return kwargs


def summary_rows(summary) -> list[dict]:
    """The identities the App shows: short ones first, then the fewest kept; qualities rounded, ``short`` as
    "yes" or "" (the App's table leaves booleans blank)."""
    ordered = summary.sort_values(["short", "kept", "identity"], ascending=[False, True, True], kind="stable")
    shown = ordered.head(TABLE_ROWS).round(DIGITS).assign(short=lambda table: table["short"].map({True: "yes",
                                                                                                 False: ""}))
    return jsonable(shown.to_dict("records"))


class CurateIdentities(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="curate_identities", label="Curate identities",
            description="Keep the best faces per identity, drop low quality ones but keep at least m, flag identities "
                        "left short; as tags and a saved view, never a deletion",
            dynamic=True, allow_immediate_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        target = ctx.target_view()  # opts the form into the target view choice (dataset, current view, selection)
        qualities, identities = quality_fields(target), identity_fields(ctx.dataset)
        if not qualities or not identities:
            refuse(inputs, "Needs a quality field (compute FaceQAN quality first) and an identity field "
                           "(a Classification or string field)")
            return types.Property(inputs)
        inputs.enum("quality", qualities, default=qualities[0], required=True, label="Quality field",
                    description="Per sample, or per face (<detections>.detections.<field>)", view=types.DropdownView())
        inputs.enum("identity_field", identities, required=True, label="Identity field",
                    default="ground_truth" if "ground_truth" in identities else identities[0],
                    view=types.DropdownView())
        inputs.int("best_k", min=1, label="Best K per identity (optional)",
                   description="Keep at most the K best faces of each identity. Empty: no limit")
        cuts = types.RadioGroup()
        for name, label in CUTS.items():
            cuts.add_choice(name, label=label)
        inputs.enum("cut", cuts.values(), default="none", label="Quality cut", view=cuts)
        cut = ctx.params.get("cut") or "none"
        if cut == "min_quality":
            inputs.float("min_quality", required=True, label="Minimum quality", description="Keep Q >= this")
        elif cut == "reject_rate":
            inputs.float("reject_rate", required=True, min=0, max=1, label="Share to reject (0-1)",
                         description="The cut that rejects this fraction of the scorable faces")
        inputs.int("min_per_identity", default=0, min=0, label="Keep at least m per identity",
                   description="The cut never leaves an identity with fewer than m kept while it has m scorable "
                               "faces; identities with fewer are flagged short")
        inputs.str("tag", default=DEFAULT_TAG, label="Tag prefix",
                   description="Tags <prefix>_kept, _dropped, _short (replaced when curated again). Empty: no tags")
        inputs.str("saved_view", label="Save kept view as (optional)")
        try:
            check_curation(target, **sdk_kwargs(ctx.params))
        except (ValueError, TypeError) as exc:
            refuse(inputs, str(exc))
        return types.Property(inputs, view=types.View(label="Curate identities"))

    def execute(self, ctx):
        curation = curate_identities(ctx.target_view(), **sdk_kwargs(ctx.params))
        ctx.trigger("reload_dataset")
        optional = {"threshold": curation.threshold, "tags": ", ".join(curation.tags.values()),
                    "saved_view": curation.saved_view}
        return {"unit": curation.unit, **curation.counts, **{k: v for k, v in optional.items() if v not in (None, "")},
                "table": summary_rows(curation.summary)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        results = ctx.results or {}
        for key, label in COUNTS.items():
            outputs.int(key, label=label.format(unit=results.get("unit", "faces").capitalize()))
        for key, kind, label in (("threshold", "float", "Quality cut"), ("tags", "str", "Tags written"),
                                 ("saved_view", "str", "Saved view")):
            if key in results:
                getattr(outputs, kind)(key, label=label)
        table = types.TableView()
        for key, label in COLUMNS.items():
            table.add_column(key, label=label)
        outputs.list("table", types.Object(), label=f"Identities (short first; at most {TABLE_ROWS})", view=table)
        return types.Property(outputs, view=types.View(label="Curation done"))
