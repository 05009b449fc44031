"""Drawing a classifier's P(class) after every prefix of a text
(:func:`tinygrad_rnn.models.prefixes.prefix_probabilities` computes it).

* :func:`render_prefixes` draws one class's probability as text under the tokens (a terminal);
* :func:`draw_prefixes` / :func:`plot_prefixes` draw curves (e.g. one per cell) on a matplotlib
  axis / into a PNG, each token under its position.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from . import require_matplotlib, save_figure
from .attention import CJK_FONT_HINT, cjk_font_for

BLOCKS = "▁▂▃▄▅▆▇█"  # the terminal rendering's eight levels, 0 … 1


def _width(text: str) -> int:
    """Terminal columns: wide (CJK) characters take two."""
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def render_prefixes(tokens, probs, shown: int, class_name: str, *, per_line: int = 20) -> str:
    """One class's probability after every prefix, as text: the tokens, ``per_line`` at a time,
    with a bar under each (one of ``BLOCKS``, ▁ = 0 … █ = 1, as wide as the token), the position
    of the line's first token on the left and the probability after its last token on the right.

    ``probs`` is (len(tokens), C) from :func:`prefix_probabilities`; ``shown`` the class column.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != len(tokens) or not 0 <= shown < probs.shape[1]:
        raise ValueError(f"probs of shape {probs.shape} do not fit {len(tokens)} tokens and class {shown}")
    p = probs[:, shown]
    levels = np.minimum((p * len(BLOCKS)).astype(int), len(BLOCKS) - 1)
    lines = [
        f"P({class_name}) after each of the {len(tokens)} tokens "
        f"({BLOCKS[0]} 0 … {BLOCKS[-1]} 1; the number: after the line's last token)"
    ]
    for start in range(0, len(tokens), per_line):
        chunk = range(start, min(start + per_line, len(tokens)))
        text = "".join(tokens[i] for i in chunk)
        bars = "".join(BLOCKS[levels[i]] * max(1, _width(tokens[i])) for i in chunk)
        lines.append(f"{start + 1:>5}  {text}")
        lines.append(f"{'':>5}  {bars}  {p[chunk[-1]]:.2f}")
    return "\n".join(lines)


def draw_prefixes(ax, tokens, curves, *, ylabel: str = "P(class)") -> str | None:
    """Draw ``curves`` (label → (T,) probabilities, or one array) against the prefix length on a
    matplotlib ``ax``, each token under its position. Returns None, or a note when no font with
    Chinese glyphs was found (the token labels may then show as boxes)."""
    if not isinstance(curves, dict):
        curves = {None: curves}
    T = len(tokens)
    for label, curve in curves.items():
        curve = np.asarray(curve, dtype=np.float64)
        if curve.shape != (T,):
            raise ValueError(f"curve {label!r} has shape {curve.shape}, want ({T},): one value per token")
        ax.plot(np.arange(1, T + 1), curve, "-", marker=".", markersize=3, linewidth=1.4, label=label)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set(
        xlim=(0.5, T + 0.5),
        ylim=(-0.02, 1.02),
        ylabel=ylabel,
        xlabel="prefix length t (the token read last under its position)",
    )
    ax.set_xticks(np.arange(1, T + 1))
    needs_cjk, font = cjk_font_for("".join(tokens))
    ax.set_xticklabels(list(tokens), fontsize=7, **({"fontfamily": font} if font else {}))
    ax.grid(alpha=0.3)
    if any(label is not None for label in curves):
        ax.legend(fontsize=8)
    return CJK_FONT_HINT if needs_cjk and font is None else None


def plot_prefixes(tokens, curves, path, *, ylabel: str = "P(class)", title: str | None = None) -> str | None:
    """Write the figure of :func:`draw_prefixes` to ``path`` (PNG); returns its note (or None).
    Needs matplotlib (the ``plot`` extra)."""
    plt = require_matplotlib()
    quiet = logging.getLogger("matplotlib.font_manager")  # "weight normal not found, using 500"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.13 * len(tokens)), 3.6), dpi=120)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # said in the note
            note = draw_prefixes(ax, tokens, curves, ylabel=ylabel)
            if title or note:
                ax.set_title(
                    (title or "") + ("\n(no CJK font: labels may be boxes)" if note else ""), fontsize=9
                )
            fig.tight_layout()
            save_figure(fig, path)
        plt.close(fig)
    finally:
        quiet.setLevel(level)
    return note
