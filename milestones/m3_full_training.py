"""Milestone 3 - Full Training: your framework trains a CNN on CIFAR-10 from scratch.

What you build (modules 05-11): losses (05), Conv2d/MaxPool2d/BatchNorm2d (06), the DataLoader (08),
backward rules (09), the optimizer and schedules (10) and the training step, evaluation and
checkpoints (11), on top of 02-04.
What this program does: it builds a small convolutional network from YOUR `tt.nn` layers - three
blocks of conv 3x3 -> batch norm -> ReLU -> max-pool 2, then a linear classifier - and trains it from
random weights on the CIFAR-10 training images (5,000 of them set aside as a validation split) with
your DataLoader and transforms (ToFloat, Normalize, RandomHorizontalFlip), your autograd, your SGD
(Nesterov momentum, weight decay) and your learning-rate schedule (linear warm-up, then linear decay
to 0) for the fixed number of epochs in course.yaml. After every epoch the judge scores the model on
the 10,000 held-out test images (it sends them without labels and keeps the accuracy); the program
stops early when the validation split meets the stricter stop bar of course.yaml (after at least
`min_epochs`). At the end it saves a checkpoint (your `save_checkpoint`), loads it into a fresh
network (`load_checkpoint`), and the judge checks that the reloaded model predicts exactly the same
classes. Victory (assignments/course.yaml): test accuracy >= the threshold, accuracy rising epoch
over epoch (accuracy_rises = 1), and identical predictions after reloading (reload_identical = 1).
Only module-06 convolutions are used (no module-13 fast kernels).
"""
from __future__ import annotations

import time

import numpy as np

from milestones.common import count_parameters, predict_in_batches, stop_bar_met, validation_split

CAPABILITIES = [
    "train a convolutional network from random weights on real color images",
    "drive the whole loop yourself: data loader, forward, loss, backward, optimizer step, schedule",
    "watch held-out accuracy climb epoch after epoch",
    "save a trained model and load it back, bit for bit",
]
WIDTHS = (16, 32, 64)        # channels of the three conv blocks
TINY_WIDTHS = (8, 16, 16)    # tiny (unit-test) runs: same code path, seconds of work
EPOCHS = 3                   # course.yaml `schedule` overrides (it holds the numbers)
BATCH = 128
PEAK_LR = 0.08
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
WARMUP = 0.2                 # fraction of the steps spent warming the learning rate up


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


def loss_function():
    """The training loss (module 05's cross-entropy): one home for run() and profile_case()."""
    import tinytorch as tt
    return tt.nn.CrossEntropyLoss()


def profile_case(ctx) -> dict:
    """What the judge profiles when a run is too slow (grading/profiling.py): the network run() trains, in
    training mode, one synthetic batch of the training shape (seeded; no data needed) and the loss."""
    import tinytorch as tt

    tt.manual_seed(ctx.seed)
    model = build_model(TINY_WIDTHS if ctx.tiny else WIDTHS)
    model.train()
    rng = np.random.default_rng(ctx.seed)
    x = tt.Tensor(rng.standard_normal((BATCH, 3, 32, 32), dtype=np.float32))
    y = tt.Tensor(rng.integers(0, 10, BATCH))
    criterion = loss_function()
    return {"layers": model, "input": x, "loss": lambda logits: criterion(logits, y)}


def channel_stats(x_train: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images on the [0, 1] scale (for Normalize).

    Estimated on every 5th image: as exact as needed, and without a 1 GB float64 temporary.
    """
    sample = x_train[::5].astype(np.float32) / 255.0
    mean = sample.mean(axis=(0, 2, 3), dtype=np.float64)
    std = sample.std(axis=(0, 2, 3), dtype=np.float64)
    return mean.tolist(), np.maximum(std, 1e-3).tolist()


def run(ctx) -> dict:
    import tinytorch as tt
    from tinytorch import training

    tt.manual_seed(ctx.seed)
    schedule_spec = ctx.schedule
    epochs, min_epochs = schedule_spec.get("epochs", EPOCHS), schedule_spec.get("min_epochs", 2)
    x_all, y_all = ctx.load_cifar10()
    # a validation split carved from the TRAINING images decides the stop rule; the test set stays with the judge
    x_train, y_train, x_val, y_val = validation_split(
        x_all, y_all, min(schedule_spec.get("validation", 0), len(x_all) // 4), ctx.seed)
    widths = TINY_WIDTHS if ctx.tiny else WIDTHS
    data = tt.data
    mean, std = channel_stats(x_train)
    to_input = data.Compose([data.ToFloat(), data.Normalize(mean, std)])        # evaluation images
    augmented = data.Compose([data.ToFloat(), data.Normalize(mean, std), data.RandomHorizontalFlip()])
    loader = data.DataLoader(data.TensorDataset(x_train, y_train, transform=augmented), batch_size=BATCH,
                             shuffle=True, seed=ctx.seed)
    model = build_model(widths)
    opt = tt.optim.SGD(model.parameters(), lr=PEAK_LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = len(loader)
    schedule = tt.optim.LinearWarmupDecay(opt, warmup_steps=int(WARMUP * epochs * steps_per_epoch),
                                          total_steps=epochs * steps_per_epoch)
    trainer = training.Trainer(model, opt, loss_function(), progress=False)
    params = count_parameters(model)
    ctx.log(f"CNN widths {'-'.join(map(str, widths))}: {params:,} parameters; {epochs} epochs x "
            f"{steps_per_epoch} steps of {BATCH} images ({len(x_val)} training images set aside for the stop "
            f"rule); SGD Nesterov, peak lr {PEAK_LR}")

    def predict(net):
        return lambda images: predict_in_batches(net, images, to_input.batch, 1000)

    history, step, stopped_at = [], 0, None
    for epoch in range(1, epochs + 1):
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
        train_seconds = time.perf_counter() - epoch_start
        entry = {"epoch": epoch, "step": step, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                 "train_seconds": round(train_seconds, 2), "images_per_second": round(seen / train_seconds, 1)}
        if len(x_val):
            entry["val_accuracy"] = float((predict(model)(x_val) == y_val).mean())
        history.append(entry)
        ctx.evaluate(predict(model), tag="epoch", epoch=epoch, step=step)   # the judge keeps the test accuracy
        ctx.log(f"epoch {epoch}: train loss {entry['train_loss']:.3f}, train acc {entry['train_accuracy']:.3f}"
                + (f", validation acc {entry['val_accuracy']:.4f}" if "val_accuracy" in entry else "")
                + f" ({train_seconds:.0f} s, {seen / train_seconds:.0f} images/s)")
        if epoch < epochs and epoch >= min_epochs and stop_bar_met(ctx.schedule, entry):
            stopped_at = {"epoch": epoch, "step": step, "of_steps": epochs * steps_per_epoch}
            ctx.log(f"stop rule met after epoch {epoch} (step {step}): {ctx.schedule['stop_bar']}")
            break

    # save a checkpoint (module 11), load it into a fresh model; the judge compares the two models' predictions
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / "m3_cnn.ckpt.npz"
    training.save_checkpoint(path, model, opt, schedule, epoch=epoch, history=history)
    reloaded = build_model(widths)
    training.load_checkpoint(path, reloaded)
    ctx.evaluate(predict(reloaded), tag="reloaded")
    ctx.log(f"saved to {path} and reloaded; the judge compares the reloaded model's predictions with the trained one's")
    return {"history": history, "stopped_at": stopped_at,
            "details": {"parameters": params, "architecture": f"3x[conv3x3-bn-relu-maxpool] widths "
                        f"{'-'.join(map(str, widths))}, linear head", "epochs": epoch,
                        "epochs_planned": epochs, "steps": step, "batch_size": BATCH,
                        "optimizer": f"SGD nesterov momentum {MOMENTUM}, wd {WEIGHT_DECAY}, peak lr {PEAK_LR}, "
                        f"warm-up {WARMUP:.0%} then linear decay", "augmentation": "random horizontal flip",
                        "validation_images": int(len(x_val)),
                        "train_seconds": round(sum(h["train_seconds"] for h in history), 1)}}
