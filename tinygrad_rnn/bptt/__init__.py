"""Tools for learning backpropagation through time.

``reference``: the hand-derived BPTT of the vanilla RNN in plain NumPy (:func:`rnn_forward`,
:func:`rnn_bptt`), the yardstick that autograd through ``nn.RNN`` is tested against.
"""

from .reference import BPTTGradients, rnn_bptt, rnn_forward

__all__ = ["rnn_forward", "rnn_bptt", "BPTTGradients"]
