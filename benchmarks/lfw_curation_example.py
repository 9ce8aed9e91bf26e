"""The README's worked example of curation on real faces: the LFW ERC cross-quality set (our aligned crops of
the raw photos, a seeded half degraded: benchmarks/erc_sets.py) with identities, FaceQAN Q (SFace, default
settings) and the shipped unified score, in a FiftyOne dataset; then the per-identity table, the unified
score's histogram (degraded vs undegraded faces), the EDC split by how many images an identity has, and what
one threshold rejects per degradation kind.

The scores are the cached ones of `python benchmarks/erc_sets.py --score` (the values compute_face_quality
writes for these crops), so nothing is scored here; the embeddings come from lfw_erc.py's cache.

    python benchmarks/lfw_curation_example.py | tee benchmarks/results/lfw_curation_example.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

import fiftyone as fo
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_erc import cached_embeddings, pipeline_set  # noqa: E402

from faceqan.models import get_entry  # noqa: E402
from fiftyone_faceqan import curate_identities, rejection_by_group  # noqa: E402
from fiftyone_faceqan.evaluation import evaluate_quality  # noqa: E402

DATASET = "faceqan-lfw-curation-example"
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "unified_score_lfw.png"
CUT = 20  # the unified score the per-kind rejection table cuts at


def build() -> fo.Dataset:
    images = pipeline_set("degraded", cached_only=True)
    keys = list(images.scores.index)
    embeddings = cached_embeddings("sface", images.files, keys, Path(f"{images.embedding_cache}_emb_sface.npy"))
    people = [k.split("/")[-2] for k in keys]
    per_identity = pd.Series(people).value_counts()
    quality = images.scores["quality"].to_numpy(float)
    unified = get_entry("sface").calibration.scores(quality)
    if fo.dataset_exists(DATASET):
        fo.delete_dataset(DATASET)
    dataset = fo.Dataset(DATASET)
    dataset.add_samples([
        fo.Sample(filepath=str(path), ground_truth=fo.Classification(label=person), faceqan=float(q),
                  faceqan_score=int(u), degradation=str(kind), images=int(per_identity[person]), sface=e)
        for path, person, q, u, kind, e in zip(images.files, people, quality, unified, images.kinds, embeddings)],
        progress=False)
    return dataset


def histogram(dataset: fo.Dataset) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, kinds = dataset.values(["faceqan_score", "degradation"])
    scores, degraded = np.asarray(scores), np.asarray(kinds) != "none"
    fig, ax = plt.subplots(figsize=(6.4, 3.2), layout="constrained")
    bins = np.arange(0, 102, 5)
    ax.hist([scores[~degraded], scores[degraded]], bins=bins, label=["undegraded", "degraded (one kind each)"],
            color=["#4c72b0", "#dd8452"])
    ax.set_xlabel("unified score (0-100, shipped SFace calibration)")
    ax.set_ylabel("faces")
    ax.set_title("LFW cross-quality set: FaceQAN's unified score", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(FIGURE, dpi=110)
    plt.close(fig)


def main() -> None:
    dataset = build()
    print(f"$ python benchmarks/lfw_curation_example.py\n{len(dataset)} faces of "
          f"{len(dataset.distinct('ground_truth.label'))} identities, "
          f"{dataset.count_values('degradation').get('none', 0)} undegraded")

    scores, kinds = dataset.values(["faceqan_score", "degradation"])
    frame = pd.DataFrame({"score": scores, "kind": kinds})
    print("\nunified score by degradation kind (median, share below 20):")
    print(frame.groupby("kind")["score"].agg(faces="size", median="median",
                                             below_20=lambda s: round(float((s < CUT).mean()), 3)).to_string())
    floor = int((frame["score"] == 0).sum())
    print(f"faces at unified score 0 (below the reference set's 1st percentile of Q): {floor} "
          f"({floor / len(frame):.1%}); they tie, so the unified score cannot rank among them")
    histogram(dataset)
    print(f"histogram: {FIGURE.relative_to(FIGURE.parents[1])}")

    curation = curate_identities(dataset, "faceqan", best_k=5, reject_rate=0.2, min_per_identity=2, tag=None)
    print("\ncurate_identities(dataset, 'faceqan', best_k=5, reject_rate=0.2, min_per_identity=2, tag=None)")
    print(curation.counts)
    print(curation.summary.head(8).to_string(index=False))

    threshold = get_entry("sface").calibration.threshold(CUT)
    print(f"\nrejection_by_group(dataset, 'faceqan', 'degradation', threshold) at unified score {CUT} "
          f"(Q {threshold:.4f}):")
    print(rejection_by_group(dataset, "faceqan", "degradation", threshold).to_string(index=False))

    results = evaluate_quality(dataset, ["faceqan", "faceqan_score"], model=None, embeddings_field="sface",
                               by="images", eval_key="worked_example", progress=False)
    edc = results.summary.query("curve == 'edc'")[["measure", "fnmr_0", "pauc_20_norm"]]
    print(f"\nevaluate_quality(..., by='images'): whole set, {results.info['n_mated']} mated pairs")
    print(edc.to_string(index=False))
    groups = results.groups.set_index("group")[["n_evaluated", "n_mated", "skipped"]]
    per_group = results.group_summary.query("curve == 'edc' and measure == 'faceqan'").set_index("group")
    print("\nper group (identities with this many images): FaceQAN's normalised pAUC@20 %")
    print(groups.join(per_group[["fnmr_0", "pauc_20_norm"]]).to_string())


if __name__ == "__main__":
    main()
