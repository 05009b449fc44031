"""tinygrad_rnn: a from-scratch autograd framework for learning backpropagation through time."""

import types as _types

from . import checkpoint as _checkpoint_files
from .backend import (DeviceError, device_available, get_backend, get_default_device,
                      manual_seed, set_default_device)
from .forward import checkpoint as _checkpoint_fn
from .forward import jvp
from .ops import cat, concatenate, detach, gather_rows, stack, where
from .tensor import Op, ShapeError, Tensor, is_grad_enabled, no_grad, ones, randn, uniform, zeros


class _CheckpointModule(_types.ModuleType):
    """``tinygrad_rnn.checkpoint`` names two things: the module that saves and loads models
    (``checkpoint.save``, ``checkpoint.load``) and, when called, gradient checkpointing —
    ``tg.checkpoint(fn, *inputs)`` is :func:`tinygrad_rnn.forward.checkpoint`."""

    def __call__(self, fn, *inputs):
        return _checkpoint_fn(fn, *inputs)


_checkpoint_files.__class__ = _CheckpointModule
checkpoint = _checkpoint_files

__version__ = "0.1.0"

__all__ = [
    "Tensor", "zeros", "ones", "randn", "uniform", "no_grad", "is_grad_enabled",
    "stack", "cat", "concatenate", "where", "gather_rows", "detach", "Op", "ShapeError",
    "DeviceError", "set_default_device", "get_default_device", "get_backend", "device_available",
    "manual_seed", "jvp", "checkpoint",
]
