"""Tools for learning backpropagation through time.

``reference``: the hand-derived BPTT of the vanilla RNN in plain NumPy (:func:`rnn_forward`,
:func:`rnn_bptt`), the yardstick that autograd through ``nn.RNN`` is tested against.
``tracing``: :func:`trace`, a context manager that records every forward op and backward step
with shapes and time steps.
"""

from .reference import BPTTGradients, rnn_bptt, rnn_forward
from .tracing import Trace, TraceRecord, trace

__all__ = ["rnn_forward", "rnn_bptt", "BPTTGradients", "trace", "Trace", "TraceRecord"]
