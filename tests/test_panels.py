"""The rejection logic and the two App panels on a real FiftyOne database with 30 real LFW crops of 6
identities. Quality fields hold a fast real baseline (image sharpness) and a seeded random score; one sample
has no sharpness (a failed scoring) and a Detections field carries the sharpness per face, so the per-face
path is covered too. The panels run through a real ExecutionContext, the way the App calls them: one
operator execution per event, and the operations they trigger (state patches, set_view) applied to an
App-side state that the next event receives."""

from __future__ import annotations

import copy

import numpy as np
import pydash
import pytest
from fiftyone import ViewField as F

from lfw_data import require_lfw

COUNT = 30
PLUGIN = "@faceqan/faceqan"
TAG = "faceqan_rejected"


@pytest.fixture(scope="module")
def faces(fo_database):
    """30 LFW crops: identity, ``sharpness`` (None on the first sample), ``random_q`` and per-face ``faces.q``,
    plus an evaluation ``eval_a`` of both sample fields."""
    import fiftyone as fo
    from faceqan.baselines import random_quality, sharpness
    from fiftyone_faceqan.evaluation import evaluate_quality

    root = require_lfw()
    paths = [root / rel for rel in (root / "erc_subset.txt").read_text().split()[:COUNT]]
    sharp = sharpness([str(p) for p in paths])
    rand = random_quality(COUNT, seed=5)
    dataset = fo.Dataset("faceqan-panels")
    samples = []
    for i, path in enumerate(paths):
        face = fo.Detection(label="face", bounding_box=[0.1, 0.1, 0.8, 0.8], q=float(sharp[i]))
        samples.append(fo.Sample(filepath=str(path), ground_truth=fo.Classification(label=path.parent.name),
                                 sharpness=None if i == 0 else float(sharp[i]), random_q=float(rand[i]),
                                 faces=fo.Detections(detections=[face])))
    dataset.add_samples(samples)
    dataset.add_dynamic_sample_fields()
    evaluate_quality(dataset.exists("sharpness"), ["sharpness", "random_q"], model="sface", eval_key="eval_a")
    yield dataset
    dataset.delete()


class AppPanel:
    """The App's side of a panel: its state, data, rendered output and the dataset view; ``event`` runs one
    panel method through ``Panel.execute`` and applies the operations the panel triggered."""

    def __init__(self, name, dataset, stages=None):
        import fiftyone.operators as foo

        self.operator = foo.get_operator(f"{PLUGIN}/{name}")
        self.dataset, self.stages = dataset, list(stages or [])
        self.state, self.data, self.output, self.triggered = {}, {}, None, []
        self.hold_views, self.held = False, []  # hold_views: set_view requests wait in held (a slow App)
        self.ctx = None

    def event(self, method, **params):
        from fiftyone.operators.executor import ExecutionContext, Executor

        request = {"dataset_name": self.dataset.name, "view": copy.deepcopy(self.stages),
                   "params": {"panel_id": "panel-1", "panel_state": copy.deepcopy(self.state),
                              "__method__": method, **params}}
        ctx = self.ctx = ExecutionContext(request_params=request, executor=Executor())
        self.operator.execute(ctx)
        view_changed = False
        for request in ctx.executor._requests:
            name, p = request.operator_uri, request.params
            self.triggered.append((name, p))
            if name == "patch_panel_state":
                for key, value in p["state"].items():
                    pydash.set_(self.state, key, copy.deepcopy(value))
            elif name == "clear_panel_state":
                self.state = {}
            elif name == "patch_panel_data":
                for key, value in p["data"].items():
                    pydash.set_(self.data, key, copy.deepcopy(value))
            elif name == "show_panel_output":
                self.output = p["output"]
            elif name == "set_view" and self.hold_views:
                self.held.append(p["view"])
            elif name == "set_view":
                self.stages, view_changed = p["view"], True
        if view_changed:  # the App reports a new view to the panel
            self.event("on_change_view", value=self.stages)
        return ctx

    def release(self):
        """The App applies the held set_view at last and reports the new view."""
        self.stages, self.held, self.hold_views = self.held[-1], [], False
        self.event("on_change_view", value=self.stages)

    def change(self, path, value, method):
        """A user edits an input: the App writes the value into the state, then calls ``on_change``."""
        pydash.set_(self.state, path, value)
        return self.event(method, value=value)

    def view(self):
        import fiftyone.server.view as fosv

        return fosv.get_view(self.dataset, stages=self.stages)

    def properties(self):
        return self.output["type"]["properties"]

    def model(self) -> dict:
        """The rejection panel's model, as the last event left it in the execution store."""
        return self.ctx.store("faceqan_rejection_model").get("panel-1")


# --- rejection logic ------------------------------------------------------------------------------------

def test_threshold_for_rate_rejects_the_requested_share():
    from fiftyone_faceqan.rejection import threshold_for_rate

    values = np.array([0.5, np.nan, 0.1, 0.3, 0.2, 0.4])
    assert threshold_for_rate(values, 0.0) == 0.1
    assert threshold_for_rate(values, 0.4) == 0.3  # 2 of the 5 scored values lie below
    assert threshold_for_rate(values, 1.0) > 0.5
    assert threshold_for_rate(np.array([0.2, 0.2, 0.2, 0.9]), 0.5) == 0.2  # ties are kept together
    with pytest.raises(ValueError, match="fraction"):
        threshold_for_rate(values, 1.5)
    with pytest.raises(ValueError, match="no scored values"):
        threshold_for_rate(np.array([np.nan]), 0.1)


def test_kept_and_rejected_views_split_the_collection(faces):
    from fiftyone_faceqan.rejection import rejection_view, scores, summarize, threshold_for_rate

    threshold = threshold_for_rate(scores(faces, "sharpness"), 0.25)
    summary = summarize(faces, "sharpness", threshold)
    assert (summary.scored, summary.unscored, summary.rejected) == (COUNT - 1, 1, round(0.25 * (COUNT - 1)))
    kept = rejection_view(faces, "sharpness", threshold, "kept")
    rejected = rejection_view(faces, "sharpness", threshold, "rejected")
    assert len(kept) == summary.kept and len(rejected) == summary.rejected + 1  # the unscored sample too
    assert set(kept.values("id")).isdisjoint(rejected.values("id"))
    assert min(kept.values("sharpness")) >= threshold
    assert all(v is None or v < threshold for v in rejected.values("sharpness"))
    with pytest.raises(ValueError, match="not a numeric quality field"):
        rejection_view(faces, "ground_truth", threshold, "kept")


def test_per_face_rejection_filters_the_faces(faces):
    from fiftyone_faceqan.rejection import quality_fields, rejection_view, summarize

    assert "faces.detections.q" in quality_fields(faces)
    threshold = float(np.median(faces.values("faces.detections.q", unwind=True)))
    summary = summarize(faces, "faces.detections.q", threshold)
    assert summary.unit == "faces" and summary.scored == COUNT
    kept = rejection_view(faces, "faces.detections.q", threshold, "kept")
    assert kept.count("faces.detections") == summary.kept
    assert min(kept.values("faces.detections.q", unwind=True)) >= threshold


def test_parse_rejection_recovers_the_stage_and_the_users_view(faces):
    from fiftyone_faceqan.rejection import parse_rejection, rejection_view

    users = faces.match_tags("nope", bool=False).sort_by("random_q")
    for field, mode in (("sharpness", "rejected"), ("faces.detections.q", "kept")):
        view = rejection_view(users, field, 1234.5, mode)
        found = parse_rejection(view)
        assert (found.field, found.threshold, found.mode) == (field, 1234.5, mode)
        assert found.base._serialize(include_uuids=False) == users._serialize(include_uuids=False)
    plain = parse_rejection(users.match({"sharpness": {"$gte": 3}}))  # the user's own match stays the user's
    assert plain.mode == "all" and plain.field is None


def test_parse_rejection_reads_the_expr_stages_of_saved_views(faces):
    """Views saved by earlier versions hold ``$expr`` matches; they still parse, and a new threshold replaces them."""
    import fiftyone as fo
    from fiftyone import ViewField as F
    from fiftyone_faceqan.rejection import parse_rejection

    for stage, mode in ((fo.Match(F("sharpness") >= 2.5), "kept"), (fo.Match(~(F("sharpness") >= 2.5)), "rejected")):
        faces.save_view("old form", faces.sort_by("random_q").add_stage(stage), overwrite=True)
        found = parse_rejection(faces.load_saved_view("old form"))
        assert (found.field, found.threshold, found.mode) == ("sharpness", 2.5, mode)
        assert [type(s).__name__ for s in found.base._stages] == ["SortBy"]
    faces.delete_saved_views()


def test_indexed_and_loaded_scores_agree_with_a_direct_count(fo_dataset):
    """The index path (a whole dataset with an index on the field) and the in-memory path give the same
    distribution, equal to counting by hand, on scores with many ties, unscored samples and NaN."""
    import fiftyone as fo
    from fiftyone_faceqan.rejection import (_IndexedScores, distribution, sorted_scores, summarize,
                                            threshold_for_rate)

    rng = np.random.default_rng(3)
    values = [None if i % 13 == 0 else float(rng.integers(0, 12)) / 4 for i in range(150)] + [float("nan")]
    fo_dataset.add_samples([fo.Sample(filepath=f"/faces/{i}.jpg", q=v) for i, v in enumerate(values)])
    loaded = distribution(fo_dataset, "q", steps=20, bins=7)
    fo_dataset.create_index("q")
    assert isinstance(sorted_scores(fo_dataset, "q"), _IndexedScores)
    assert distribution(fo_dataset, "q", steps=20, bins=7) == loaded
    by_quality = fo_dataset.sort_by("q").select_fields("q")  # the App's grid sorted: every sample, the index
    assert isinstance(sorted_scores(by_quality, "q"), _IndexedScores)
    assert distribution(by_quality, "q", steps=20, bins=7) == loaded
    assert not isinstance(sorted_scores(fo_dataset.sort_by("q").limit(100), "q"), _IndexedScores)  # not all

    scored = np.array([v for v in values if v is not None and v == v])
    assert (loaded.scored, loaded.unscored) == (len(scored), len(values) - len(scored))
    for i, (threshold, rejected) in enumerate(zip(loaded.thresholds, loaded.rejected)):
        assert threshold == threshold_for_rate(scored, i / 20) and rejected == np.sum(scored < threshold)
    assert loaded.counts == np.histogram(scored, bins=loaded.edges)[0].tolist()
    assert summarize(fo_dataset, "q", 1.1).rejected == summarize(fo_dataset.limit(10 ** 6), "q", 1.1).rejected \
        == np.sum(scored < 1.1)


def test_the_kept_and_rejected_stages_use_the_fields_index(faces):
    from fiftyone_faceqan.rejection import rejection_view

    faces.create_index("random_q")
    try:
        for mode in ("kept", "rejected"):
            pipeline = rejection_view(faces, "random_q", 0.5, mode)._pipeline()
            plan = faces._sample_collection.database.command("aggregate", faces._sample_collection_name,
                                                             pipeline=pipeline, explain=True)
            assert "IXSCAN" in str(plan) and "random_q_1" in str(plan), mode
    finally:
        faces.drop_index("random_q")


def test_tag_follows_the_threshold_and_kept_view_is_saved(faces):
    from fiftyone_faceqan.rejection import rejection_view, save_kept_view, tag_rejected

    try:
        assert tag_rejected(faces, "sharpness", 10 ** 9) == COUNT
        assert tag_rejected(faces, "sharpness", 0.0) == 1  # only the unscored sample is left tagged
        assert faces.match_tags(TAG).values("sharpness") == [None]
        name = save_kept_view(faces, "sharpness", 0.0, "  sharp enough ")
        assert name == "sharp enough"
        assert len(faces.load_saved_view(name)) == len(rejection_view(faces, "sharpness", 0.0, "kept")) == COUNT - 1
    finally:
        faces.untag_samples(TAG)
        faces.delete_saved_views()


def test_fnmr_at_threshold_matches_a_direct_count(faces):
    from itertools import combinations

    from fiftyone_faceqan.evaluation import load_evaluation
    from fiftyone_faceqan.rejection import fnmr_at_thresholds

    results = load_evaluation(faces, "eval_a")
    scored = faces.exists("sharpness")
    emb = np.stack(scored.values(results.config.embeddings_field))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels, q = scored.values("ground_truth.label"), np.array(scored.values("sharpness"))
    mated = [(a, b) for a, b in combinations(range(len(labels)), 2) if labels[a] == labels[b]]
    tau = results.info["tau"]
    thresholds = np.quantile(q, [0.0, 0.3, 0.6])
    for threshold, point in zip(thresholds, fnmr_at_thresholds(results.curves, "sharpness", thresholds)):
        left = [(a, b) for a, b in mated if min(q[a], q[b]) >= threshold]
        expected = np.mean([emb[a] @ emb[b] <= tau for a, b in left])
        assert point["fnmr"] == pytest.approx(expected, abs=1e-9)
        assert point["discarded"] == pytest.approx(1 - len(left) / len(mated))
    assert fnmr_at_thresholds(results.curves, "unknown", [0.5]) is None


# --- rejection panel ------------------------------------------------------------------------------------

def test_rejection_panel_slider_buttons_and_reload(faces):
    panel = AppPanel("faceqan_rejection", faces)
    panel.event("on_load")
    model = panel.model()
    assert model["mode"] == "all" and "sharpness" in model["fields"]
    panel.change("field", "sharpness", "on_change_field")
    assert panel.model()["rejected"] == round(0.1 * (COUNT - 1)) and panel.state["rate"] == 0.1
    assert sum(panel.data["histogram"][0]["y"]) == COUNT - 1

    panel.change("rate", 0.313, "on_change_rate")  # rounded to the slider step, then to what ties allow
    model = panel.model()
    assert model["rate"] == panel.state["rate"] == 0.31 and model["rejected"] == round(0.31 * (COUNT - 1))
    assert panel.stages == []  # the grid is not filtered until asked
    assert model["fnmr"]["eval_key"] == "eval_a"

    panel.event("show_kept")
    kept = COUNT - 1 - panel.model()["rejected"]
    assert panel.model()["mode"] == "kept" and len(panel.view()) == kept
    panel.change("rate", 0.6, "on_change_rate")  # while filtered, the grid follows the slider
    model = panel.model()
    assert len(panel.view()) == COUNT - 1 - model["rejected"] < kept
    assert min(panel.view().values("sharpness")) >= model["threshold"]

    reloaded = AppPanel("faceqan_rejection", faces, stages=panel.stages)  # browser reload: state is gone
    reloaded.event("on_load")
    assert {k: reloaded.model()[k] for k in ("field", "threshold", "mode", "rejected")} == \
        {k: model[k] for k in ("field", "threshold", "mode", "rejected")}
    assert reloaded.state["rate"] == round(model["rejected"] / (COUNT - 1), 2)  # the slider at the share

    panel.event("show_rejected")
    assert len(panel.view()) == panel.model()["rejected"] + 1
    panel.event("show_all")
    assert panel.stages == [] and panel.model()["mode"] == "all"


def test_rejection_panel_ignores_the_apps_late_and_repeated_events(faces):
    """The App lags behind the panel: a view event can still show the view from before the panel's
    set_view and bring the App's state from before the panel's last patch, and the slider's on_change comes
    back with the rate the panel wrote. None of these may change the model or the view (in the App they
    made the panel write old thresholds back and the grid flip between two views)."""
    panel = AppPanel("faceqan_rejection", faces)
    panel.event("on_load")
    panel.change("field", "sharpness", "on_change_field")
    panel.event("show_kept")
    old_stages, old_state, old_model = copy.deepcopy(panel.stages), copy.deepcopy(panel.state), panel.model()

    panel.hold_views = True
    panel.change("rate", 0.6, "on_change_rate")
    state, model = copy.deepcopy(panel.state), panel.model()
    assert len(panel.held) == 1 and model["threshold"] > old_model["threshold"]
    shown = f"rejects **{model['rejected']} of {COUNT - 1}**"

    for method, app_state, value in (("on_change_view", old_state, old_stages),  # from before the set_view
                                     ("on_change_rate", state, 0.6),               # the slider's value again
                                     ("on_change_rate", old_state, 0.6)):          # ... with the older state
        panel.state, count = copy.deepcopy(app_state), len(panel.triggered)
        panel.event(method, value=value)
        assert [name for name, _ in panel.triggered[count:]] == ["show_panel_output"], method
        assert shown in panel.properties()["summary_text"]["default"], method  # the model, not the state
    assert panel.held and panel.stages == old_stages and panel.model() == model

    panel.state = state
    count = len(panel.triggered)
    panel.release()  # the echo of the panel's own set_view: nothing to recompute, nothing to send
    assert [name for name, _ in panel.triggered[count:]] == ["show_panel_output"]
    after = panel.model()
    assert (after["threshold"], after["mode"], after["rate"], after["source"]) == \
        (model["threshold"], "kept", 0.6, model["source"])
    assert len(panel.view()) == COUNT - 1 - model["rejected"] < COUNT - 1 - old_model["rejected"]


def test_rejection_panel_follows_a_view_the_user_edits(faces):
    """A rejection stage the user writes into the view (here: another threshold) wins over the model."""
    from fiftyone_faceqan.rejection import rejection_view

    panel = AppPanel("faceqan_rejection", faces)
    panel.event("on_load")
    panel.change("field", "sharpness", "on_change_field")
    threshold = float(np.median(faces.exists("sharpness").values("sharpness")))
    panel.stages = rejection_view(faces, "sharpness", threshold, "rejected")._serialize()
    panel.event("on_change_view", value=panel.stages)
    model = panel.model()
    assert (model["threshold"], model["mode"]) == (threshold, "rejected")
    assert model["rejected"] == sum(v < threshold for v in faces.exists("sharpness").values("sharpness"))
    assert panel.state["rate"] == round(model["rejected"] / (COUNT - 1), 2)


def test_rejection_panel_tags_and_saves(faces):
    panel = AppPanel("faceqan_rejection", faces)
    panel.event("on_load")
    panel.change("field", "sharpness", "on_change_field")
    panel.change("rate", 0.5, "on_change_rate")
    rejected = panel.model()["rejected"]
    try:
        panel.event("tag")
        assert faces.count_sample_tags()[TAG] == rejected + 1
        panel.change("view_name", "kept faces", "on_change_view_name")
        panel.event("save")
        assert len(faces.load_saved_view("kept faces")) == COUNT - 1 - rejected
        assert ("reload_dataset", {}) in panel.triggered
    finally:
        faces.untag_samples(TAG)
        faces.delete_saved_views()


def test_rejection_panel_renders_slider_plot_and_buttons(faces):
    panel = AppPanel("faceqan_rejection", faces)
    panel.event("on_load")
    props = panel.properties()
    assert props["rate"]["view"]["name"] == "SliderView" and props["rate"]["view"]["value_format"] == "%"
    assert (props["rate"]["type"]["min"], props["rate"]["type"]["max"]) == (0, 1)  # a fraction; shown as %
    assert props["rate"]["on_change"].endswith("#on_change_rate")
    assert props["histogram"]["view"]["name"] == "PlotlyView" and props["histogram"]["view"]["width"] == "100%"
    buttons = props["buttons"]["type"]["properties"]
    assert {"show_kept", "show_rejected", "show_all", "tag"} <= set(buttons)


def test_rejection_panel_refuses_bad_inputs(faces):
    panel = AppPanel("faceqan_rejection", faces)
    panel.event("on_load")
    model = panel.model()
    for path, value, method in (("rate", 55, "on_change_rate"), ("rate", "x", "on_change_rate"),
                                ("field", "ground_truth", "on_change_field")):
        count = len(panel.triggered)
        panel.change(path, value, method)
        assert [name for name, _ in panel.triggered[count:]] == ["notify", "show_panel_output"], value
        assert panel.model() == model


def test_rejection_panel_per_face_field(faces):
    panel = AppPanel("faceqan_rejection", faces)
    panel.event("on_load")
    panel.change("field", "faces.detections.q", "on_change_field")
    panel.event("show_rejected")
    model = panel.model()
    assert model["table"]["unit"] == "faces" and model["fnmr"] is None
    assert panel.view().count("faces.detections") == model["rejected"]


def test_rejection_panel_shows_the_threshold_on_both_scales(fo_dataset):
    """A FaceQAN run with SFace's shipped calibration (cached real scores of 40 of our aligned LFW faces): the
    summary and the histogram's threshold line read the threshold as a unified score too (the knots it reaches,
    counted here), and a threshold where a score begins keeps exactly the faces with that score or more."""
    from faceqan.calibration import shipped
    from fiftyone_faceqan.rejection import rejection_view
    from lfw_data import aligned_scores, cached_faceqan_run

    calibration = shipped("sface")
    cached_faceqan_run(fo_dataset, aligned_scores(40), calibration=calibration)
    panel = AppPanel("faceqan_rejection", fo_dataset)
    panel.event("on_load")
    model = panel.model()
    assert model["field"] == "faceqan" and model["calibration"] == calibration.to_dict()
    level = int(np.sum(np.asarray(calibration.knots) <= model["threshold"]))
    assert f"Unified score (0-100) at the threshold: **{level}**" in panel.properties()["summary_text"]["default"]
    annotation = panel.properties()["histogram"]["view"]["layout"]["annotations"][0]
    assert annotation["text"] == f"threshold (unified score {level})"

    panel.stages = rejection_view(fo_dataset, "faceqan", calibration.threshold(50), "kept")._serialize()
    panel.event("on_change_view", value=panel.stages)
    assert "`faceqan_score >= 50` keeps exactly these samples" in panel.properties()["summary_text"]["default"]
    kept = len(panel.view())
    assert kept == len(fo_dataset.match(F("faceqan_score") >= 50)) and 0 < kept < 40
    assert panel.model()["rejected"] == 40 - kept


# --- ERC panel ------------------------------------------------------------------------------------------

def test_erc_panel_shows_curves_table_and_follows_new_runs(faces):
    from fiftyone_faceqan.evaluation import delete_evaluation, evaluate_quality, load_evaluation

    results = load_evaluation(faces, "eval_a")
    panel = AppPanel("faceqan_erc", faces)
    panel.event("on_load")
    assert panel.state["eval_key"] == "eval_a" and panel.state["curve"] == "edc"
    assert panel.state["info"]["tau"] == pytest.approx(results.info["tau"])
    names = [trace["name"] for trace in panel.data["plot"]]
    assert {"sharpness", "random_q", "random rejection", "theoretical best"} <= set(names)
    table = {row["measure"]: row for row in panel.data["pauc"]}
    raw = results.summary.set_index(["measure", "curve"]).loc[("sharpness", "edc"), "pauc_20"]
    assert table["sharpness"]["pauc_20"].startswith(f"{raw:.4f}")
    assert panel.properties()["plot"]["view"]["height"] == "420px"

    panel.change("curve", "erc", "on_change_curve")
    assert panel.data["plot"][0]["mode"] == "lines+markers"

    try:
        evaluate_quality(faces.exists("sharpness"), ["sharpness"], model="sface", eval_key="eval_b",
                         embeddings_field=results.config.embeddings_field)
        panel.state.pop("eval_key")  # as after a reload: the newest run is shown
        panel.event("refresh")
        assert panel.state["eval_keys"] == ["eval_a", "eval_b"] and panel.state["eval_key"] == "eval_b"
        panel.change("eval_key", "eval_a", "on_change_eval_key")
        assert panel.state["eval_key"] == "eval_a"
    finally:
        delete_evaluation(faces, "eval_b")


def test_erc_panel_without_evaluation_offers_the_operator(fo_dataset):
    import fiftyone as fo

    fo_dataset.add_sample(fo.Sample(filepath="/nonexistent/face.jpg"))
    panel = AppPanel("faceqan_erc", fo_dataset)
    panel.event("on_load")
    assert panel.state["eval_key"] is None and "evaluate" in panel.properties()
    panel.event("evaluate")
    prompt = dict(panel.triggered)["prompt_user_for_operation"]
    assert prompt["operator_uri"] == f"{PLUGIN}/evaluate_faceqan_quality"


def test_erc_panel_shows_a_split_run_group_by_group(faces):
    """A run split by a field: the group selector shows one group's own curves and pAUC, and the group table
    compares every group; going back to all samples shows the whole run again."""
    import json

    from fiftyone_faceqan import figure
    from fiftyone_faceqan.evaluation import delete_evaluation, evaluate_quality, load_evaluation
    from operators.panels.common import figure_traces

    names = sorted(set(faces.values("ground_truth.label")))
    halves = {name: "first" if i < len(names) // 2 else "second" for i, name in enumerate(names)}
    faces.set_values("half", [None if i == 1 else "alone" if i == 2 else halves[n]
                              for i, n in enumerate(faces.values("ground_truth.label"))])
    try:
        results = evaluate_quality(faces.exists("sharpness"), ["sharpness", "random_q"], model="sface", by="half",
                                   embeddings_field=load_evaluation(faces, "eval_a").config.embeddings_field,
                                   eval_key="eval_split", progress=False)
        panel = AppPanel("faceqan_erc", faces)
        panel.event("on_load")  # the newest run
        assert panel.state["eval_key"] == "eval_split" and panel.state["group"] == "all"
        assert [label for _, label in panel.state["group_choices"]] == ["all samples", "half = first",
                                                                        "half = second"]
        assert "split by `half` (1 without a value)" in panel.properties()["info_text"]["default"]
        rows = {row["group"]: row for row in panel.data["groups"]}
        assert rows["alone"]["note"].startswith("fewer than 2 samples") and "fnmr_0" not in rows["alone"]
        assert rows["first"]["note"] == rows["second"]["note"] == ""
        for group in ("first", "second"):
            alone = results.group(group)
            edc = alone.summary.set_index(["measure", "curve"])
            assert rows[group]["fnmr_0"] == f"{edc.loc[('sharpness', 'edc'), 'fnmr_0']:.4f}"
            assert rows[group]["measure_1"] == f"{edc.loc[('random_q', 'edc'), 'pauc_20_norm']:.3f}"
            assert rows[group]["samples"] == f"{alone.info['n_evaluated']} of {alone.info['n_samples']}"

        panel.change("group", json.dumps("second"), "on_change_group")
        second = results.group("second")
        assert panel.data["plot"] == figure_traces(figure(second.curves, "edc"))
        assert panel.state["info"]["tau"] == second.info["tau"] != results.info["tau"]
        assert "the group **half = second** alone" in panel.properties()["info_text"]["default"]
        pauc = {row["measure"]: row["pauc_20"] for row in panel.data["pauc"]}
        raw = second.summary.set_index(["measure", "curve"]).loc[("random_q", "edc"), "pauc_20"]
        assert pauc["random_q"].startswith(f"{raw:.4f}")
        panel.change("curve", "erc", "on_change_curve")  # the group stays chosen
        assert panel.data["plot"] == figure_traces(figure(second.curves, "erc"))
        panel.change("group", "all", "on_change_group")
        assert panel.data["plot"] == figure_traces(figure(results.curves, "erc"))
    finally:
        delete_evaluation(faces, "eval_split")
        faces.delete_sample_field("half")


def test_rejection_panel_shows_what_the_threshold_rejects_per_group(faces):
    """When the field's newest evaluation is split by a field, a button shows the share each group loses at the
    threshold (counted here in plain Python: no score, or a score below the threshold, is rejected); it is not
    shown for another threshold than the one it was computed at."""
    from fiftyone_faceqan.evaluation import delete_evaluation, evaluate_quality, load_evaluation

    names = sorted(set(faces.values("ground_truth.label")))
    halves = {name: "first" if i < len(names) // 2 else "second" for i, name in enumerate(names)}
    faces.set_values("half", [halves[n] for n in faces.values("ground_truth.label")])
    try:
        evaluate_quality(faces, ["sharpness"], model="sface", by="half", eval_key="eval_split_rejection",
                         embeddings_field=load_evaluation(faces, "eval_a").config.embeddings_field, progress=False)
        panel = AppPanel("faceqan_rejection", faces)
        panel.event("on_load")
        panel.change("field", "sharpness", "on_change_field")
        assert "groups_text" not in panel.properties()
        panel.event("split_by_group")
        threshold = panel.model()["threshold"]
        text = panel.properties()["groups_text"]["default"]
        for group in ("first", "second"):
            members = [q for q, h in zip(*faces.values(["sharpness", "half"])) if h == group]
            rejected = sum(q is None or q < threshold for q in members)
            assert f"| {group} | {len(members)} | {rejected} | {rejected / len(members):.1%} |" in text
        panel.change("rate", 0.5, "on_change_rate")
        assert "groups_text" not in panel.properties()
    finally:
        delete_evaluation(faces, "eval_split_rejection")
        faces.delete_sample_field("half")
