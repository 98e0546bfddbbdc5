"""Loss and metric curves per epoch (matplotlib, the optional ``plot`` extra)."""

from __future__ import annotations

import io
import math
import os
from typing import BinaryIO, Dict, List, Sequence, Union

__all__ = ["LivePlot", "plot_history", "plot_report"]


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


def plot_report(reports: Dict[str, Dict[str, float]], path: Union[str, os.PathLike, None] = None,
                *, k: int = 10):
    """Beyond accuracy, side by side for each model of ``reports`` (label ->
    :func:`neumf.evaluate_model` metrics with ``beyond_accuracy=True``): HR@k
    of cold, warm and heavy users; catalogue coverage of the top-k lists; the
    mean popularity percentile of the items recommended. Returns the figure;
    with ``path``, also saves it as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(reports)
    figure = Figure(figsize=(12, 3.8))
    FigureCanvasAgg(figure)
    hits, coverage, popularity = figure.subplots(1, 3)
    width = 0.8 / max(len(labels), 1)
    buckets = ("cold", "warm", "heavy")
    for index, label in enumerate(labels):
        values = [reports[label].get(f"hr@{k}_{bucket}", math.nan) for bucket in buckets]
        hits.bar([b + index * width for b in range(len(buckets))], values, width, label=label)
    hits.set_xticks([b + width * (len(labels) - 1) / 2 for b in range(len(buckets))])
    hits.set_xticklabels([f"{bucket} users" for bucket in buckets])
    hits.set(title=f"HR@{k} by user activity (thirds)", ylabel=f"HR@{k}")
    hits.legend(fontsize="small")
    for axes, key, title, unit in ((coverage, f"coverage@{k}", f"catalogue coverage of top-{k}",
                                    "share of items"),
                                   (popularity, f"popularity@{k}",
                                    f"popularity of top-{k} items", "mean percentile (0-100)")):
        axes.bar(range(len(labels)), [reports[label].get(key, math.nan) for label in labels],
                 color=[f"C{index}" for index in range(len(labels))])
        axes.set_xticks(range(len(labels)))
        axes.set_xticklabels(labels, rotation=20, ha="right", fontsize="small")
        axes.set(title=title, ylabel=unit)
    for axes in (hits, coverage, popularity):
        axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, format="png", dpi=100)
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
