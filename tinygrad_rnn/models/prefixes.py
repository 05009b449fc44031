"""Reading a text one token at a time: a classifier's P(class) after every prefix.

The chapter's section 3 example is a long restaurant review that praises the food first and
complains for the rest. Where does the classifier change its mind — and does it still remember
the praise by the end? :func:`prefix_probabilities` answers with the probabilities the classifier
gives to each prefix x_1 … x_t, for t = 1..T.

A one-direction cell never looks ahead, so the state h_t after reading the prefix x_1 … x_t is
the h_t of reading the whole text. ONE forward pass over the text therefore gives every
prefix's summary s_t, and the head turns all of them into logits at once:

* ``pooling="last"``: s_t = h_t (the top layer's state after token t);
* ``pooling="mean"``: s_t = (1/t) Σ_{τ=1..t} h_τ, the running mean of the states (a running sum,
  one addition per step, so the cost stays linear in T).

A bidirectional classifier's backward direction starts at the end of each prefix (←h_1 of the
prefix x_1 … x_t has read x_t … x_1, which is not what it read of the whole text), so there every
prefix is a sequence of its own: one forward pass over the batch of all T prefixes, padded, with
lengths 1..T — T times the work, and the same probabilities as T separate ``predict`` calls.

:func:`render_prefixes` draws one class's probability as text under the tokens (a terminal);
:func:`plot_prefixes` writes a PNG with matplotlib, one line per curve (e.g. per cell).
"""

from __future__ import annotations

import logging
import warnings
from itertools import accumulate

import numpy as np

from ..plotting import require_matplotlib
from ..ops import stack
from ..tensor import no_grad
from .attention_plot import CJK_FONT_HINT, find_cjk_font

BLOCKS = "▁▂▃▄▅▆▇█"                  # the terminal rendering's eight levels, 0 … 1

# The chapter's section 3 example (docs/chapter.md): 114 characters, four clauses of praise, then
# seven of complaint from 但是 ("but") on. `make run`, notebook 04 and docs/review_prefixes.py read it.
CHAPTER_REVIEW = ("我觉得这家餐馆的菜品很不错，烤鸭非常正宗，包子也不错，酱牛肉很有嚼劲，但是服务员态度太恶劣了，"
                  "我们在门口等了50分钟都没有能成功进去，好不容易进去了，桌子也半天没人打扫，整个环境非常吵闹，"
                  "我的孩子都被吓哭了，我下次不会带朋友来。")


def clause_ends(text: str, marks: str = "，。！？；") -> list[int]:
    """The prefix lengths t at which a clause of ``text`` ends (just after each punctuation mark
    in ``marks``, and at the end): where to read P(class) clause by clause."""
    ends = [i + 1 for i, ch in enumerate(text) if ch in marks]
    return ends if ends and ends[-1] == len(text) else ends + [len(text)]


def prefix_probabilities(model, ids) -> np.ndarray:
    """(T, C) NumPy array: row t − 1 is softmax(logits) of ``model`` on the prefix ``ids[:t]``.

    ``model`` is a :class:`~tinygrad_rnn.models.SequenceClassifier` (any cell, either pooling,
    one or more layers, either direction); ``ids`` the T ≥ 1 token ids of one text (a list or
    1-D array). No graph is built. See the module docstring for how one pass gives every prefix.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"ids must be the token ids of one text, a non-empty 1-D sequence; got shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integer token ids, got dtype {ids.dtype}")
    T = ids.size
    with no_grad():
        if model.rnn.bidirectional:
            prefixes = np.where(np.arange(T)[None, :] <= np.arange(T)[:, None], ids[None, :], 0)
            logits = model(prefixes, np.arange(1, T + 1))                       # (T, C)
        else:
            outputs, _, _ = model.run_rnn(ids[None, :], None)                   # (1, T, H)
            states = outputs.reshape(T, outputs.shape[2])                       # h_1 … h_T of the top layer
            if model.pooling == "mean":                                         # running sums: linear in T
                sums = list(accumulate(states.unbind(axis=0)))                  # Σ_{τ≤t} h_τ for t = 1..T
                states = stack([total / t for t, total in enumerate(sums, 1)], axis=0)
            logits = model.head(states)                                         # (T, C)
        return logits.log_softmax(axis=-1).exp().numpy()


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
    lines = [f"P({class_name}) after each of the {len(tokens)} tokens "
             f"({BLOCKS[0]} 0 … {BLOCKS[-1]} 1; the number: after the line's last token)"]
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
    ax.set(xlim=(0.5, T + 0.5), ylim=(-0.02, 1.02), ylabel=ylabel,
           xlabel="prefix length t (the token read last under its position)")
    ax.set_xticks(np.arange(1, T + 1))
    text = "".join(tokens)
    needs_cjk = any(ord(ch) > 0x2E7F for ch in text)
    font = find_cjk_font("".join(ch for ch in text if ord(ch) > 0x2E7F)[:20]) if needs_cjk else None
    ax.set_xticklabels(list(tokens), fontsize=7, **({"fontfamily": font} if font else {}))
    ax.grid(alpha=0.3)
    if any(label is not None for label in curves):
        ax.legend(fontsize=8)
    return CJK_FONT_HINT if needs_cjk and font is None else None


def plot_prefixes(tokens, curves, path, *, ylabel: str = "P(class)", title: str | None = None) -> str | None:
    """Write the figure of :func:`draw_prefixes` to ``path`` (PNG); returns its note (or None).
    Needs matplotlib (the ``plot`` extra)."""
    plt = require_matplotlib()
    quiet = logging.getLogger("matplotlib.font_manager")      # "weight normal not found, using 500"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.13 * len(tokens)), 3.6), dpi=120)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")   # said in the note
            note = draw_prefixes(ax, tokens, curves, ylabel=ylabel)
            if title or note:
                ax.set_title((title or "") + ("\n(no CJK font: labels may be boxes)" if note else ""), fontsize=9)
            fig.tight_layout()
            fig.savefig(path)
        plt.close(fig)
    finally:
        quiet.setLevel(level)
    return note
