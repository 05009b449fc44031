"""Layers and models built from Tensor ops: Module, Linear, Embedding, RNNCell, RNN, functional."""

from . import functional
from .layers import Dropout, Embedding, Linear
from .module import IncompatibleKeys, Module, Parameter, StateDictError
from .rnn import RNN, RNNCell

__all__ = ["Module", "Parameter", "StateDictError", "IncompatibleKeys", "Linear", "Embedding", "Dropout",
           "RNNCell", "RNN", "functional"]
