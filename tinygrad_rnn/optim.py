"""Optimizers (SGD, Adam) and gradient clipping, updating parameters in place on their device.

Both optimizers follow PyTorch's update rules, so results can be compared number for number.
With g = p.grad (+ weight_decay · p, the classic L2 penalty)::

    SGD:   buf = momentum · buf + g   (buf = g on the first step);   p ← p − lr · buf
    Adam:  m = β₁ m + (1 − β₁) g;   v = β₂ v + (1 − β₂) g²;   m̂ = m / (1 − β₁ᵗ);   v̂ = v / (1 − β₂ᵗ)
           p ← p − lr · m̂ / (√v̂ + ε)

A step on gradients holding inf or nan would ruin the weights for good, so ``step()`` refuses it
with :class:`NonFiniteGradientError` (or, with ``nonfinite="skip"``, skips the whole step and
counts it in ``skipped_steps``). Checking costs one device→host read per step, not one per
parameter. Parameters whose ``.grad`` is None are left alone (as in PyTorch). A step bumps each
updated parameter's version — a counter it shares with every alias of its array (``p.detach()``,
views such as ``p.T``) — so a ``backward()`` through a graph recorded before the step, through
``p`` or an alias, raises instead of using the new values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .tensor import Tensor


class NonFiniteGradientError(FloatingPointError):
    """A gradient holds inf or nan; the step was not applied. The message names the parameter."""


class OptimizerStateError(ValueError):
    """An optimizer state dict does not fit this optimizer; nothing was changed."""


def _all_finite(arrays) -> bool:
    """True when every array is finite: one device→host read per device, not one per array.

    Fast and exact: S = Σ_arrays Σ_elements a. An inf or nan element makes its array's sum inf or
    nan, and no floating-point addition turns inf or nan back into a finite number, so a finite
    S proves every element finite — with no bool array per parameter, only one sum each. A
    non-finite S may also be finite values overflowing (|S| > 3.4e38 in float32); only then is
    each array checked element by element, so the answer is always exact.
    """
    by_device: dict[int, list] = {}  # id(array type) -> its arrays
    for a in arrays:
        by_device.setdefault(id(type(a)), []).append(a)
    for group in by_device.values():
        xp = _xp_of(group[0])
        with np.errstate(over="ignore", invalid="ignore"):  # inf − inf, overflow: expected here
            total = group[0].sum()
            for a in group[1:]:
                total = total + a.sum()
        if not bool(xp.isfinite(total)):
            flags = xp.stack([xp.isfinite(a).all() for a in group])
            if not bool(flags.all()):
                return False
    return True


def _xp_of(array):
    from .backend import backend_of_array

    return backend_of_array(array).xp


class Optimizer:
    """Shared bookkeeping: the parameter list, per-parameter state, zero_grad, the finite check.

    ``params``: Parameters (``model.parameters()``) or (name, Parameter) pairs
    (``model.named_parameters()``, so errors can name the parameter).
    """

    hyperparameter_names: tuple = ()

    def __init__(self, params, nonfinite: str = "raise"):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if nonfinite not in ("raise", "skip"):
            raise ValueError(f"nonfinite must be 'raise' or 'skip', got {nonfinite!r}")
        self.names: list[str] = []
        self.params: list[Tensor] = []
        for i, item in enumerate(params):
            name, p = item if isinstance(item, tuple) else (f"parameter {i}", item)
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{name}: optimizers take tensors with requires_grad=True, got {p!r:.80}")
            if not p.is_leaf:  # an op's output: its values belong to the graph, not to a weight
                raise TypeError(f"{name}: optimizers take leaf tensors (weights), not the output of an op")
            if any(p is q for q in self.params):
                raise ValueError(f"{name} appears twice in the parameter list")
            self.names.append(name)
            self.params.append(p)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]  # per parameter, in order
        self.nonfinite = nonfinite
        self.skipped_steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> bool:
        """Update every parameter that has a gradient. Returns False if the step was skipped."""
        live = [(i, p) for i, p in enumerate(self.params) if p.grad is not None]
        if not _all_finite([p.grad for _, p in live]):
            bad = next(i for i, p in live if not _all_finite([p.grad]))
            if self.nonfinite == "skip":
                self.skipped_steps += 1
                return False
            raise NonFiniteGradientError(
                f"{type(self).__name__}.step(): the gradient of {self.names[bad]} (shape "
                f"{self.params[bad].shape}) contains inf or nan; no parameter was updated. "
                "Lower the learning rate, clip gradients (clip_grad_norm_), or pass "
                "nonfinite='skip' to skip such steps"
            )
        for i, p in live:
            self._update(p, p.grad, self.state[i])
            p.bump_version()  # p changed in place: a graph recorded before this step is stale
        return True

    def _update(self, p: Tensor, g, state: dict) -> None:
        raise NotImplementedError

    # ---- saving and loading -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """Hyperparameters plus per-parameter state (host NumPy copies), keyed by position."""
        state = {}
        for i, (p, s) in enumerate(zip(self.params, self.state)):
            if s:
                state[i] = {k: (p.backend.to_host(v) if hasattr(v, "shape") else v) for k, v in s.items()}
        return {
            "type": type(self).__name__,
            "hyperparameters": {k: getattr(self, k) for k in self.hyperparameter_names},
            "skipped_steps": self.skipped_steps,
            "state": state,
        }

    def _prepare_load(self, state_dict):
        """Check a state dict completely; return a function that applies it (cannot fail)."""
        problems = []
        if state_dict.get("type") != type(self).__name__:
            problems.append(f"it is for {state_dict.get('type')!r}, this is {type(self).__name__}")
        hyper = state_dict.get("hyperparameters", {})
        unknown = sorted(set(hyper) - set(self.hyperparameter_names))
        if unknown:
            problems.append("unknown hyperparameters: " + ", ".join(unknown))
        new_state = [{} for _ in self.params]
        for key, entries in state_dict.get("state", {}).items():
            try:
                i = int(key)
                p = self.params[i]
            except (ValueError, IndexError):
                problems.append(f"state for parameter {key!r}, but there are {len(self.params)} parameters")
                continue
            expected = self._state_keys()
            if set(entries) != set(expected):
                problems.append(f"{self.names[i]}: state keys {sorted(entries)}, want {sorted(expected)}")
                continue
            for k, v in entries.items():
                if expected[k] == "array":
                    v = np.asarray(v)
                    if v.shape != p.shape:
                        problems.append(
                            f"{self.names[i]}: state {k!r} of shape {v.shape}, parameter has {p.shape}"
                        )
                        continue
                    new_state[i][k] = p.backend.asarray(v.astype(p.dtype, copy=False))
                else:
                    new_state[i][k] = int(v)
        if problems:
            raise OptimizerStateError(
                f"optimizer state does not fit this {type(self).__name__} "
                "(optimizer left unchanged):\n  " + "\n  ".join(problems)
            )

        def apply():
            for k, v in hyper.items():
                setattr(self, k, tuple(v) if isinstance(v, list) else v)
            self.skipped_steps = int(state_dict.get("skipped_steps", 0))
            self.state = new_state

        return apply

    def load_state_dict(self, state_dict) -> None:
        """Restore hyperparameters and state (arrays go to each parameter's device)."""
        self._prepare_load(state_dict)()

    def _state_keys(self) -> dict:
        """{state name: "array" or "int"} that one parameter's state holds."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay (PyTorch's rule)."""

    hyperparameter_names = ("lr", "momentum", "weight_decay")

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nonfinite="raise"):
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"need lr > 0, momentum >= 0, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}"
            )
        super().__init__(params, nonfinite)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p._data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = buf
        p._data -= self.lr * g

    def _state_keys(self):
        return {"momentum_buffer": "array"}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, exactly PyTorch's ``torch.optim.Adam``."""

    hyperparameter_names = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, nonfinite="raise"):
        if lr <= 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(
                f"need lr > 0, eps >= 0, weight_decay >= 0, 0 <= betas < 1; "
                f"got lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={betas}"
            )
        super().__init__(params, nonfinite)
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay

    def _update(self, p, g, state):
        beta1, beta2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p._data
        if not state:
            state["step"] = 0
            state["exp_avg"] = p.xp.zeros_like(p._data)
            state["exp_avg_sq"] = p.xp.zeros_like(p._data)
        state["step"] += 1
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m *= beta1
        m += (1 - beta1) * g  # m = β₁ m + (1 − β₁) g
        v *= beta2
        v += (1 - beta2) * (g * g)  # v = β₂ v + (1 − β₂) g²
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        denom = p.xp.sqrt(v) / math.sqrt(bias2) + self.eps  # √v̂ + ε
        p._data -= (self.lr / bias1) * (m / denom)  # p ← p − lr · m̂ / (√v̂ + ε)

    def _state_keys(self):
        return {"step": "int", "exp_avg": "array", "exp_avg_sq": "array"}


def clip_grad_norm_(params, max_norm: float) -> Tensor:
    """Scale all gradients together so their global 2-norm is at most ``max_norm``; return the norm.

    total_norm = √(Σ_p ‖∂L/∂p‖²) over all parameters with a gradient (before clipping). If it
    exceeds ``max_norm``, every gradient is multiplied by max_norm / (total_norm + 1e-6), so the
    direction of the step is kept and only its length shrinks (Pascanu et al., 2013). Everything
    stays on the device: the norm comes back as a 0-d tensor, as in PyTorch, and nothing is read
    to the host unless the caller asks (``float(total)``). A non-finite norm is returned as is and
    the gradients are left unscaled — scaling by nan would spread one parameter's inf or nan to all
    of them — so the optimizer's step then names the parameter whose gradient is non-finite.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    params = list(params)
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return Tensor(0.0, dtype=np.float64)
    devices = sorted({p.device for p in with_grad})
    if len(devices) > 1:
        from .backend import DeviceError

        raise DeviceError(
            f"clip_grad_norm_: parameters on different devices ({', '.join(devices)}); "
            "move the model to one device with .to(device)"
        )
    grads = [p.grad for p in with_grad]
    xp = with_grad[0].xp
    squares = xp.stack([xp.sum(xp.square(g, dtype=np.float64)) for g in grads])
    total = xp.sqrt(squares.sum())
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)  # ≤ 1: never scales gradients up
    scale = xp.where(xp.isfinite(total), scale, 1.0)  # non-finite norm: leave them for step()
    for g in grads:
        g *= scale.astype(g.dtype)
    return Tensor(total, device=with_grad[0].backend)
