"""Loss and metric curves per epoch (matplotlib, the optional ``plot`` extra)."""

from __future__ import annotations

import io
import math
import os
from typing import BinaryIO, Dict, List, Sequence, Union

__all__ = ["LivePlot", "plot_history"]


def plot_history(history: Sequence[Dict[str, float]],
                 path: Union[str, os.PathLike, BinaryIO, None] = None, *,
                 fmt: str | None = None):
    """Draw training loss (left) and test hit rate and AUC (right) per epoch.

    Returns the matplotlib figure; with ``path`` (a file name or binary file),
    also saves it there (PNG by default).
    """
    # the object-oriented API: no pyplot, no backend switch, no global state
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    figure = Figure(figsize=(9, 3.4))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
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
    return figure


class LivePlot:
    """An ``on_epoch_end`` callback that redraws the curves in a notebook, as the
    tutorial's Animator did; outside a notebook it draws nothing."""

    def __init__(self, history: List[Dict[str, float]] | None = None):
        self.history = list(history or [])

    def on_epoch_end(self, stats: Dict[str, float]) -> None:
        self(stats)

    def __call__(self, stats: Dict[str, float]) -> None:
        self.history.append(stats)
        try:
            from IPython import get_ipython
            from IPython.display import Image, clear_output, display
        except ImportError:
            return
        if get_ipython() is None:
            return
        buffer = io.BytesIO()
        plot_history(self.history, buffer)  # a PNG, whatever matplotlib backend is active
        clear_output(wait=True)
        display(Image(data=buffer.getvalue(), format="png"))
