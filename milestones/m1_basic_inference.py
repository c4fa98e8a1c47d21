"""Milestone 1 - Basic Inference: your layers read handwritten digits.

What you build (module 04): `Linear`, `ReLU`, `Sequential` and `Module.load_state_dict`, on top of
your Tensor (02) and activations (03).
What this program does: it builds a 784-256-128-10 multi-layer perceptron from YOUR `tt.nn` layers,
loads weights that we trained with the reference framework (milestones/weights/m1_mlp.npz), and
classifies the 10,000 MNIST test images the judge sends (without their labels), 1,000 at a time; the
judge computes the accuracy. It is a forward pass only: no gradients, no training. If your matmul,
ReLU or parameter loading is off, the accuracy shows it. (A dropped bias costs these weights little,
about 98% -> 97.8%: module 04's tests are what check the bias.)
Victory: test accuracy >= the threshold in assignments/course.yaml (our weights score about 98%).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from milestones.common import count_parameters, inference_profile_case, load_weights, predict_in_batches

CAPABILITIES = [
    "turn raw pixels into predictions with a network built from your own layers",
    "load trained parameters into your modules by name (state dicts)",
    "run batched inference over a real test set",
]
WEIGHTS = Path(__file__).resolve().parent / "weights" / "m1_mlp.npz"
SIZES = (784, 256, 128, 10)
BATCH = 1000


def build_model():
    """784 -> 256 -> 128 -> 10 with ReLU between the layers (state-dict keys 0.*, 2.*, 4.*)."""
    import tinytorch as tt

    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(tt.nn.Linear(fan_in, fan_out))
        if i < len(SIZES) - 2:
            layers.append(tt.nn.ReLU())
    return tt.nn.Sequential(*layers)


def prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1]; the training script uses the same function."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def profile_case(ctx) -> dict:
    """The network run() builds, one synthetic batch of BATCH images, forward only (milestones/common.py)."""
    return inference_profile_case(ctx, build_model, prepare, BATCH, (28, 28))


def run(ctx) -> dict:
    import tinytorch as tt

    tt.manual_seed(ctx.seed)
    model = build_model()
    load_weights(model, WEIGHTS)
    params = count_parameters(model)
    ctx.log(f"MLP {'-'.join(map(str, SIZES))}: {params:,} parameters; classifying the held-out MNIST test images")
    # the judge sends the test images (never their labels) in batches and computes the accuracy itself
    ctx.evaluate(lambda images: predict_in_batches(model, images, prepare, BATCH), tag="final")
    return {"details": {"parameters": params, "architecture": "MLP " + "-".join(map(str, SIZES)),
                        "weights": str(WEIGHTS.relative_to(WEIGHTS.parents[2]))}}
