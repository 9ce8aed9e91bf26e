"""FaceQAN throughput on a GPU: iresnet100 (random weights; the cost does not depend on them) at 112x112.

    python benchmarks/gpu_throughput.py            # about 3 minutes on an H100

Prints img/s for fp32 (TF32 convolutions), fp16 and bf16 autocast at several batch sizes, the per-image
reference's img/s, and, on real LFW crops with SFace, how well fp16/bf16 scores agree with fp32 (Spearman).
Targets on an H100: >= 100 img/s TF32, >= 200 img/s fp16, >= 20x the reference.
"""

from __future__ import annotations

import argparse
import time

import torch
from scipy.stats import spearmanr

from faceqan import FaceModel, FaceQAN, FaceQANConfig, load_model, reference_score
from faceqan.models import get_entry
from faceqan.models.iresnet import build_iresnet
from engine_vs_reference import subset_crops


def timed(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def throughput(model, images, precision: str, batch_size: int) -> float:
    scorer = FaceQAN(model, FaceQANConfig(device="cuda", precision=precision, batch_size=batch_size))
    scorer.score(images[:batch_size])  # warm-up: cuDNN autotuning, allocator
    return len(images) / timed(lambda: scorer.score(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--reference-images", type=int, default=8)
    parser.add_argument("--agreement-images", type=int, default=200)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark measures GPU throughput")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")

    entry = get_entry("iresnet100")
    model = FaceModel(build_iresnet(100).eval(), entry.preprocessing, name="iresnet100-random")
    images = torch.rand(args.images, 3, 112, 112)
    best = {}
    for precision in ("fp32", "fp16", "bf16"):
        for batch_size in args.batch_sizes:
            rate = throughput(model, images, precision, batch_size)
            best[precision] = max(best.get(precision, 0.0), rate)
            print(f"iresnet100 {precision:4s} batch {batch_size:3d}: {rate:7.1f} img/s", flush=True)
    model_cuda = model.to("cuda")
    seconds = timed(lambda: [reference_score(model_cuda, im, FaceQANConfig()) for im in images[:args.reference_images].cuda()])
    reference_rate = args.reference_images / seconds
    print(f"iresnet100 reference (per image, official procedure): {reference_rate:.2f} img/s")

    sface = load_model("sface")
    faces = subset_crops(args.agreement_images, sface.input_size)
    scores = {p: FaceQAN(sface, FaceQANConfig(device="cuda", precision=p)).score(faces).quality.numpy()
              for p in ("fp32", "fp16", "bf16")}
    sface_rate = throughput(sface, faces, "fp32", 64)
    print(f"sface fp32 batch 64 on {len(faces)} LFW crops: {sface_rate:.1f} img/s")
    for p in ("fp16", "bf16"):
        print(f"sface {p} vs fp32 on {len(faces)} LFW crops: Spearman {spearmanr(scores['fp32'], scores[p]).statistic:.4f}")
    print(f"best: TF32 {best['fp32']:.1f} img/s, fp16 {best['fp16']:.1f} img/s, bf16 {best['bf16']:.1f} img/s")
    print(f"ratio: {best['fp32'] / reference_rate:.1f}")


if __name__ == "__main__":
    main()
