"""Tools for learning backpropagation through time.

``reference``: BPTT derived by hand in plain NumPy for each cell — the vanilla RNN
(:func:`rnn_forward`, :func:`rnn_bptt`), the LSTM (``lstm_bptt``) and the GRU (``gru_bptt``) — the
yardstick that autograd through ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` is tested against.
``flow``: :func:`gradient_flow` — ‖∂L/∂h_t‖ per step from the tape — and a text view; its figure
(:func:`plot_gradient_flow`) is drawn by :mod:`tinygrad_rnn.plotting.bptt`.
``jacobian``: the step Jacobians diag(1 − h_t²) Vᵀ (every cell's with :func:`state_jacobians`; the
LSTM's cell-state path diag(f_t)), their products and spectral norms.
``graph``: :func:`to_dot` — the recorded graph as Graphviz DOT; :func:`unrolled_graph`.
``experiment``: the vanishing-gradient experiment on the adding problem (``run_experiment``): its
training, its parallel runner and its report, one module each.
``tracing``: :func:`trace`, a context manager that records every forward op and backward step
with shapes and time steps.
``rtrl``: :func:`rtrl` — the same gradient as BPTT, computed forward in time (real-time recurrent
learning) by forward-mode autodiff through the cell's own step.
``compare``: the same gradient four ways — BPTT, checkpointed, RTRL, truncated — with exactness, time
and peak memory side by side, and what truncation gives up (``tinygrad-rnn bptt compare``).
"""

from ..plotting.bptt import plot_gradient_flow
from .flow import format_gradient_flow, gradient_flow, gradient_ratio
from .graph import to_dot, unrolled_graph
from .jacobian import backpropagate_last, jacobian_product, jacobian_view, state_jacobians, step_jacobians
from .reference import BPTTGradients, rnn_bptt, rnn_forward
from .rtrl import rtrl
from .tracing import Trace, TraceRecord, trace

__all__ = [
    "rnn_forward",
    "rnn_bptt",
    "BPTTGradients",
    "trace",
    "Trace",
    "TraceRecord",
    "gradient_flow",
    "gradient_ratio",
    "plot_gradient_flow",
    "format_gradient_flow",
    "step_jacobians",
    "state_jacobians",
    "jacobian_product",
    "backpropagate_last",
    "jacobian_view",
    "to_dot",
    "unrolled_graph",
    "rtrl",
]
