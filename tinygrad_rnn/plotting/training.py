"""The figure of a training run: loss and dev metric per epoch (``plot.png`` of a run directory),
redrawn by :func:`tinygrad_rnn.train.fit` after every epoch."""

from __future__ import annotations

from . import require_matplotlib, save_figure


def plot_history(history: list, path, metric: str) -> None:
    """Two panels, per epoch: train and dev loss; the dev metric. Written atomically as a PNG."""
    plt = require_matplotlib()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_loss.plot(epochs, [r["dev_loss"] for r in history], "o-", label="dev")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_loss.legend()
    ax_metric.plot(epochs, [r[f"dev_{metric}"] for r in history], "o-", color="tab:green")
    ax_metric.set(xlabel="epoch", ylabel=metric, title=f"dev {metric}")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=100)
    finally:
        plt.close(fig)
