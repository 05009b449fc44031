"""The figures of the BPTT tools: gradient flow over time, and the vanishing-gradient experiment's panels.

:func:`plot_gradient_flow` writes ‖∂L/∂h_t‖ against t (``bptt flow``); :func:`draw_flows` draws
such lines on any matplotlib axes (the notebooks use it); :func:`plot_experiment` draws one panel
per model of ``bptt experiment``. They take plain arrays and the experiment's result rows, and
import nothing of ``tinygrad_rnn.bptt`` (which sits above this package).
"""

from __future__ import annotations

import numpy as np

from . import PLOT_INSTALL_HINT, require_matplotlib, save_figure  # noqa: F401  (named in the docstrings)


def plot_gradient_flow(
    flows, path, *, title="Gradient flow over time", normalize=False, ylabel=None, dashed=None
) -> str:
    """Write a PNG of ‖∂L/∂h_t‖ against t (log-scale y) and return its path.

    ``flows`` is one (T,) array or a dict ``label -> (T,) array`` (one line each, lengths may
    differ). ``normalize=True`` divides each line by its value at t = T, so lines start at 1 on
    the right and their left end is ‖∂L/∂h_1‖/‖∂L/∂h_T‖. ``dashed``: an optional second dict drawn
    with dashed lines in the same colours (e.g. the same models at initialisation).
    Needs matplotlib (``pip install -e '.[plot]'``).
    """
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    draw_flows(ax, flows, normalize=normalize, dashed=dashed)
    ax.set_title(title)
    if ylabel:
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return str(path)


def draw_flows(ax, flows, *, normalize=False, dashed=None, x_axis="step") -> None:
    """Draw gradient-flow lines on a matplotlib ``ax`` (log-scale y).

    ``x_axis="step"`` plots against t = 1..T; ``"back"`` against T − t, the number of steps the
    gradient travelled back from the end (lines of different T then all start at 0).
    """
    if not isinstance(flows, dict):
        flows = {None: flows}
    for style, series in (("-", flows), ("--", dashed or {})):
        for i, (label, flow) in enumerate(series.items()):
            flow = np.asarray(flow, dtype=np.float64)
            y = flow / flow[-1] if normalize else flow
            T = len(flow)
            x = np.arange(1, T + 1) if x_axis == "step" else T - np.arange(1, T + 1)
            ax.plot(
                x,
                y,
                style,
                color=f"C{i}",
                label=label if style == "-" else None,
                linewidth=1.6 if style == "-" else 1.0,
            )
    ax.set_yscale("log")
    ax.set_xlabel("time step t" if x_axis == "step" else "steps back from the end, T − t")
    ax.set_ylabel("‖∂L/∂h_t‖ / ‖∂L/∂h_T‖" if normalize else "‖∂L/∂h_t‖")
    ax.grid(True, which="major", alpha=0.3)
    if any(label is not None for label in flows):
        ax.legend(fontsize=8)


def plot_experiment(results, path) -> str:
    """One figure: a panel per model (cell, or init of the vanilla cell), one line per length,
    ‖∂L/∂h_t‖/‖∂L/∂h_T‖ against T − t.

    Solid: after training; dashed: at initialisation. ``results``: the experiment's ``RunResult`` rows.
    Needs matplotlib (``PLOT_INSTALL_HINT``).
    """
    plt = require_matplotlib()
    panels = list(dict.fromkeys(_panel(r) for r in results))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.6 * len(panels), 4.0), dpi=120, sharey=True, squeeze=False
    )
    for ax, panel in zip(axes[0], panels):
        rows = [r for r in results if _panel(r) == panel]
        trained = {f"T = {r.length}" + (" ✓" if r.learned else ""): r.flow_trained for r in rows}
        at_init = {f"T = {r.length}": r.flow_init for r in rows}
        draw_flows(ax, trained, normalize=True, dashed=at_init, x_axis="back")
        ax.set_title(panel)
        if ax is not axes[0][0]:
            ax.set_ylabel("")
    title = ("Gradient reaching h_t, relative to h_T", "(solid: trained, dashed: at init, ✓: learned)")
    # one panel is too narrow for the title on one line
    fig.suptitle(("\n" if len(panels) == 1 else " ").join(title), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return str(path)


def _panel(r) -> str:
    """The panel a run is drawn in: the init of the vanilla experiment, else the model."""
    if r.cell == "rnn" and not r.evaluations:
        return f"V init: {r.init}"  # the vanilla experiment: one panel per init
    return r.model or r.cell
