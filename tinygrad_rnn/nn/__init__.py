"""Layers and models built from Tensor ops: Module, Linear, Embedding, Dropout, the recurrent cells
(RNNCell, LSTMCell, GRUCell, and chrono_init_: nn/cells.py), the unroller (Recurrent) and its layers
(RNN, LSTM, GRU; ``CELLS``/``recurrent_layer``: the cells by name), AdditiveAttention, functional."""

from . import functional
from .attention import AdditiveAttention
from .cells import GRUCell, LSTMCell, RNNCell, chrono_init_
from .layers import Dropout, Embedding, Linear
from .module import IncompatibleKeys, Module, Parameter, StateDictError
from .recurrent import Recurrent
from .recurrent_layers import CELLS, GRU, LSTM, RNN, cell_kind, recurrent_layer

__all__ = [
    "Module",
    "Parameter",
    "StateDictError",
    "IncompatibleKeys",
    "Linear",
    "Embedding",
    "Dropout",
    "RNNCell",
    "RNN",
    "LSTMCell",
    "LSTM",
    "GRUCell",
    "GRU",
    "chrono_init_",
    "Recurrent",
    "CELLS",
    "cell_kind",
    "recurrent_layer",
    "AdditiveAttention",
    "functional",
]
