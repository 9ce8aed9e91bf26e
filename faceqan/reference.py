"""A plain FaceQAN, one image at a time, doing what the official code does (weight gradients, every
backward pass, the global RNG): the tests' oracle and the benchmarks' baseline. Not for production."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .aggregate import QualityScores, aggregate
from .config import FaceQANConfig


@contextlib.contextmanager
def _trainable_weights(model: nn.Module):
    """The official code leaves weight gradients on; restore the frozen state afterwards."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
            p.grad = None


def reference_score(model: nn.Module, image: torch.Tensor, config: FaceQANConfig = FaceQANConfig(),
                    noise: torch.Tensor | None = None) -> QualityScores:
    """FaceQAN of one (3, H, W) image in [0,1]; ``noise`` (k, 3, H, W) in pixel units, or drawn from torch's
    global RNG as the official code does.

    ``official``: the published code line by line (clip to [-1, 1] after the noise and after every step,
    mean CosineEmbeddingLoss against a one-image forward, similarities measured before each step).
    ``paper``: the paper's eq. 2-3 on its [-1, 1] images, written here in [0, 1] pixel units: eps and the
    step eps/l halve, only the initial copies are clipped, the final copies are measured.
    """
    device = next(model.parameters()).device
    image = image.to(device, torch.float32)
    official = config.variant == "official"
    eps = config.eps if official else config.eps / 2.0
    step = eps if official else eps / config.iterations
    if noise is None:
        noise = torch.empty((config.copies, *image.shape)).uniform_(-eps, eps)
    loss_fn = nn.CosineEmbeddingLoss()
    target = torch.ones(1, device=device)
    with _trainable_weights(model):
        noisy = (image.unsqueeze(0) + noise.to(device)).clamp(-1.0 if official else 0.0, 1.0)
        base = model(image.unsqueeze(0))
        similarities = []
        for _ in range(config.iterations):
            noisy.requires_grad_(True)
            embeddings = model(noisy)
            loss = loss_fn(base, embeddings, target)
            model.zero_grad()
            loss.backward()
            noisy = (noisy + step * noisy.grad.sign()).detach()
            if official:
                noisy = noisy.clamp(-1.0, 1.0)
            base = base.detach()
            if official:
                similarities.append(F.cosine_similarity(base, embeddings.detach(), dim=1))
        if not official:
            with torch.no_grad():
                similarities.append(F.cosine_similarity(base, model(noisy), dim=1))
        with torch.no_grad():
            pair = model(torch.stack([image, image.flip(2)]))
    symmetry = F.cosine_similarity(pair[:1], pair[1:], dim=1)
    return aggregate(torch.cat(similarities).unsqueeze(0), symmetry, config.power)
