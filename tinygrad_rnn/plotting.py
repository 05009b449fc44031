"""Figures are optional: matplotlib comes with the ``plot`` extra and is imported only when a
figure is drawn, so the rest of the package (and its tests) works without it."""

from __future__ import annotations

import os
import sys

from .extras import install_hint, missing_extra

PLOT_INSTALL_HINT = install_hint("plot")


def require_matplotlib():
    """``matplotlib.pyplot``; an ImportError names the extra if it is missing.

    The file-only backend (Agg) is chosen only when nobody has chosen one yet, so the CLI and
    scripts need no display, while a notebook (whose kernel sets ``MPLBACKEND``) or a script that
    already imported pyplot keeps its own backend and its figures keep showing.
    """
    try:
        import matplotlib
    except ImportError:
        raise missing_extra("plots need matplotlib", "plot") from None
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
