"""Per-identity curation on real LFW crops in the private database: identities from the folder names, the real
FaceQAN Q of each crop (SFace, defaults) from the committed cache benchmarks/results/lfw_erc_faceqan_sface.csv,
two faces whose scoring failed (None, with the reason in ``faceqan_error``) and one sample without an identity.
Identities have 1 to 8 crops, so best-K and min-per-identity meet identities with fewer. Per face, a
``faces`` Detections field holds each crop's Q on its face, and on every third sample a second face with the
Q of the identity's next crop. FaceQAN is not run. Expected values come from plain Python loops."""

from __future__ import annotations

import statistics
from collections import defaultdict

import pandas as pd
import pytest

from lfw_data import require_lfw
from test_fiftyone_operators import _form

CACHE = "benchmarks/results/lfw_erc_faceqan_sface.csv"
PER_IDENTITY = (1, 2, 3, 4, 5, 6, 7, 8, 8, 8)  # crops taken of ten identities
URI = "@faceqan/faceqan/curate_identities"


def _cached_scores():
    from conftest import REPO

    table = pd.read_csv(REPO / CACHE)
    table["identity"] = table["path"].str.split("/").str[0]
    groups = iter(table.sort_values("path").groupby("identity", sort=True))
    chosen = []
    for count in PER_IDENTITY:  # the first crops of the next identity (by name) that has enough
        group = next(group for _, group in groups if len(group) >= count)
        chosen.append(group.head(count))
    return pd.concat(chosen)


def build(fo, name: str, tie: bool = False):
    """The dataset; with ``tie`` the second crop of the 8-crop identities gets the third one's Q."""
    root = require_lfw()
    rows = _cached_scores()
    dataset = fo.Dataset(name)
    dataset.add_sample_field("faceqan", fo.FloatField)
    dataset.add_sample_field("faceqan_error", fo.StringField)
    samples = []
    for i, row in enumerate(rows.itertuples()):
        quality = None if i in (4, 11) else float(row.quality)
        following = rows[(rows.identity == row.identity) & (rows.path > row.path)].head(1)
        faces = [fo.Detection(label="face", bounding_box=[0.1, 0.1, 0.8, 0.8], faceqan=quality,
                              faceqan_error=None if quality is not None else "no face found")]
        if i % 3 == 0 and len(following):
            faces.append(fo.Detection(label="face", bounding_box=[0.0, 0.0, 0.3, 0.3],
                                      faceqan=float(following.quality.iloc[0]), faceqan_error=None))
        samples.append(fo.Sample(filepath=str(root / row.path), ground_truth=fo.Classification(label=row.identity),
                                 faceqan=quality, faceqan_error=None if quality is not None else "no face found",
                                 faces=fo.Detections(detections=faces)))
    samples.append(fo.Sample(filepath=str(root / rows.path.iloc[0]), faceqan=0.99, faces=fo.Detections()))
    dataset.add_samples(samples)
    dataset.add_dynamic_sample_fields()
    if tie:
        for name in [n for n, c in dataset.count_values("ground_truth.label").items() if c == 8]:
            group = dataset.match({"ground_truth.label": name}).sort_by("filepath")
            ids, values = group.values(["id", "faceqan"])
            dataset.set_values("faceqan", {ids[1]: values[2]}, key_field="id")
    return dataset


@pytest.fixture(scope="module")
def built(fo_database):
    """Built once; tests that only read (or must leave it as it was) use it directly."""
    dataset = build(fo_database, "curation")
    yield dataset
    dataset.delete()


@pytest.fixture
def lfw(built, request):
    """A copy of its own for a test that writes."""
    dataset = built.clone(f"curation-{request.node.name}"[:100])
    yield dataset
    dataset.delete()


def faces_of(samples, per_face=False):
    """(id, identity, quality) per sample, or per face."""
    if not per_face:
        return list(zip(*samples.values(["id", "ground_truth.label", "faceqan"])))
    out = []
    for identity, detections in zip(*samples.values(["ground_truth.label", "faces.detections"])):
        out += [(d.id, identity, d.faceqan) for d in detections or []]
    return out


def python_curation(faces, best_k=None, threshold=None, m=0):
    """The rules, one identity and one face at a time."""
    by_identity = defaultdict(list)
    for face_id, identity, quality in faces:
        if identity is not None:
            by_identity[identity].append((face_id, quality))
    kept = set()
    for members in by_identity.values():
        scored = sorted((f for f in members if f[1] is not None), key=lambda f: (-f[1], f[0]))
        for place, (face_id, quality) in enumerate(scored, start=1):
            if best_k is not None and place > best_k:
                break
            if threshold is None or quality >= threshold or place <= m:
                kept.add(face_id)
    return kept, by_identity


def python_rate_cut(values, rate):
    scored = sorted(v for v in values if v is not None)
    count = round(rate * len(scored))
    return scored[count] if count < len(scored) else None  # None: rejects all (checked apart)


def state(dataset):
    dataset.reload()
    return (dataset.count_sample_tags(), dataset.count_label_tags(), dict(dataset.info),
            dataset.list_saved_views(), sorted(dataset.get_field_schema(flat=True)))


def test_best_k_keeps_exactly_the_k_best_per_identity(lfw):
    """Run one after the other, so each run also replaces the tags of the one before."""
    from fiftyone_faceqan import curate_identities

    faces = faces_of(lfw)
    for best_k in (5, 1, 3):
        curation = curate_identities(lfw, "faceqan", best_k=best_k)
        expected, by_identity = python_curation(faces, best_k=best_k)
        assert set(lfw.match_tags("faceqan_curation_kept").values("id")) == expected == set(curation.kept_ids)
        kept_per = {name: sum(f[0] in expected for f in members) for name, members in by_identity.items()}
        scorable = {name: sum(f[1] is not None for f in members) for name, members in by_identity.items()}
        assert kept_per == {name: min(best_k, scorable[name]) for name in by_identity}
        assert best_k == 1 or any(scorable[name] < best_k for name in by_identity)  # identities with fewer occur
        dropped = set(lfw.match_tags("faceqan_curation_dropped").values("id"))
        assert dropped == {f[0] for f in faces} - expected and len(curation.dropped) == len(dropped)
        assert curation.counts["kept"] + curation.counts["dropped"] == len(lfw) == curation.counts["total"]
        assert curation.counts["no_identity"] == 1 and curation.counts["unscored"] == 2


def test_min_per_identity_holds_for_every_cut(built):
    """The guarantee, checked as a property, and the exact kept set, over quality cuts, rates and m."""
    from fiftyone_faceqan import curate_identities

    faces = faces_of(built)
    values = sorted(q for _, _, q in faces if q is not None)
    cuts = [{"min_quality": values[int(f * (len(values) - 1))]} for f in (0.0, 0.3, 0.7, 1.0)]
    cuts += [{"reject_rate": rate} for rate in (0.0, 0.25, 0.5, 0.9, 1.0)]
    for cut in cuts:
        for m in (0, 1, 2, 4):
            for best_k in (None, 6):
                curation = curate_identities(built, best_k=best_k, min_per_identity=m, tag=None, **cut)
                kept = set(curation.kept_ids)
                threshold = cut.get("min_quality", curation.threshold)
                if "reject_rate" in cut:
                    expected_cut = python_rate_cut([q for _, _, q in faces], cut["reject_rate"])
                    assert threshold == expected_cut or expected_cut is None and threshold > values[-1]
                _, by_identity = python_curation(faces)
                for members in by_identity.values():
                    scored = [f for f in members if f[1] is not None]
                    mine = [f for f in scored if f[0] in kept]
                    assert len(mine) >= min(m, len(scored))  # never below m while it has m scorable
                    assert best_k is None or len(mine) <= best_k
                    lowest_kept = min((q for _, q in mine), default=None)
                    assert all(q <= lowest_kept for i, q in scored if i not in kept and lowest_kept is not None)
                    above = sum(q >= threshold for _, q in scored)
                    assert len(mine) == min(best_k or len(scored), max(above, min(m, len(scored))))
                assert kept == python_curation(faces, best_k, threshold, m)[0]


def test_identities_left_short_are_flagged_and_tagged(lfw):
    from fiftyone_faceqan import curate_identities

    curation = curate_identities(lfw, best_k=4, min_quality=0.5, min_per_identity=3)
    _, by_identity = python_curation(faces_of(lfw))
    short = sorted(name for name, members in by_identity.items() if sum(q is not None for _, q in members) < 3)
    assert short and curation.short_identities == short == curation.summary.query("short")["identity"].tolist()
    assert curation.counts["short_identities"] == len(short)
    tagged = lfw.match_tags("faceqan_curation_short")
    assert sorted(set(tagged.values("ground_truth.label"))) == short
    assert len(tagged) == sum(len(by_identity[name]) for name in short)


def test_summary_equals_a_python_table(built):
    from fiftyone_faceqan import curate_identities

    curation = curate_identities(built, best_k=5, reject_rate=0.3, min_per_identity=2, tag=None)
    kept = set(curation.kept_ids)
    _, by_identity = python_curation(faces_of(built))
    rows = []
    for name in sorted(by_identity):
        scored = [q for _, q in by_identity[name] if q is not None]
        mine = [q for i, q in by_identity[name] if i in kept]
        rows.append({"identity": name, "count": len(by_identity[name]), "scorable": len(scored), "kept": len(mine),
                     "min_quality": min(scored, default=float("nan")),
                     "median_quality": statistics.median(scored) if scored else float("nan"),
                     "kept_min_quality": min(mine, default=float("nan")), "short": len(mine) < 2})
    pd.testing.assert_frame_equal(curation.summary, pd.DataFrame(rows), check_dtype=False)


def test_ties_are_broken_by_id(fo_database):
    from fiftyone_faceqan import curate_identities

    dataset = build(fo_database, "curation-ties", tie=True)
    try:
        name = next(n for n, c in dataset.count_values("ground_truth.label").items() if c == 8)
        group = dataset.match({"ground_truth.label": name})
        ids, values = group.values(["id", "faceqan"])
        tied = sorted(i for i, q in zip(ids, values) if values.count(q) == 2)
        tied_value = values[ids.index(tied[0])]
        place = sum(q > tied_value for q in values if q is not None) + 1  # the tied pair's first place
        for _ in range(2):
            kept = set(curate_identities(group, best_k=place, tag=None).kept_ids)
            assert tied[0] in kept and tied[1] not in kept
    finally:
        dataset.delete()


def test_per_face_curation_tags_faces_not_samples(lfw):
    """Also replaces what the same tag wrote before: per sample first, then per face with other rules."""
    from fiftyone_faceqan import curate_identities

    curate_identities(lfw, best_k=1)
    curate_identities(lfw, detections_field="faces", best_k=4)
    curation = curate_identities(lfw, detections_field="faces", best_k=2, min_quality=0.55, min_per_identity=1)
    faces = faces_of(lfw, per_face=True)
    expected, _ = python_curation(faces, 2, 0.55, 1)
    assert curation.unit == "faces" and set(curation.kept_ids) == expected
    assert curation.counts["total"] == len(faces) and curation.counts["unscored"] == 2
    tags = lfw.count_label_tags("faces")
    assert tags["faceqan_curation_kept"] == len(expected)
    assert tags["faceqan_curation_dropped"] == len(faces) - len(expected)
    assert lfw.count_sample_tags() == {}
    assert set(curation.kept.values("faces.detections.id", unwind=True)) == expected
    preview = curate_identities(lfw, detections_field="faces", best_k=2, min_quality=0.55, min_per_identity=1, tag=None)
    assert set(preview.dropped.values("faces.detections.id", unwind=True)) == {f[0] for f in faces} - expected


def test_curation_of_a_view_touches_only_the_view(lfw):
    from fiftyone import ViewField as F
    from fiftyone_faceqan import curate_identities

    names = sorted(n for n in lfw.distinct("ground_truth.label"))[:4]
    view = lfw.match(F("ground_truth.label").is_in(names))
    curation = curate_identities(view, best_k=2, min_per_identity=1)
    assert curation.counts["identities"] == 4 and curation.counts["total"] == len(view)
    assert set(lfw.match_tags(["faceqan_curation_kept", "faceqan_curation_dropped"]).values("id")) == \
        set(view.values("id"))
    assert set(curation.kept_ids) == python_curation(faces_of(view), best_k=2)[0]

    faces_view = lfw.filter_labels("faces", F("bounding_box")[0] > 0.05)  # the first face of each sample only
    per_face = curate_identities(faces_view, detections_field="faces", best_k=1, tag="first")
    assert per_face.counts["total"] == len(faces_of(faces_view, per_face=True)) < len(faces_of(lfw, per_face=True))
    assert sum(lfw.count_label_tags("faces").values()) == per_face.counts["total"]


def test_tags_of_users_are_refused_and_a_rerun_replaces_its_own(lfw):
    from fiftyone_faceqan import curate_identities

    lfw.take(3, seed=1).tag_samples("mine_kept")
    lfw.take(2, seed=2).tag_labels("mine_short", label_fields="faces")
    lfw.save_view("my view", lfw.limit(5))
    users = (lfw.count_sample_tags(), lfw.count_label_tags())
    for tag, view, message in [("mine", None, "already has the tag(s) ['mine_kept', 'mine_short']"),
                               ("ok", "my view", "saved view 'my view' that no curation made"),
                               ("ok", "My-View", "saved view 'my view' that no curation made")]:
        before = state(lfw)
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            curate_identities(lfw, best_k=2, tag=tag, saved_view=view)
        assert state(lfw) == before

    first = curate_identities(lfw, best_k=4, tag="set", saved_view="best faces")
    second = curate_identities(lfw, best_k=2, min_quality=0.6, min_per_identity=1, tag="set", saved_view="best faces")
    expected = python_curation(faces_of(lfw), 2, 0.6, 1)[0]
    assert set(first.kept_ids) > set(second.kept_ids) == expected
    assert set(lfw.match_tags("set_kept").values("id")) == expected
    assert set(lfw.load_saved_view("best faces").values("id")) == expected
    assert len(lfw.match_tags("set_dropped")) == len(lfw) - len(expected)
    assert lfw.count_sample_tags()["mine_kept"] == users[0]["mine_kept"] == 3
    assert lfw.count_label_tags()["mine_short"] == users[1]["mine_short"]
    assert len(lfw.load_saved_view("my view")) == 5 and len(lfw) == 53  # nothing deleted
    assert lfw.info["faceqan_curations"]["set"]["best_k"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"quality_field": "nope"}, "'nope' is not a numeric quality field"),
    ({"quality_field": "faces.detections.faceqan"}, "give the Detections field as detections_field"),
    ({"identity_field": "faceqan"}, "identity_field 'faceqan' must be a Classification or string field"),
    ({"detections_field": "ground_truth"}, "detections_field 'ground_truth' is not a Detections field"),
    ({"best_k": 0}, "best_k must be a whole number >= 1"),
    ({"best_k": 2.5}, "best_k must be a whole number >= 1"),
    ({"min_per_identity": -1}, "min_per_identity must be a whole number >= 0"),
    ({"best_k": 2, "min_per_identity": 3}, r"best_k \(2\) < min_per_identity \(3\)"),
    ({"min_quality": 0.5, "reject_rate": 0.1}, "give min_quality or reject_rate, not both"),
    ({"reject_rate": 1.5}, r"reject_rate must be a fraction in \[0, 1\]"),
    ({"min_quality": float("nan")}, "min_quality must be a finite number"),
    ({"tag": ""}, "tag must be a name"),
    ({"tag": "a\nb"}, "tag must be a name"),
    ({"tag": None, "saved_view": "v"}, "saved_view needs tag"),
    ({"saved_view": " "}, "saved_view must be a non-empty name"),
])
def test_bad_parameters_are_refused_before_anything_is_written(built, kwargs, message):
    from fiftyone_faceqan import curate_identities

    before = state(built)
    with pytest.raises(ValueError, match=message):
        curate_identities(built, **kwargs)
    assert state(built) == before


def test_operator_curates_and_shows_the_identity_table(lfw):
    import fiftyone.operators as foo

    params = {"quality": "faces.detections.faceqan", "identity_field": "ground_truth", "best_k": 3.0,
              "cut": "reject_rate", "reject_rate": 0.2, "min_per_identity": 2.0, "tag": "app", "saved_view": "kept"}
    form, validation = _form(URI, lfw, params)
    assert not validation.invalid
    assert form.type.properties["quality"].type.values == ["faceqan", "faces.detections.faceqan"]
    assert "ground_truth" in form.type.properties["identity_field"].type.values
    result = foo.execute_operator(URI, ctx={"dataset": lfw, "params": params})
    result.raise_exceptions()
    out = result.result
    faces = faces_of(lfw, per_face=True)
    threshold = python_rate_cut([q for _, _, q in faces], 0.2)
    expected = python_curation(faces, 3, threshold, 2)[0]
    assert (out["kept"], out["total"], out["threshold"]) == (len(expected), len(faces), threshold)
    assert lfw.count_label_tags("faces")["app_kept"] == len(expected) and "kept" in lfw.list_saved_views()
    table = out["table"]
    assert len(table) == out["identities"] == 10 and sum(row["kept"] for row in table) == len(expected)
    shorts = [row["short"] == "yes" for row in table]
    assert shorts == sorted(shorts, reverse=True) and shorts[0]  # short identities first
    assert all(row["min_quality"] is None for row in table if row["scorable"] == 0)
    record = lfw.info["faceqan_curations"]["app"]["counts"]
    assert record["short_identities"] == sum(shorts) == out["short_identities"]

    from fiftyone.operators.executor import ExecutionContext

    operator = foo.get_operator(URI)
    outputs = operator.resolve_type(ExecutionContext({"dataset_name": lfw.name, "params": params, "results": out}),
                                    "outputs").to_json()
    table_view = outputs["type"]["properties"]["table"]["view"]
    assert table_view["name"] == "TableView"
    assert [column["key"] for column in table_view["columns"]] == list(table[0])


@pytest.mark.parametrize("params, reason", [
    ({"cut": "min_quality"}, "give the minimum quality"),
    ({"best_k": 1.0, "min_per_identity": 2.0}, "best_k (1) < min_per_identity (2)"),
    ({"tag": "mine"}, "already has the tag(s) ['mine_kept']"),
    ({"quality": 3}, "quality must be text"),
    ({"cut": "$where"}, "cut must be one of"),
])
def test_operator_refuses_an_invalid_form(lfw, params, reason):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    lfw.take(1).tag_samples("mine_kept")
    before = state(lfw)
    form, validation = _form(URI, lfw, params)
    assert validation.invalid and reason in form.type.properties["invalid"].error_message
    with pytest.raises(ExecutionError, match="Validation error"):
        foo.execute_operator(URI, ctx={"dataset": lfw, "params": params})
    assert state(lfw) == before
