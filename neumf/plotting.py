"""Loss and metric curves per epoch (matplotlib, the optional ``plot`` extra)."""

from __future__ import annotations

import math
import os
from typing import Dict, List, Sequence, Union

__all__ = ["LivePlot", "plot_history"]


def plot_history(history: Sequence[Dict[str, float]],
                 path: Union[str, os.PathLike, None] = None, *, fmt: str | None = None):
    """Draw training loss (left) and test hit rate and AUC (right) per epoch.

    Returns the matplotlib figure; with ``path``, also saves it there (PNG by
    default) and closes it.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    epochs = [h["epoch"] for h in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(epochs, [h["loss"] for h in history], marker="o", color="tab:blue")
    left.set(xlabel="epoch", ylabel="loss per triplet", title="training loss")
    evaluated = [h for h in history if not math.isnan(h["hit_rate"])]
    for key, label in (("hit_rate", "hit rate"), ("auc", "AUC")):
        right.plot([h["epoch"] for h in evaluated], [h[key] for h in evaluated], marker="o",
                   label=label)
    right.set(xlabel="epoch", ylim=(0, 1), title="test metrics")
    right.legend(loc="lower right")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, format=fmt or "png", dpi=100)
        plt.close(figure)
    return figure


class LivePlot:
    """An ``on_epoch_end`` callback that redraws the curves in a notebook, as the
    tutorial's Animator did; outside a notebook it draws nothing."""

    def __init__(self, history: List[Dict[str, float]] | None = None):
        self.history = list(history or [])

    def __call__(self, stats: Dict[str, float]) -> None:
        self.history.append(stats)
        try:
            from IPython import get_ipython
            from IPython.display import clear_output, display
        except ImportError:
            return
        if get_ipython() is None:
            return
        from matplotlib import pyplot as plt

        figure = plot_history(self.history)
        clear_output(wait=True)
        display(figure)
        plt.close(figure)
