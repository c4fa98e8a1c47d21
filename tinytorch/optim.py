"""Module 10 - Optimizers: turn gradients into better parameters.

After `loss.backward()` every parameter `p` has a gradient `p.grad`; an optimizer's `step()`
moves `p.data` a little against it. Plain SGD takes `p -= lr * grad`; momentum remembers a running
direction; Adam scales each coordinate by a running estimate of its gradient's size.

    optimizer = tt.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    scheduler = tt.optim.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    for x, y in loader:
        loss = tt.nn.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        tt.optim.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        scheduler.step()

Updates follow PyTorch's formulas (each class docstring gives them), so numbers you see here are
the numbers PyTorch would give. They work in place on `p.data` with NumPy (`p.data -= ...`):
NumPy arithmetic records no graph, and in-place updates allocate no new parameter arrays. All
state (momentum buffers, Adam's moments) has the parameter's dtype, float32 normally.

Per-parameter hyper-parameters use PyTorch's parameter groups:
`SGD([{"params": body.parameters()}, {"params": head.parameters(), "lr": 0.1}], lr=0.01)`.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from tinytorch.tensor import Tensor, TensorError


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses define `step()`.

    `param_groups` is a list of dicts {"params": [tensors], "lr": ..., other hyper-parameters};
    `state[i]` is the state dict of the i-th parameter (counting through all groups in order).
    """

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors (e.g. "
                            "model.parameters()), got a single Tensor; wrap it in a list")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list; did the model define any "
                             "Parameters, and did you pass model.parameters()?")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        seen: set[int] = set()
        for group in groups:
            group = {**self.defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got {type(p).__name__}")
                if p.dtype.kind != "f":
                    raise TensorError(f"{type(self).__name__}: cannot optimize a tensor of dtype {p.dtype} "
                                      f"(shape {p.shape}); parameters are floating point")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: a parameter of shape {p.shape} appears twice; each "
                                     "parameter may be in only one group (it would be updated twice per step)")
                seen.add(id(p))
            self._check_hyper(group)
            self.param_groups.append(group)
        self.state: dict[int, dict] = {}

    def _check_hyper(self, group: dict) -> None:
        if not group.get("lr", 0) >= 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be >= 0, got {group.get('lr')}")
        if group.get("weight_decay", 0) < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, got {group['weight_decay']}")

    def _parameters(self):
        """(index, group, parameter) for every parameter that has a gradient."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield i, group, p
                i += 1

    def zero_grad(self) -> None:
        """Forget all gradients (`p.grad = None`), as PyTorch does by default (set_to_none=True)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define step()")

    # ---- saving and resuming --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": {index: {name: array or number}}, "param_groups": [{hyper-parameters, "params": [indices]}]}.

        Parameters are referred to by their index, as in PyTorch; arrays are copies.
        """
        groups, i = [], 0
        for group in self.param_groups:
            entry = {k: v for k, v in group.items() if k != "params"}
            entry["params"] = list(range(i, i + len(group["params"])))
            i += len(group["params"])
            groups.append(entry)
        state = {idx: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for idx, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and state saved by `state_dict()` (for the same parameters)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved state has {len(groups)} parameter "
                             f"groups, this optimizer has {len(self.param_groups)}")
        params = []
        for saved, group in zip(groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: a saved group has {len(saved['params'])} "
                                 f"parameters, the optimizer's has {len(group['params'])}")
            params.extend(group["params"])
        state: dict[int, dict] = {}
        for idx, entry in state_dict["state"].items():
            idx = int(idx)
            if not 0 <= idx < len(params):
                raise ValueError(f"{type(self).__name__}.load_state_dict: state for parameter {idx}, but there are "
                                 f"only {len(params)}")
            p = params[idx]
            restored = {}
            for k, v in entry.items():
                if isinstance(v, np.ndarray):  # a buffer shaped like its parameter
                    if v.shape != p.shape:
                        raise ValueError(f"{type(self).__name__}.load_state_dict: '{k}' of parameter {idx} has shape "
                                         f"{v.shape}, the parameter has shape {p.shape}")
                    restored[k] = np.array(v, dtype=p.data.dtype)
                else:  # a number, e.g. Adam's step count
                    restored[k] = v
            state[idx] = restored
        for saved, group in zip(groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = state


# ---- SGD --------------------------------------------------------------------------------------------
class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    PyTorch's formulas (torch.optim.SGD), with g = p.grad:
        g = g + weight_decay * p                      (L2 penalty, added to the gradient)
        buf = g                  on the first step    (momentum buffer)
        buf = momentum * buf + (1 - dampening) * g    afterwards
        g = g + momentum * buf   if nesterov, else g = buf
        p = p - lr * g
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self) -> None:
        for i, group, p in self._parameters():
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            # BEGIN SOLUTION
            g = p.grad.data
            if weight_decay:
                g = g + weight_decay * p.data
            if momentum:
                state = self.state.setdefault(i, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, dtype=p.data.dtype)
                else:
                    buf *= momentum
                    buf += (1 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            p.data -= (lr * g).astype(p.data.dtype, copy=False)
            # END SOLUTION


# ---- Adam and AdamW -----------------------------------------------------------------------------------
class Adam(Optimizer):
    """Adam: per-coordinate step sizes from running averages of the gradient and its square.

    PyTorch's formulas (torch.optim.Adam), with g = p.grad and t the step count of p (from 1):
        g = g + weight_decay * p                  (classic L2 penalty - see AdamW for the better way)
        m = beta1 * m + (1 - beta1) * g           (first moment, starts at 0)
        v = beta2 * v + (1 - beta2) * g * g       (second moment, starts at 0)
        m_hat = m / (1 - beta1 ** t)              (bias correction: m and v start at 0, so early
        v_hat = v / (1 - beta2 ** t)               averages are too small by exactly that factor)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)
    """

    decoupled = False  # AdamW sets this: decay the weights directly instead of through the gradient

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"{type(self).__name__}: eps must be >= 0, got {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self) -> None:
        for i, group, p in self._parameters():
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            state = self.state.setdefault(i, {})
            if "step" not in state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
            # BEGIN SOLUTION
            g = p.grad.data
            if weight_decay:
                if self.decoupled:
                    p.data *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * p.data
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g * g)
            bias1 = 1 - beta1 ** t
            bias2 = 1 - beta2 ** t
            denom = np.sqrt(v) / math.sqrt(bias2)
            denom += eps
            p.data -= ((lr / bias1) * (m / denom)).astype(p.data.dtype, copy=False)
            # END SOLUTION


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): shrink the weights, not the gradient.

    PyTorch's formulas (torch.optim.AdamW): first p = p * (1 - lr * weight_decay), then the Adam
    update above with weight_decay = 0. With L2 in Adam the decay is divided by sqrt(v_hat) like
    every gradient, so weights with large gradients are hardly decayed; decoupling fixes that.
    Default weight_decay 0.01, as in PyTorch.
    """

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# ---- RMSprop -----------------------------------------------------------------------------------------
class RMSprop(Optimizer):
    """RMSprop: divide each coordinate's step by a running root-mean-square of its gradient.

    PyTorch's formulas (torch.optim.RMSprop), with g = p.grad:
        g = g + weight_decay * p                  (L2 penalty, added to the gradient)
        v = alpha * v + (1 - alpha) * g * g       (running mean of g^2, starts at 0)
        avg = v                                   if not centered, else
        g_avg = alpha * g_avg + (1 - alpha) * g;  avg = v - g_avg * g_avg   (a variance estimate)
        step = g / (sqrt(avg) + eps)
        buf = momentum * buf + step; step = buf   if momentum > 0 (buf starts at 0)
        p = p - lr * step
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"RMSprop: alpha must be in [0, 1), got {alpha}")
        if eps < 0 or momentum < 0:
            raise ValueError(f"RMSprop: eps and momentum must be >= 0, got eps={eps}, momentum={momentum}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=bool(centered)))

    def step(self) -> None:
        for i, group, p in self._parameters():
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            weight_decay, momentum, centered = group["weight_decay"], group["momentum"], group["centered"]
            state = self.state.setdefault(i, {})
            if "square_avg" not in state:
                state["square_avg"] = np.zeros_like(p.data)
                if momentum:
                    state["momentum_buffer"] = np.zeros_like(p.data)
                if centered:
                    state["grad_avg"] = np.zeros_like(p.data)
            # BEGIN SOLUTION
            g = p.grad.data
            if weight_decay:
                g = g + weight_decay * p.data
            v = state["square_avg"]
            v *= alpha
            v += (1 - alpha) * (g * g)
            avg = v
            if centered:
                g_avg = state["grad_avg"]
                g_avg *= alpha
                g_avg += (1 - alpha) * g
                avg = v - g_avg * g_avg
            denom = np.sqrt(avg)
            denom += eps
            update = g / denom
            if momentum:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += update
                update = buf
            p.data -= (lr * update).astype(p.data.dtype, copy=False)
            # END SOLUTION


# ---- gradient clipping ----------------------------------------------------------------------------------
def clip_grad_norm_(params: Iterable[Tensor], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so that their global norm is at most `max_norm`; return the norm before.

    The global norm treats every gradient as one long vector: sqrt(sum of squares of all
    entries) for norm_type 2, max |entry| for norm_type inf. As in PyTorch, gradients are scaled
    by min(1, max_norm / (norm + 1e-6)). The trailing underscore means "in place".
    """
    if isinstance(params, Tensor):
        params = [params]
    grads = [p.grad.data for p in params if p.grad is not None]
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not grads:
        return 0.0
    # BEGIN SOLUTION
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))  # vdot: one BLAS call per gradient
    else:
        total = sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            g *= g.dtype.type(scale)
    return total
    # END SOLUTION


# ---- learning-rate schedules ----------------------------------------------------------------------------
class LRScheduler:
    """Sets each group's "lr" from a formula of the step count.

    `step()` advances the count and writes the new rates into the optimizer; `get_lr()` is the
    formula: the list of rates (one per group) for the current `last_epoch`. Call `step()` once per
    batch or once per epoch - the schedule counts whatever you count (PyTorch's convention).
    The rates at creation are the base rates `base_lrs`.
    """

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def get_lr(self) -> list[float]:
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = float(lr)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The rates the last `step()` (or the constructor) wrote."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)
        self._apply()


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (last_epoch // step_size): divide by 1/gamma every `step_size` steps."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        # BEGIN SOLUTION
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]
        # END SOLUTION


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2.

    Half a cosine from base_lr down to eta_min over T_max steps (PyTorch's closed form).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        # BEGIN SOLUTION
        cos = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]
        # END SOLUTION


class LinearWarmupDecay(LRScheduler):
    """Linear warm-up from 0 to base_lr over `warmup_steps`, then linear decay to 0 at `total_steps`.

        lr = base_lr * t / warmup_steps                                   for t < warmup_steps
        lr = base_lr * max(0, (total_steps - t) / (total_steps - warmup_steps))   afterwards

    The schedule of BERT and GPT fine-tuning (transformers' get_linear_schedule_with_warmup).
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int):
        if not 0 <= warmup_steps <= total_steps or total_steps < 1:
            raise ValueError(f"LinearWarmupDecay: need 0 <= warmup_steps <= total_steps and total_steps >= 1, got "
                             f"warmup_steps={warmup_steps}, total_steps={total_steps}")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        # BEGIN SOLUTION
        t = self.last_epoch
        if t < self.warmup_steps:
            factor = t / max(1, self.warmup_steps)
        else:
            factor = max(0.0, (self.total_steps - t) / max(1, self.total_steps - self.warmup_steps))
        return [base * factor for base in self.base_lrs]
        # END SOLUTION


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith): warm up from max_lr/div_factor to max_lr, then anneal far below.

    PyTorch's formulas (torch.optim.lr_scheduler.OneCycleLR, two phases, anneal_strategy "cos"
    or "linear"), with initial = max_lr / div_factor and final = initial / final_div_factor:
        phase 1, steps 0 .. pct_start * total_steps - 1:    initial -> max_lr
        phase 2, up to step total_steps - 1:                max_lr -> final
        cos anneal from a to b at fraction f of a phase:    b + (a - b) * (1 + cos(pi * f)) / 2
    Unlike PyTorch this does not cycle the momentum. `max_lr` replaces the groups' lr.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | list[float], total_steps: int, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", div_factor: float = 25.0, final_div_factor: float = 1e4):
        if total_steps < 2:
            raise ValueError(f"OneCycleLR: total_steps must be >= 2, got {total_steps}")
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"OneCycleLR: pct_start must be in (0, 1), got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        n = len(optimizer.param_groups)
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * n
        if len(max_lrs) != n:
            raise ValueError(f"OneCycleLR: {len(max_lrs)} max_lr values for {n} parameter groups")
        self.max_lrs = [float(m) for m in max_lrs]
        self.total_steps, self.pct_start, self.anneal_strategy = int(total_steps), float(pct_start), anneal_strategy
        self.div_factor, self.final_div_factor = float(div_factor), float(final_div_factor)
        for group, m in zip(optimizer.param_groups, self.max_lrs):
            group["initial_lr"] = m / self.div_factor
        super().__init__(optimizer)

    def _anneal(self, start: float, end: float, fraction: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2
        return start + (end - start) * fraction

    def get_lr(self) -> list[float]:
        # BEGIN SOLUTION
        t = self.last_epoch
        warm_end = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        lrs = []
        for initial, peak in zip(self.base_lrs, self.max_lrs):
            final = initial / self.final_div_factor
            if t <= warm_end:
                lrs.append(self._anneal(initial, peak, t / warm_end if warm_end > 0 else 1.0))
            else:
                lrs.append(self._anneal(peak, final, min(1.0, (t - warm_end) / (last - warm_end))))
        return lrs
        # END SOLUTION
