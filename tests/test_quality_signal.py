"""FaceQAN must see blur: on real LFW crops a blurred copy scores lower than the original.

The blurred copy is an 8-bit image like any file a user has (blur, then round to the 1/255 grid): blurring
in float gives smooth images no JPEG or PNG could hold, on which the attack behaves differently (on these 100
faces q_adv(clean) > q_adv(blur) for 91 % in float, 93 % in 8 bit).
"""

from __future__ import annotations

import torch
from torchvision.transforms.functional import gaussian_blur

from faceqan import FaceQAN, FaceQANConfig, load_model
from lfw_data import crops

FACES = 100  # the shares are statistics: 50 faces move them by 2 % per face


def test_blur_lowers_quality_on_real_faces():
    images = crops(FACES)
    blurred = (gaussian_blur(images, kernel_size=13, sigma=2.0) * 255.0).round() / 255.0
    scores = FaceQAN(load_model("sface"), FaceQANConfig()).score(torch.cat([images, blurred]))
    clean_q_adv, blur_q_adv = scores.q_adv[:FACES], scores.q_adv[FACES:]
    clean_q, blur_q = scores.quality[:FACES], scores.quality[FACES:]
    q_adv_share = (clean_q_adv > blur_q_adv).float().mean().item()
    q_share = (clean_q > blur_q).float().mean().item()
    print(f"q_adv(clean) > q_adv(blur): {q_adv_share:.0%}; Q(clean) > Q(blur): {q_share:.0%}")
    assert q_adv_share >= 0.90  # measured 93 % on these 100; 96.3 % over 540 faces (README "Quality signal")
    assert q_share >= 0.80  # measured 91 %
