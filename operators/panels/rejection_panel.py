"""Panel "FaceQAN rejection": pick a quality field, move a rejection-rate slider, see the threshold, how many
samples (or faces) it rejects and, when an evaluation of that field exists, the FNMR left; then show only the
kept or rejected samples in the grid, tag the rejected ones, or save the kept view.

The App's current view is the panel's state: showing kept/rejected adds one stage that
``fiftyone_faceqan.rejection.parse_rejection`` recognises, so after a reload, or when the user edits the
view, ``on_load`` finds the same field, threshold and mode again. Without such a stage a new panel starts at
``DEFAULT_RATE``.

The App's side lags behind the panel's: an event carries the panel state and the view the App had when
the event fired, often from before the state patch or ``set_view`` of the previous event arrived; the App
fires view events for unrelated context changes too, and fires ``on_change`` of the slider again when the
panel writes a new rate (and sometimes twice for one click). Acting on those made the panel write old
thresholds back and the grid flip between two views for good. So the panel's model (field, threshold,
mode, rate, counts) lives on the server, in the execution store, and is what every event starts from and
``render`` shows; a slider value equal to the model's rate changes nothing; and a view event showing a
view from before the panel's own pending ``set_view`` is ignored.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types
import numpy as np

from fiftyone_faceqan.evaluation import list_evaluations, load_evaluation
from fiftyone_faceqan.rejection import (REJECTED_TAG, QualityField, default_view_name, fnmr_at_threshold,
                                        parse_rejection, quality_fields, rejection_view, save_kept_view,
                                        scores, summarize, tag_rejected, threshold_for_rate)

from .common import jsonable, stage_view

DEFAULT_RATE = 0.1
RATE_STEP = 0.5  # percent; the slider's value is rounded to it
BINS = 40
STORE = "faceqan_rejection_panel"


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
        """Derive everything from the current view (the App restores it after a reload)."""
        fields = quality_fields(ctx.dataset)
        if not ctx.panel.state.field or not fields:  # a new panel: nothing of an earlier one applies
            ctx.store(STORE).delete(ctx.panel_id)
        if not fields:
            ctx.panel.state.set({"field": None, "fields": []})
            return
        found = parse_rejection(ctx.view)
        last = _last(ctx)
        if found.field in fields:
            field, threshold, mode = found.field, found.threshold, found.mode
        else:
            field = last.get("field") if last.get("field") in fields else fields[0]
            keep = field == last.get("field") and last.get("cut") is not None
            threshold = last["cut"] if keep else self._threshold(found.base, field, DEFAULT_RATE)
            mode = "all"
        self._update(ctx, fields, field, threshold, mode, found.base)

    def on_change_view(self, ctx):
        last = _last(ctx)
        pending = last.get("pending") or []
        if pending:
            seen = _rejection_of(parse_rejection(ctx.view))
            if seen != pending[-1] and (seen in pending or seen == last.get("before")):
                return  # the App has not applied the panel's last set_view yet
            _remember(ctx, pending=[], before=None)  # applied, or the user changed the view meanwhile
        self.on_load(ctx)

    def on_change_dataset(self, ctx):
        ctx.panel.state.clear()
        self.on_load(ctx)

    def on_change_field(self, ctx):
        field = _value(ctx, "field")
        if field == _last(ctx).get("field"):
            return
        base = parse_rejection(ctx.view).base
        self._apply(ctx, field, self._threshold(base, field, DEFAULT_RATE))

    def on_change_rate(self, ctx):
        rate = round(float(_value(ctx, "rate")) / RATE_STEP) * RATE_STEP
        last = _last(ctx)
        if rate == last.get("rate"):
            return  # the App sending back the rate the panel wrote, or one click sent twice
        field = last.get("field") or ctx.panel.state.field
        base = parse_rejection(ctx.view).base
        self._apply(ctx, field, self._threshold(base, field, rate / 100), rate)

    def on_change_view_name(self, ctx):
        ctx.panel.state.view_name = _value(ctx, "view_name")

    def show_kept(self, ctx):
        self._show(ctx, "kept")

    def show_rejected(self, ctx):
        self._show(ctx, "rejected")

    def show_all(self, ctx):
        self._show(ctx, "all")

    def tag(self, ctx):
        state = _current(ctx)
        base = parse_rejection(stage_view(ctx)).base
        count = tag_rejected(base, state.field, state.cut)
        state.message = f"Tagged {count} rejected {QualityField(state.field).unit} `{REJECTED_TAG}`"
        ctx.ops.notify(state.message.replace("`", ""), variant="success")
        ctx.ops.reload_dataset()

    def save(self, ctx):
        state = _current(ctx)
        name = state.view_name or default_view_name(state.field, state.cut)
        base = parse_rejection(stage_view(ctx)).base
        saved = save_kept_view(base, state.field, state.cut, name)
        state.message = f"Saved the kept samples as view `{saved}`"
        ctx.ops.notify(state.message.replace("`", ""), variant="success")
        ctx.ops.reload_dataset()

    # --- state ------------------------------------------------------------------------------------------

    @staticmethod
    def _threshold(samples, field, rate):
        return threshold_for_rate(scores(samples, field), rate)

    def _apply(self, ctx, field, threshold, rate=None):
        """A new field or threshold (at the slider's ``rate``): while the grid is filtered, refilter it."""
        mode = _last(ctx).get("mode") or ctx.panel.state.mode or "all"
        _remember(ctx, field=field, cut=threshold, rate=rate, mode=mode)  # before the slow part: a repeat
        if mode != "all":                                                 # of this event sees it
            found = parse_rejection(stage_view(ctx))
            _set_view(ctx, found, rejection_view(found.base, field, threshold, mode), [field, threshold, mode])
        self._update(ctx, quality_fields(ctx.dataset), field, threshold, mode, parse_rejection(ctx.view).base,
                     rate)

    def _show(self, ctx, mode):
        state = _current(ctx)
        found = parse_rejection(stage_view(ctx))
        if mode == "all":
            _set_view(ctx, found, found.base, [None, None, "all"])
        else:
            _set_view(ctx, found, rejection_view(found.base, state.field, state.cut, mode),
                      [state.field, state.cut, mode])
        state.mode = mode
        _remember(ctx, mode=mode)

    def _update(self, ctx, fields, field, threshold, mode, samples, rate=None):
        """Write the model (App state and store) and the histogram. ``rate``: the slider's value; by default
        the rejected share, or the model's rate when the field and threshold are the model's."""
        values = scores(samples, field)
        summary = summarize(samples, field, threshold)
        last = _last(ctx)
        if rate is None:
            same = (field, threshold) == (last.get("field"), last.get("cut")) and last.get("rate") is not None
            rate = last["rate"] if same else round(summary.rate * 100 / RATE_STEP) * RATE_STEP
        model = {
            "fields": fields, "field": field, "cut": threshold, "mode": mode, "rate": rate,
            "summary": {"unit": summary.unit, "scored": summary.scored, "rejected": summary.rejected,
                        "kept": summary.kept, "unscored": summary.unscored, "share": summary.rate},
            "fnmr": _fnmr(ctx.dataset, field, threshold),
        }
        ctx.panel.state.set(model)
        ctx.panel.data.set("histogram", _histogram(values))
        _remember(ctx, **model)

    # --- layout -----------------------------------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        state = _Model({**(ctx.panel_state or {}), **_last(ctx)})  # the model, not the App's older copy
        if not state.field:
            panel.md("### No quality field\nRun FaceQAN (or add a numeric score field) on this dataset first.",
                     name="empty")
            return types.Property(panel, view=types.GridView(orientation="vertical", pad=2))

        fields = types.DropdownView()
        for name in state.fields or []:
            fields.add_choice(name, label=name)
        panel.enum("field", fields.values(), label="Quality field", view=fields,
                   on_change=self.on_change_field)
        panel.plot("histogram", layout=_histogram_layout(state.cut), width="100%", height="320px",
                   config={"displayModeBar": False})
        panel.float("rate", min=0, max=100, label="Reject %",
                    view=types.SliderView(label="Reject %", view_multiple_of=RATE_STEP,
                                          value_label_display="auto", value_precision=1),
                    on_change=self.on_change_rate)
        panel.md(_summary_markdown(state), name="summary_text")

        buttons = panel.h_stack("buttons", gap=1, align_x="left")
        buttons.btn("show_kept", label="Show kept", icon="check_circle", on_click=self.show_kept,
                    variant="contained" if state.mode == "kept" else "outlined")
        buttons.btn("show_rejected", label="Show rejected", icon="remove_circle", on_click=self.show_rejected,
                    variant="contained" if state.mode == "rejected" else "outlined")
        buttons.btn("show_all", label="Show all", on_click=self.show_all,
                    variant="contained" if state.mode == "all" else "outlined")
        buttons.btn("tag", label="Tag rejected", icon="label", on_click=self.tag, variant="outlined")

        panel.str("view_name", label="Saved view name", on_change=self.on_change_view_name,
                  view=types.TextFieldView(placeholder=default_view_name(state.field, state.cut)))
        panel.btn("save", label="Save kept view", icon="save", on_click=self.save, variant="outlined")
        if state.message:
            panel.md(state.message, name="message")
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, pad=2))


class _Model(dict):
    """The panel model as ``render`` reads it: attribute access, None for what is not set."""

    def __getattr__(self, key):
        return self.get(key)


def _last(ctx) -> dict:
    """The panel's model as its last event wrote it (the execution store, per panel and dataset)."""
    return ctx.store(STORE).get(ctx.panel_id) or {}


def _remember(ctx, **changes):
    ctx.store(STORE).set(ctx.panel_id, {**_last(ctx), **changes})


def _rejection_of(found) -> list:
    return [found.field, found.threshold, found.mode]


def _set_view(ctx, found, view, target: list):
    """Set the App's view to ``view`` (whose rejection stage is ``target``) unless it already is, or an
    earlier event already asked for it; remember it as pending until a view event shows it."""
    last = _last(ctx)
    pending = last.get("pending") or []
    seen = _rejection_of(found)
    if (pending and pending[-1] == target) or (not pending and seen == target):
        return
    ctx.ops.set_view(view)
    _remember(ctx, pending=pending + [target], before=last.get("before") if pending else seen)


def _current(ctx):
    """The panel state with the model's field, threshold and mode (the App's copy can be older)."""
    state = ctx.panel.state
    last = _last(ctx)
    state.set({k: last[k] for k in ("field", "cut", "mode") if k in last})
    return state


def _value(ctx, key):
    """The new value of an input: the event's ``value``, else what the App wrote into the panel state."""
    if "value" in ctx.params:
        return ctx.params["value"]
    return ctx.panel.state.get(key)


def _fnmr(dataset, field, threshold) -> dict | None:
    """The FNM-EDC point at this threshold from the newest evaluation that compared ``field``."""
    keys = [k for k in list_evaluations(dataset) if field in dataset.get_brain_info(k).config.quality_fields]
    if not keys:
        return None
    key = max(keys, key=lambda k: dataset.get_brain_info(k).timestamp)
    results = load_evaluation(dataset, key)
    point = fnmr_at_threshold(results.curves, field, threshold)
    return point and {**point, "eval_key": key, "fmr": results.info["fmr"]}


def _histogram(values: np.ndarray) -> list[dict]:
    scored = values[~np.isnan(values)]
    counts, edges = np.histogram(scored, bins=BINS if len(scored) else 1)
    return jsonable([{"type": "bar", "name": "scores", "x": (edges[:-1] + edges[1:]) / 2, "y": counts,
                      "width": np.diff(edges), "marker": {"color": "#6c8ebf"}}])


def _histogram_layout(threshold) -> dict:
    return {"xaxis": {"title": {"text": "quality score"}}, "yaxis": {"title": {"text": "count"}},
            "margin": {"t": 24, "l": 48, "b": 48, "r": 8}, "bargap": 0.05,
            "shapes": [{"type": "line", "x0": threshold, "x1": threshold, "xref": "x", "y0": 0, "y1": 1,
                        "yref": "paper", "line": {"color": "#e8590c", "width": 2, "dash": "dash"}}],
            "annotations": [{"x": threshold, "y": 1, "xref": "x", "yref": "paper", "showarrow": False,
                             "text": "threshold", "xanchor": "left", "yanchor": "top"}]}


def _summary_markdown(state) -> str:
    s = state.summary or {}
    unit = s.get("unit", "samples")
    lines = [f"**Threshold {state.cut:.6g}**: rejects **{s.get('rejected', 0)} of {s.get('scored', 0)}** "
             f"scored {unit} (**{100 * s.get('share', 0):.1f} %**), keeps {s.get('kept', 0)}."]
    if s.get("unscored"):
        lines.append(f"{s['unscored']} {unit} have no score and count as rejected.")
    fnmr = state.fnmr
    if fnmr:
        lines.append(f"FNMR at FMR {fnmr['fmr']:g} (evaluation `{fnmr['eval_key']}`): **{fnmr['fnmr']:.4f}** "
                     f"with {100 * fnmr['discarded']:.1f} % of mated pairs discarded (FNMR0 {fnmr['fnmr_0']:.4f}).")
    else:
        lines.append("No evaluation of this field yet: run *Evaluate FaceQAN quality* to see the FNMR here.")
    lines.append(f"Grid: **{state.mode or 'all'}** samples.")
    return "\n\n".join(lines)
