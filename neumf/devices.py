"""Devices: choosing them, checking them, and splitting a batch across them."""

from __future__ import annotations

import re
import warnings
from typing import List, Sequence

import mxnet as mx
from mxnet import gluon

__all__ = ["check_devices", "parse_devices", "split_and_load", "try_all_gpus"]


def try_all_gpus() -> List[mx.Context]:
    """All GPUs, or ``[mx.cpu()]`` if there is none."""
    gpus = [mx.gpu(i) for i in range(mx.context.num_gpus())]
    return gpus or [mx.cpu()]


def check_devices(devices: Sequence[mx.Context]) -> List[mx.Context]:
    """The devices as a list, or a ValueError naming one that does not exist here
    (a GPU beyond those present, or something that is not an MXNet context) or
    one listed twice (its gradients would be counted twice)."""
    if isinstance(devices, str):
        return parse_devices(devices)
    if isinstance(devices, mx.Context):
        devices = [devices]
    try:
        devices = list(devices)
    except TypeError:
        raise ValueError("devices must be a list of MXNet contexts such as [mx.cpu(0), "
                         f"mx.cpu(1)] or a string such as 'cpu:0,cpu:1'; got {devices!r}"
                         ) from None
    if not devices:
        raise ValueError("devices must list at least one context")
    gpus = mx.context.num_gpus()
    for device in devices:
        if not isinstance(device, mx.Context):
            raise ValueError(f"devices must be MXNet contexts such as mx.cpu(0); got {device!r}")
        if device.device_type == "gpu" and device.device_id >= gpus:
            raise ValueError(f"device {device} does not exist: this machine has {gpus} GPU(s)")
    repeated = [device for index, device in enumerate(devices) if device in devices[:index]]
    if repeated:
        raise ValueError(f"devices lists {repeated[0]} more than once; each device takes one "
                         "share of every batch")
    return devices


def parse_devices(text: str) -> List[mx.Context]:
    """``'cpu:0,cpu:1'`` or ``'gpu:0,gpu:1'`` (``'cpu'`` alone is ``cpu:0``) as
    contexts, checked by :func:`check_devices`."""
    devices = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(cpu|gpu)(?::(\d+))?\s*", part.lower())
        if not match:
            raise ValueError(f"devices must look like cpu:0,cpu:1 or gpu:0; got {text!r}")
        kind, index = match.group(1), int(match.group(2) or 0)
        devices.append(mx.cpu(index) if kind == "cpu" else mx.gpu(index))
    return check_devices(devices)


def split_and_load(columns: Sequence, devices: Sequence[mx.Context]) -> List[list]:
    """``gluon.utils.split_and_load`` of each column along the batch axis, uneven
    last shards allowed; a batch of fewer rows than devices goes to its first
    devices only, one row each (Gluon would give the others empty shards).
    MXNet 1.9.1 warns on every call that ``as_in_context`` was renamed (inside
    Gluon, not here); that noise is silenced."""
    used = list(devices)[:max(1, len(columns[0]))] if len(columns) else list(devices)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ndarray.as_in_context has been renamed",
                                category=DeprecationWarning)
        return [gluon.utils.split_and_load(values, used, even_split=False)
                for values in columns]
