"""Layers and models built from Tensor ops: Module, Linear, Embedding, RNNCell, RNN, functional."""

from . import functional
from .attention import AdditiveAttention
from .layers import Embedding, Linear
from .module import IncompatibleKeys, Module, Parameter, StateDictError
from .rnn import RNN, RNNCell

__all__ = ["Module", "Parameter", "StateDictError", "IncompatibleKeys", "Linear", "Embedding",
           "RNNCell", "RNN", "AdditiveAttention", "functional"]
