"""Optimizer state: every touch of ``gluon.Trainer`` internals lives here.

MXNet keeps an optimizer's state in updaters indexed by the Trainer's
parameter order, which depends on creation order; state is saved and restored
by structural parameter name (``mlp.0.weight``) instead, so a freshly built
network and Trainer take it back exactly.
"""

from __future__ import annotations

from typing import Dict, Tuple

import mxnet as mx
from mxnet import gluon

from ._gluon import parameters

__all__ = ["allow_np_updates", "optimizer_state", "restore_optimizer", "saved_optimizer_name",
           "updaters"]


def allow_np_updates(trainer: gluon.Trainer) -> None:
    """Let the optimizer take ``mx.np`` gradients even if the Trainer was made
    outside NumPy mode (the tutorial relied on a global ``npx.set_np()``).
    Must run before the first step, when the kvstore copies the optimizer."""
    optimizer = getattr(trainer, "_optimizer", None)
    if optimizer is not None:
        optimizer.allow_np_array = True


def updaters(trainer: gluon.Trainer) -> list:
    """The updaters holding the optimizer state, wherever the trainer keeps them
    (none on a worker when the parameter servers update)."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._update_on_kvstore:
        updater = getattr(trainer._kvstore, "_updater", None)
        return [updater] if updater is not None else []
    return list(trainer._updaters)


def _parts(state) -> tuple:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _structural_names(trainer: gluon.Trainer, net: gluon.Block) -> Dict[int, str]:
    """Trainer index -> structural parameter name."""
    by_id = {id(param): name for name, param in parameters(net).items()}
    return {index: by_id[id(param)] for index, param in enumerate(trainer._params)}


def optimizer_state(trainer: gluon.Trainer, net: gluon.Block
                    ) -> Tuple[Dict[str, mx.nd.NDArray], Dict]:
    """The optimizer's state as named arrays (on the CPU) and a JSON-ready
    layout: the optimizer's name, which arrays make each parameter's state, and
    the update counts (Adam's bias correction reads them)."""
    updater = updaters(trainer)[0]
    names = _structural_names(trainer, net)
    arrays, layout = {}, {}
    for index, state in updater.states.items():
        name = names[index]
        parts = _parts(state)
        layout[name] = {"tuple": isinstance(state, (tuple, list)),
                        "parts": [None if part is None else f"{name}.{j}"
                                  for j, part in enumerate(parts)]}
        for j, part in enumerate(parts):
            if part is not None:
                arrays[f"{name}.{j}"] = part.as_in_context(mx.cpu())
    optimizer = updater.optimizer
    meta = {"optimizer": type(optimizer).__name__.lower(), "layout": layout,
            "num_update": optimizer.num_update,
            "update_count": {names[k]: v for k, v in optimizer._index_update_count.items()}}
    return arrays, meta


def restore_optimizer(trainer: gluon.Trainer, net: gluon.Block,
                      arrays: Dict[str, mx.nd.NDArray], meta: Dict) -> None:
    """Put state saved by :func:`optimizer_state` into a fresh Trainer of the same
    optimizer, on every device."""
    index_of = {name: index for index, name in _structural_names(trainer, net).items()}
    devices = {context.device_id for context in net.collect_params().list_ctx()} | {0}
    for updater in updaters(trainer):
        for name, entry in meta["layout"].items():
            parts = [None if key is None else arrays[key].copy() for key in entry["parts"]]
            updater.states[index_of[name]] = tuple(parts) if entry["tuple"] else parts[0]
            updater.states_synced[index_of[name]] = False  # moved to the weight's device on use
        optimizer = updater.optimizer
        optimizer.num_update = meta["num_update"]
        counts = {index_of[name]: count for name, count in meta["update_count"].items()}
        # the per-device counts are selected before each update
        optimizer._all_index_update_counts = {device: dict(counts) for device in devices}
        optimizer._index_update_count = optimizer._all_index_update_counts[0]


def saved_optimizer_name(meta: Dict | None) -> str | None:
    """The optimizer a saved state belongs to (None for runs saved before it was
    recorded, or without state)."""
    return None if meta is None else meta.get("optimizer")
