"""The batched engine against the per-image reference, determinism, and the frozen-model contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from faceqan import FaceModel, FaceQAN, FaceQANConfig, Preprocessing, load_model, reference_score
from faceqan.noise import initial_noise
from lfw_data import crops

FAST = dict(copies=4, iterations=2)


@pytest.fixture(scope="module")
def sface():
    return load_model("sface")


@pytest.fixture(scope="module")
def faces20():
    return crops(20)


def shared_noise(config: FaceQANConfig, images: torch.Tensor) -> torch.Tensor:
    return torch.stack([initial_noise(config.seed, i, config.copies, tuple(images.shape[1:]), config.eps)
                        for i in range(len(images))])


def compare_with_reference(model, images, config):
    noise = shared_noise(config, images)
    engine = FaceQAN(model, config).score(images, noise=noise)
    reference = [reference_score(model, image, config, noise[i]) for i, image in enumerate(images)]
    ref_quality = torch.cat([r.quality for r in reference])
    ref_symmetry = torch.cat([r.symmetry for r in reference])
    return engine, ref_quality, ref_symmetry


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_engine_matches_reference_on_20_real_faces(sface, faces20, variant):
    config = FaceQANConfig(variant=variant)
    engine, ref_quality, ref_symmetry = compare_with_reference(sface, faces20, config)
    assert torch.allclose(engine.symmetry, ref_symmetry, atol=1e-5)
    max_dq = (engine.quality - ref_quality).abs().max().item()
    rho = spearmanr(engine.quality.numpy(), ref_quality.numpy()).statistic
    print(f"{variant}: max |dQ| {max_dq:.2e}, Spearman {rho:.5f}")
    assert max_dq <= 5e-4
    assert rho >= 0.999


def test_first_iteration_similarities_match_reference(sface, faces20):
    """With l=1 (official) only the noise-only copies are measured: no BIM drift, so equality is tight."""
    config = FaceQANConfig(iterations=1)
    images = faces20[:5]
    noise = shared_noise(config, images)
    engine = FaceQAN(sface, config).score(images, noise=noise)
    for i, image in enumerate(images):
        reference = reference_score(sface, image, config, noise[i])
        assert engine.mean_similarity[i].item() == pytest.approx(reference.mean_similarity.item(), abs=1e-5)
        assert engine.std_similarity[i].item() == pytest.approx(reference.std_similarity.item(), abs=1e-5)


def test_scores_do_not_depend_on_batch_size_or_order(sface, faces20):
    images = faces20[:4]
    one = FaceQAN(sface, FaceQANConfig(batch_size=1, **FAST)).score(images)
    four = FaceQAN(sface, FaceQANConfig(batch_size=4, **FAST)).score(images)
    reversed_order = FaceQAN(sface, FaceQANConfig(batch_size=1, **FAST)).score(images.flip(0))
    assert torch.equal(one.quality, reversed_order.quality.flip(0))
    assert torch.allclose(one.quality, four.quality, atol=5e-4)
    assert torch.allclose(one.symmetry, four.symmetry, atol=1e-5)


def test_seed_decides_the_noise(sface, faces20):
    images = faces20[:2]
    first = FaceQAN(sface, FaceQANConfig(seed=1, **FAST)).score(images)
    again = FaceQAN(sface, FaceQANConfig(seed=1, **FAST)).score(images)
    other = FaceQAN(sface, FaceQANConfig(seed=2, **FAST)).score(images)
    assert torch.equal(first.quality, again.quality)
    assert not torch.equal(first.quality, other.quality)


def test_explicit_keys_replace_content_keys(sface, faces20):
    image = faces20[:1]
    scorer = FaceQAN(sface, FaceQANConfig(**FAST))
    assert not torch.equal(scorer.score(image, keys=["a"]).quality, scorer.score(image, keys=["b"]).quality)
    assert torch.equal(scorer.score(image, keys=["a"]).quality, scorer.score(image, keys=["a"]).quality)


def test_model_is_left_frozen_and_unchanged(sface, faces20):
    before = {k: v.clone() for k, v in sface.state_dict().items()}
    FaceQAN(sface, FaceQANConfig(**FAST)).score(faces20[:2])
    reference_score(sface, faces20[0], FaceQANConfig(**FAST))
    assert not sface.training
    assert all(not p.requires_grad and p.grad is None for p in sface.parameters())
    assert all(torch.equal(before[k], v) for k, v in sface.state_dict().items())


def test_engine_computes_no_parameter_gradient(sface, faces20):
    """Parameters never require grad, so autograd records no weight-gradient node at all."""
    calls = []
    hooks = [p.register_hook(lambda g: calls.append(g)) for p in sface.parameters() if p.requires_grad]
    FaceQAN(sface, FaceQANConfig(**FAST)).score(faces20[:1])
    assert not hooks and not calls
    assert all(not p.requires_grad for p in sface.parameters())


def test_unfrozen_or_training_model_is_refused():
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(ValueError, match="frozen"):
        FaceQAN(network)
    with pytest.raises(RuntimeError, match="inference-only"):
        FaceModel(network, Preprocessing()).train()


def test_aggregation_follows_the_formula():
    from faceqan import aggregate

    sims = torch.tensor([[0.9, 0.7, 0.8, 1.0]])
    out = aggregate(sims, torch.tensor([-0.5]), power=3)
    mean, std = np.mean([0.9, 0.7, 0.8, 1.0]), np.std([0.9, 0.7, 0.8, 1.0])
    q_adv = (mean + 1) / 2 * np.clip(1 - std, 0, 1)
    assert out.q_adv.item() == pytest.approx(q_adv)
    assert out.quality.item() == pytest.approx((q_adv * -0.5) ** 3)  # negative symmetry is kept
    assert out.quality.item() < 0


class _OutOfMemoryAbove(torch.nn.Module):
    """Raises CUDA's out-of-memory error for batches above a size: the condition the engine must survive."""

    def __init__(self, model, limit):
        super().__init__()
        self.model, self.limit = model, limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.model(x)


def test_out_of_memory_halves_the_batch_and_keeps_scores(sface, faces20):
    images = faces20[:4]
    config = FaceQANConfig(batch_size=4, **FAST)
    wrapped = _OutOfMemoryAbove(sface, limit=2 * FAST["copies"]).eval()  # fits 2 images, not 4
    scorer = FaceQAN(wrapped, config)
    scores = scorer.score(images)
    assert scorer.batch_size == 2
    expected = FaceQAN(sface, FaceQANConfig(batch_size=2, **FAST)).score(images)
    assert torch.equal(scores.quality, expected.quality)


@pytest.mark.parametrize("precision", ["bf16"])
def test_reduced_precision_keeps_the_ranking(sface, faces20, precision):
    images = faces20[:6]
    fp32 = FaceQAN(sface, FaceQANConfig(**FAST)).score(images)
    low = FaceQAN(sface, FaceQANConfig(precision=precision, **FAST)).score(images)
    assert torch.isfinite(low.quality).all()
    assert spearmanr(fp32.quality.numpy(), low.quality.numpy()).statistic > 0.8


@pytest.mark.parametrize("bad", [dict(eps=0), dict(eps=1.5), dict(iterations=0), dict(copies=1),
                                 dict(power=2.5), dict(variant="fast"), dict(precision="int8"),
                                 dict(batch_size=0), dict(seed="x")])
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        FaceQANConfig(**bad)


def test_wrong_shapes_are_refused(sface):
    scorer = FaceQAN(sface, FaceQANConfig(**FAST))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        scorer.score(torch.rand(3, 112, 112))
    with pytest.raises(ValueError, match="noise must have shape"):
        scorer.score(torch.rand(1, 3, 112, 112), noise=torch.rand(1, 3, 3, 112, 112))
    with pytest.raises(ValueError, match="keys"):
        scorer.score(torch.rand(2, 3, 112, 112), keys=["a"])
