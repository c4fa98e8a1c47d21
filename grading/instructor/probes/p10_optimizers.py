"""Probes of module 10 (optimizers): what each probe calls and why it cannot be passed without the work.

Parameters of random shapes and values get gradients drawn by the probe (fresh each step, set directly, so
no backward noise is amplified), and a few steps of each optimizer run: SGD (plain, momentum with dampening
and weight decay, Nesterov, two parameter groups), Adam (with L2 weight decay) and AdamW, with random
hyper-parameters; the returned parameters after each step can only be matched by applying the formulas.
clip_grad_norm_ returns the global norm (2, inf and another p) and the clipped gradients. Each scheduler
returns its learning rates over random numbers of steps with random settings.
"""
from __future__ import annotations

import numpy as np

MODULE = "10_optimizers"


def _params(tt, rng, count=None):
    count = int(rng.integers(1, 4)) if count is None else count
    shapes = [tuple(int(s) for s in rng.integers(1, 5, size=int(rng.integers(1, 3)))) for _ in range(count)]
    return [tt.nn.Parameter(rng.normal(0.0, 1.0, s).astype(np.float32)) for s in shapes]


def _run(tt, rng, params, optimizer, steps) -> np.ndarray:
    trace = []
    for _ in range(steps):
        for p in params:
            p.grad = tt.Tensor(rng.normal(0.0, 1.0, p.shape).astype(np.float32))
        optimizer.step()
        trace.append(np.concatenate([p.data.ravel() for p in params]))
    return np.stack(trace)


def probe_sgd(tt, rng) -> dict[str, np.ndarray]:
    optim = tt.optim
    lr = float(rng.uniform(0.01, 0.5))
    momentum, dampening, decay = float(rng.uniform(0.5, 0.95)), float(rng.uniform(0.0, 0.5)), float(rng.uniform(0, 0.1))
    out = {}
    params = _params(tt, rng)
    out["plain"] = _run(tt, rng, params, optim.SGD(params, lr=lr), 3)
    params = _params(tt, rng)
    out["momentum"] = _run(tt, rng, params, optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening,
                                                      weight_decay=decay), 4)
    params = _params(tt, rng)
    out["nesterov"] = _run(tt, rng, params, optim.SGD(params, lr=lr, momentum=momentum, nesterov=True,
                                                      weight_decay=decay), 4)
    a, b = _params(tt, rng, 1), _params(tt, rng, 1)
    groups = [{"params": a}, {"params": b, "lr": lr / 3}]
    out["groups"] = _run(tt, rng, a + b, optim.SGD(groups, lr=lr, momentum=momentum), 3)
    return out


def probe_adam_and_adamw(tt, rng) -> dict[str, np.ndarray]:
    optim = tt.optim
    lr = float(rng.uniform(0.001, 0.1))
    betas = (float(rng.uniform(0.8, 0.95)), float(rng.uniform(0.95, 0.999)))
    decay = float(rng.uniform(0.01, 0.2))
    out = {}
    params = _params(tt, rng)
    out["adam"] = _run(tt, rng, params, optim.Adam(params, lr=lr, betas=betas), 4)
    params = _params(tt, rng)
    out["adam_l2"] = _run(tt, rng, params, optim.Adam(params, lr=lr, betas=betas, weight_decay=decay), 4)
    params = _params(tt, rng)
    out["adamw"] = _run(tt, rng, params, optim.AdamW(params, lr=lr, betas=betas, weight_decay=decay), 4)
    return out


def probe_clip_grad_norm(tt, rng) -> dict[str, np.ndarray]:
    out = {}
    for name, norm_type in (("l2", 2.0), ("inf", float("inf")), ("p", float(rng.uniform(1.0, 3.0)))):
        params = _params(tt, rng)
        for p in params:
            p.grad = tt.Tensor(rng.normal(0.0, 2.0, p.shape).astype(np.float32))
        max_norm = float(rng.uniform(0.2, 3.0))
        norm = tt.optim.clip_grad_norm_(params, max_norm, norm_type=norm_type)
        out[f"{name}_norm"] = np.array([float(norm)])
        out[f"{name}_grads"] = np.concatenate([p.grad.data.ravel() for p in params])
    return out


def probe_schedulers(tt, rng) -> dict[str, np.ndarray]:
    optim = tt.optim

    def rates(make, steps):
        params = _params(tt, rng, 2)
        opt = optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": float(rng.uniform(0.01, 0.1))}],
                        lr=float(rng.uniform(0.1, 1.0)))
        scheduler = make(opt)
        trace = [scheduler.get_last_lr()]
        for _ in range(steps):
            scheduler.step()
            trace.append(scheduler.get_last_lr())
        return np.array(trace, dtype=np.float64)

    total = int(rng.integers(10, 40))
    warmup = int(rng.integers(1, total // 2))
    return {
        "step": rates(lambda o: optim.StepLR(o, int(rng.integers(1, 6)), float(rng.uniform(0.1, 0.9))), total),
        "cosine": rates(lambda o: optim.CosineAnnealingLR(o, total, float(rng.uniform(0, 0.01))), total),
        "warmup_decay": rates(lambda o: optim.LinearWarmupDecay(o, warmup, total), total + 2),
        "one_cycle": rates(lambda o: optim.OneCycleLR(o, [float(rng.uniform(0.5, 2.0)), 0.3], total,
                                                      pct_start=float(rng.uniform(0.1, 0.5)),
                                                      anneal_strategy=str(rng.choice(["cos", "linear"]))), total - 1),
    }


PROBES = [probe_sgd, probe_adam_and_adamw, probe_clip_grad_norm, probe_schedulers]
