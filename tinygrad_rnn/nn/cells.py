"""The recurrent cells by name: ``cell="rnn" | "lstm" | "gru"`` picks a layer and its cell.

Every task model and BPTT tool takes a cell name and builds its recurrent layers here, so one
table says what each name means::

    "rnn"   nn.RNN  / nn.RNNCell    h_t = tanh(x_t W + h_{t−1} V + b)
    "lstm"  nn.LSTM / nn.LSTMCell   state (h_t, c_t), c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t)
    "gru"   nn.GRU  / nn.GRUCell    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

Code above this file never asks which cell it holds: it follows the cell protocol
(``cell.hidden(state)`` for the h a state carries, tuple states handled by the unroller).
"""

from __future__ import annotations

from typing import NamedTuple

from .gated import GRU, LSTM, GRUCell, LSTMCell
from .recurrent import Recurrent
from .rnn import RNN, RNNCell


class CellKind(NamedTuple):
    layer: type        # the unrolled layer (a Recurrent subclass)
    cell: type         # its one-step cell
    equation: str      # its step, for titles and tables


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


def recurrent_layer(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                    bidirectional: bool = False, truncate=None, *, init: str = "uniform",
                    forget_bias=1.0, checkpoint=None, rng=None, dtype=None, device=None) -> Recurrent:
    """The layer of ``cell`` with these sizes. ``init`` picks the vanilla cell's V (see
    ``nn.RNNCell``); the gated cells draw theirs U(−1/√H, 1/√H) and refuse another ``init``.
    ``forget_bias``: the LSTM's b_f at the start (see ``nn.LSTMCell``); the other cells have no
    forget gate and take no notice of it."""
    kind = cell_kind(cell)
    options = {}
    if kind.layer is RNN:
        options["init"] = init
    elif kind.layer is LSTM:
        options["forget_bias"] = forget_bias
    if kind.layer is not RNN and init != "uniform":
        raise ValueError(f"init={init!r} picks the vanilla cell's V; the {cell} cell starts its "
                         "weights uniform (leave init at 'uniform' or use cell='rnn')")
    return kind.layer(input_size, hidden_size, num_layers, bidirectional, truncate=truncate,
                      checkpoint=checkpoint, rng=rng, dtype=dtype, device=device, **options)
