"""EDC / ERC evaluation: hand-computed cases, properties, and the streamed all-pairs path against brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceqan.metrics import (BEST, RANDOM, Comparisons, PairSet, bootstrap_pauc, count_non_mated, evaluate,
                             identity_counts, index_pairs, read_lfw_pairs, thin)
from faceqan.metrics import bootstrap as bootstrap_module
from faceqan.metrics import comparisons as comparisons_module
from faceqan.metrics.threshold import Selection, kept_for_threshold, thresholds
from faceqan.plots import figure, save_png
from lfw_data import require_lfw


def pairs(a, b, score) -> PairSet:
    return PairSet(np.array(a), np.array(b), np.array(score, dtype=np.float32))


# Six images; mated m1..m4 and non-mated n1..n4 with known scores (see the docstrings below).
QUALITY = np.array([0.1, 0.2, 0.2, 0.5, 0.9, 0.9])
HAND = Comparisons(6, mated=pairs([0, 1, 2, 4], [3, 4, 5, 5], [0.2, 0.3, 0.9, 0.8]),
                   non_mated=pairs([0, 3, 1, 3], [4, 4, 3, 5], [0.6, 0.5, 0.4, 0.1]))


def curve(result, name, kind):
    rows = result.curves[(result.curves["measure"] == name) & (result.curves["curve"] == kind)]
    return rows["discard"].to_numpy(), rows["fnmr"].to_numpy()


def test_edc_by_hand_with_tied_pair_qualities():
    """fmr 0.25 of 4 non-mated -> k = 1, tau = 2nd highest = 0.5; m1 (0.2) and m2 (0.3) fail: FNMR0 = 1/2.
    Pair qualities m1 0.1, m2 0.2, m3 0.2 (tie: discarded together), m4 0.9."""
    result = evaluate(HAND, {"q": QUALITY}, fmr=0.25, pauc_at=(0.5,), fnmr_at=(0.5,))
    assert result.tau == pytest.approx(0.5)
    x, y = curve(result, "q", "edc")
    np.testing.assert_allclose(x, [0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(y, [0.5, 1 / 3, 0, 0])
    row = result.summary.set_index(["measure", "curve"]).loc[("q", "edc")]
    assert row["fnmr_50"] == pytest.approx(1 / 3)
    assert row["pauc_50"] == pytest.approx(0.25 * 0.5 + 0.25 / 3)  # step area
    assert row["pauc_50_norm"] == pytest.approx((0.125 + 0.25 / 3) / (0.5 * 0.5))
    assert row["curve_label"].startswith("FNM-EDC (ISO/IEC 29794-1:2024")


def test_legacy_erc_by_hand():
    """All 8 pair qualities ascending: m1 .1, n1 .1, m2 .2, m3 .2, n3 .2, n2 .5, n4 .5, m4 .9.
    r = .25 and .5 keep pair quality >= .2 (n3, n2, n4 left: tau = max = 0.5; m2 fails among m2, m3, m4);
    r = .75 keeps >= .5 (n2, n4: tau 0.5; m4 passes)."""
    result = evaluate(HAND, {"q": QUALITY}, fmr=0.25, curves=("erc",), erc_fractions=(0, 0.25, 0.5, 0.75))
    x, y = curve(result, "q", "erc")
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(y, [0.5, 1 / 3, 1 / 3, 0])
    rows = result.curves[result.curves["curve"] == "erc"]
    assert rows["kept_non_mated"].tolist() == [4, 3, 3, 2]
    assert rows["kept_mated"].tolist() == [4, 3, 3, 1]
    auc = 0.25 * ((0.5 + 1 / 3) / 2 + 1 / 3 + (1 / 3) / 2)
    assert result.summary.set_index(["measure", "curve"]).loc[("q", "erc"), "auc"] == pytest.approx(auc)


def test_threshold_allows_at_most_fmr_with_tied_scores():
    comps = Comparisons(4, mated=pairs([0], [1], [0.9]), non_mated=pairs([0, 0, 1, 2], [2, 3, 3, 3],
                                                                        [0.5, 0.5, 0.5, 0.1]))
    tau = thresholds(comps, [Selection(None, 0, 4)], fmr=0.25)[0]
    assert tau == pytest.approx(0.5)  # match means score > tau: no non-mated match, FMR 0 <= 0.25
    assert kept_for_threshold(1000, 1e-3) == 2
    with pytest.raises(ValueError, match="fmr"):
        kept_for_threshold(10, 0)


def test_no_errors_at_all():
    comps = Comparisons(4, mated=pairs([0, 2], [1, 3], [0.9, 0.8]), non_mated=pairs([0, 1], [2, 3], [0.1, 0.2]))
    result = evaluate(comps, {"q": [1, 2, 3, 4]})
    rows = result.curves[result.curves["curve"] != "reference"]
    undefined = rows["fnmr"].isna()
    assert (rows.loc[~undefined, "fnmr"] == 0).all()
    assert (rows.loc[undefined, "kept_non_mated"] == 0).all()  # no non-mated pair left: no threshold
    row = result.summary.iloc[0]
    assert row["fnmr_0"] == 0 and row["pauc_20"] == 0 and np.isnan(row["pauc_20_norm"])


def random_protocol(n_mated=4000, n_non_mated=20000, seed=0) -> Comparisons:
    """Disjoint mated pairs (2i, 2i+1) with scores drawn around a threshold, so ~a fifth fail."""
    rng = np.random.default_rng(seed)
    n = 2 * n_mated
    mated = pairs(np.arange(0, n, 2), np.arange(1, n, 2), rng.normal(0.5, 0.3, n_mated))
    a, b = rng.integers(0, n, (2, n_non_mated))
    b = np.where(a == b, (b + 1) % n, b)
    return Comparisons(n, mated=mated, non_mated=pairs(a, b, rng.normal(0.0, 0.1, n_non_mated)))


def test_perfect_oracle_reaches_zero_at_fnmr0():
    comps = random_protocol()
    result = evaluate(comps, {"random": np.zeros(comps.n_images)}, curves=("edc",))
    errors = comps.mated.score <= result.tau
    oracle = np.repeat(np.where(errors, 0.0, 1.0) + np.arange(len(errors)) * 1e-6, 2)  # errors lowest
    result = evaluate(comps, {"oracle": oracle}, curves=("edc",))
    x, y = curve(result, "oracle", "edc")
    fnmr0 = y[0]
    assert 0.1 < fnmr0 < 0.3
    assert x[np.argmax(y == 0)] == pytest.approx(fnmr0)  # first zero exactly when the errors are gone
    assert np.all(np.diff(y) <= 1e-12)  # discarding errors first never raises FNMR


def test_random_quality_is_flat_and_best_is_monotone():
    comps = random_protocol(seed=1)
    quality = np.random.default_rng(7).random(comps.n_images)
    result = evaluate(comps, {"random": quality})
    summary = result.summary.set_index(["measure", "curve"])
    fnmr0 = summary.loc[("random", "edc"), "fnmr_0"]
    for kind in ("edc", "erc"):
        for d in (10, 20, 40):
            assert summary.loc[("random", kind), f"fnmr_{d}"] == pytest.approx(fnmr0, abs=0.03)
        assert summary.loc[("random", kind), "pauc_40_norm"] == pytest.approx(1.0, abs=0.05)
    assert summary.loc[(RANDOM, "reference"), "pauc_20_norm"] == pytest.approx(1.0)
    best = result.curves[result.curves["measure"] == BEST]
    assert np.all(np.diff(best["fnmr"].to_numpy()) <= 0)
    assert best["fnmr"].iloc[-1] == 0
    assert summary.loc[(BEST, "reference"), "pauc_80"] == pytest.approx(fnmr0 ** 2 / 2)


def test_erc_equals_edc_when_the_threshold_cannot_move():
    """With every non-mated score equal, tau is the same for any kept subset: the legacy ERC is then the
    EDC sampled where its kept mated pairs match; both start at the same FNMR0."""
    comps = random_protocol(n_mated=500, n_non_mated=3000, seed=2)
    comps = Comparisons(comps.n_images, comps.mated, PairSet(comps.non_mated.a, comps.non_mated.b,
                                                             np.full(3000, 0.4, dtype=np.float32)))
    quality = np.round(np.random.default_rng(3).random(comps.n_images), 2)  # many ties
    result = evaluate(comps, {"q": quality})
    edc = result.curves[result.curves["curve"] == "edc"].set_index("kept_mated")["fnmr"]
    erc = result.curves[result.curves["curve"] == "erc"]
    assert (erc["tau"] == result.tau).all()
    for kept, fnmr in zip(erc["kept_mated"], erc["fnmr"]):
        assert fnmr == pytest.approx(edc.loc[kept])


def clustered(n=240, identities=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, identities, n)
    emb = rng.normal(size=(identities, 16))[labels] + 0.9 * rng.normal(size=(n, 16))
    return emb, labels


def test_all_pairs_from_labels_match_the_explicit_lists(monkeypatch):
    """The implicit, streamed, floor-filtered non-mated scores (tiny blocks, so the floor works across many
    blocks) give the thresholds and curves of the same pairs listed explicitly."""
    emb, labels = clustered()
    monkeypatch.setattr(comparisons_module, "CHUNK_PAIRS", 700)
    implicit = Comparisons.from_labels(emb, labels)
    a, b = np.triu_indices(len(labels), k=1)
    same = labels[a] == labels[b]
    explicit = Comparisons.from_pairs(emb, np.c_[a[same], b[same]], np.c_[a[~same], b[~same]])
    assert implicit.n_non_mated == explicit.n_non_mated == int((~same).sum())
    assert len(implicit.mated) == int(same.sum())
    rng = np.random.default_rng(5)
    qualities = {"fine": rng.random(len(labels)), "coarse": np.round(rng.random(len(labels)), 1)}
    for name, q in qualities.items():
        levels = np.unique(q, return_inverse=True)[1]
        np.testing.assert_array_equal(implicit.non_mated_level_counts(levels, levels.max() + 1),
                                      explicit.non_mated_level_counts(levels, levels.max() + 1))
    got, want = evaluate(implicit, qualities, fmr=0.01), evaluate(explicit, qualities, fmr=0.01)
    np.testing.assert_allclose(got.curves["tau"], want.curves["tau"], atol=1e-6)
    np.testing.assert_allclose(got.curves["fnmr"], want.curves["fnmr"])
    # and the threshold is the brute-force one: (k+1)-th highest of all non-mated scores
    scores = np.sort(explicit.non_mated.score)[::-1]
    assert want.tau == scores[kept_for_threshold(len(scores), 0.01) - 1]


def test_sampled_non_mated_pairs_are_distinct_cross_identity_and_seeded():
    emb, labels = clustered()
    comps = Comparisons.from_labels(emb, labels, non_mated=2000, seed=3)
    nm = comps.non_mated
    assert len(nm) == 2000 and np.all(labels[nm.a] != labels[nm.b]) and np.all(nm.a < nm.b)
    assert len(np.unique(nm.a * 1000 + nm.b)) == 2000
    again = Comparisons.from_labels(emb, labels, non_mated=2000, seed=3).non_mated
    np.testing.assert_array_equal(nm.a, again.a)
    with pytest.raises(ValueError, match="only"):
        Comparisons.from_labels(emb, labels, non_mated=10 ** 6)


def test_mated_scores_from_identity_gram_matrices_equal_pair_by_pair(monkeypatch):
    """Identities of one size are scored together, in blocks (tiny here, so there are many)."""
    emb, labels = clustered()
    monkeypatch.setattr(comparisons_module, "GRAM_ROWS", 7)
    mated = Comparisons.from_labels(emb, labels, non_mated=50).mated
    a, b = np.triu_indices(len(labels), k=1)
    same = labels[a] == labels[b]
    want = Comparisons.from_pairs(emb, np.c_[a[same], b[same]], np.empty((0, 2))).mated
    got = sorted(zip(mated.a.tolist(), mated.b.tolist(), mated.score.tolist()))
    assert [(x, y) for x, y, _ in got] == sorted(zip(want.a.tolist(), want.b.tolist()))
    np.testing.assert_allclose([s for _, _, s in got], want.score[np.lexsort((want.b, want.a))], atol=1e-6)
    assert count_non_mated(np.asarray(labels)) == int((~same).sum())


def test_sampled_non_mated_pairs_come_sorted_and_cover_all_when_asked():
    emb, labels = clustered(n=60, identities=6)
    nm = Comparisons.from_labels(emb, labels, non_mated=500, seed=1).non_mated
    assert np.all(np.diff(nm.a * 60 + nm.b) > 0)  # in (a, b) order: side a is read in sequence
    every = count_non_mated(np.asarray(labels))
    nm = Comparisons.from_labels(emb, labels, non_mated=every, seed=1).non_mated
    a, b = np.triu_indices(60, k=1)
    cross = labels[a] != labels[b]
    assert (nm.a.tolist(), nm.b.tolist()) == (a[cross].tolist(), b[cross].tolist())


def test_failed_quality_counts_as_lowest():
    quality = QUALITY.copy()
    quality[4] = np.nan  # image 4 is in m2 and m4
    result = evaluate(HAND, {"q": quality}, fmr=0.25, curves=("edc",))
    x, y = curve(result, "q", "edc")
    np.testing.assert_allclose(x, [0, 0.5, 0.75, 1.0])  # m2 and m4 go first, then m1, then m3
    np.testing.assert_allclose(y, [0.5, 0.5, 0, 0])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="3 values for 6 images"):
        evaluate(HAND, {"q": [1, 2, 3]})
    with pytest.raises(ValueError, match="unknown curve"):
        evaluate(HAND, {"q": QUALITY}, curves=("roc",))
    with pytest.raises(ValueError, match="zero or non-finite"):
        Comparisons.from_labels(np.zeros((3, 4)), [0, 0, 1])
    with pytest.raises(ValueError, match="no embedding/quality"):
        index_pairs([("a.jpg", "b.jpg")], ["a.jpg"])


def bootstrap_case(seed=0):
    """40 identities, 240 images: all pairs listed, the identity labels and two measures (one informative)."""
    emb, labels = clustered(seed=seed)
    a, b = np.triu_indices(len(labels), k=1)
    same = labels[a] == labels[b]
    comps = Comparisons.from_pairs(emb, np.c_[a[same], b[same]], np.c_[a[~same], b[~same]])
    rng = np.random.default_rng(seed)
    centre = np.stack([emb[labels == i].mean(axis=0) for i in labels])
    qualities = {"closeness": -np.linalg.norm(emb - centre, axis=1), "random": rng.random(len(labels))}
    return comps, labels, qualities


def test_bootstrap_estimate_is_the_evaluation_and_a_seed_reproduces_it():
    comps, labels, qualities = bootstrap_case()
    result = evaluate(comps, qualities, fmr=0.01, curves=("edc",))
    boot = bootstrap_pauc(comps, qualities, labels, result.tau, resamples=300, seed=4)
    summary = result.summary.set_index("measure")
    for name in qualities:
        assert boot.estimates[name] == pytest.approx(summary.loc[name, "pauc_20_norm"], abs=1e-12)
        low, high = boot.interval(name)
        assert low < boot.estimates[name] < high
    assert boot.samples.shape == (300, 2)
    again = bootstrap_pauc(comps, qualities, labels, result.tau, resamples=300, seed=4)
    pd.testing.assert_frame_equal(boot.samples, again.samples)
    other = bootstrap_pauc(comps, qualities, labels, result.tau, resamples=300, seed=5)
    assert not np.allclose(boot.samples, other.samples)
    assert boot.difference("closeness", "closeness") == (0.0, 0.0, 0.0)
    table = boot.table().set_index("measure")
    assert list(table.columns) == ["pauc_20_norm", "pauc_20_norm_lo", "pauc_20_norm_hi"]
    assert table.loc["random", "pauc_20_norm_lo"] == boot.interval("random")[0]


def test_bootstrap_resample_is_the_evaluation_of_the_drawn_identities():
    """Resample r equals evaluate() on the mated pairs of each identity repeated as often as it was drawn
    (same threshold: the non-mated pairs are kept)."""
    comps, labels, qualities = bootstrap_case(seed=1)
    tau = evaluate(comps, qualities, fmr=0.01, curves=("edc",)).tau
    boot = bootstrap_pauc(comps, qualities, labels, tau, resamples=5, seed=2)
    clusters = np.unique(labels[comps.mated.a])  # identities with mated pairs, in bootstrap order
    counts = identity_counts(len(clusters), 5, seed=2)
    for r in range(5):
        drawn = np.repeat(clusters, counts[r])
        idx = np.concatenate([np.flatnonzero(labels[comps.mated.a] == c) for c in drawn])
        m = comps.mated
        resampled = Comparisons(comps.n_images, PairSet(m.a[idx], m.b[idx], m.score[idx]), comps.non_mated)
        result = evaluate(resampled, qualities, fmr=0.01, curves=("edc",))
        assert result.tau == tau
        want = result.summary.set_index("measure")["pauc_20_norm"]
        for name in qualities:
            assert boot.samples.loc[r, name] == pytest.approx(want[name], abs=1e-12)


def test_bootstrap_in_blocks_and_short_passes_is_the_same(monkeypatch):
    """One resample per block, and a first pass too short for every curve (each is redone on all pairs)."""
    comps, labels, qualities = bootstrap_case(seed=2)
    tau = evaluate(comps, qualities, fmr=0.01, curves=("edc",)).tau
    whole = bootstrap_pauc(comps, qualities, labels, tau, resamples=20, seed=3)
    monkeypatch.setattr(bootstrap_module, "BLOCK_VALUES", 1)  # one resample per block
    monkeypatch.setattr(bootstrap_module, "PREFIX", 0.1)
    parts = bootstrap_pauc(comps, qualities, labels, tau, resamples=20, seed=3)
    pd.testing.assert_frame_equal(parts.samples, whole.samples, rtol=0, atol=1e-12)
    pd.testing.assert_series_equal(parts.estimates, whole.estimates, rtol=0, atol=1e-12)


def test_thin_keeps_the_curve_exact_at_every_grid_point():
    rng = np.random.default_rng(0)
    comps = random_protocol(n_mated=3000, n_non_mated=5000)
    curves = evaluate(comps, {"q": rng.random(comps.n_images)}).curves
    thinned = thin(curves, 200)
    full = curves[(curves["measure"] == "q") & (curves["curve"] == "edc")]
    few = thinned[(thinned["measure"] == "q") & (thinned["curve"] == "edc")]
    assert len(full) > 1000 and len(few) <= 201 and few.iloc[-1].equals(full.iloc[-1])
    for d in np.linspace(0, 1, 201):  # the step in force at d is the same
        want = full.iloc[np.searchsorted(full["discard"], d, side="right") - 1]
        got = few.iloc[np.searchsorted(few["discard"], d, side="right") - 1]
        assert (got["fnmr"], got["quality_cut"]) == (want["fnmr"], want["quality_cut"])
    short = curves[curves["curve"] != "edc"]
    pd.testing.assert_frame_equal(thinned[thinned["curve"] != "edc"].reset_index(drop=True),
                                  short.reset_index(drop=True))  # ERC and references (~100 points): as they are


def test_bootstrap_resamples_identities_not_pairs():
    """All 30 false non-matches belong to one of 10 identities (30 pairs each): a resample misses it, and so
    has no error at all, with probability (1 - 1/10)^10 = 0.35; resampling pairs would almost never (~2e-4)."""
    identities, per = 10, 30
    n = 2 * identities * per
    a, b = np.arange(0, n, 2), np.arange(1, n, 2)
    labels = np.repeat(np.arange(identities), 2 * per)
    score = np.where(labels[a] == 0, 0.1, 0.9)
    comps = Comparisons(n, pairs(a, b, score), pairs([0, 2], [2 * per, 4 * per], [0.5, 0.5]))
    quality = {"q": np.random.default_rng(0).random(n)}
    boot = bootstrap_pauc(comps, quality, labels, tau=0.5, resamples=2000, seed=0)
    assert boot.samples["q"].isna().mean() == pytest.approx(0.9 ** 10, abs=0.03)
    assert np.isfinite(boot.interval("q")).all()


def test_bootstrap_refuses_mismatched_labels():
    comps, labels, qualities = bootstrap_case()
    with pytest.raises(ValueError, match="labels for 240 images"):
        bootstrap_pauc(comps, qualities, labels[:10], tau=0.5)
    with pytest.raises(ValueError, match="two identities"):
        bootstrap_pauc(comps, qualities, np.arange(240), tau=0.5)
    with pytest.raises(ValueError, match="level"):
        bootstrap_pauc(comps, qualities, labels, tau=0.5, level=95)


def test_lfw_protocol_file(tmp_path):
    mated, non_mated = read_lfw_pairs(require_lfw() / "pairs.txt")
    assert len(mated) == len(non_mated) == 3000
    name, rel = mated[0][0].split("/")
    assert rel.startswith(name + "_") and rel.endswith(".jpg") and (require_lfw() / mated[0][0]).is_file()
    bad = tmp_path / "pairs.txt"
    bad.write_text("1 1\nA 1 2\nA 1 B\n")
    with pytest.raises(ValueError, match=":3: expected"):
        read_lfw_pairs(bad)


def test_plots_show_every_measure_and_the_references(tmp_path):
    result = evaluate(random_protocol(n_mated=300, n_non_mated=2000),
                      {"a": np.arange(600.0), "b": np.random.default_rng(0).random(600)})
    names = [trace.name for trace in figure(result.curves, "edc").data]
    assert names == ["a", "b", RANDOM, BEST]
    png = save_png(result.curves, tmp_path / "erc.png", title="test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no 'erc' curve"):
        figure(result.curves[result.curves["curve"] != "erc"], "erc")
    assert isinstance(result.summary, pd.DataFrame)


def test_erc_command_on_real_crops(tmp_path, capsys):
    """`faceqan erc` end to end: 4 identities x 3 real crops, sharpness as the quality column, SFace compares."""
    import argparse

    from faceqan.baselines import sharpness
    from faceqan.erc_cli import add_erc_parser

    root = require_lfw()
    names = sorted({p.split("/")[0] for p in (root / "erc_subset.txt").read_text().split()})[:4]
    paths = [root / name / f"{name}_{i:04d}.jpg" for name in names for i in (1, 2, 3)]
    scores = tmp_path / "scores.csv"
    pd.DataFrame({"path": paths, "quality": sharpness(paths), "error": None}).to_csv(scores, index=False)
    parser = argparse.ArgumentParser()
    add_erc_parser(parser.add_subparsers(dest="command"))
    out, png = tmp_path / "summary.csv", tmp_path / "erc.png"
    args = parser.parse_args(["erc", "--scores", str(scores), "--identities-from-folders", "--fmr", "0.05",
                              "--out", str(out), "--plot", str(png)])
    assert args.func(args) == 0
    summary = pd.read_csv(out)
    assert set(summary["curve"]) == {"edc", "erc", "reference"} and (summary["comparison_model"] == "sface").all()
    assert png.stat().st_size > 0
    assert "12 mated, 54 non-mated" in capsys.readouterr().err

    protocol = tmp_path / "pairs.txt"  # the same images through a protocol file, 3 mated + 2 non-mated
    a, b = names[:2]
    protocol.write_text(f"1 3\n{a} 1 2\n{a} 2 3\n{b} 1 3\n{a} 1 {b} 2\n{b} 3 {a} 3\n")
    args = parser.parse_args(["erc", "--scores", str(scores), "--pairs", str(protocol), "--images-root", str(root),
                              "--quality-column", "quality", "--fmr", "0.5", "--out", str(out)])
    assert args.func(args) == 0
    assert "3 mated, 2 non-mated" in capsys.readouterr().err
