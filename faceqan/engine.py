"""The batched FaceQAN engine: B images x k copies per step, input-only gradients, fp32 pixels."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .aggregate import QualityScores, aggregate
from .config import FaceQANConfig, resolve_device
from .noise import initial_noise
from .noise_maps import check_maps

# Images per step. On a CPU one image (k copies) per step was measured fastest (DESIGN.md §3);
# on a GPU large batches fill the device, and an out-of-memory error halves the batch.
DEFAULT_BATCH = {"cpu": 1, "cuda": 32}
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def content_key(image: torch.Tensor) -> str:
    """A key from the pixels themselves, so an image gets the same noise wherever it sits in a run."""
    return hashlib.sha256(image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


class FaceQAN:
    """Scores aligned face crops (N, 3, H, W) in [0, 1] with a frozen FR model.

    Each image's initial noise comes from its own generator seeded by (config.seed, key), so a score does
    not depend on the batch size, the order or the other images; pass ``noise`` to supply it explicitly.
    """

    def __init__(self, model: nn.Module, config: FaceQANConfig = FaceQANConfig()):
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        if any(p.requires_grad for p in model.parameters()):
            raise ValueError("the model's parameters must be frozen (FaceModel does this): "
                             "FaceQAN differentiates with respect to the input only")
        if model.training:
            raise ValueError("the model must be in eval mode (BatchNorm running statistics)")
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.model.to(memory_format=torch.channels_last)
        self.batch_size = config.batch_size or DEFAULT_BATCH.get(self.device.type, 1)

    def score(self, images: torch.Tensor, keys: Sequence[str | int] | None = None,
              noise: torch.Tensor | None = None,
              progress: Callable[[int], None] | None = None, maps: bool = False) -> QualityScores:
        """Score every image; ``progress(n)`` is called after each step with the number just scored.
        ``maps=True`` also keeps each image's adversarial-noise map (see ``attack``) in ``noise_map``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        n = images.shape[0]
        if keys is not None and len(keys) != n:
            raise ValueError(f"got {len(keys)} keys for {n} images")
        expected_noise = (n, self.config.copies, *images.shape[1:])
        if noise is not None and tuple(noise.shape) != expected_noise:
            raise ValueError(f"noise must have shape {expected_noise}, got {tuple(noise.shape)}")
        if maps:
            check_maps(self.config)
        parts, start = [], 0
        while start < n:
            stop = min(start + self.batch_size, n)
            batch = images[start:stop]
            batch_noise = noise[start:stop] if noise is not None else self._noise(
                batch, keys[start:stop] if keys is not None else None)
            try:
                parts.append(self._score_batch(batch, batch_noise, maps))
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size //= 2
                torch.cuda.empty_cache()
                continue
            if progress is not None:
                progress(stop - start)
            start = stop
        return QualityScores.concat(parts)

    def _noise(self, batch: torch.Tensor, keys: Sequence[str | int] | None) -> torch.Tensor:
        keys = keys if keys is not None else [content_key(image) for image in batch]
        c = self.config
        return torch.stack([initial_noise(c.seed, key, c.copies, tuple(batch.shape[1:]), c.pixel_eps)
                            for key in keys])

    def _autocast(self):
        dtype = AUTOCAST_DTYPES.get(self.config.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return self.model(x).float()

    def _score_batch(self, images: torch.Tensor, noise: torch.Tensor, maps: bool) -> QualityScores:
        similarities, symmetry, *noise_map = self.attack(images, noise, maps=maps)
        scores = aggregate(similarities, symmetry, self.config.power)
        if maps:
            scores.noise_map = noise_map[0]
        return _to_cpu(scores)

    def attack(self, images: torch.Tensor, noise: torch.Tensor, maps: bool = False) -> tuple[torch.Tensor, ...]:
        """One batch, unaggregated: the measured similarities (B, l*k official / k paper, in the official
        code's order: step by step, copy by copy) and the symmetry (B,); with ``maps=True`` a third element,
        the adversarial-noise map (B, H, W) fp32: |adversarial copy - initial noisy copy| averaged over the k
        copies and the channels. The adversarial copy is the last one whose similarity enters Q: after l-1
        steps (official: its l-th step is never measured, so never taken; l=1 takes none and the map is 0),
        after l steps (paper). Both copies are the clipped ones the model saw."""
        c = self.config
        b, k = images.shape[0], c.copies
        images = images.to(self.device, torch.float32, non_blocking=True)
        noise = noise.to(self.device, torch.float32, non_blocking=True)
        with torch.no_grad():
            # Two forwards, not one of 2b: with one image per step the attack target then comes from a
            # one-image forward, as in the official code, which makes its arithmetic bitwise identical.
            clean, flipped = self._embed(images), self._embed(images.flip(3))
        symmetry = F.cosine_similarity(clean, flipped, dim=1)
        target = clean.repeat_interleave(k, dim=0)
        ones = torch.ones(b * k, device=self.device)
        # fp32 takes the official mean loss per image (the same rounding, so the same signs); fp16/bf16 keep
        # the sum, whose k times larger gradients do not underflow to 0 (sign(0) = 0 means no step).
        per_image_mean = c.precision == "fp32"

        official = c.variant == "official"
        low = -1.0 if official else 0.0  # the official clip to [-1, 1] lets dark pixels go below 0
        adv = (images.unsqueeze(1) + noise).clamp(low, 1.0).flatten(0, 1)
        initial = adv  # the steps below make new tensors: keeping it costs nothing
        measured = []
        for i in range(c.iterations):
            last = i == c.iterations - 1
            if official and last:  # the last step's result is never measured: skip its backward
                with torch.no_grad():
                    measured.append(F.cosine_similarity(self._embed(adv), target, dim=1))
                break
            adv.requires_grad_(True)
            embeddings = self._embed(adv)
            if official:
                measured.append(F.cosine_similarity(embeddings.detach(), target, dim=1))
            loss = F.cosine_embedding_loss(target, embeddings, ones, reduction="sum")
            if per_image_mean:
                loss = loss / k
            (grad,) = torch.autograd.grad(loss, adv)
            adv = adv.detach() + c.step * grad.sign()
            if official:
                adv = adv.clamp(-1.0, 1.0)
        if not official:
            with torch.no_grad():
                measured.append(F.cosine_similarity(self._embed(adv), target, dim=1))
        similarities = torch.stack([m.view(b, k) for m in measured], dim=1).flatten(1)
        if not maps:
            return similarities, symmetry
        with torch.no_grad():
            noise_map = (adv - initial).abs().view(b, k * images.shape[1], *images.shape[2:]).mean(dim=1)
        return similarities, symmetry, noise_map


def _to_cpu(scores: QualityScores) -> QualityScores:
    return QualityScores(*(getattr(scores, name).cpu() for name in QualityScores.FIELDS),
                         noise_map=None if scores.noise_map is None else scores.noise_map.cpu())
