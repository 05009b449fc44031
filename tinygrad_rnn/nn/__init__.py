"""Layers and models built from Tensor ops: Module, Linear, Embedding, Dropout, the recurrent cells
(RNNCell, LSTMCell, GRUCell) and their layers (RNN, LSTM, GRU: one unroller, Recurrent), chrono_init_,
AdditiveAttention, functional; ``CELLS``/``recurrent_layer``: the cells by name."""

from . import functional
from .attention import AdditiveAttention
from .layers import Dropout, Embedding, Linear
from .module import IncompatibleKeys, Module, Parameter, StateDictError
from .gated import GRU, LSTM, GRUCell, LSTMCell, chrono_init_
from .recurrent import Recurrent
from .cells import CELLS, cell_kind, recurrent_layer
from .rnn import RNN, RNNCell

__all__ = ["Module", "Parameter", "StateDictError", "IncompatibleKeys", "Linear", "Embedding", "Dropout",
           "RNNCell", "RNN", "LSTMCell", "LSTM", "GRUCell", "GRU", "chrono_init_", "Recurrent", "CELLS", "cell_kind",
           "recurrent_layer", "AdditiveAttention", "functional"]
