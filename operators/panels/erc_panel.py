"""Panel "FaceQAN ERC": the EDC/ERC curves of an evaluation run (every compared quality measure with the
random-rejection and theoretical-best references), its pAUC table, FNMR0, threshold and FMR; or a button
that opens the evaluation operator when the dataset has none yet. A run split by a field adds a group
selector (the curves and pAUC of one group, evaluated alone) and a table comparing the groups.

The panel keeps only the chosen run, curve type and group; everything shown is read again from the stored
run, so it follows reruns, new runs and dataset changes.
"""

from __future__ import annotations

import json

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_faceqan import AXIS_TITLES, CURVE_LABELS, figure
from fiftyone_faceqan.evaluation import INTERVAL_AT, list_evaluations, load_evaluation

from .common import figure_traces, jsonable

EVALUATE_OPERATOR = "evaluate_faceqan_quality"
ALL = "all"  # the group choice of every sample; a group's choice is its value in JSON (never the bare word all)


class ERCPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="faceqan_erc",
            label="FaceQAN ERC",
            icon="show_chart",
            help_markdown="EDC/ERC curves and pAUC of a FaceQAN evaluation run.",
        )

    # --- events -----------------------------------------------------------------------------------------

    def on_load(self, ctx):
        state = ctx.panel.state
        keys = list_evaluations(ctx.dataset)
        key = state.eval_key if state.eval_key in keys else _newest(ctx.dataset, keys)
        curve = state.curve if state.curve in AXIS_TITLES else "edc"
        state.set({"eval_keys": keys, "eval_key": key, "curve": curve})
        if key is None:
            return
        whole = load_evaluation(ctx.dataset, key)
        choices = _group_choices(whole)
        group = state.group if state.group in dict(choices) else ALL
        results = whole.group(json.loads(group)) if group != ALL else whole
        curves = results.curves
        present = [c for c in AXIS_TITLES if (curves["curve"] == c).any()]
        if curve not in present:
            curve = present[0]
            state.curve = curve
        state.set({"curves_present": present, "info": jsonable(_info(results)),
                   "limits": list(results.config.discard_limits), "group": group, "group_choices": choices,
                   "measures": list(whole.config.quality_fields)})
        ctx.panel.data.set({"plot": figure_traces(figure(curves, curve)), "pauc": _pauc_rows(results, curve),
                            "groups": jsonable(_group_rows(whole, curve))})

    def on_change_dataset(self, ctx):
        ctx.panel.state.clear()
        self.on_load(ctx)

    def on_change_eval_key(self, ctx):
        ctx.panel.state.eval_key = ctx.params.get("value", ctx.panel.state.eval_key)
        self.on_load(ctx)

    def on_change_curve(self, ctx):
        ctx.panel.state.curve = ctx.params.get("value", ctx.panel.state.curve)
        self.on_load(ctx)

    def on_change_group(self, ctx):
        ctx.panel.state.group = ctx.params.get("value", ctx.panel.state.group)
        self.on_load(ctx)

    def refresh(self, ctx):
        self.on_load(ctx)

    def evaluate(self, ctx):
        ctx.prompt(f"{self.plugin_name}/{EVALUATE_OPERATOR}", on_success=self.refresh)

    # --- layout -----------------------------------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        state = ctx.panel.state
        if not state.eval_key:
            panel.md("### No FaceQAN evaluation yet\nCompare quality fields against face-recognition errors "
                     "(needs identity labels or a pairs file).", name="empty")
            panel.btn("evaluate", label="Evaluate quality", icon="play_arrow", on_click=self.evaluate,
                      variant="contained")
            return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, pad=2))

        row = panel.h_stack("choices", gap=2, align_x="left")
        runs = types.DropdownView()
        for key in state.eval_keys or []:
            runs.add_choice(key, label=key)
        row.enum("eval_key", runs.values(), default=state.eval_key, label="Evaluation", view=runs,
                 on_change=self.on_change_eval_key)
        kinds = types.RadioGroup(orientation="horizontal")
        for kind in state.curves_present or []:
            kinds.add_choice(kind, label=kind.upper())
        row.enum("curve", kinds.values(), default=state.curve, label="Curve", view=kinds,
                 on_change=self.on_change_curve)
        if state.group_choices:
            groups = types.DropdownView()
            for value, label in state.group_choices:
                groups.add_choice(value, label=label)
            row.enum("group", groups.values(), default=state.group, label="Group", view=groups,
                     on_change=self.on_change_group)
        row.btn("refresh", label="Refresh", icon="refresh", on_click=self.refresh)
        row.btn("evaluate", label="New evaluation", icon="play_arrow", on_click=self.evaluate)

        panel.md(_info_markdown(state.info), name="info_text")
        layout = {"title": {"text": CURVE_LABELS[state.curve]}, "showlegend": True,
                  "legend": {"orientation": "h", "y": -0.25},
                  "xaxis": {"title": {"text": AXIS_TITLES[state.curve]}, "range": [0, 1]},
                  "yaxis": {"title": {"text": "FNMR"}, "rangemode": "tozero"},
                  "margin": {"t": 40, "l": 56, "b": 110, "r": 8}}
        panel.plot("plot", layout=layout, width="100%", height="420px")

        table = types.TableView()
        table.add_column("measure", label="quality measure")
        table.add_column("fnmr_0", label="FNMR0")
        for d in state.limits or []:
            table.add_column(f"pauc_{round(d * 100)}", label=f"pAUC@{d:g} (norm)")
        panel.list("pauc", types.Object(), label="pAUC: raw (normalised: 1 = random, lower is better)",
                   view=table)
        if state.group_choices:
            per_group, limit = types.TableView(), _group_limit(state.limits)
            columns = {"group": "group", "samples": "samples evaluated", "n_mated": "mated pairs", "fnmr_0": "FNMR0",
                       **{f"measure_{i}": f"{m}: pAUC@{limit:g} (norm)" for i, m in enumerate(state.measures or [])},
                       "note": "note"}
            for column, label in columns.items():
                per_group.add_column(column, label=label)
            panel.list("groups", types.Object(), label="Each group evaluated alone (its own pairs and threshold)",
                       view=per_group)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, pad=2))


def _newest(dataset, keys):
    return max(keys, key=lambda k: dataset.get_brain_info(k).timestamp) if keys else None


def _info(results) -> dict:
    info = results.info
    edc = results.summary[results.summary["curve"] == "edc"]
    fnmr0 = float(edc["fnmr_0"].iloc[0]) if not edc.empty else None
    return {"tau": info["tau"], "fmr": info["fmr"], "fnmr_0": fnmr0, "n_mated": info["n_mated"],
            "n_non_mated": info["n_non_mated"], "n_evaluated": info["n_evaluated"], "n_samples": info["n_samples"],
            "model": info["model"] or info["embeddings_field"], "by": info.get("by"), "group": info.get("group"),
            "by_missing": info.get("by_missing", 0)}


def _pauc_rows(results, curve: str) -> list[dict]:
    summary = results.summary
    rows = []
    for _, row in summary[(summary["curve"] == curve) | (summary["curve"] == "reference")].iterrows():
        out = {"measure": row["measure"], "fnmr_0": f"{row['fnmr_0']:.4f}"}
        for d in results.config.discard_limits:
            pct = round(d * 100)
            raw, norm = row.get(f"pauc_{pct}"), row.get(f"pauc_{pct}_norm")
            out[f"pauc_{pct}"] = "" if raw is None else f"{raw:.4f} ({norm:.3f})"
        rows.append(out)
    return rows


def _group_choices(results) -> list[tuple[str, str]]:
    """(choice, label) of the group selector: every sample, then each group that was evaluated."""
    if results.groups is None:
        return []
    by = results.info["by"]
    evaluated = results.groups[results.groups["skipped"].isna()]["group"].tolist()
    return [(ALL, "all samples"), *((json.dumps(g), f"{by} = {g}") for g in evaluated)]


def _group_limit(limits) -> float:
    """The discard limit the group table compares at: 20 % when the run has it (the bootstrap's too)."""
    return INTERVAL_AT if INTERVAL_AT in (limits or []) else (limits or [INTERVAL_AT])[0]


def _group_rows(results, curve: str) -> list[dict]:
    """One row per group: size, mated pairs, FNMR0 and each measure's normalised pAUC of ``curve``, or why the
    group was not evaluated."""
    if results.groups is None:
        return []
    column = f"pauc_{round(_group_limit(results.config.discard_limits) * 100)}_norm"
    summary = results.group_summary
    summary = summary[summary["curve"] == curve]
    rows = []
    for group in results.groups.itertuples():
        row = {"group": str(group.group), "samples": f"{group.n_evaluated} of {group.n_samples}",
               "n_mated": group.n_mated, "note": group.skipped or ""}
        mine = summary[summary["group"] == group.group].set_index("measure")
        if not mine.empty:
            row["fnmr_0"] = f"{mine['fnmr_0'].iloc[0]:.4f}"
            row.update({f"measure_{i}": f"{mine.loc[m, column]:.3f}"
                        for i, m in enumerate(results.config.quality_fields)})
        rows.append(row)
    return rows


def _info_markdown(info) -> str:
    if not info:
        return ""
    fnmr0 = "n/a" if info["fnmr_0"] is None else f"{info['fnmr_0']:.4f}"
    split = ""
    if info.get("by") and info.get("group") is not None:
        split = f" · the group **{info['by']} = {info['group']}** alone"
    elif info.get("by"):
        split = f" · split by `{info['by']}` ({info['by_missing']} without a value)"
    return (f"**FNMR0 {fnmr0}** at threshold **{info['tau']:.4f}** (FMR {info['fmr']:g}) · "
            f"{info['n_mated']:,} mated / {info['n_non_mated']:,} non-mated comparisons by `{info['model']}` · "
            f"{info['n_evaluated']} of {info['n_samples']} samples evaluated{split}")
