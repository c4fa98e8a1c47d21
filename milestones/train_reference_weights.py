"""Train the weights that milestones 1 and 2 ship, with the reference framework (this repository's tinytorch).

    export TINYTORCH_DATA=/path/to/data        # holds mnist.npz
    python milestones/train_reference_weights.py            # both: weights/m1_mlp.npz, weights/m2_cnn.npz
    python milestones/train_reference_weights.py --only m2 --seed 0

The architectures and input preparation are imported from the milestone programs themselves
(`build_model`, `prepare`), so the shipped weights always match what the milestones build. Training is
reproducible: the seed fixes the initialisation (tt.manual_seed) and the shuffling order. A run that does
not reach the accuracy we promise (m1 >= 0.97, m2 >= 0.985 on the MNIST test set) refuses to overwrite
the shipped file.

Recipe: Adam (batch 64 for m1, 128 for m2), learning rate held for the first half and then decayed
linearly to 10%, 4 epochs on the 60,000 training images; evaluated on the 10,000 test images.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `milestones.*` importable
    sys.path.insert(0, str(REPO_ROOT))

import tinytorch as tt  # noqa: E402
from milestones import m1_basic_inference as m1, m2_computer_vision as m2  # noqa: E402
from milestones.common import MilestoneContext, count_parameters, predict_in_batches  # noqa: E402

TARGETS = {  # name: (program, weights file, promised accuracy, epochs, learning rate, batch size)
    "m1": (m1, m1.WEIGHTS, 0.97, 4, 1e-3, 64),
    "m2": (m2, m2.WEIGHTS, 0.985, 4, 2e-3, 128),
}


def state_arrays(model) -> dict[str, np.ndarray]:
    """The model's state dict as float32 arrays (what the .npz stores)."""
    return {k: np.asarray(getattr(v, "data", v), dtype=np.float32) for k, v in model.state_dict().items()}


def train(name: str, seed: int, epochs: int | None, batch: int | None, ctx: MilestoneContext, force: bool) -> float:
    program, path, promised, default_epochs, lr, default_batch = TARGETS[name]
    epochs = epochs or default_epochs
    batch = batch or default_batch
    from tinytorch.datasets import load_mnist
    x_train, y_train, x_test, y_test = load_mnist()   # the instructor's script: all of MNIST
    tt.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = program.build_model()
    ctx.log(f"{name}: {count_parameters(model):,} parameters, {epochs} epochs of {len(x_train):,} images, seed {seed}")
    opt = tt.optim.Adam(model.parameters(), lr=lr)
    loss_fn = tt.nn.CrossEntropyLoss()
    steps_per_epoch = len(x_train) // batch
    total = epochs * steps_per_epoch
    step = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(x_train))
        losses = []
        for i in ctx.progress(range(steps_per_epoch), desc=f"{name} epoch {epoch}/{epochs}"):
            rows = order[i * batch:(i + 1) * batch]
            # constant for the first half, then linear decay to 10% of the peak
            frac = step / total
            for group in opt.param_groups:
                group["lr"] = lr if frac < 0.5 else lr * (1.0 - 1.8 * (frac - 0.5))
            loss = loss_fn(model(tt.Tensor(program.prepare(x_train[rows]))), tt.Tensor(y_train[rows]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
            step += 1
        acc = float((predict_in_batches(model, x_test, program.prepare, 1000) == y_test).mean())
        ctx.log(f"{name} epoch {epoch}: train loss {np.mean(losses):.4f}, test accuracy {acc:.4f}, "
                f"{time.perf_counter() - start:.0f} s")
    if acc < promised and not force:
        ctx.log(f"{name}: test accuracy {acc:.4f} is below the promised {promised}; NOT writing {path} "
                "(use --force to write anyway)")
        return acc
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **state_arrays(model))
    tmp.replace(path)
    ctx.log(f"{name}: wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size / 1024:.0f} KiB), "
            f"test accuracy {acc:.4f}")
    return acc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(TARGETS), action="append", help="train only this one (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epoch count")
    parser.add_argument("--batch", type=int, default=None, help="override the recipe's batch size")
    parser.add_argument("--force", action="store_true", help="write the weights even below the promised accuracy")
    args = parser.parse_args(argv)
    ctx = MilestoneContext(0)   # for log() and progress() only
    ok = True
    for name in args.only or sorted(TARGETS):
        acc = train(name, args.seed, args.epochs, args.batch, ctx, args.force)
        ok &= acc >= TARGETS[name][2]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
