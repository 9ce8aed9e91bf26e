"""FaceQAN must see blur: on real LFW crops a blurred copy scores lower than the original."""

from __future__ import annotations

import torch
from torchvision.transforms.functional import gaussian_blur

from faceqan import FaceQAN, FaceQANConfig, load_model
from lfw_data import crops


def test_blur_lowers_quality_on_50_real_faces():
    images = crops(50)
    blurred = gaussian_blur(images, kernel_size=13, sigma=2.0)
    scores = FaceQAN(load_model("sface"), FaceQANConfig()).score(torch.cat([images, blurred]))
    clean_q_adv, blur_q_adv = scores.q_adv[:50], scores.q_adv[50:]
    clean_q, blur_q = scores.quality[:50], scores.quality[50:]
    q_adv_share = (clean_q_adv > blur_q_adv).float().mean().item()
    q_share = (clean_q > blur_q).float().mean().item()
    print(f"q_adv(clean) > q_adv(blur): {q_adv_share:.0%}; Q(clean) > Q(blur): {q_share:.0%}")
    assert q_adv_share >= 0.95
    assert q_share >= 0.80
