"""The FaceQAN aggregation function F (paper eq. 4), shared by the engine and the reference."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class QualityScores:
    """Per-image FaceQAN outputs, each a float tensor of shape (N,); ``noise_map`` (N, H, W) fp32 only when
    scoring was asked to keep the adversarial-noise maps (FaceQAN.score(maps=True))."""

    quality: torch.Tensor
    mean_similarity: torch.Tensor
    std_similarity: torch.Tensor
    q_adv: torch.Tensor
    symmetry: torch.Tensor
    noise_map: torch.Tensor | None = None

    FIELDS = ("quality", "mean_similarity", "std_similarity", "q_adv", "symmetry")  # the numbers, not the map

    def rows(self) -> list[dict]:
        """One dict of Python floats per image, plus its map as an (H, W) numpy array when kept."""
        columns = {name: getattr(self, name).tolist() for name in self.FIELDS}
        if self.noise_map is not None:
            columns["noise_map"] = list(self.noise_map.numpy())
        return [dict(zip(columns, values)) for values in zip(*columns.values())]

    @classmethod
    def concat(cls, parts: list["QualityScores"]) -> "QualityScores":
        if not parts:
            return cls(*(torch.empty(0) for _ in cls.FIELDS))
        maps = [p.noise_map for p in parts]
        return cls(*(torch.cat([getattr(p, name) for p in parts]) for name in cls.FIELDS),
                   noise_map=None if any(m is None for m in maps) else torch.cat(maps))


def aggregate(similarities: torch.Tensor, symmetry: torch.Tensor, power: int) -> QualityScores:
    """F({S_i}, s_f): similarities (N, n) and symmetry (N,) -> Q = (q_adv * s_f) ** p.

    The std is the population std (numpy's default, as in the official code). s_f may be negative and is
    kept as it is, so Q may be negative too.
    """
    similarities = similarities.double()
    symmetry = symmetry.double()
    mean = similarities.mean(dim=1)
    std = similarities.std(dim=1, correction=0)
    q_adv = (mean + 1.0) / 2.0 * (1.0 - std).clamp(0.0, 1.0)
    quality = (q_adv * symmetry) ** power
    return QualityScores(quality, mean, std, q_adv, symmetry)
