"""Gluon helpers: parameters by structural name (``mlp.0.weight``), the one
place that calls Gluon's private ``_collect_params_with_prefix``, and weights
as NumPy arrays."""

from __future__ import annotations

from typing import Dict

import numpy as np
from mxnet import gluon

__all__ = ["get_weights", "parameters", "set_weights"]


def parameters(net: gluon.Block) -> Dict[str, gluon.Parameter]:
    """The block's parameters by structural name: names that do not depend on
    creation order (unlike MXNet's own ``neumf0_dense1_weight``)."""
    return net._collect_params_with_prefix()


def get_weights(net: gluon.Block) -> Dict[str, np.ndarray]:
    """Every parameter's value (from its first device) as a NumPy array."""
    return {name: param.data().asnumpy() for name, param in parameters(net).items()}


def set_weights(net: gluon.Block, values: Dict[str, np.ndarray]) -> None:
    """Set every parameter, on every device, from ``values`` (same names and
    shapes), in place: ``Parameter.set_data`` would reset a Trainer's kvstore,
    which a distributed kvstore refuses."""
    for name, param in parameters(net).items():
        for data in param.list_data():
            data[:] = values[name]
