"""Figures are optional: matplotlib comes with the ``plot`` extra and is imported only when a
figure is drawn, so the rest of the package (and its tests) works without it."""

from __future__ import annotations

PLOT_INSTALL_HINT = "pip install 'tinygrad-rnn[plot]'"


def require_matplotlib():
    """``matplotlib.pyplot`` with a file-only backend; an ImportError names the extra if it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"plots need matplotlib, which is not installed: {PLOT_INSTALL_HINT}") from None
    matplotlib.use("Agg")                                # write files; no display needed
    import matplotlib.pyplot as plt
    return plt
