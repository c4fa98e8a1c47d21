"""Milestone 4 - Advanced Vision: CIFAR-10 to >= 75% test accuracy in minutes, on 2 CPU cores.

The network (about 20 M multiply-adds per image, ~0.3 M parameters) follows the fast CIFAR-10
recipes of the speed-running community (hlb-CIFAR10 / airbench), scaled to a CPU:

    frozen 2x2 patch-whitening conv  -> conv 3x3 (32) -> max-pool -> BN -> ReLU      32x32 -> 15x15
    conv 3x3 (32) -> BN -> ReLU
    conv 3x3 (64) -> max-pool -> BN -> ReLU -> conv 3x3 (64) -> BN -> ReLU               -> 7x7
    conv 3x3 (128) -> max-pool -> BN -> ReLU -> conv 3x3 (128) -> BN -> ReLU             -> 3x3
    global max-pool -> linear (no bias) -> x 1/9                                          -> 10 logits

trained with SGD + Nesterov momentum (peak lr 0.2, weight decay 5e-4), linear warm-up over the
first 20% of the steps then linear decay to 0, label smoothing 0.2, batch 256, random crops
(padding 2) and horizontal flips; at test time the logits of each image and its mirror image are
averaged.

The whitening layer is computed from the training images (eigenvectors of the covariance of 2x2
patches) and never trained. Because nothing non-linear sits between it and the first conv, the two
are ONE 4x4 convolution of the raw image (module 13's WhitenedConv2d): the whitened image is never
built. Everything else is module 13's fast kernels (fused conv + max-pool, fused batch norm + ReLU,
fused softmax cross-entropy) on top of the student's modules 02-11.

Measured here (2 cores shared with other jobs, load ~8): 81.2% test accuracy after the 2 epochs
(PyTorch, same recipe: 81.0%). Training stops early (with the learning-rate schedule shortened to
match) if the machine is too slow to finish the planned epochs within TRAIN_SECONDS; the history
records what happened.
"""
from __future__ import annotations

import numpy as np

import tinytorch as tt
from tinytorch import kernels
from tinytorch.data import Compose, DataLoader, Normalize, RandomCrop, RandomHorizontalFlip, TensorDataset, ToFloat
from tinytorch.layers import Linear, Module, Sequential
from tinytorch.optim import SGD, LinearWarmupDecay

EPOCHS = 2
BATCH_SIZE = 256
PEAK_LR = 0.2
WEIGHT_DECAY = 5e-4
MOMENTUM = 0.9
WARMUP_FRACTION = 0.2
LABEL_SMOOTHING = 0.2
WIDTHS = (32, 64, 128)
# Two epochs take about 4 minutes on a quiet 2-core machine. On a slower one the run shortens its
# schedule to fit TRAIN_SECONDS (measured after 10 steps), so that it still ends inside the 600 s
# budget of course.yaml; one epoch alone gives ~71%, so we would rather run long than stop at 240 s.
TRAIN_SECONDS = 420.0
HEAD_SCALE = 1 / 9


class Scale(Module):
    """Multiply by a constant (the 'scaled linear head': small logits early in training)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x):
        return x * self.factor


def build_network(whitening: np.ndarray, widths=WIDTHS) -> Sequential:
    """The milestone-4 CNN as a Sequential (module 14's profiler walks it layer by layer)."""
    w1, w2, w3 = widths
    return Sequential(
        kernels.WhitenedConv2d(whitening, w1, kernel_size=3, padding=1, pool=True),   # 32x32 -> 15x15
        kernels.BatchNormReLU2d(w1),
        kernels.FastConv2d(w1, w1, 3, padding=1, bias=False),
        kernels.BatchNormReLU2d(w1),
        kernels.ConvMaxPool2d(w1, w2, 3, padding=1),                                 # -> 7x7
        kernels.BatchNormReLU2d(w2),
        kernels.FastConv2d(w2, w2, 3, padding=1, bias=False),
        kernels.BatchNormReLU2d(w2),
        kernels.ConvMaxPool2d(w2, w3, 3, padding=1),                                 # -> 3x3
        kernels.BatchNormReLU2d(w3),
        kernels.FastConv2d(w3, w3, 3, padding=1, bias=False),
        kernels.BatchNormReLU2d(w3),
        kernels.GlobalMaxPool2d(),
        Linear(w3, 10, bias=False),
        Scale(HEAD_SCALE),
    )


def channel_stats(x_uint8: np.ndarray):
    x = x_uint8.astype(np.float32) / 255.0
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


def predict_logits(model, images: np.ndarray, prepare, batch_size: int = 500, flip: bool = True) -> np.ndarray:
    """Logits of every image (eval mode, no graph); with flip, averaged with the mirror image's."""
    model.eval()
    out = []
    with tt.no_grad():
        for start in range(0, len(images), batch_size):
            x = prepare(images[start:start + batch_size])
            logits = model(tt.Tensor(x)).data
            if flip:
                logits = logits + model(tt.Tensor(np.ascontiguousarray(x[..., ::-1]))).data
            out.append(logits)
    return np.concatenate(out)


def run(ctx) -> dict:
    tt.manual_seed(ctx.seed)
    x_train, y_train, x_test, y_test = ctx.load_cifar10()
    mean, std = channel_stats(x_train)
    prepare = Compose([ToFloat(), Normalize(mean, std)]).batch
    whitening = kernels.patch_whitening(prepare(x_train[:2000]), kernel_size=2)
    model = build_network(whitening)
    train = TensorDataset(x_train, y_train, transform=Compose([
        RandomCrop(32, padding=2), RandomHorizontalFlip(), ToFloat(), Normalize(mean, std)]))
    batch_size = BATCH_SIZE if not ctx.tiny else 64
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True, seed=ctx.seed)
    epochs = EPOCHS if not ctx.tiny else 1          # tiny (unit-test) runs: the plumbing, in seconds
    steps_per_epoch = len(loader)
    total_steps = epochs * steps_per_epoch
    optimizer = SGD(model.parameters(), lr=PEAK_LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    schedule = LinearWarmupDecay(optimizer, int(WARMUP_FRACTION * total_steps), total_steps)
    train_seconds = min(TRAIN_SECONDS, 0.75 * ctx.time_left())   # leave time for evaluation
    ctx.log(f"CIFAR-10: {len(x_train)} training and {len(x_test)} test images; "
            f"{sum(p.numel() for p in model.parameters())} parameters; {epochs} epochs of {steps_per_epoch} steps")

    history, step, start = [], 0, ctx.elapsed()
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for images, labels in ctx.progress(loader, total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}"):
            if step >= total_steps:
                break
            loss = kernels.softmax_cross_entropy(model(images), labels, LABEL_SMOOTHING)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            step += 1
            if step == 10 and not ctx.tiny:   # measured speed: shorten the schedule if we would overrun
                per_step = (ctx.elapsed() - start) / step
                affordable = int((train_seconds - (ctx.elapsed() - start)) / per_step) + step
                if affordable < total_steps:
                    ctx.log(f"{per_step:.2f} s per step: shortening training to {affordable} steps "
                            f"to fit {train_seconds:.0f} s")
                    total_steps = affordable
                    schedule.total_steps = total_steps
                    schedule.warmup_steps = min(schedule.warmup_steps, int(WARMUP_FRACTION * total_steps))
        last = epoch == epochs or step >= total_steps
        logits = predict_logits(model, x_test, prepare, flip=last)
        accuracy = float((logits.argmax(axis=1) == y_test).mean())
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None,
                        "test_accuracy": accuracy, "steps": step, "seconds": round(ctx.elapsed() - start, 1)})
        ctx.log(f"epoch {epoch}: train loss {history[-1]['train_loss']:.3f}, test accuracy {accuracy:.4f}"
                + (" (with flip test-time augmentation)" if last else ""))
        if step >= total_steps:
            break
    train_time = ctx.elapsed() - start
    try:                                   # peak resident memory of this process (Linux: KiB)
        import resource
        peak_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (ImportError, AttributeError):  # Windows has no `resource`
        peak_mb = None
    return {"metrics": {"test_accuracy": history[-1]["test_accuracy"]},
            "history": history,
            "details": {"parameters": int(sum(p.numel() for p in model.parameters())), "steps": step,
                        "epochs_planned": epochs, "batch_size": batch_size, "train_and_eval_seconds": round(train_time, 1),
                        "seconds_per_step": round(train_time / max(step, 1), 3), "test_time_flip": True,
                        "peak_memory_mb": peak_mb}}
