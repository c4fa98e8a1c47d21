"""Module 10 - Optimizers: SGD (momentum, Nesterov, weight decay), Adam, AdamW, schedules, clipping.

Each update is compared with a NumPy reference written from PyTorch's documented formulas (see the
docstrings in tinytorch/optim.py); convergence tests use backward() from module 09.
"""
import math

import numpy as np
import pytest

import tinytorch as tt
from tinytorch.optim import (SGD, Adam, AdamW, RMSprop, CosineAnnealingLR, LinearWarmupDecay, OneCycleLR, Optimizer,
                             StepLR, clip_grad_norm_)
from tinytorch.tensor import Tensor
from tinytorch.testing import assert_close


@pytest.fixture(autouse=True)
def _seed():
    tt.manual_seed(0)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


GRADS = [rand(3, 4, seed=s) for s in (1, 2, 3)]  # the gradients of three successive steps


def run(optimizer_factory, steps=3):
    """Apply `steps` updates with the fixed GRADS to a parameter; return its values after each step."""
    p = Tensor(rand(3, 4), requires_grad=True)
    opt = optimizer_factory([p])
    values = []
    for g in GRADS[:steps]:
        p.grad = Tensor(g)
        opt.step()
        values.append(p.data.copy())
    return values


# ---- NumPy references (PyTorch's formulas) -------------------------------------------------------------
def sgd_reference(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    p = rand(3, 4).astype(np.float64)
    buf, out = None, []
    for g in GRADS:
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


def adam_reference(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    p = rand(3, 4).astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    out = []
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat = m / (1 - betas[0] ** t)
        v_hat = v / (1 - betas[1] ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def rmsprop_reference(lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    p = rand(3, 4).astype(np.float64)
    v, g_avg, buf, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for g in GRADS:
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        avg = v
        if centered:
            g_avg = alpha * g_avg + (1 - alpha) * g
            avg = v - g_avg * g_avg
        step = g / (np.sqrt(avg) + eps)
        if momentum:
            buf = momentum * buf + step
            step = buf
        p = p - lr * step
        out.append(p)
    return out


def check_against(got, expected, what):
    for step, (g, e) in enumerate(zip(got, expected), start=1):
        assert_close(g, e.astype(np.float32), atol=1e-6, rtol=1e-5, what=f"{what}, parameter after step {step}")


# ---- SGD -----------------------------------------------------------------------------------------------
def test_sgd_plain_step_is_p_minus_lr_times_grad():
    check_against(run(lambda ps: SGD(ps, lr=0.1)), sgd_reference(0.1), "SGD(lr=0.1)")


def test_sgd_momentum_with_dampening_and_weight_decay_matches_pytorch():
    check_against(run(lambda ps: SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
                  sgd_reference(0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
                  "SGD momentum=0.9 dampening=0.1 weight_decay=0.01 (the first step's buffer is the gradient itself)")


def test_sgd_nesterov_matches_pytorch():
    check_against(run(lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
                  sgd_reference(0.05, momentum=0.9, nesterov=True), "SGD nesterov (g + momentum * buf)")


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_sgd_validates_its_hyperparameters():
    p = [Tensor(np.zeros(2, np.float32), requires_grad=True)]
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        SGD(p, lr=-1.0)
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)


# ---- Adam and AdamW ------------------------------------------------------------------------------------
def test_adam_matches_the_bias_corrected_formula():
    check_against(run(lambda ps: Adam(ps, lr=0.01)), adam_reference(0.01), "Adam(lr=0.01)")


def test_adam_first_step_moves_every_coordinate_by_about_lr():
    """With bias correction, m_hat = g and v_hat = g^2 at t = 1, so the step is lr * g / |g| = lr * sign(g)."""
    p0 = rand(3, 4)
    (p1,) = run(lambda ps: Adam(ps, lr=0.01), steps=1)
    assert_close(p0 - p1, 0.01 * np.sign(GRADS[0]), atol=1e-6,
                 what="Adam's first step (forgot the bias correction 1 - beta ** t?)")


def test_adam_with_l2_weight_decay_matches_pytorch():
    check_against(run(lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
                  adam_reference(0.01, betas=(0.8, 0.99), weight_decay=0.1),
                  "Adam weight_decay=0.1 (added to the gradient)")


def test_adamw_decays_the_weights_directly():
    check_against(run(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1)),
                  adam_reference(0.01, weight_decay=0.1, decoupled=True),
                  "AdamW weight_decay=0.1 (p *= 1 - lr * weight_decay, then Adam without decay)")
    adam_l2 = run(lambda ps: Adam(ps, lr=0.01, weight_decay=0.1))
    adamw = run(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1))
    assert not np.allclose(adam_l2[-1], adamw[-1]), "AdamW must differ from Adam with L2 decay"
    assert AdamW([Tensor(np.zeros(1, np.float32), requires_grad=True)]).param_groups[0]["weight_decay"] == 0.01


# ---- RMSprop -------------------------------------------------------------------------------------------
def test_rmsprop_matches_pytorch_formula():
    check_against(run(lambda ps: RMSprop(ps, lr=0.01)), rmsprop_reference(0.01), "RMSprop(lr=0.01)")


def test_rmsprop_with_momentum_weight_decay_and_centering_matches_pytorch():
    kwargs = dict(alpha=0.9, weight_decay=0.1, momentum=0.5, centered=True)
    check_against(run(lambda ps: RMSprop(ps, lr=0.01, **kwargs)), rmsprop_reference(0.01, **kwargs),
                  "RMSprop(alpha=0.9, weight_decay=0.1, momentum=0.5, centered=True)")
    check_against(run(lambda ps: RMSprop(ps, lr=0.01, momentum=0.5)), rmsprop_reference(0.01, momentum=0.5),
                  "RMSprop(momentum=0.5)")


# ---- behaviour common to all optimizers ------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adam(ps, lr=0.1),
                                  lambda ps: AdamW(ps, lr=0.1), lambda ps: RMSprop(ps, lr=0.1, momentum=0.9)],
                         ids=["SGD", "Adam", "AdamW", "RMSprop"])
def test_updates_are_in_place_float32_and_record_no_graph(make):
    p = Tensor(rand(3, 4), requires_grad=True)
    frozen = Tensor(rand(2), requires_grad=True)  # no gradient: must be skipped
    opt = make([p, frozen])
    buffer, before = p.data, frozen.data.copy()
    p.grad = Tensor(GRADS[0])
    opt.step()
    assert p.data is buffer, "update p.data in place (p.data -= ...), do not replace the array"
    assert p.data.dtype == np.float32, f"parameters must stay float32, got {p.data.dtype}"
    assert p.is_leaf and p.requires_grad, "an optimizer step must not record a graph"
    np.testing.assert_array_equal(frozen.data, before, err_msg="parameters without .grad are left alone")
    opt.zero_grad()
    assert p.grad is None, "zero_grad() sets every .grad to None"


def test_parameter_groups_have_their_own_learning_rate():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.ones(2, np.float32), requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = Tensor(np.ones(2, np.float32))
    b.grad = Tensor(np.ones(2, np.float32))
    opt.step()
    assert_close(a.data, np.full(2, 0.9, np.float32), what="group 1 uses the default lr 0.1")
    assert_close(b.data, np.zeros(2, np.float32), what="group 2 uses its own lr 1.0")
    with pytest.raises(ValueError, match="twice"):
        SGD([{"params": [a]}, {"params": [a]}], lr=0.1)


@pytest.mark.parametrize("cls,kwargs", [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.01)),
                                        (AdamW, dict(lr=0.01, weight_decay=0.1)),
                                        (RMSprop, dict(lr=0.01, momentum=0.9, centered=True))])
def test_state_dict_round_trip_continues_identically(cls, kwargs):
    p = Tensor(rand(3, 4), requires_grad=True)
    opt = cls([p], **kwargs)
    for g in GRADS[:2]:
        p.grad = Tensor(g)
        opt.step()
    saved = opt.state_dict()
    q = Tensor(p.data.copy(), requires_grad=True)
    fresh = cls([q], lr=123.0)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == kwargs["lr"], "hyper-parameters are restored too"
    for t, opt_ in ((p, opt), (q, fresh)):
        t.grad = Tensor(GRADS[2])
        opt_.step()
    np.testing.assert_array_equal(q.data, p.data, err_msg="a restored optimizer must continue exactly like the original")
    assert saved["state"][0] is not opt.state[0], "state_dict() must return copies"


def test_load_state_dict_rejects_a_different_model():
    p = Tensor(rand(3, 4), requires_grad=True)
    opt = Adam([p])
    p.grad = Tensor(GRADS[0])
    opt.step()
    other = Adam([Tensor(rand(2, 2), requires_grad=True)])
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(opt.state_dict())


# ---- convergence ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,steps", [(lambda ps: SGD(ps, lr=0.05, momentum=0.9), 150),
                                        (lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True), 150),
                                        (lambda ps: Adam(ps, lr=0.1), 300),
                                        (lambda ps: AdamW(ps, lr=0.1, weight_decay=0.0), 300),
                                        (lambda ps: RMSprop(ps, lr=0.01), 500)],
                         ids=["SGD-momentum", "SGD-nesterov", "Adam", "AdamW", "RMSprop"])
def test_optimizers_minimize_an_ill_conditioned_quadratic(make, steps):
    target = np.array([1.0, -2.0, 3.0], np.float32)
    scale = Tensor(np.array([1.0, 5.0, 0.5], np.float32))
    w = Tensor(np.zeros(3, np.float32), requires_grad=True)
    opt = make([w])
    for _ in range(steps):
        loss = (scale * (w - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert_close(w.data, target, atol=2e-2, what=f"minimum of sum(scale * (w - target)^2) after {steps} steps")


def test_adamw_trains_logistic_regression_to_full_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2)).astype(np.float32)
    y = (x @ np.array([2.0, -1.0]) > 0).astype(np.int64)
    model = tt.nn.Linear(2, 2)
    opt = AdamW(model.parameters(), lr=0.1, weight_decay=0.01)
    X = Tensor(x)
    for _ in range(100):
        loss = tt.nn.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (model(X).data.argmax(axis=1) == y).mean()
    assert acc >= 0.98, f"logistic regression on separable data should reach ~100% accuracy, got {acc:.2f}"


# ---- gradient clipping ---------------------------------------------------------------------------------
def test_clip_grad_norm_scales_all_gradients_together():
    a = Tensor(np.zeros(2, np.float32), requires_grad=True)
    b = Tensor(np.zeros(1, np.float32), requires_grad=True)
    a.grad, b.grad = Tensor(np.array([3.0, 0.0], np.float32)), Tensor(np.array([4.0], np.float32))
    total = clip_grad_norm_([a, b], max_norm=1.0)
    assert abs(total - 5.0) < 1e-5, f"return the global norm before clipping: sqrt(3^2 + 4^2) = 5, got {total}"
    assert_close(a.grad.data, np.array([0.6, 0.0], np.float32), atol=1e-5, what="a.grad scaled by 1/5")
    assert_close(b.grad.data, np.array([0.8], np.float32), atol=1e-5, what="b.grad scaled by 1/5")


def test_clip_grad_norm_leaves_small_gradients_alone_and_supports_inf_norm():
    a = Tensor(np.zeros(2, np.float32), requires_grad=True)
    a.grad = Tensor(np.array([0.3, -0.4], np.float32))
    assert abs(clip_grad_norm_([a], max_norm=1.0) - 0.5) < 1e-6
    assert_close(a.grad.data, np.array([0.3, -0.4], np.float32), what="a norm below max_norm changes nothing")
    total = clip_grad_norm_([a], max_norm=0.2, norm_type=math.inf)
    assert abs(total - 0.4) < 1e-6, f"the inf-norm is the largest |entry|, 0.4, got {total}"
    assert_close(a.grad.data, np.array([0.15, -0.2], np.float32), atol=1e-5, what="scaled by 0.2 / 0.4")
    assert clip_grad_norm_([Tensor(np.zeros(1, np.float32), requires_grad=True)], 1.0) == 0.0, "no gradients: 0"


# ---- learning-rate schedules ---------------------------------------------------------------------------
def lrs(scheduler, steps):
    """The learning rate used at steps 0 .. steps-1 (the rate set before each optimizer step)."""
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.step()
    return out


def sgd(lr=0.1):
    return SGD([Tensor(np.zeros(1, np.float32), requires_grad=True)], lr=lr)


def test_step_lr():
    got = lrs(StepLR(sgd(0.1), step_size=3, gamma=0.5), 8)
    expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]
    assert np.allclose(got, expected), f"StepLR(step_size=3, gamma=0.5): expected {expected}, got {got}"


def test_cosine_annealing():
    sched = CosineAnnealingLR(sgd(0.1), T_max=10, eta_min=0.001)
    got = lrs(sched, 11)
    expected = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(11)]
    assert np.allclose(got, expected), f"cosine annealing: expected {np.round(expected, 5)}, got {np.round(got, 5)}"
    assert abs(got[-1] - 0.001) < 1e-12 and abs(got[5] - 0.0505) < 1e-9, "halfway is the mean, the end is eta_min"
    assert sched.get_last_lr() == [sched.optimizer.param_groups[0]["lr"]]


def test_linear_warmup_then_linear_decay_to_zero():
    got = lrs(LinearWarmupDecay(sgd(1.0), warmup_steps=4, total_steps=12), 14)
    expected = [0, 0.25, 0.5, 0.75, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0]
    assert np.allclose(got, expected), f"warm-up 4, total 12: expected {expected}, got {got}"


def test_one_cycle_follows_pytorch_phases():
    total, max_lr = 20, 1.0
    got = lrs(OneCycleLR(sgd(0.5), max_lr=max_lr, total_steps=total, pct_start=0.25), total)
    initial, final = max_lr / 25, max_lr / 25 / 1e4
    warm_end, last = 0.25 * total - 1, total - 1

    def cos_anneal(a, b, f):
        return b + (a - b) * (1 + math.cos(math.pi * f)) / 2

    expected = [cos_anneal(initial, max_lr, t / warm_end) if t <= warm_end
                else cos_anneal(max_lr, final, (t - warm_end) / (last - warm_end)) for t in range(total)]
    assert np.allclose(got, expected), f"OneCycleLR: expected {np.round(expected, 4)}, got {np.round(got, 4)}"
    assert abs(got[0] - 0.04) < 1e-12 and abs(got[4] - 1.0) < 1e-12 and abs(got[-1] - final) < 1e-12


def test_scheduler_state_dict_round_trip():
    sched = CosineAnnealingLR(sgd(0.1), T_max=10)
    lrs(sched, 4)
    fresh = CosineAnnealingLR(sgd(0.1), T_max=10)
    fresh.load_state_dict(sched.state_dict())
    assert lrs(fresh, 3) == lrs(sched, 3), "a restored scheduler continues where the original was"


@pytest.mark.given   # passes with no work in this module: checks code the course gives
def test_a_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="Optimizer"):
        StepLR([0.1], step_size=1)
    assert issubclass(SGD, Optimizer)
