"""``Linear``, ``Embedding`` and ``Dropout``: the layers around the recurrent core.

Row-vector convention, as in the chapter's cell written with rows, ``x_t W`` (docs/chapter.md): a
batch of inputs is a matrix whose rows are examples, and ``Linear`` computes ``y = x @ W + b`` with
``W`` of shape (in, out).
Initial values are drawn on the host from ``backend.host_rng()`` (or the ``rng`` you pass) and
then moved to ``device``: one seed gives the same weights on every device.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import host_rng
from ..ops import gather_rows, where
from ..tensor import DEFAULT_FLOAT, ShapeError, Tensor
from .module import Module, Parameter


def host_parameter(array: np.ndarray, dtype=None, device=None) -> Parameter:
    """A Parameter from a host array (float32 unless ``dtype`` says otherwise) on ``device``."""
    return Parameter(
        np.asarray(array), dtype=np.dtype(dtype) if dtype is not None else DEFAULT_FLOAT, device=device
    )


def _check_size(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Linear(Module):
    """``y = x @ W + b`` over the last axis; ``W`` (in_features, out_features), ``b`` (out_features,).

    Initialised U(−1/√in, 1/√in) like PyTorch, so the pre-activations start with unit-ish scale.
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=None, device=None):
        _check_size("in_features", in_features)
        _check_size("out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        rng = rng or host_rng()
        k = 1.0 / math.sqrt(in_features)
        self.W = host_parameter(rng.uniform(-k, k, (in_features, out_features)), dtype, device)
        self.b = host_parameter(rng.uniform(-k, k, (out_features,)), dtype, device) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ShapeError(
                f"Linear({self.in_features}, {self.out_features}): input of shape {x.shape} "
                f"does not end in {self.in_features} (W has shape {self.W.shape})"
            )
        y = x @ self.W if x.ndim >= 2 else (x.reshape(1, -1) @ self.W).reshape(-1)
        return y + self.b if self.b is not None else y

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.b is not None}"


class Embedding(Module):
    """Token id → row of ``weight`` (num_embeddings, embedding_dim): ``out[..., :] = weight[ids[...]]``.

    ``padding_idx``: that row starts at zero and, as in PyTorch, never receives a gradient (so an
    optimizer leaves it as it is); the lookup still returns the row's value. Ids outside
    ``[0, num_embeddings)`` raise IndexError naming the id and the size, on every device.
    Initialised N(0, 1) like PyTorch.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, *, rng=None, dtype=None, device=None):
        _check_size("num_embeddings", num_embeddings)
        _check_size("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx {padding_idx} is out of range for {num_embeddings} embeddings")
            padding_idx %= num_embeddings  # -1 means the last row, as in PyTorch
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        table = (rng or host_rng()).standard_normal((num_embeddings, embedding_dim))
        if padding_idx is not None:
            table[padding_idx] = 0.0
        self.weight = host_parameter(table, dtype, device)

    def forward(self, ids) -> Tensor:
        ids = ids if isinstance(ids, Tensor) else Tensor(np.asarray(ids), device=self.weight.backend)
        rows = gather_rows(self.weight, ids)  # IndexError for ids out of range
        if self.padding_idx is None:
            return rows
        # Same values everywhere, but at padding positions the copy is detached: no gradient
        # flows from them into weight[padding_idx].
        keep = ids.ne(self.padding_idx).reshape(*ids.shape, 1)
        return where(keep, rows, rows.detach())

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Dropout(Module):
    """Inverted dropout: in training mode each element is zeroed with probability ``p`` and the
    rest are scaled by 1 / (1 − p), so the expected value is unchanged; after ``model.eval()``
    it is the identity. This is the layer ``Module.training`` (set by ``train()``/``eval()``) is for.

    The mask is drawn on the host from ``backend.host_rng()`` (or ``rng``) and moved to the
    input's device: one seed gives the same masks on every device.
    """

    def __init__(self, p: float = 0.5, *, rng=None):
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
        self.p, self.rng = p, rng

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = (self.rng or host_rng()).random(x.shape) >= self.p
        return x * Tensor(keep / (1 - self.p), dtype=x.dtype, device=x.backend)

    def extra_repr(self):
        return f"p={self.p}"
