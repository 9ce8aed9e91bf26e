"""Rejection effects per group (issue #15) on a real FiftyOne database with 220 real LFW crops of the ERC
subset's first 40 identities: their FaceQAN scores and SFace embeddings come from the committed benchmark
cache (made by this engine), so no model runs here. Splits: ``images``, an int field (how many images the
identity has in the ERC subset), and ``session``, a Classification with a one-identity group, a one-sample
group and samples without a value. A group's stored results must equal a separate evaluation of that
group's samples, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lfw_data import require_lfw

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
IDENTITIES = 40
STORED = {"model": None, "embeddings_field": "embedding", "progress": False}  # the cached embeddings


def _session(person: int, image: int) -> str | None:
    """Two large sessions, one of a single identity (no non-mated pair), one of a single sample, and the
    last identity's other images without a session."""
    if person < 19:
        return "morning"
    if person < 38:
        return "evening"
    if person == 38:
        return "solo"
    return "single" if image == 0 else None


@pytest.fixture(scope="module")
def faces(fo_database):
    import fiftyone as fo
    from faceqan.baselines import random_quality

    root = require_lfw()
    paths = (RESULTS / "lfw_erc_emb_sface.paths.txt").read_text().split()
    embeddings = np.load(RESULTS / "lfw_erc_emb_sface.npy")
    scores = pd.read_csv(RESULTS / "lfw_erc_faceqan_sface.csv")
    assert scores["path"].tolist() == paths and len(embeddings) == len(paths)
    people = [p.split("/")[0] for p in paths]
    chosen = sorted(set(people))[:IDENTITIES]
    rows = [i for i, name in enumerate(people) if name in chosen]
    random = random_quality(len(rows), seed=3)
    samples = []
    for i, r in zip(rows, random):
        person, image = chosen.index(people[i]), i - people.index(people[i])  # paths are sorted by identity
        session, q = _session(person, image), float(scores["quality"][i])
        faces = [fo.Detection(label="face", bounding_box=[0.1, 0.1, 0.8, 0.8], q=q, pose="frontal")]
        if image % 3 == 1:  # a second, unscored face in profile
            faces.append(fo.Detection(label="face", bounding_box=[0.0, 0.0, 0.2, 0.2], q=None, pose="profile"))
        samples.append(fo.Sample(filepath=str(root / paths[i]), ground_truth=fo.Classification(label=people[i]),
                                 faceqan=q, random=float(r), images=people.count(people[i]), embedding=embeddings[i],
                                 session=session and fo.Classification(label=session), file=Path(paths[i]).name,
                                 faces=fo.Detections(detections=faces)))
    dataset = fo.Dataset("faceqan-groups")
    dataset.add_samples(samples, progress=False)
    dataset.add_dynamic_sample_fields()
    dataset.add_sample_field("empty", fo.StringField)  # a field without values
    yield dataset
    dataset.delete()


@pytest.fixture(scope="module")
def by_images(faces):
    from fiftyone_faceqan.evaluation import evaluate_quality

    return evaluate_quality(faces, ["faceqan", "random"], fmr=1e-4, by="images", seed=7, eval_key="by_images",
                            **STORED)


def _assert_same(found, expected):
    for name in ("curves", "summary", "intervals", "differences"):
        a, b = getattr(found, name), getattr(expected, name)
        assert (a is None) == (b is None), name
        if a is not None:
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    for key in ("n_samples", "n_evaluated", "excluded", "pairs_dropped", "n_mated", "n_non_mated",
                "non_mated_sampled", "tau"):
        assert found.info[key] == expected.info[key], key
    assert found.info["resamples"] == expected.config.resamples


@pytest.mark.parametrize("sample", [None, 300])  # all non-mated pairs; a seeded sample of 300 in each group
def test_a_groups_results_are_those_of_the_group_alone(faces, by_images, sample):
    import fiftyone as fo
    from fiftyone_faceqan.evaluation import evaluate_quality

    results = by_images if sample is None else evaluate_quality(
        faces, ["faceqan", "random"], fmr=1e-4, by="images", non_mated_sample=sample, seed=7, eval_key="sampled",
        **STORED)
    groups = results.groups
    assert groups["group"].tolist() == [4, 5, 6, 7, 8] and groups["skipped"].isna().all()
    assert groups["n_samples"].sum() == len(faces) and results.info["by_missing"] == 0
    for value in groups["group"]:
        alone = evaluate_quality(faces.match(fo.ViewField("images") == value), ["faceqan", "random"], fmr=1e-4,
                                 non_mated_sample=sample, seed=7, eval_key="alone", **STORED)
        _assert_same(results.group(value), alone)
        assert alone.info["n_samples"] == value * len(set(alone.samples.values("ground_truth.label")))
    assert results.group(4).info["non_mated_sampled"] == (sample is not None)
    summary = results.group_summary
    assert summary.columns[0] == "group" and set(summary["group"]) == {4, 5, 6, 7, 8}
    whole = evaluate_quality(faces, ["faceqan", "random"], fmr=1e-4, non_mated_sample=sample, seed=7,
                             eval_key="whole", **STORED)
    pd.testing.assert_frame_equal(results.summary, whole.summary, check_exact=True)  # the split changes nothing


def test_a_pairs_file_split_compares_the_pairs_inside_each_group(faces, tmp_path):
    """With a protocol file a group compares the listed pairs with both images in it (the others are dropped
    there and counted), as the group's evaluation with the same file does."""
    import fiftyone as fo
    from fiftyone_faceqan.evaluation import evaluate_quality

    names = sorted(set(faces.values("ground_truth.label")))
    lines = [f"{n} 1 2" for n in names] + [f"{a} 1 {b} 2" for a, b in zip(names, names[1:])]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"1 {len(lines)}\n" + "\n".join(lines) + "\n")
    results = evaluate_quality(faces, ["faceqan"], pairs=str(pairs), fmr=0.05, by="images", eval_key="protocol",
                               **STORED)
    for value in (4, 8):
        alone = evaluate_quality(faces.match(fo.ViewField("images") == value), ["faceqan"], pairs=str(pairs),
                                 fmr=0.05, eval_key="alone", **STORED)
        _assert_same(results.group(value), alone)
        assert 0 < alone.info["pairs_dropped"] < len(lines) and alone.intervals is None


def test_missing_values_and_groups_too_small(faces):
    from fiftyone_faceqan.evaluation import evaluate_quality

    results = evaluate_quality(faces, ["faceqan"], by="session", eval_key="by_session", **STORED)
    groups = results.groups.set_index("group")
    missing = sum(v is None for v in faces.values("session"))
    assert results.info["by"] == "session" and results.info["by_missing"] == missing > 0
    assert groups["n_samples"].sum() + missing == len(faces) == results.info["n_evaluated"]
    assert groups.index.tolist() == ["evening", "morning", "single", "solo"]
    assert groups.loc["solo", "skipped"] == "no non-mated comparison: a single identity"
    assert groups.loc["single", "skipped"].startswith("fewer than 2 samples")
    assert groups.loc[["evening", "morning"], "skipped"].isna().all()
    with pytest.raises(ValueError, match="group 'solo' was not evaluated: no non-mated"):
        results.group("solo")
    with pytest.raises(ValueError, match="no group 'noon'"):
        results.group("noon")
    assert set(results.group_summary["group"]) == {"evening", "morning"}


def test_samples_excluded_in_a_group_are_counted_there(faces):
    import fiftyone as fo
    from fiftyone_faceqan.evaluation import evaluate_quality

    four = faces.match(fo.ViewField("images") == 4)
    failed = four.limit(3).values("id")
    faces.set_values("partial", {i: None if i in failed else q for i, q in zip(*faces.values(["id", "faceqan"]))},
                     key_field="id")
    try:
        results = evaluate_quality(faces, ["partial"], by="images", eval_key="partial", resamples=0, **STORED)
        groups = results.groups.set_index("group")
        assert groups.loc[4, "excluded"] == 3 and groups.loc[4, "n_evaluated"] == groups.loc[4, "n_samples"] - 3
        assert (groups.drop(index=4)["excluded"] == 0).all()
        alone = evaluate_quality(four, ["partial"], eval_key="alone", resamples=0, **STORED)
        _assert_same(results.group(4), alone)
    finally:
        faces.delete_sample_field("partial")


def test_reloaded_groups_equal_the_stored_ones(faces, by_images):
    from fiftyone_faceqan.evaluation import load_evaluation

    faces.reload()
    again = load_evaluation(faces, "by_images", cache=False)
    assert again is not by_images and again.config.by == "images" and again.info == by_images.info
    pd.testing.assert_frame_equal(again.groups, by_images.groups, check_exact=True)
    pd.testing.assert_frame_equal(again.group_summary, by_images.group_summary, check_exact=True)
    for value in (4, 8):
        for name in ("curves", "summary", "intervals", "differences"):
            pd.testing.assert_frame_equal(getattr(again.group(value), name), getattr(by_images.group(value), name),
                                          check_exact=True)
    assert "images = 4" in again.group(4).plot().layout.title.text
    assert np.isfinite(again.group(4).intervals["pauc_20_norm_lo"]).all()  # errors in the group: an interval


@pytest.mark.parametrize("by, message", [
    ("nope", "by must be a categorical field"),
    ("faceqan", "by must be a categorical field"),  # a float field
    ("filepath", "by must be a categorical field"),  # a built-in field
    ("faces", "by must be a categorical field"),  # labels, not a value
    ("ground_truth", "is the identity"),
    ("file", "has 220 values here, more than 50: it is not categorical"),
    ("empty", "has no value on any sample"),
])
def test_a_bad_by_field_is_refused_before_any_work(faces, by, message):
    from fiftyone_faceqan.evaluation import evaluate_quality

    runs, fields = faces.list_brain_runs(), set(faces.get_field_schema())
    with pytest.raises(ValueError, match=message):  # model and a new field: embeddings would be computed first
        evaluate_quality(faces, ["faceqan"], by=by, model="sface", embeddings_field="fresh", eval_key="bad",
                         progress=False)
    assert faces.list_brain_runs() == runs and set(faces.get_field_schema()) == fields


def _by_hand(values, keys, threshold) -> list[dict]:
    """The expected rows, counted one sample (face) at a time: groups sorted, then those without a value."""
    table = {}
    for key, q in zip(keys, values):
        count, scored, rejected = table.get(key, (0, 0, 0))
        has_score = q is not None and not np.isnan(q)
        table[key] = (count + 1, scored + has_score, rejected + (not has_score or q < threshold))
    order = sorted(k for k in table if k is not None) + ([None] if None in table else [])
    return [{"group": k, "count": table[k][0], "scored": table[k][1], "rejected": table[k][2],
             "share_rejected": table[k][2] / table[k][0]} for k in order]


def test_rejection_by_group_counts_as_by_hand(faces):
    from fiftyone_faceqan import rejection_by_group

    threshold = float(np.quantile(faces.values("faceqan"), 0.3))
    faces.set_values("q_some", [None if i % 7 == 0 else q for i, q in enumerate(faces.values("faceqan"))])
    faces.set_values("odd", [i % 2 == 1 for i in range(len(faces))])
    try:
        for field, by, path in (("faceqan", "images", "images"), ("q_some", "session", "session.label"),
                                ("q_some", "odd", "odd"), ("q_some", "images", "images")):
            frame = rejection_by_group(faces, field, by, threshold)
            assert frame.to_dict("records") == _by_hand(faces.values(field), faces.values(path), threshold)
        assert frame["rejected"].sum() == len(faces) - len(faces.match({"q_some": {"$gte": threshold}}))
        assert rejection_by_group(faces, "q_some", "session", threshold)["group"].iloc[-1] is None
    finally:
        faces.delete_sample_fields(["q_some", "odd"])


def test_rejection_by_group_of_faces(faces):
    from fiftyone_faceqan import rejection_by_group

    threshold = float(np.median(faces.values("faceqan")))
    q, pose = faces.values("faces.detections.q"), faces.values("faces.detections.pose")
    scores = [v for face in q for v in face]
    by_pose = rejection_by_group(faces, "faces.detections.q", "faces.detections.pose", threshold)
    assert by_pose.to_dict("records") == _by_hand(scores, [p for face in pose for p in face], threshold)
    assert by_pose["group"].tolist() == ["frontal", "profile"] and by_pose["share_rejected"].iloc[1] == 1.0
    sessions = [s for face, s in zip(q, faces.values("session.label")) for _ in face]
    by_session = rejection_by_group(faces, "faces.detections.q", "session", threshold)
    assert by_session.to_dict("records") == _by_hand(scores, sessions, threshold)


@pytest.mark.parametrize("args, message", [
    (("faceqan", "images", float("nan")), "threshold must be a number"),
    (("faceqan", "images", True), "threshold must be a number"),
    (("session", "images", 0.5), "not a numeric quality field"),
    (("faceqan", "file", 0.5), "more than 50"),
    (("faceqan", "faces.detections.pose", 0.5), "by must be a categorical field"),  # faces, for a sample score
])
def test_rejection_by_group_refuses_bad_parameters(faces, args, message):
    from fiftyone_faceqan import rejection_by_group

    with pytest.raises(ValueError, match=message):
        rejection_by_group(faces, *args)


def _operator_uri():
    import fiftyone.operators as foo

    return next(op.uri for op in foo.list_operators() if op.name == "evaluate_faceqan_quality")


def test_operator_splits_by_a_chosen_field(faces, by_images):
    import asyncio

    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError, resolve_type
    from fiftyone_faceqan.evaluation import load_evaluation

    uri = _operator_uri()
    params = {"quality_fields": ["faceqan", "random"], "identity_field": "ground_truth", "model": "sface",
              "eval_key": "from_app", "fmr": 1e-4, "embeddings_field": "embedding", "by": "images"}
    form = asyncio.run(resolve_type(foo.OperatorRegistry(), uri, {"dataset_name": faces.name, "params": params}))
    assert form.type.properties["by"].type.values == ["empty", "file", "images", "session"]  # not the identity
    done = foo.execute_operator(uri, ctx={"view": faces.view(), "params": params})
    assert done.result["groups"] == 5
    stored = load_evaluation(faces, "from_app", cache=False)
    pd.testing.assert_frame_equal(stored.group_summary, by_images.group_summary, check_exact=True)

    bad = {**params, "by": "file", "eval_key": "refused"}
    form = asyncio.run(resolve_type(foo.OperatorRegistry(), uri, {"dataset_name": faces.name, "params": bad}))
    assert "more than 50" in form.type.properties["invalid"].error_message
    with pytest.raises(ExecutionError, match="more than 50"):
        foo.execute_operator(uri, ctx={"view": faces.view(), "params": bad})
    assert "refused" not in faces.list_brain_runs()


def test_a_faceqan_runs_own_fields_are_never_offered_as_identity_or_group(fo_dataset):
    import asyncio

    import fiftyone as fo
    import fiftyone.operators as foo
    from fiftyone.operators.executor import resolve_type
    from lfw_data import aligned_scores, cached_faceqan_run

    from fiftyone_faceqan.groups import categorical_fields

    cached_faceqan_run(fo_dataset, aligned_scores(2))  # faceqan, its parts, faceqan_error and faceqan_run
    fo_dataset.add_sample_field("person", fo.StringField)
    assert {"faceqan_error", "faceqan_run"} <= set(fo_dataset.get_field_schema())
    assert categorical_fields(fo_dataset) == ["person"]
    form = asyncio.run(resolve_type(foo.OperatorRegistry(), _operator_uri(),
                                    {"dataset_name": fo_dataset.name, "params": {"quality_fields": ["faceqan"]}}))
    assert form.type.properties["identity_field"].type.values == ["person"]
