"""The vanishing-gradient experiment: where does a vanilla RNN stop learning the adding problem,
and do the gated cells (LSTM, GRU) cure it?

For each sequence length T and each cell — the vanilla ``h_t = tanh(x_t W + h_{t-1} V + b)`` with
V initialised ``uniform``, ``orthogonal`` or ``identity``, or ``lstm`` / ``gru``
(``nn.CELLS``) — we train the cell plus a linear head on h_T, with the MSE loss,
Adam and gradient clipping, for a number of steps or a wall-clock budget, then report:

* the test MSE next to the trivial baseline (always predicting 1: MSE = 1/6 ≈ 0.167);
* whether it learned (test MSE < 0.05, :data:`LEARNED_MSE`);
* with ``eval_every``: the test MSE every that many steps, and the first step at which it was
  below 0.05 ("solved at step N");
* ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at initialisation and after training — how much of the gradient that
  enters at the last step survives back to the first (:func:`hidden_flow`: the gradient reaching
  the layer's output h_t, for every cell; for an LSTM the state is (h_t, c_t) and the flow along
  c is part of what reaches h_t).

Two set-ups: the vanilla one (``cells=("rnn",)``, every init, 40 s per run, H = 32, float64) and
the cure (:data:`CURE_SETUP`: rnn, lstm and gru; 3,000 steps; H = 64; test MSE every 100 steps;
float32 for training — the flows are still measured on a float64 copy of the weights).

The answer sits at the first marker, somewhere in the first half of the sequence, so learning
needs the gradient to survive T/2 steps and more. :func:`run_experiment` is the library core;
``tinygrad-rnn bptt experiment`` is its command line. Flows are measured in float64, so ratios far
below float32's range (1e-38) are still measured.

Three parts, one file each: :mod:`.training` (the model, one run, its checkpoint),
:mod:`.parallel` (the plan of runs, one after another or in worker processes) and :mod:`.report`
(the table, results.json / results.md; the figure is :mod:`tinygrad_rnn.plotting.bptt`'s).
"""

from ...plotting import PLOT_INSTALL_HINT
from ...plotting.bptt import plot_experiment
from .parallel import run_experiment
from .report import read_results, results_table, write_results
from .training import (
    CHRONO,
    CURE_LENGTHS,
    CURE_SETUP,
    DEFAULT_BUDGET_SECONDS,
    DEFAULT_LENGTHS,
    LEARNED_MSE,
    AddingRNN,
    ExperimentConfig,
    RunResult,
    checkpoint_name,
    evaluate_mse,
    hidden_flow,
    load_adding_model,
    save_adding_model,
    train_adding,
)

__all__ = [
    "AddingRNN",
    "ExperimentConfig",
    "RunResult",
    "train_adding",
    "run_experiment",
    "results_table",
    "write_results",
    "read_results",
    "plot_experiment",
    "load_adding_model",
    "save_adding_model",
    "checkpoint_name",
    "hidden_flow",
    "evaluate_mse",
    "LEARNED_MSE",
    "CHRONO",
    "CURE_SETUP",
    "CURE_LENGTHS",
    "DEFAULT_LENGTHS",
    "DEFAULT_BUDGET_SECONDS",
    "PLOT_INSTALL_HINT",
]
