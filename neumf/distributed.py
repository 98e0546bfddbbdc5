"""Training across processes: each worker's shard of the training pairs, and
running a command as MXNet distributed-KVStore workers on this host (a
scheduler, parameter servers and workers, wired by the ``DMLC_*`` environment)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Mapping, Sequence

import numpy as np

from ._util import check_int, check_memory, check_number, check_positive_int

__all__ = ["launch", "shard_rows"]

# Importing mxnet with DMLC_ROLE=server or scheduler runs that role, then exits;
# through neumf, so that a server's optimizer flushes denormals (neumf.denormals)
_PS_COMMAND = (sys.executable, "-c", "import neumf")
# Memory of one idle MXNet process (measured: 178 MB resident at most), for
# refusing more processes than the host can hold before starting any.
_PROCESS_BYTES = 200e6


def shard_rows(num_rows: int, rank: int, num_workers: int, multiple: int = 1) -> np.ndarray:
    """Row indices of worker ``rank``'s shard: every ``num_workers``-th row,
    padded by repeating its first rows to the same length for every worker,
    a multiple of ``multiple``: synchronous workers must take the same number
    of steps, and MXNet's server-side optimizer needs one batch size."""
    if num_rows < num_workers:
        raise ValueError(f"{num_rows} training pairs cannot be shared by {num_workers} "
                         "workers: every worker needs at least one")
    rows = np.arange(rank, num_rows, num_workers)
    length = -(-num_rows // num_workers)
    length = -(-length // multiple) * multiple
    return np.resize(rows, length)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _stop(processes: Sequence[subprocess.Popen], grace: float = 5.0) -> None:
    """Terminate the process groups still running, then kill what is left."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _check_launch(num_workers: int, num_servers: int, port, timeout) -> None:
    """Refuse, before starting any process, what this host cannot run."""
    check_positive_int("num_workers", num_workers)
    check_positive_int("num_servers", num_servers)
    check_memory(_PROCESS_BYTES * (num_workers + num_servers + 1),
                 f"{num_workers + num_servers + 1} MXNet processes (workers, servers and "
                 "the scheduler) on this host")
    if timeout is not None:
        check_number("timeout", timeout, positive=True)
    if port is not None and not 1 <= check_int("port", port) <= 65535:
        raise ValueError(f"port must be in 1..65535; got {port}")


def launch(command: Sequence[str], num_workers: int, num_servers: int = 1, *,
           host: str = "127.0.0.1", port: int | None = None, timeout: float | None = None,
           env: Mapping[str, str] | None = None) -> int:
    """Start a scheduler, ``num_servers`` servers and ``num_workers`` copies of
    ``command`` on this host and wait for the workers.

    The command should train with ``kvstore='dist_sync'`` (or ``dist_async``),
    e.g. ``['neumf', 'train', ..., '--kvstore', 'dist_sync']``; a leading
    ``neumf`` runs this Python's ``-m neumf``. Every role gets
    ``DMLC_PS_ROOT_URI=host``, ``DMLC_PS_ROOT_PORT=port`` (a free one by
    default), ``DMLC_NUM_WORKER`` and ``DMLC_NUM_SERVER``. Across hosts, run
    the same environment by hand (README, "Many machines").

    Returns
    -------
    0 when every worker succeeded, else the first failing worker's exit code
    (or 124 when ``timeout`` seconds passed). All started processes are
    stopped before returning, whatever happened.
    """
    _check_launch(num_workers, num_servers, port, timeout)
    command = list(command)
    if not command:
        raise ValueError("command is empty: give the worker command after --")
    if command[0] == "neumf":
        command = [sys.executable, "-m", "neumf", *command[1:]]
    base: Dict[str, str] = {**os.environ, **(env or {}),
                            "DMLC_PS_ROOT_URI": host,
                            "DMLC_PS_ROOT_PORT": str(port or _free_port(host)),
                            "DMLC_NUM_WORKER": str(num_workers),
                            "DMLC_NUM_SERVER": str(num_servers)}

    def start(role: str, argv: Sequence[str]) -> subprocess.Popen:
        # own process group: stopping a role also stops anything it started
        return subprocess.Popen(list(argv), env={**base, "DMLC_ROLE": role},
                                start_new_session=True)

    helpers: List[subprocess.Popen] = []
    workers: List[subprocess.Popen] = []
    try:
        helpers.append(start("scheduler", _PS_COMMAND))
        helpers.extend(start("server", _PS_COMMAND) for _ in range(num_servers))
        workers.extend(start("worker", command) for _ in range(num_workers))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            codes = [worker.poll() for worker in workers]
            failed = [code for code in codes if code not in (None, 0)]
            if failed:
                return failed[0]
            if all(code == 0 for code in codes):
                return 0
            if deadline is not None and time.monotonic() > deadline:
                return 124
            time.sleep(0.1)
    finally:
        _stop(workers)
        _stop(helpers)
