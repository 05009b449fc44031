"""The figure of ``tinygrad-rnn bptt compare``: peak memory and time against T, log–log.

On log–log axes a cost ∝ T^a is a straight line of slope a, so each method's line is labelled
with its fitted slope beside the law's (``bptt.compare.LAWS``).
"""

from __future__ import annotations

from . import require_matplotlib, save_figure

STYLE = {"bptt": ("C0", "o"), "checkpoint": ("C1", "s"), "rtrl": ("C2", "^"), "truncated": ("C3", "v")}


def plot_compare(rows, path, *, slopes: dict, laws: dict, title: str = "") -> str:
    """Draw the measurements of :func:`tinygrad_rnn.bptt.compare.compare` to ``path`` (PNG).

    ``slopes``: {method: (memory slope, time slope) or None} (``bptt.compare.cost_slopes``);
    ``laws``: {method: (memory exponent, time exponent, note)} (``bptt.compare.LAWS``).
    """
    plt = require_matplotlib()
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        Ts = [r.T for r in mine]
        color, marker = STYLE.get(method, ("k", "o"))
        fitted = slopes.get(method)
        mem_law, time_law, _ = laws[method]
        mem_label = f"{method} (slope {fitted[0]:.2f}; law {mem_law:g})" if fitted else method
        time_label = f"{method} (slope {fitted[1]:.2f}; law {time_law:g})" if fitted else method
        ax_mem.plot(
            Ts, [max(r.peak_bytes, 1) / 2**20 for r in mine], marker=marker, color=color, label=mem_label
        )
        ax_time.plot(Ts, [r.seconds for r in mine], marker=marker, color=color, label=time_label)
    for ax, what in (
        (ax_mem, "peak memory of one gradient (MiB, tracemalloc)"),
        (ax_time, "time of one gradient over the sequence (s)"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted({r.T for r in rows}))  # the measured lengths, as plain numbers
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)
