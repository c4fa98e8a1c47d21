"""Milestone 3 - Full Training: your framework trains a CNN on CIFAR-10 from scratch.

What you build (modules 05-11): losses (05), Conv2d/MaxPool2d/BatchNorm2d (06), the DataLoader (08),
backward rules (09), the optimizer and schedules (10) and the training step, evaluation and
checkpoints (11), on top of 02-04.
What this program does: it builds a small convolutional network from YOUR `tt.nn` layers - three
blocks of conv 3x3 -> batch norm -> ReLU -> max-pool 2, then a linear classifier - and trains it from
random weights on the 50,000 CIFAR-10 training images with your DataLoader and transforms (ToFloat,
Normalize, RandomHorizontalFlip), your autograd, your SGD (Nesterov momentum, weight decay) and your
learning-rate schedule (linear warm-up, then linear decay to 0). After every epoch it measures the
accuracy on the 10,000 held-out test images (your `evaluate`). At the end it saves a checkpoint
(your `save_checkpoint`), loads it into a fresh network (`load_checkpoint`) and checks that the
reloaded model predicts exactly the same classes.
Victory (assignments/course.yaml): test accuracy >= the threshold, accuracy rising epoch over epoch
(accuracy_rises = 1), and identical predictions after reloading (reload_identical = 1), within the
time budget on 2 cores. Only module-06 convolutions are used (no module-13 fast kernels).
"""
from __future__ import annotations

import time

import numpy as np

from milestones.common import count_parameters, predict_in_batches

CAPABILITIES = [
    "train a convolutional network from random weights on real color images",
    "drive the whole loop yourself: data loader, forward, loss, backward, optimizer step, schedule",
    "watch held-out accuracy climb epoch after epoch",
    "save a trained model and load it back, bit for bit",
]
WIDTHS = (16, 32, 64)        # channels of the three conv blocks
TINY_WIDTHS = (8, 16, 16)    # tiny (unit-test) runs: same code path, seconds of work
EPOCHS = 3
BATCH = 128
PEAK_LR = 0.08
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
WARMUP = 0.2                 # fraction of the steps spent warming the learning rate up
RISE_TOLERANCE = 0.005       # an epoch may dip this much (noise) and still count as "rising"
ABORT_FACTOR = 3.0           # abort early when the run is projected to take this many budgets


def build_model(widths=WIDTHS):
    """(N, 3, 32, 32) -> logits (N, 10): [conv3x3 -> BN -> ReLU -> maxpool2] x 3 -> linear."""
    import tinytorch as tt

    nn = tt.nn
    layers, channels = [], 3
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                   nn.MaxPool2d(2)]
        channels = width
    side = 32 // 2 ** len(widths)
    layers += [nn.Flatten(), nn.Linear(channels * side * side, 10)]
    return nn.Sequential(*layers)


def channel_stats(x_train: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images on the [0, 1] scale (for Normalize).

    Estimated on every 5th image: as exact as needed, and without a 1 GB float64 temporary.
    """
    sample = x_train[::5].astype(np.float32) / 255.0
    mean = sample.mean(axis=(0, 2, 3), dtype=np.float64)
    std = sample.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.tolist(), np.maximum(std, 1e-3).tolist()


def accuracy_rises(accuracies: list[float], tolerance: float = RISE_TOLERANCE) -> bool:
    """At least two epochs, the last better than the first, and no epoch falling by more than `tolerance`."""
    if len(accuracies) < 2 or accuracies[-1] <= accuracies[0]:
        return False
    return all(b >= a - tolerance for a, b in zip(accuracies, accuracies[1:]))


def check_speed(ctx, seconds: float, steps: int, minimum_steps: int) -> None:
    """Stop early, with advice, when even the shortest run would take far more than the budget."""
    projected = seconds / steps * minimum_steps * 1.15   # + test passes
    if projected > ABORT_FACTOR * ctx.budget_seconds:
        raise RuntimeError(
            f"training is too slow: {steps} steps took {seconds:.0f} s, so even the shortest run would take "
            f"about {projected / 60:.0f} min against a budget of {ctx.budget_seconds / 60:.0f} min. Profile one "
            "step (module 14): the convolution (module 06) should be im2col plus one matmul per layer, with no "
            "Python loops over pixels or channels")


def fit_epochs_to_budget(ctx, epochs: int, done: int, seconds: float, schedule, steps_per_epoch: int) -> int:
    """After epoch `done`: if the planned epochs (plus the final reload check) would overrun the budget,
    plan fewer (never below 2) and make the learning-rate decay end with the new last epoch."""
    per_epoch = seconds / done                  # training + one test pass
    reload_check = 0.25 * per_epoch             # two more test passes after training
    margin = 0.02 * ctx.budget_seconds
    fits = done
    while fits < epochs and ctx.time_left() - (fits + 1 - done) * per_epoch - reload_check > margin:
        fits += 1
    fits = max(fits, min(2, epochs), done)
    if fits < epochs:
        schedule.total_steps = max(fits * steps_per_epoch, schedule.warmup_steps + 1)
        ctx.log(f"this machine needs about {per_epoch:.0f} s per epoch: training {fits} epochs instead of "
                f"{epochs} to stay within the {ctx.budget_seconds:.0f} s budget (learning rate decays sooner)")
    return fits


def run(ctx) -> dict:
    import tinytorch as tt
    from tinytorch import training

    tt.manual_seed(ctx.seed)
    x_train, y_train, x_test, y_test = ctx.load_cifar10()
    widths = TINY_WIDTHS if ctx.tiny else WIDTHS
    epochs = planned_epochs = EPOCHS
    data = tt.data
    mean, std = channel_stats(x_train)
    to_input = data.Compose([data.ToFloat(), data.Normalize(mean, std)])        # test images
    augmented = data.Compose([data.ToFloat(), data.Normalize(mean, std), data.RandomHorizontalFlip()])
    loader = data.DataLoader(data.TensorDataset(x_train, y_train, transform=augmented), batch_size=BATCH,
                             shuffle=True, seed=ctx.seed)
    test_loader = data.DataLoader(data.TensorDataset(x_test, y_test, transform=to_input), batch_size=1000)
    model = build_model(widths)
    opt = tt.optim.SGD(model.parameters(), lr=PEAK_LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = len(loader)
    schedule = tt.optim.LinearWarmupDecay(opt, warmup_steps=int(WARMUP * epochs * steps_per_epoch),
                                          total_steps=epochs * steps_per_epoch)
    trainer = training.Trainer(model, opt, tt.nn.CrossEntropyLoss(), progress=False)
    params = count_parameters(model)
    ctx.log(f"CNN widths {'-'.join(map(str, widths))}: {params:,} parameters; {epochs} epochs x "
            f"{steps_per_epoch} steps of {BATCH} images; SGD Nesterov, peak lr {PEAK_LR}")

    history, step, started, epoch = [], 0, time.perf_counter(), 0
    while epoch < epochs:
        epoch += 1
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        epoch_start = time.perf_counter()
        for xb, yb in ctx.progress(loader, total=steps_per_epoch, desc=f"epoch {epoch}/{epochs}"):
            loss, logits = trainer.train_step(xb, yb)   # module 11: forward, loss, zero_grad, backward, step
            schedule.step()
            step += 1
            loss_sum += loss * len(yb)
            correct += int((np.argmax(logits.data, axis=1) == yb.data).sum())
            seen += len(yb)
            if step == 20 and not ctx.tiny:
                check_speed(ctx, time.perf_counter() - started, step, min(2, epochs) * steps_per_epoch)
        train_seconds = time.perf_counter() - epoch_start
        test_loss, test_acc = training.evaluate(model, test_loader)   # eval mode, no graph
        history.append({"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                        "test_loss": test_loss, "test_accuracy": test_acc, "train_seconds": round(train_seconds, 2),
                        "images_per_second": round(seen / train_seconds, 1)})
        ctx.log(f"epoch {epoch}: train loss {loss_sum / seen:.3f}, train acc {correct / seen:.3f}, "
                f"test acc {test_acc:.4f} ({train_seconds:.0f} s, {seen / train_seconds:.0f} images/s); "
                f"{ctx.time_left():.0f} s of budget left")
        epochs = fit_epochs_to_budget(ctx, epochs, epoch, time.perf_counter() - started, schedule, steps_per_epoch)

    # save a checkpoint (module 11), load it into a fresh model, compare predictions on the whole test set
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / "m3_cnn.ckpt.npz"
    training.save_checkpoint(path, model, opt, schedule, epoch=epoch, history=history)
    reloaded = build_model(widths)
    training.load_checkpoint(path, reloaded)
    predicted = predict_in_batches(model, x_test, to_input.batch, 1000)
    again = predict_in_batches(reloaded, x_test, to_input.batch, 1000, ctx, desc="reloaded")
    differ = int((again != predicted).sum())
    ctx.log(f"saved to {path}; the reloaded model gives {'identical' if not differ else 'DIFFERENT'} predictions "
            f"({differ} of {len(predicted)} differ)")

    accuracies = [h["test_accuracy"] for h in history]
    return {"metrics": {"test_accuracy": accuracies[-1],
                        "accuracy_rises": 1.0 if accuracy_rises(accuracies) else 0.0,
                        "reload_identical": 1.0 if differ == 0 else 0.0},
            "history": history,
            "details": {"parameters": params, "architecture": f"3x[conv3x3-bn-relu-maxpool] widths "
                        f"{'-'.join(map(str, widths))}, linear head", "epochs": epochs,
                        "epochs_planned": planned_epochs, "batch_size": BATCH,
                        "optimizer": f"SGD nesterov momentum {MOMENTUM}, wd {WEIGHT_DECAY}, peak lr {PEAK_LR}, "
                        f"warm-up {WARMUP:.0%} then linear decay", "augmentation": "random horizontal flip",
                        "test_accuracy_per_epoch": accuracies, "predictions_differing_after_reload": differ,
                        "checkpoint": str(path),
                        "train_seconds": round(sum(h["train_seconds"] for h in history), 1)}}
