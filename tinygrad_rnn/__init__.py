"""tinygrad_rnn: a from-scratch autograd framework for learning backpropagation through time."""

from .backend import (
    DeviceError,
    device_available,
    get_backend,
    get_default_device,
    manual_seed,
    set_default_device,
)
from .forward import checkpoint, jvp
from .ops import cat, concatenate, detach, gather_rows, stack, where
from .tensor import Op, ShapeError, Tensor, is_grad_enabled, no_grad, ones, randn, uniform, zeros

__version__ = "0.1.0"

__all__ = [
    "Tensor",
    "zeros",
    "ones",
    "randn",
    "uniform",
    "no_grad",
    "is_grad_enabled",
    "stack",
    "cat",
    "concatenate",
    "where",
    "gather_rows",
    "detach",
    "Op",
    "ShapeError",
    "DeviceError",
    "set_default_device",
    "get_default_device",
    "get_backend",
    "device_available",
    "manual_seed",
    "jvp",
    "checkpoint",
]
