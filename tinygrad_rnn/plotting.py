"""Figures are optional: matplotlib comes with the ``plot`` extra and is imported only when a
figure is drawn, so the rest of the package (and its tests) works without it."""

from __future__ import annotations

from .extras import install_hint, missing_extra

PLOT_INSTALL_HINT = install_hint("plot")


def require_matplotlib():
    """``matplotlib.pyplot`` with a file-only backend; an ImportError names the extra if it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise missing_extra("plots need matplotlib", "plot") from None
    matplotlib.use("Agg")                                # write files; no display needed
    import matplotlib.pyplot as plt
    return plt
