"""``nn.RNN``, ``nn.LSTM``, ``nn.GRU``: each cell of :mod:`.cells` run over sequences by the one
unroller, :class:`~tinygrad_rnn.nn.recurrent.Recurrent`; and the three by name.

The three layers share one positional signature, as PyTorch's ``RNNBase`` does::

    layer(input_size, hidden_size, num_layers=1, bidirectional=False, truncate=None, *, checkpoint=None,
          rng=None, dtype=None, device=None, <options of its cell>)

with a cell's own options keyword-only: ``init`` for ``nn.RNN``, ``forget_bias`` for ``nn.LSTM``.

``cell="rnn" | "lstm" | "gru"`` picks a layer and its cell; ``CELLS`` says what each name means,
and ``recurrent_layer(cell, …)`` builds the layer of a name (the task models build theirs so)::

    "rnn"   nn.RNN  / nn.RNNCell    h_t = tanh(x_t W + h_{t−1} V + b)
    "lstm"  nn.LSTM / nn.LSTMCell   state (h_t, c_t), c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t)
    "gru"   nn.GRU  / nn.GRUCell    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
"""

from __future__ import annotations

from typing import NamedTuple

from .cells import GRUCell, LSTMCell, RNNCell
from .recurrent import Recurrent


class RNN(Recurrent):
    """A (multi-layer, optionally bidirectional) vanilla RNN over batch-first sequences.

    ``outputs, h_last = rnn(x, h0=None, lengths=None)``; ``rnn.cells[k]`` is an
    :class:`~tinygrad_rnn.nn.cells.RNNCell` running h_t = tanh(x_t W + h_{t-1} V + b). Shapes,
    lengths and padding, truncation, checkpointing, ``return_states`` and ``need_outputs`` are
    those of the shared unroller, :class:`~tinygrad_rnn.nn.recurrent.Recurrent` (read its
    docstring); ``init`` picks V.
    """

    cell_class = RNNCell

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bidirectional=False,
        truncate=None,
        *,
        init="uniform",
        checkpoint=None,
        rng=None,
        dtype=None,
        device=None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            truncate,
            checkpoint=checkpoint,
            rng=rng,
            dtype=dtype,
            device=device,
            init=init,
        )

    def extra_repr(self):
        return super().extra_repr() + f", init={self.cells[0].init!r}"


class LSTM(Recurrent):
    """A (multi-layer, optionally bidirectional) LSTM over batch-first sequences.

    ``outputs, (h_last, c_last) = lstm(x, h0=None, lengths=None)``; ``h0`` is None or a pair
    ``(h0, c0)``, each (num_layers × D, B, H) like ``h_last`` and ``c_last``. ``lstm.cells[k]`` is
    an :class:`~tinygrad_rnn.nn.cells.LSTMCell`. Everything else — lengths and padding (the whole
    state (h, c) carries over at a padded step), truncation, checkpointing, ``return_states``
    (each state the pair (h_t, c_t)), ``need_outputs`` — is the shared unroller's,
    :class:`~tinygrad_rnn.nn.recurrent.Recurrent`.
    """

    cell_class = LSTMCell

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bidirectional=False,
        truncate=None,
        *,
        forget_bias=1.0,
        checkpoint=None,
        rng=None,
        dtype=None,
        device=None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            truncate,
            checkpoint=checkpoint,
            rng=rng,
            dtype=dtype,
            device=device,
            forget_bias=forget_bias,
        )

    def extra_repr(self):
        return super().extra_repr() + f", forget_bias={self.cells[0].forget_bias!r}"


class GRU(Recurrent):
    """A (multi-layer, optionally bidirectional) GRU over batch-first sequences.

    ``outputs, h_last = gru(x, h0=None, lengths=None)``, shapes as for ``nn.RNN``;
    ``gru.cells[k]`` is a :class:`~tinygrad_rnn.nn.cells.GRUCell`. Lengths, truncation,
    checkpointing, ``return_states`` and ``need_outputs`` are the shared unroller's,
    :class:`~tinygrad_rnn.nn.recurrent.Recurrent`.
    """

    cell_class = GRUCell

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bidirectional=False,
        truncate=None,
        *,
        checkpoint=None,
        rng=None,
        dtype=None,
        device=None,
    ):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            truncate,
            checkpoint=checkpoint,
            rng=rng,
            dtype=dtype,
            device=device,
        )


class CellKind(NamedTuple):
    layer: type  # the unrolled layer (a Recurrent subclass)
    cell: type  # its one-step cell
    equation: str  # its step, for titles and tables


CELLS = {
    "rnn": CellKind(RNN, RNNCell, "h_t = tanh(x_t W + h_{t−1} V + b)"),
    "lstm": CellKind(LSTM, LSTMCell, "c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t)"),
    "gru": CellKind(GRU, GRUCell, "h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}"),
}


def cell_kind(cell: str) -> CellKind:
    """The (layer class, cell class) of a cell name; a clear error for an unknown one."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
    return CELLS[cell]


def check_init(cell: str, init: str) -> None:
    """``init`` picks the vanilla cell's V; a gated cell starts its weights uniform and refuses
    another choice (instead of ignoring it)."""
    if cell_kind(cell).layer is not RNN and init != "uniform":
        raise ValueError(
            f"init={init!r} picks the vanilla cell's V; the {cell} cell starts its "
            "weights uniform (leave init at 'uniform' or use cell='rnn')"
        )


def recurrent_layer(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    truncate=None,
    *,
    init: str = "uniform",
    forget_bias=1.0,
    checkpoint=None,
    rng=None,
    dtype=None,
    device=None,
) -> Recurrent:
    """The layer of ``cell`` with these sizes. ``init`` picks the vanilla cell's V (see
    ``nn.RNNCell``); the gated cells draw theirs U(−1/√H, 1/√H) and refuse another ``init``.
    ``forget_bias``: the LSTM's b_f at the start (see ``nn.LSTMCell``); the other cells have no
    forget gate and take no notice of it."""
    kind = cell_kind(cell)
    check_init(cell, init)
    options = {}
    if kind.layer is LSTM:
        options["forget_bias"] = forget_bias
    if kind.layer is RNN:
        options["init"] = init
    return kind.layer(
        input_size,
        hidden_size,
        num_layers,
        bidirectional,
        truncate,
        checkpoint=checkpoint,
        rng=rng,
        dtype=dtype,
        device=device,
        **options,
    )
