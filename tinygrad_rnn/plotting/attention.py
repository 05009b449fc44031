"""Seeing attention: the weights α_{t,j} as a heatmap, output tokens down, source tokens across
(the weights of one decoded text come from :func:`tinygrad_rnn.models.decoding.attention_for`).

Row t is what the decoder read of the source when it wrote output token t: a distribution over
the source positions j (each row sums to 1). A sharp diagonal means a monotone, one-to-one
alignment; a row spread over several positions means the output needed several source tokens.

* :func:`plot_attention` writes a PNG with matplotlib (the ``plot`` extra). Chinese labels need
  a font with CJK glyphs: :func:`find_cjk_font` looks for one among matplotlib's fonts and the
  system's; without one the labels would be empty boxes, so the figure says so in its title and
  the function returns a note saying which package adds a font.
* :func:`render_attention` draws the same matrix as text, for a terminal (no matplotlib needed).
"""

from __future__ import annotations

import functools
import logging
import warnings

import numpy as np

from . import PLOT_INSTALL_HINT, register_cjk_font, require_matplotlib, save_figure

# Fonts known to cover Chinese, tried first (by name) before every font is searched for a glyph.
CJK_FONT_NAMES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "AR PL UMing CN",
    "Droid Sans Fallback",
    "Arial Unicode MS",
)
CJK_FONT_HINT = (
    "no font with Chinese glyphs was found, so Chinese labels show as boxes; the plot extra "
    f"brings one ({PLOT_INSTALL_HINT}), or install a system font (e.g. 'apt-get install "
    "fonts-noto-cjk') and draw again"
)
SHADES = " ░▒▓█"  # the terminal rendering's five levels of weight


def _covers(path: str, text: str) -> bool:
    from matplotlib import ft2font

    try:
        font = ft2font.FT2Font(path)
    except (OSError, RuntimeError, ValueError):
        return False
    return all(font.get_char_index(ord(ch)) for ch in text)


@functools.lru_cache(maxsize=None)
def find_cjk_font(sample: str = "行银") -> str | None:
    """The name of a font that has glyphs for ``sample``, or None.

    Registers the ``plot`` extra's font first (:func:`~tinygrad_rnn.plotting.register_cjk_font`),
    then searches matplotlib's font list (known CJK families first), then the system's font files
    matplotlib has not listed yet (a font installed after matplotlib built its cache), which it
    registers so that figures can use it.
    """
    from matplotlib import font_manager as fm

    register_cjk_font()
    # "Last Resort" maps every character to a placeholder box: it covers everything and shows nothing.
    entries = sorted(
        (f for f in fm.fontManager.ttflist if "last resort" not in f.name.lower()),
        key=lambda f: f.name not in CJK_FONT_NAMES,
    )
    for entry in entries:
        if _covers(entry.fname, sample):
            return entry.name
    listed = {f.fname for f in fm.fontManager.ttflist}
    for path in fm.findSystemFonts():
        if path not in listed and "lastresort" not in path.lower() and _covers(path, sample):
            fm.fontManager.addfont(path)
            return fm.FontProperties(fname=path).get_name()
    return None


def cjk_font_for(text: str) -> tuple[bool, str | None]:
    """Whether ``text`` has CJK characters (code points above U+2E7F), and a font with glyphs for
    them (:func:`find_cjk_font` on a sample of the first 20), or None."""
    cjk = "".join(ch for ch in text if ord(ch) > 0x2E7F)
    return bool(cjk), (find_cjk_font(cjk[:20]) if cjk else None)


def _check(weights, source, output) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(output), len(source)):
        raise ValueError(
            f"weights of shape {weights.shape} do not fit {len(output)} output tokens × "
            f"{len(source)} source tokens"
        )
    return weights


def plot_attention(weights, source, output, path, title: str | None = None) -> str | None:
    """Write the heatmap of ``weights`` (len(output), len(source)) to ``path`` (PNG).

    ``source`` and ``output`` are the token strings that label the columns and rows (include
    ``<eos>`` in ``output`` if its row is included). Returns None, or a note when no CJK font
    was found and non-ASCII labels may show as boxes.
    """
    weights = _check(weights, source, output)
    plt = require_matplotlib()
    needs_cjk, font = cjk_font_for("".join([*source, *output, title or ""]))
    note = CJK_FONT_HINT if needs_cjk and font is None else None
    rc = {"font.family": [font, "DejaVu Sans"]} if font else {}
    quiet = logging.getLogger("matplotlib.font_manager")  # "weight normal not found, using 500"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            if note is not None:  # said once, in the note
                warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            _draw(plt, rc, weights, source, output, path, title, note)
    finally:
        quiet.setLevel(level)
    return note


def _draw(plt, rc, weights, source, output, path, title, note):
    with plt.rc_context(rc):
        fig, ax = plt.subplots(
            figsize=(max(3.2, 1.6 + 0.45 * len(source)), max(2.6, 1.0 + 0.4 * len(output)))
        )
        image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(source)), list(source))
        ax.set_yticks(range(len(output)), list(output))
        ax.xaxis.tick_top()
        ax.set_xlabel("source j")
        ax.set_ylabel("output t")
        ax.set_title(
            title if note is None else f"{title or ''}\n(no CJK font: labels may be boxes)", fontsize=9
        )
        fig.colorbar(image, ax=ax, fraction=0.05, label=r"$\alpha_{t,j}$")
        fig.tight_layout()
        save_figure(fig, path, dpi=120)
        plt.close(fig)


def render_attention(weights, source, output) -> str:
    """The heatmap as text: one row per output token, one column per source token, each cell
    α rounded to the nearest of 0, ¼, ½, ¾, 1 and drawn as one of ``SHADES`` (blank … █), and the
    source token each row weighs most, with its weight.
    Wide (CJK) characters take two terminal columns, so every cell is two columns wide."""
    weights = _check(weights, source, output)

    def width(s):
        return sum(2 if ord(ch) > 0x2E7F else 1 for ch in s)

    def pad(s, n):
        return s + " " * max(0, n - width(s))

    left = max([width(o) for o in output] + [1])
    cells = [pad(s if width(s) <= 2 else s[:1] if width(s[:1]) == 2 else s[:2], 2) for s in source]
    lines = [pad("", left) + " │" + "".join(cells)]
    levels = np.minimum((weights * (len(SHADES) - 1) + 0.5).astype(int), len(SHADES) - 1)
    for o, row, w in zip(output, levels, weights):
        shades = "".join(SHADES[v] * 2 for v in row)
        lines.append(f"{pad(o, left)} │{shades}  ← {source[int(np.argmax(w))]} {w.max():.2f}")
    return "\n".join(lines)
