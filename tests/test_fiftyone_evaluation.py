"""evaluate_quality on a real FiftyOne database with 30 real LFW crops of 6 identities: the stored run
equals an independent metrics computation, reloads unchanged, reuses its embeddings, excludes failed
samples, and deletion removes what it created. Quality fields hold fast real baselines (sharpness, a
seeded random score), so no FaceQAN scoring is needed here."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lfw_data import require_lfw

COUNT = 30  # the first 30 images of the ERC subset: 6 identities with 3 to 8 images each
SHARED = {"embeddings_field": "base_embedding"}  # computed once by the ``base`` fixture, reused by most tests


@pytest.fixture(scope="module")
def lfw_files():
    root = require_lfw()
    return [root / rel for rel in (root / "erc_subset.txt").read_text().split()[:COUNT]]


@pytest.fixture(scope="module")
def reference(lfw_files):
    """What the evaluation must reproduce, computed without FiftyOne: SFace embeddings and baselines."""
    from faceqan.baselines import random_quality, sharpness
    from faceqan.models import load_model
    from faceqan.pipeline import embed_files

    paths = [str(p) for p in lfw_files]
    return {"embeddings": embed_files(paths, load_model("sface")),
            "sharpness": sharpness(paths), "random": random_quality(len(paths), seed=3),
            "identity": [p.parent.name for p in lfw_files]}


@pytest.fixture(scope="module")
def faces(fo_database, lfw_files, reference):
    """One dataset for the module; each test evaluates under its own key."""
    fo = fo_database
    dataset = fo.Dataset("faceqan-evaluation-tests")
    dataset.add_samples([
        fo.Sample(filepath=str(p), ground_truth=fo.Classification(label=name), person=name,
                  sharpness=float(s), random=float(r))
        for p, name, s, r in zip(lfw_files, reference["identity"], reference["sharpness"], reference["random"])])
    yield dataset
    dataset.delete()


@pytest.fixture(scope="module")
def base(faces):
    """The first evaluation: computes the SFace embeddings into ``base_embedding``."""
    from fiftyone_faceqan.evaluation import evaluate_quality

    return evaluate_quality(faces, ["sharpness", "random"], eval_key="base")


def _mated_count(labels) -> int:
    return sum(a == b for a, b in combinations(labels, 2))


def test_results_equal_independent_metrics(faces, reference, base):
    from faceqan.metrics import Comparisons, evaluate

    results = base
    expected = evaluate(Comparisons.from_labels(reference["embeddings"], reference["identity"]),
                        {"sharpness": reference["sharpness"], "random": reference["random"]})
    pd.testing.assert_frame_equal(results.summary, expected.summary, rtol=1e-5)
    pd.testing.assert_frame_equal(results.curves, expected.curves, rtol=1e-5)
    info = results.info
    assert info["n_evaluated"] == COUNT and info["excluded"]["samples"] == 0
    assert info["n_mated"] == _mated_count(reference["identity"])
    assert info["n_non_mated"] == COUNT * (COUNT - 1) // 2 - info["n_mated"]
    assert info["embeddings_computed"] == COUNT and info["model"] == "sface"
    stored = np.stack(faces.values("base_embedding"))
    np.testing.assert_allclose(stored, reference["embeddings"], rtol=1e-5, atol=1e-6)
    assert set(results.summary["measure"]) >= {"sharpness", "random", "random rejection", "theoretical best"}


def test_results_carry_identity_bootstrap_intervals(faces, reference, base):
    """SFace (and dlib-resnet) verify these 30 crops without an error, which leaves every interval NaN; so the
    comparisons use the SFace embeddings with seeded noise (10 of 66 mated pairs fail at FMR 5 %)."""
    import fiftyone as fo

    from faceqan.metrics import Comparisons, bootstrap_pauc
    from fiftyone_faceqan.evaluation import evaluate_quality

    unit = reference["embeddings"] / np.linalg.norm(reference["embeddings"], axis=1, keepdims=True)
    noisy = unit + np.random.default_rng(0).normal(0.0, 0.1, unit.shape)
    faces.add_sample_field("noisy_embedding", fo.VectorField)
    faces.set_values("noisy_embedding", list(noisy))
    results = evaluate_quality(faces, ["sharpness", "random"], eval_key="intervals", fmr=0.05, model=None,
                               embeddings_field="noisy_embedding")
    comparisons = Comparisons.from_labels(noisy, reference["identity"])
    qualities = {"sharpness": reference["sharpness"], "random": reference["random"]}
    boot = bootstrap_pauc(comparisons, qualities, reference["identity"], results.info["tau"], resamples=1000)
    assert np.isfinite(boot.table()[["pauc_20_norm_lo", "pauc_20_norm_hi"]].to_numpy()).all()
    pd.testing.assert_frame_equal(results.intervals, boot.table(), rtol=1e-5)
    row = results.differences.iloc[0]
    assert (row["a"], row["b"]) == ("sharpness", "random") and len(base.differences) == 1
    assert (row["difference"], row["lo"], row["hi"]) == pytest.approx(boot.difference("sharpness", "random"),
                                                                      rel=1e-5)
    assert row["lo"] <= row["difference"] <= row["hi"]


def test_stored_run_reloads_without_recomputation(faces, base):
    from fiftyone_faceqan.evaluation import evaluate_quality, list_evaluations, load_evaluation

    original = evaluate_quality(faces, ["sharpness"], eval_key="reload", fmr=0.01, discard_limits=(0.2, 0.3),
                                **SHARED)
    faces.reload()
    again = load_evaluation(faces, "reload", cache=False)  # read back from the database, not the session cache
    assert again is not original
    pd.testing.assert_frame_equal(again.curves, original.curves)
    pd.testing.assert_frame_equal(again.summary, original.summary)
    assert again.info == original.info
    assert again.config.fmr == 0.01 and again.config.discard_limits == [0.2, 0.3]
    assert {"pauc_20", "pauc_20_norm", "pauc_30_norm"} <= set(again.summary.columns)
    pd.testing.assert_frame_equal(again.intervals, original.intervals)
    assert again.differences is None and original.differences is None  # one field: nothing to compare
    assert again.config.resamples == 1000
    assert "reload" in list_evaluations(faces)


def test_rerun_reuses_embeddings_without_loading_the_model(faces, monkeypatch):
    import fiftyone_faceqan.evaluation as evaluation

    first = evaluation.evaluate_quality(faces, ["sharpness"], eval_key="reuse")
    before = np.stack(faces.values("reuse_embedding"))

    def refuse(*args, **kwargs):
        raise AssertionError("the comparison model was requested although every embedding is stored")

    monkeypatch.setattr(evaluation, "comparison_model", refuse)
    second = evaluation.evaluate_quality(faces, ["sharpness", "random"], eval_key="reuse")
    assert first.info["embeddings_computed"] == COUNT and second.info["embeddings_computed"] == 0
    np.testing.assert_array_equal(np.stack(faces.values("reuse_embedding")), before)
    pd.testing.assert_frame_equal(second.summary[second.summary["measure"] == "sharpness"].reset_index(drop=True),
                                  first.summary[first.summary["measure"] == "sharpness"].reset_index(drop=True))
    # another evaluation may share the stored embeddings by naming the field
    shared = evaluation.evaluate_quality(faces, ["random"], eval_key="shared", embeddings_field="reuse_embedding",
                                         model=None)
    assert shared.info["embeddings_computed"] == 0 and shared.info["model"] == "sface"


def test_failed_samples_are_excluded_and_counted(faces, reference, base):
    from fiftyone_faceqan.evaluation import evaluate_quality

    failed = faces.limit(4)  # the first identity (4 images) loses 3 quality values
    failed.set_values("partial", [None, None, None, 0.5])
    faces.skip(4).set_values("partial", [float(s) for s in reference["sharpness"][4:]])
    results = evaluate_quality(faces, ["sharpness", "partial"], eval_key="failures", **SHARED)
    info = results.info
    assert info["excluded"]["missing_quality"] == {"sharpness": 0, "partial": 3}
    assert info["excluded"]["samples"] == 3 and info["n_evaluated"] == COUNT - 3
    assert info["n_mated"] == _mated_count(reference["identity"][3:])
    assert info["n_non_mated"] == (COUNT - 3) * (COUNT - 4) // 2 - info["n_mated"]

    faces.set_values("partial_person", [None] + reference["identity"][1:])  # one sample without identity
    results = evaluate_quality(faces, ["sharpness"], identity_field="partial_person", eval_key="no_name", **SHARED)
    assert results.info["excluded"]["missing_identity"] == 1 and results.info["n_evaluated"] == COUNT - 1


def test_pairs_file_and_string_identity(faces, reference, base, tmp_path):
    from fiftyone_faceqan.evaluation import evaluate_quality

    ids = reference["identity"]
    names = list(dict.fromkeys(ids))  # every person's images 1 and 2 are in the dataset
    lines = [f"{n} 1 2" for n in names] + [f"{a} 1 {b} 2" for a, b in zip(names, names[1:])]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1 6\n" + "\n".join(lines) + "\n")
    results = evaluate_quality(faces, ["sharpness"], pairs=str(pairs), eval_key="protocol", **SHARED)
    assert (results.info["n_mated"], results.info["n_non_mated"]) == (len(names), len(names) - 1)
    assert results.intervals is None and results.differences is None  # a protocol file has no identities

    sampled = evaluate_quality(faces, ["sharpness"], identity_field="person", non_mated_sample=50, seed=1,
                               eval_key="sampled", **SHARED)
    assert (sampled.info["n_mated"], sampled.info["n_non_mated"]) == (_mated_count(ids), 50)
    assert sampled.info["embeddings_computed"] == 0


def test_non_mated_pairs_at_most_the_sample_size_and_seeded(faces, reference, base):
    """non_mated_sample is the most non-mated pairs compared: more than exist compares all of them (as the
    exhaustive run does), fewer draws a seeded sample; every mated pair is compared either way."""
    from fiftyone_faceqan.evaluation import MAX_NON_MATED, evaluate_quality

    exhaustive = evaluate_quality(faces, ["sharpness"], non_mated_sample=None, eval_key="all_pairs", **SHARED)
    capped = evaluate_quality(faces, ["sharpness"], non_mated_sample=10**9, eval_key="capped", **SHARED)
    pd.testing.assert_frame_equal(capped.summary, exhaustive.summary)
    assert capped.info["n_non_mated"] == exhaustive.info["n_non_mated"] == 369
    assert not capped.info["non_mated_sampled"] and capped.config.non_mated_sample == 10**9
    assert base.config.non_mated_sample == MAX_NON_MATED and not base.info["non_mated_sampled"]

    first, again, other = (evaluate_quality(faces, ["sharpness"], non_mated_sample=100, seed=seed, resamples=0,
                                            eval_key=f"sample_{i}", **SHARED) for i, seed in enumerate((4, 4, 5)))
    assert first.info["non_mated_sampled"] and first.info["n_non_mated"] == 100
    assert first.info["n_mated"] == exhaustive.info["n_mated"] == _mated_count(reference["identity"])
    pd.testing.assert_frame_equal(first.curves, again.curves)
    assert not first.curves.equals(other.curves)  # another seed, other pairs


def test_stored_vectors_are_read_into_one_matrix(fo_database):
    from fiftyone.core.utils import serialize_numpy_array

    from fiftyone_faceqan.evaluation import _matrix

    rows = np.random.default_rng(0).normal(size=(4, 8))
    stored = [serialize_numpy_array(rows[0].astype(np.float32)), None, serialize_numpy_array(rows[2]),
              list(rows[3])]  # float32 and float64 as FiftyOne stores them, a missing one, a raw list
    matrix, present = _matrix(stored)
    assert matrix.dtype == np.float32 and present.tolist() == [True, False, True, True]
    np.testing.assert_allclose(matrix[[0, 2, 3]], rows[[0, 2, 3]], rtol=1e-6)
    assert not matrix[1].any()


def test_default_resamples_shrink_with_many_mated_pairs(base):
    from fiftyone_faceqan.evaluation import _resamples

    assert base.config.resamples == 1000 and _resamples(None, 4802) == 1000  # LFW's ERC subset
    assert _resamples(None, 10**7) == 200 and _resamples(None, 10**9) == 200  # 10^6 images: 200, never fewer
    assert _resamples(17, 10**7) == 17  # asked for: as asked


def test_delete_removes_run_and_the_field_it_created(faces):
    from fiftyone_faceqan.evaluation import delete_evaluation, evaluate_quality, list_evaluations

    few = faces.limit(8)  # two identities: a run on a view, and cheap to embed
    evaluate_quality(few, ["sharpness"], eval_key="doomed")
    evaluate_quality(few, ["random"], eval_key="borrower", embeddings_field="doomed_embedding")
    delete_evaluation(faces, "borrower")  # only reused the field: it stays
    assert faces.has_sample_field("doomed_embedding")
    delete_evaluation(faces, "doomed")
    assert not faces.has_sample_field("doomed_embedding")
    assert not {"doomed", "borrower"} & set(list_evaluations(faces))
    with pytest.raises(ValueError, match="no FaceQAN evaluation 'doomed'"):
        delete_evaluation(faces, "doomed")


@pytest.mark.parametrize("kwargs, message", [
    ({"quality_fields": []}, "at least one numeric field"),
    ({"quality_fields": ["filepath"]}, "not a numeric sample field"),
    ({"quality_fields": ["nope"]}, "not a numeric sample field"),
    ({"identity_field": "sharpness"}, "must be a Classification or string field"),
    ({"fmr": 0}, "fmr must be a fraction"),
    ({"fmr": 1.5}, "fmr must be a fraction"),
    ({"discard_limits": (0.2, 1.5)}, "discard_limits"),
    ({"eval_key": "not a key"}, "eval_key must be a valid identifier"),
    ({"model": "nosuchnet"}, "unknown model 'nosuchnet'"),
    ({"non_mated_sample": 0}, "non_mated_sample"),
    ({"pairs": "/no/such/pairs.txt"}, "pairs file not found"),
    ({"resamples": -1}, "resamples must be"),
    ({"model": None, "embeddings_field": "absent_field"}, "does not exist; give model"),
    ({"embeddings_field": "sharpness"}, "not a vector field"),
    ({"model": "dlib-resnet"}, "holds 'sface' embeddings, not 'dlib-resnet'"),
    ({"embeddings_field": "filepath"}, "embeddings_field 'filepath' is a built-in FiftyOne field"),
    ({"embeddings_field": "_hidden"}, "embeddings_field must be a plain identifier"),
])
def test_invalid_parameters_are_refused_clearly(faces, base, kwargs, message):
    from fiftyone_faceqan.evaluation import evaluate_quality

    params = {"quality_fields": ["sharpness"], "eval_key": "invalid", **SHARED, **kwargs}
    with pytest.raises(ValueError, match=message):
        evaluate_quality(faces, **params)


def test_a_model_that_cannot_load_leaves_nothing_behind(faces):
    from faceqan.models import ModelFileError
    from fiftyone_faceqan.evaluation import evaluate_quality

    runs = faces.list_brain_runs()
    with pytest.raises(ModelFileError, match="iresnet50 needs weights="):
        evaluate_quality(faces, ["sharpness"], model="iresnet50", eval_key="noweights")
    assert not faces.has_sample_field("noweights_embedding") and faces.list_brain_runs() == runs


def test_cross_model_records_the_quality_model_and_keeps_keys_apart(faces, reference, base):
    from fiftyone_faceqan.runs import FaceQANBrain, FaceQANBrainConfig
    from fiftyone_faceqan.evaluation import evaluate_quality

    faces.set_values("scored", [float(v) for v in reference["sharpness"]])
    FaceQANBrain(FaceQANBrainConfig(quality_field="scored", model="dlib-resnet")).register_run(faces, "scoring")
    results = evaluate_quality(faces, ["scored", "random"], eval_key="cross", **SHARED)
    assert results.info["quality_models"] == {"scored": "dlib-resnet", "random": None}
    assert results.info["model"] == "sface"
    with pytest.raises(ValueError, match="used by another kind of run"):
        evaluate_quality(faces, ["scored"], eval_key="scoring", **SHARED)
    faces.delete_brain_run("scoring")


def test_plot_and_png(base, tmp_path):
    results = base
    figure = results.plot("erc")
    assert {trace.name for trace in figure.data} == {"sharpness", "random", "random rejection", "theoretical best"}
    png = results.save_png(tmp_path / "edc.png")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _operator_uri():
    import fiftyone.operators as foo

    uri = next((op.uri for op in foo.list_operators() if op.name == "evaluate_faceqan_quality"), None)
    if uri is None:
        pytest.skip("operator evaluate_faceqan_quality is not registered by the plugin's __init__.py")
    return uri


def test_operator_immediate_and_delegated(faces, base):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from fiftyone_faceqan.evaluation import evaluate_quality, load_evaluation

    uri = _operator_uri()
    params = {"quality_fields": ["sharpness"], "identity_field": "person", "model": "sface",
              "eval_key": "from_app", "fmr": 0.01, "pairs": "", "non_mated_sample": None, **SHARED}
    done = foo.execute_operator(uri, ctx={"view": faces.view(), "params": params})
    assert done.result["n_evaluated"] == COUNT and done.result["excluded"] == 0
    direct = evaluate_quality(faces, ["sharpness"], identity_field="person", fmr=0.01, eval_key="direct", **SHARED)
    pd.testing.assert_frame_equal(load_evaluation(faces, "from_app", cache=False).summary, direct.summary)

    queued = foo.execute_operator(uri, ctx={"view": faces.view(), "params": {**params, "eval_key": "queued"},
                                            "request_delegation": True})
    assert queued.delegated
    DelegatedOperationService().execute_queued_operations(dataset_name=faces.name)
    pd.testing.assert_frame_equal(load_evaluation(faces, "queued", cache=False).summary, direct.summary)


def test_operator_refuses_bad_parameters(faces, base):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    uri = _operator_uri()
    params = {"quality_fields": ["sharpness"], "identity_field": "person", "model": "sface", "eval_key": "bad",
              "fmr": 0.0}
    with pytest.raises(ExecutionError, match="fmr must be a fraction"):
        foo.execute_operator(uri, ctx={"view": faces.view(), "params": params})


def test_operator_offers_runnable_models_and_refuses_builtin_fields(faces, base):
    import asyncio

    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError, resolve_type

    from faceqan.models import list_models

    uri = _operator_uri()
    params = {"quality_fields": ["sharpness"], "identity_field": "person", "model": "sface", "eval_key": "app",
              "fmr": 0.001, "embeddings_field": "filepath"}
    form = asyncio.run(resolve_type(foo.OperatorRegistry(), uri, {"dataset_name": faces.name, "params": params}))
    assert form.type.properties["model"].type.values == [m.name for m in list_models() if m.available()]
    assert form.type.properties["invalid"].invalid
    with pytest.raises(ExecutionError, match="Validation error.*embeddings_field 'filepath' is a built-in"):
        foo.execute_operator(uri, ctx={"view": faces.view(), "params": params})
