"""Devices, and splitting a batch across them."""

from __future__ import annotations

import warnings
from typing import List, Sequence

import mxnet as mx
from mxnet import gluon

__all__ = ["split_and_load", "try_all_gpus"]


def try_all_gpus() -> List[mx.Context]:
    """All GPUs, or ``[mx.cpu()]`` if there is none."""
    gpus = [mx.gpu(i) for i in range(mx.context.num_gpus())]
    return gpus or [mx.cpu()]


def split_and_load(columns: Sequence, devices: Sequence[mx.Context]) -> List[list]:
    """``gluon.utils.split_and_load`` of each column along the batch axis, uneven
    last shards allowed. MXNet 1.9.1 warns on every call that ``as_in_context``
    was renamed (inside Gluon, not here); that noise is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ndarray.as_in_context has been renamed",
                                category=DeprecationWarning)
        return [gluon.utils.split_and_load(values, devices, even_split=False)
                for values in columns]
