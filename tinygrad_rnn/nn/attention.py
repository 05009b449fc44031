"""Additive attention (Bahdanau, Cho and Bengio, 2015): a decoder step that reads every encoder state.

The encoder–decoder of section 4 hands the decoder one vector for the whole source. Attention
keeps all the encoder's states h_1 … h_S (one per source token) and lets each decoder step
choose how much to read from each. Row-vector convention, as everywhere in the package; the
query is the decoder's previous state s_{t-1} (B, H_s), the keys and values the encoder states
h_j (B, S, H_h)::

    score_j = tanh(s_{t-1} W_s + h_j U_h) v         W_s (H_s, A), U_h (H_h, A), v (A,)
    α_j     = exp(score_j) / Σ_{k ≤ len} exp(score_k)   for j ≤ len, and α_j = 0 on padding
    c_t     = Σ_j α_j h_j                               the context, (B, H_h)

(the tanh row is 1 × A and v an A × 1 column; with column vectors, as Bahdanau et al. write
it, the same score is vᵀ tanh(…)).

``h_j U_h`` does not depend on t: :meth:`AdditiveAttention.project_keys` computes it once per
source (one (B·S, H_h) @ (H_h, A) product), and each step adds the query's projection to it.
Padding is masked *before* the softmax by a score of −inf, so its weight is exactly 0 and the
true positions' weights sum to 1 whatever the amount of padding (exp(−inf) = 0, and the gradient
through a masked score is exactly 0 too).

Built from Tensor ops only (matmul, tanh, where, log_softmax, exp): autograd gives the gradient.
"""

from __future__ import annotations

import math

from ..backend import host_rng
from ..ops import where
from ..tensor import ShapeError, Tensor
from .layers import _check_size, host_parameter
from .module import Module


class AdditiveAttention(Module):
    """``context, weights = attention(query, keys, values, mask=None)``.

    * ``query`` (B, query_size): the decoder's previous state s_{t-1};
    * ``keys`` (B, S, attention_size): the encoder states projected once, ``project_keys(h)``;
    * ``values`` (B, S, key_size): the encoder states h_j themselves;
    * ``mask`` (B, S) boolean Tensor, True at true source positions (None: no padding); every
      row needs at least one True position (a ValueError names the rows that have none).

    Returns the context c_t (B, key_size) and the weights α (B, S). Parameters ``W_s``
    (query_size, attention_size), ``U_h`` (key_size, attention_size), ``v`` (attention_size,),
    initialised U(−1/√fan_in, 1/√fan_in) like :class:`Linear`. No biases: the formula has none.
    """

    def __init__(self, query_size, key_size, attention_size, *, rng=None, dtype=None, device=None):
        for name, value in (
            ("query_size", query_size),
            ("key_size", key_size),
            ("attention_size", attention_size),
        ):
            _check_size(name, value)
        self.query_size, self.key_size, self.attention_size = query_size, key_size, attention_size
        rng = rng or host_rng()
        self.W_s = host_parameter(
            rng.uniform(-1, 1, (query_size, attention_size)) / math.sqrt(query_size), dtype, device
        )
        self.U_h = host_parameter(
            rng.uniform(-1, 1, (key_size, attention_size)) / math.sqrt(key_size), dtype, device
        )
        self.v = host_parameter(
            rng.uniform(-1, 1, (attention_size,)) / math.sqrt(attention_size), dtype, device
        )

    def project_keys(self, values: Tensor) -> Tensor:
        """``h_j U_h`` for every source position: (B, S, key_size) → (B, S, attention_size), once per
        source."""
        if values.ndim != 3 or values.shape[2] != self.key_size:
            raise ShapeError(
                f"AdditiveAttention: encoder states of shape {values.shape}, want "
                f"(B, S, {self.key_size}) to match U_h of shape {self.U_h.shape}"
            )
        return values @ self.U_h

    def scores(self, query: Tensor, keys: Tensor, mask: Tensor | None = None) -> Tensor:
        """score_j = tanh(s W_s + h_j U_h) v, (B, S); −inf where ``mask`` is False."""
        B, S, A = keys.shape
        if query.shape != (B, self.query_size):
            raise ShapeError(
                f"AdditiveAttention: query of shape {query.shape}, want ({B}, {self.query_size}) "
                f"for keys of shape {keys.shape}"
            )
        hidden = (keys + (query @ self.W_s).reshape(B, 1, A)).tanh()  # (B, S, A)
        score = (hidden @ self.v.reshape(A, 1)).reshape(B, S)
        return score if mask is None else where(mask, score, -math.inf)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None = None):
        B, S, _ = keys.shape
        if values.shape[:2] != (B, S):
            raise ShapeError(
                f"AdditiveAttention: values of shape {values.shape} do not fit keys of shape {keys.shape}"
            )
        if mask is not None and mask.shape != (B, S):
            raise ShapeError(f"AdditiveAttention: mask of shape {mask.shape}, want ({B}, {S})")
        if mask is not None and mask is not getattr(self, "_checked_mask", None):
            self._check_rows(mask)
        weights = self.scores(query, keys, mask).log_softmax(axis=1).exp()  # α, (B, S)
        context = (weights.reshape(B, 1, S) @ values).reshape(B, values.shape[2])  # Σ_j α_j h_j
        return context, weights

    def _check_rows(self, mask: Tensor) -> None:
        """Refuse a row of ``mask`` that is all False: its softmax is over no position (0 / 0, nan).

        Reading the answer back is a device→host sync on a GPU. A decoder passes the same mask at
        every step, so the mask last found valid is remembered and checked once, not per step.
        """
        empty = ~mask.data.any(axis=1)
        if bool(empty.any()):
            rows = mask.backend.to_host(mask.xp.flatnonzero(empty)).tolist()
            shown = ", ".join(map(str, rows[:10])) + (f", … ({len(rows)} rows)" if len(rows) > 10 else "")
            raise ValueError(
                f"AdditiveAttention: the mask of batch row(s) {shown} is all False: no source "
                "position to attend to (the weights would be 0 / 0 = nan); give every "
                "row at least one True position"
            )
        self._checked_mask = mask

    def extra_repr(self):
        return f"query_size={self.query_size}, key_size={self.key_size}, attention_size={self.attention_size}"
