"""Milestone 2 - Computer Vision: your convolutions see digits better with fewer parameters.

What you build (module 06): `Conv2d`, `MaxPool2d` (and `Flatten`) on top of your layers (04).
What this program does: it builds a small convolutional network from YOUR `tt.nn` layers -
conv 3x3 (1->16) -> ReLU -> max-pool 2 -> conv 3x3 (16->32) -> ReLU -> max-pool 2 -> linear (1568->10) -
loads weights we trained with the reference framework (milestones/weights/m2_cnn.npz) and classifies
the 10,000 MNIST test images in batches. A convolution reuses one small filter at every position,
so this network has over 10x fewer parameters than milestone 1's MLP and is more accurate: the result
states both counts. Victory: test accuracy >= the threshold in assignments/course.yaml (our weights
score about 99%).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from milestones.common import count_parameters, inference_profile_case, load_weights, predict_in_batches

CAPABILITIES = [
    "run convolutions and pooling over real images, vectorized (no loops over pixels)",
    "recognize handwritten digits at about 99% with a few thousand shared filter weights",
    "reason about parameter counts: weight sharing versus dense layers",
]
WEIGHTS = Path(__file__).resolve().parent / "weights" / "m2_cnn.npz"
CHANNELS = (1, 16, 32)
BATCH = 500


def build_model():
    """State-dict keys: 0.* (conv 1->16), 3.* (conv 16->32), 7.* (linear 32*7*7 -> 10)."""
    import tinytorch as tt

    nn = tt.nn
    return nn.Sequential(
        nn.Conv2d(CHANNELS[0], CHANNELS[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(CHANNELS[1], CHANNELS[2], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(CHANNELS[2] * 7 * 7, 10))


def prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]; the training script uses the same function."""
    return images[:, None, :, :].astype(np.float32) / 255.0


def mlp_parameters() -> int:
    """Parameter count of milestone 1's MLP (weights + biases of each Linear)."""
    from milestones.m1_basic_inference import SIZES
    return sum(a * b + b for a, b in zip(SIZES[:-1], SIZES[1:]))


def profile_case(ctx) -> dict:
    """The network run() builds, one synthetic batch of BATCH images, forward only (milestones/common.py)."""
    return inference_profile_case(ctx, build_model, prepare, BATCH, (28, 28))


def run(ctx) -> dict:
    import tinytorch as tt

    tt.manual_seed(ctx.seed)
    model = build_model()
    load_weights(model, WEIGHTS)
    params, mlp = count_parameters(model), mlp_parameters()
    comparison = (f"this CNN has {params:,} parameters, milestone 1's MLP has {mlp:,}: "
                  f"{mlp / params:.1f}x fewer parameters with convolutions")
    ctx.log(f"CNN: {comparison}; classifying the held-out MNIST test images")
    # the judge sends the test images (never their labels) in batches and computes the accuracy itself
    ctx.evaluate(lambda images: predict_in_batches(model, images, prepare, BATCH), tag="final")
    return {"details": {"parameters": params, "mlp_parameters": mlp, "parameter_ratio": round(mlp / params, 2),
                        "parameter_comparison": comparison,
                        "architecture": "conv3x3(1->16)-relu-pool2-conv3x3(16->32)-relu-pool2-linear(1568->10)",
                        "weights": str(WEIGHTS.relative_to(WEIGHTS.parents[2]))}}
