"""Figures are optional: matplotlib comes with the ``plot`` extra and is imported only when a
figure is drawn, so the rest of the package (and its tests) works without it.

The data are Chinese, so the figures' labels are too. matplotlib's own fonts have no Chinese
glyphs (a label would be a row of boxes), so the ``plot`` extra also brings ``mplfonts``, which
ships Noto Sans CJK SC (SIL Open Font License). :func:`register_cjk_font` adds that font to
matplotlib once per process, as a fallback after the default family: Latin text looks as before,
and each Chinese character is drawn from Noto. :func:`require_matplotlib` calls it, so every
figure the package draws has the glyphs.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

from ..extras import install_hint, missing_extra
from ..files import atomic_write

PLOT_INSTALL_HINT = install_hint("plot")
CJK_FONT_FAMILY = "Noto Sans CJK SC"
# mplfonts' copy of the font, relative to its package folder (found without importing mplfonts,
# whose import pulls in its own helpers).
CJK_FONT_FILE = os.path.join("fonts", "NotoSansCJKsc-Regular.otf")


def bundled_cjk_font_path() -> str | None:
    """Where the ``plot`` extra's Chinese font is on disk, or None if mplfonts is not installed."""
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, CJK_FONT_FILE)
        if os.path.isfile(path):
            return path
    return None


@functools.lru_cache(maxsize=None)
def _add_bundled_font() -> str | None:
    """Add the ``plot`` extra's font to matplotlib's font list, once: its family name, or None."""
    from matplotlib import font_manager

    path = bundled_cjk_font_path()
    if path is None:
        return None
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


def register_cjk_font() -> str | None:
    """Make matplotlib draw Chinese: the family name of the font registered, or None if none is had.

    Adds the ``plot`` extra's Noto Sans CJK SC to matplotlib's font list (once per process) and
    puts it after the families in ``rcParams["font.family"]`` (again if something reset them);
    matplotlib (≥ 3.6) falls back per character along that list, so DejaVu Sans still draws Latin
    letters and digits and Noto draws the rest. Needs matplotlib.
    """
    import matplotlib

    name = _add_bundled_font()
    if name is not None:
        families = list(matplotlib.rcParams["font.family"])
        if name not in families:
            matplotlib.rcParams["font.family"] = families + [name]
    return name


def require_matplotlib():
    """``matplotlib.pyplot``; an ImportError names the extra if it is missing.

    The file-only backend (Agg) is chosen only when nobody has chosen one yet, so the CLI and
    scripts need no display, while a notebook (whose kernel sets ``MPLBACKEND``) or a script that
    already imported pyplot keeps its own backend and its figures keep showing. The Chinese font
    is registered on the way (:func:`register_cjk_font`).
    """
    try:
        import matplotlib
    except ImportError:
        raise missing_extra("plots need matplotlib", "plot") from None
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    register_cjk_font()
    return plt


def save_figure(fig, path, **savefig_options) -> None:
    """``fig.savefig(path)`` written whole or not at all (:func:`tinygrad_rnn.files.atomic_write`):
    a crash mid-write leaves the old figure in place. The format follows the file's suffix."""
    suffix = os.path.splitext(str(path))[1].lstrip(".").lower()
    with atomic_write(path) as f:
        fig.savefig(f, format=suffix or "png", **savefig_options)
