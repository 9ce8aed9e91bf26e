"""Panel "FaceQAN rejection": pick a quality field, move a rejection-rate slider, see the threshold, how many
samples (or faces) it rejects and, when an evaluation of that field exists, the FNMR left; then show only the
kept or rejected samples in the grid, tag the rejected ones, or save the kept view.

Which source wins. The panel's one source of truth is ``Model``, kept on the server in the execution store
(per panel) and read and written only by ``Model.load`` and ``Model.save``: every event starts from it and
``render`` shows it. The App's copy of the panel state holds nothing but the inputs' values (field, rate),
which ``_commit`` writes from the model; the App's view follows the model through ``_sync_view``, the one
place that calls ``set_view``. The view is read back in exactly two cases: when the panel opens (a browser
reload keeps the view but not the panel: a rejection stage that ``parse_rejection`` recognises restores the
field, threshold and mode) and when the user changes the view (then the view wins, as on opening).

Why a server-side model: the App lags behind the panel. An event carries the panel state and the view the
App had when it fired, often from before the state patch or ``set_view`` of the previous event arrived; the
App fires view events for unrelated context changes too, and fires the slider's ``on_change`` again when the
panel writes a new rate (sometimes twice for one click). Acting on those made the panel write old thresholds
back and the grid flip between two views for good. So a slider value equal to the model's rate changes
nothing, and a view event showing a view from before the panel's pending ``set_view``, or that view itself
(the echo), costs nothing.

Units: a rate is a fraction in [0, 1] everywhere; the slider shows it as percent (its ``value_format``). When
the field is a FaceQAN run's quality and the run has a calibration, the threshold is shown on both scales: Q
and the unified score 0-100 (faceqan.calibration), in the summary and on the histogram's threshold line.

Speed: a ``Distribution`` (thresholds, counts and FNMR at every slider step, the histogram) is computed once
per field, user's view and state of the data (``_table``), from the field's index when the run made one;
a slider move then only looks up its step and queries nothing but the data's last-change time.
"""

from __future__ import annotations

import dataclasses
import json

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_faceqan.calibration import Calibration
from fiftyone_faceqan.evaluation import list_evaluations, load_evaluation
from fiftyone_faceqan.fields import label_path, score_field
from fiftyone_faceqan.groups import rejection_by_group
from fiftyone_faceqan.rejection import (REJECTED_TAG, Distribution, QualityField, default_view_name, distribution,
                                        field_calibration, fnmr_at_thresholds, parse_rejection, quality_fields,
                                        rejection_view, save_kept_view, sorted_scores, tag_rejected)

from .common import jsonable, stage_view

STEPS = 100  # the slider moves the rate in steps of 1 / STEPS
DEFAULT_STEP = 10  # a new panel rejects 10 %
BINS = 40
STORE = "faceqan_rejection_model"  # not the 9-key dicts of earlier versions


@dataclasses.dataclass
class Model:
    """What the panel shows. ``threshold`` rejects ``rejected`` of ``table.scored`` (the rejection ``rate``,
    on the slider's grid); ``mode`` is what the grid shows ("all", "kept" or "rejected"). ``table`` is the
    distribution of ``field`` on the user's view, ``source`` what it was computed from; ``calibration`` the
    unified score's calibration of the field's FaceQAN run (its dict) or None; ``split`` the field the newest
    evaluation of ``field`` was split by, and ``groups`` what ``groups_at`` (a threshold) rejects in each of its
    groups, computed when asked (three aggregations: too slow for every slider move at 10^6). ``pending``: the
    rejections (field, threshold, mode) asked of the App with ``set_view`` and not yet seen in a view
    event; ``before``: the one the view showed before them."""

    fields: list = dataclasses.field(default_factory=list)
    field: str | None = None
    threshold: float | None = None
    rate: float | None = None
    rejected: int = 0
    fnmr: dict | None = None
    mode: str = "all"
    message: str | None = None
    source: str | None = None
    table: dict | None = None
    calibration: dict | None = None
    split: str | None = None
    groups: list | None = None
    groups_at: float | None = None
    pending: list = dataclasses.field(default_factory=list)
    before: list | None = None

    @classmethod
    def load(cls, ctx) -> Model:
        return cls(**(ctx.store(STORE).get(ctx.panel_id) or {}))

    def save(self, ctx):
        ctx.store(STORE).set(ctx.panel_id, jsonable(dataclasses.asdict(self)))

    @property
    def distribution(self) -> Distribution:
        return Distribution(**{k: v for k, v in self.table.items() if k != "fnmr"})

    @property
    def unified(self) -> Calibration | None:
        return Calibration.from_dict(self.calibration) if self.calibration else None

    @property
    def rejection(self) -> list:
        return [self.field, self.threshold, self.mode] if self.mode != "all" else [None, None, "all"]

    def at_step(self, step: int):
        """Threshold, count and FNMR of the table's rate ``step / STEPS``."""
        self.rate, self.threshold = step / STEPS, self.table["thresholds"][step]
        self.rejected = self.table["rejected"][step]
        self.fnmr = self.table["fnmr"][step]


class RejectionPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="faceqan_rejection",
            label="FaceQAN rejection",
            icon="tune",
            help_markdown="Choose a quality field and a rejection rate; show, tag or save the kept samples.",
        )

    # --- events -----------------------------------------------------------------------------------------

    def on_load(self, ctx):
        """A new panel, or one the App restored after a reload (its state is gone): start from the view."""
        self._from_view(ctx, Model())

    def on_change_dataset(self, ctx):
        ctx.panel.state.clear()
        self._from_view(ctx, Model())

    def on_change_view(self, ctx):
        model = Model.load(ctx)
        found = parse_rejection(ctx.view)
        seen = _rejection_of(found)
        if model.pending:
            if seen != model.pending[-1] and (seen in model.pending or seen == model.before):
                return  # the App has not applied the panel's last set_view yet
            arrived = seen == model.pending[-1]
            model.pending, model.before = [], None
            if arrived and _source(ctx, model.field, found.base) == model.source:
                model.save(ctx)  # the echo of the panel's own set_view
                return
        elif seen == model.rejection and _source(ctx, model.field, found.base) == model.source:
            return  # a view event for an unrelated change of the App's context
        self._from_view(ctx, model)

    def on_change_field(self, ctx):
        model = Model.load(ctx)
        field = _value(ctx, "field")
        if field == model.field:
            return
        if field not in model.fields:
            ctx.ops.notify(f"{field!r} is not a quality field of this dataset", variant="error")
            return
        model.field = field
        self._table(ctx, model, parse_rejection(ctx.view).base)
        model.at_step(DEFAULT_STEP)
        _commit(ctx, model)

    def on_change_rate(self, ctx):
        model = Model.load(ctx)
        value = _value(ctx, "rate")
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            ctx.ops.notify(f"the rejection rate must be a fraction in [0, 1], got {value!r}", variant="error")
            return
        step = round(value * STEPS)
        if model.field is None or step / STEPS == model.rate:
            return  # the App sending back the rate the panel wrote, or one click sent twice
        self._table(ctx, model, parse_rejection(ctx.view).base)
        model.at_step(step)
        _commit(ctx, model)

    def on_change_view_name(self, ctx):
        ctx.panel.state.view_name = _value(ctx, "view_name")

    def show_kept(self, ctx):
        self._show(ctx, "kept")

    def show_rejected(self, ctx):
        self._show(ctx, "rejected")

    def show_all(self, ctx):
        self._show(ctx, "all")

    def split_by_group(self, ctx):
        """What the threshold rejects in each group of the field's evaluation split (rejection_by_group)."""
        model = Model.load(ctx)
        base = parse_rejection(stage_view(ctx)).base
        table = rejection_by_group(base, model.field, model.split, model.threshold)
        model.groups, model.groups_at = jsonable(table.to_dict("records")), model.threshold
        _commit(ctx, model)

    def tag(self, ctx):
        model = Model.load(ctx)
        count = tag_rejected(parse_rejection(stage_view(ctx)).base, model.field, model.threshold)
        model.message = f"Tagged {count} rejected {QualityField(model.field).unit} `{REJECTED_TAG}`"
        self._announce(ctx, model)

    def save(self, ctx):
        model = Model.load(ctx)
        name = ctx.panel.state.get("view_name") or default_view_name(model.field, model.threshold)
        saved = save_kept_view(parse_rejection(stage_view(ctx)).base, model.field, model.threshold, name)
        model.message = f"Saved the kept samples as view `{saved}`"
        self._announce(ctx, model)

    # --- model ------------------------------------------------------------------------------------------

    def _from_view(self, ctx, model):
        """Take field, threshold and mode from the view's rejection stage; without one keep the model's
        field and threshold (or take the first field at the default rate) and show all samples."""
        model.fields, model.pending, model.before = quality_fields(ctx.dataset), [], None
        if not model.fields:
            _commit(ctx, Model())
            return
        found = parse_rejection(ctx.view)
        if found.field in model.fields:
            model.field, threshold, model.mode = found.field, found.threshold, found.mode
        else:
            if model.field not in model.fields:
                model.field, model.threshold = model.fields[0], None
            threshold, model.mode = model.threshold, "all"
        ranked = self._table(ctx, model, found.base)
        if threshold is None:
            model.at_step(DEFAULT_STEP)
        elif threshold != model.threshold:
            self._at_threshold(ctx, model, threshold, ranked)
        _commit(ctx, model)

    def _at_threshold(self, ctx, model, threshold, ranked):
        """A threshold from the view: its count and FNMR, and the slider at the rejected share."""
        table = model.table
        if threshold in table["thresholds"]:
            step = table["thresholds"].index(threshold)
            rejected, fnmr = table["rejected"][step], table["fnmr"][step]
        else:
            ranked = ranked or sorted_scores(parse_rejection(ctx.view).base, model.field)
            rejected = ranked.count_below(threshold)
            fnmr = (_fnmr_points(ctx.dataset, model.field, [threshold]) or [None])[0]
        model.threshold, model.rejected, model.fnmr = threshold, rejected, fnmr
        model.rate = round(rejected / max(table["scored"], 1) * STEPS) / STEPS

    def _table(self, ctx, model, base):
        """Make ``model.table`` the distribution of its field on ``base`` as the data stand now: kept when
        it was computed from the same, else computed again. Returns the scores it was computed from, if."""
        source = _source(ctx, model.field, base)
        if source == model.source:
            return None
        ranked = sorted_scores(base, model.field)
        table = distribution(base, model.field, steps=STEPS, bins=BINS, ranked=ranked)
        fnmr = _fnmr_points(ctx.dataset, model.field, table.thresholds) or [None] * len(table.thresholds)
        model.table, model.source = {**dataclasses.asdict(table), "fnmr": fnmr}, source
        calibration = field_calibration(base, model.field)
        model.calibration = calibration.to_dict() if calibration else None
        model.split, model.groups = _split(ctx.dataset, model.field), None
        model.threshold = None  # the old one belongs to other data
        return ranked

    def _show(self, ctx, mode):
        model = Model.load(ctx)
        model.mode = mode
        _commit(ctx, model)

    @staticmethod
    def _announce(ctx, model):
        _commit(ctx, model)
        ctx.ops.notify(model.message.replace("`", ""), variant="success")
        ctx.ops.reload_dataset()

    # --- layout -----------------------------------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        model = Model.load(ctx)
        if not model.field:
            panel.md("### No quality field\nRun FaceQAN (or add a numeric score field) on this dataset first.",
                     name="empty")
            return types.Property(panel, view=types.GridView(orientation="vertical", pad=2))

        fields = types.DropdownView()
        for name in model.fields:
            fields.add_choice(name, label=name)
        panel.enum("field", fields.values(), label="Quality field", view=fields,
                   on_change=self.on_change_field)
        panel.plot("histogram", layout=_histogram_layout(model.threshold, model.unified), width="100%",
                   height="320px",
                   config={"displayModeBar": False})
        panel.float("rate", min=0, max=1, label="Reject",
                    view=types.SliderView(label="Reject", view_multiple_of=1 / STEPS, value_format="%",
                                          value_label_display="auto"),
                    on_change=self.on_change_rate)
        panel.md(_summary_markdown(model), name="summary_text")

        buttons = panel.h_stack("buttons", gap=1, align_x="left")
        buttons.btn("show_kept", label="Show kept", icon="check_circle", on_click=self.show_kept,
                    variant="contained" if model.mode == "kept" else "outlined")
        buttons.btn("show_rejected", label="Show rejected", icon="remove_circle", on_click=self.show_rejected,
                    variant="contained" if model.mode == "rejected" else "outlined")
        buttons.btn("show_all", label="Show all", on_click=self.show_all,
                    variant="contained" if model.mode == "all" else "outlined")
        buttons.btn("tag", label="Tag rejected", icon="label", on_click=self.tag, variant="outlined")
        if model.split:
            buttons.btn("split_by_group", label=f"Rejected per {model.split}", icon="table_chart",
                        on_click=self.split_by_group, variant="outlined")
        if model.split and model.groups and model.groups_at == model.threshold:
            panel.md(_groups_markdown(model), name="groups_text")

        panel.str("view_name", label="Saved view name", on_change=self.on_change_view_name,
                  view=types.TextFieldView(placeholder=default_view_name(model.field, model.threshold)))
        panel.btn("save", label="Save kept view", icon="save", on_click=self.save, variant="outlined")
        if model.message:
            panel.md(model.message, name="message")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, pad=2))


# --- the App's side -------------------------------------------------------------------------------------

def _commit(ctx, model):
    """Save the model and bring the App in line with it: the grid's view, the inputs, the histogram."""
    _sync_view(ctx, model)
    model.save(ctx)
    ctx.panel.state.set({"field": model.field, "rate": model.rate})
    ctx.panel.data.set("histogram", _histogram(model.distribution) if model.table else [])


def _sync_view(ctx, model):
    """Set the App's view to the model's rejection unless it shows it already or an earlier event asked for
    it; remember it as pending until a view event shows it."""
    target = model.rejection
    found = parse_rejection(stage_view(ctx))
    seen = _rejection_of(found)
    if (model.pending and model.pending[-1] == target) or (not model.pending and seen == target):
        return
    mode = target[2]
    ctx.ops.set_view(found.base if mode == "all" else rejection_view(found.base, model.field, model.threshold, mode))
    model.before = model.before if model.pending else seen
    model.pending = model.pending + [target]


def _rejection_of(found) -> list:
    return [found.field, found.threshold, found.mode]


def _source(ctx, field, base) -> str:
    """What a distribution depends on: the field, the user's view and the data's last change (sample edits,
    deletions, runs and fields: each has an index or lives on the dataset document, so this costs no scan)."""
    dataset = ctx.dataset
    newest = dataset._sample_collection.find({}, {"last_modified_at": 1}).sort("last_modified_at", -1).limit(1)
    changed = [doc.get("last_modified_at") for doc in newest]
    return json.dumps([field, base._serialize(include_uuids=False), str(changed), str(dataset.last_deletion_at),
                       str(dataset.last_modified_at)], default=str)


def _value(ctx, key):
    """The new value of an input: the event's ``value``, else what the App wrote into the panel state."""
    if "value" in ctx.params:
        return ctx.params["value"]
    return ctx.panel.state.get(key)


def _newest_evaluation(dataset, field) -> str | None:
    """The key of the newest evaluation that compared ``field``, if any."""
    keys = [k for k in list_evaluations(dataset) if field in dataset.get_brain_info(k).config.quality_fields]
    return max(keys, key=lambda k: dataset.get_brain_info(k).timestamp) if keys else None


def _split(dataset, field) -> str | None:
    """The field the newest evaluation of ``field`` was split by, if it was."""
    key = _newest_evaluation(dataset, field)
    return dataset.get_brain_info(key).config.by if key else None


def _fnmr_points(dataset, field, thresholds) -> list[dict] | None:
    """The FNM-EDC points at these thresholds from the newest evaluation that compared ``field``."""
    key = _newest_evaluation(dataset, field)
    if key is None:
        return None
    results = load_evaluation(dataset, key)
    points = fnmr_at_thresholds(results.curves, field, thresholds)
    return points and [{**point, "eval_key": key, "fmr": results.info["fmr"]} for point in points]


def _histogram(table: Distribution) -> list[dict]:
    edges = table.edges
    return jsonable([{"type": "bar", "name": "scores", "x": [(a + b) / 2 for a, b in zip(edges, edges[1:])],
                      "y": table.counts, "width": [b - a for a, b in zip(edges, edges[1:])],
                      "marker": {"color": "#6c8ebf"}}])


def _histogram_layout(threshold, unified: Calibration | None = None) -> dict:
    label = "threshold" if unified is None else f"threshold (unified score {unified.score(threshold)})"
    return {"xaxis": {"title": {"text": "quality score"}}, "yaxis": {"title": {"text": "count"}},
            "margin": {"t": 24, "l": 48, "b": 48, "r": 8}, "bargap": 0.05,
            "shapes": [{"type": "line", "x0": threshold, "x1": threshold, "xref": "x", "y0": 0, "y1": 1,
                        "yref": "paper", "line": {"color": "#e8590c", "width": 2, "dash": "dash"}}],
            "annotations": [{"x": threshold, "y": 1, "xref": "x", "yref": "paper", "showarrow": False,
                             "text": label, "xanchor": "left", "yanchor": "top"}]}


def _summary_markdown(model) -> str:
    table = model.table
    unit, scored = table["unit"], table["scored"]
    share = model.rejected / scored if scored else 0.0
    lines = [f"**Threshold {model.threshold:.6g}**: rejects **{model.rejected} of {scored}** scored {unit} "
             f"(**{share:.1%}**), keeps {scored - model.rejected}."]
    if model.unified is not None:
        lines.append(_unified_markdown(model.unified, model.field, model.threshold, unit))
    if table["unscored"]:
        lines.append(f"{table['unscored']} {unit} have no score and count as rejected.")
    fnmr = model.fnmr
    if fnmr:
        lines.append(f"FNMR at FMR {fnmr['fmr']:g} (evaluation `{fnmr['eval_key']}`): **{fnmr['fnmr']:.4f}** "
                     f"with {fnmr['discarded']:.1%} of mated pairs discarded (FNMR0 {fnmr['fnmr_0']:.4f}).")
    else:
        lines.append("No evaluation of this field yet: run *Evaluate FaceQAN quality* to see the FNMR here.")
    lines.append(f"Grid: **{model.mode}** samples.")
    return "\n\n".join(lines)


def _groups_markdown(model) -> str:
    """The per-group table of the threshold (rejection_by_group's rows; group None: samples without a value)."""
    lines = [f"Rejected per **{model.split}** at threshold {model.groups_at:.6g}:", "",
             "| group | count | rejected | share |", "|---|---|---|---|"]
    lines += [f"| {'(none)' if row['group'] is None else row['group']} | {row['count']} | {row['rejected']} | "
              f"{row['share_rejected']:.1%} |" for row in model.groups]
    return "\n".join(lines)


def _unified_markdown(unified: Calibration, field: str, threshold: float, unit: str) -> str:
    """The same cut on the unified scale: the threshold's score u keeps every face above u and rejects every face
    below it; of the faces at u, those whose Q reaches the threshold are kept (all of them when the threshold is
    where u begins)."""
    level = unified.score(threshold)
    where = QualityField(field)
    if level > 0 and unified.threshold(level) == threshold:
        cut = f"`{label_path(score_field(where.attribute), where.labels)} >= {level}` keeps exactly these {unit}"
    else:
        cut = (f"{unit} scoring above {level} are kept, those below {level} rejected, and those at {level} kept "
               f"only with Q >= {threshold:.6g}")
    return (f"Unified score (0-100) at the threshold: **{level}**: {cut}. A score k means Q reaches the k-th "
            f"percentile of the {unified.faces} reference faces of the run's calibration.")
