"""One function of the package run in a second Python process, beside this one.

The child is a fresh interpreter (``python -c``), not a fork: MXNet's engine
threads do not survive a fork, and ``multiprocessing``'s spawn would import
the caller's ``__main__`` again (a script without a main guard would start
its work twice). It imports what this process imports (its ``sys.path``, not
the working folder's stray ``random.py``) and computes with this process's
OpenMP threads (the numbers depend on them). Arguments and the result travel
as pickles in a private folder; the child's warnings are raised again here
as if raised here, its exception too. It ends with its parent (it watches a
pipe from the parent, and then removes its folder) or when
:meth:`Worker.stop` kills it, as leaving the ``with`` block does, Ctrl-C
included, or as losing the last reference to the :class:`Worker` does.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable

__all__ = ["Worker", "start"]

# Lines of the child's stderr quoted when it ends without a result
_STDERR_LINES = 20
# Seconds between looks for the child's result
_POLL = 0.05
# The child's program: once Python has started (its own modules from its own
# library), this process's import path, then the call (not ``-m``: runpy
# warns of a module imported by then)
_CHILD = ("import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
          "from neumf.processes import _child; _child(sys.argv[1])")
# After its result: a process that holds nothing but the pipe, to remove the
# folder if the parent dies before it reads the result
_WATCHER = ("import shutil, sys; sys.stdin.buffer.read(); "
            "shutil.rmtree(sys.argv[1], ignore_errors=True)")
# Variables that OpenMP, MXNet and the BLAS read when they start, as they were
# when this process started them (at import): the child's numbers depend on them
_THREADING = ("OMP_", "GOMP_", "KMP_", "MXNET_", "MKL_", "OPENBLAS_")
_STARTED_WITH = types.MappingProxyType(
    {key: value for key, value in os.environ.items() if key.startswith(_THREADING)})


class Worker:
    """A function running in a child process; :meth:`result` waits for it."""

    def __init__(self, function: Callable, args: tuple, threads: int, label: str):
        self.label = label
        # engine threads only: OpenMP's, which the numbers depend on, stay this
        # process's; but idle ones sleep, not spin, on cores this process needs
        env = {"OMP_WAIT_POLICY": "PASSIVE",
               **{key: value for key, value in os.environ.items()
                  if not key.startswith(_THREADING)},
               **_STARTED_WITH, "MXNET_CPU_WORKER_NTHREADS": str(threads)}
        self._folder = Path(tempfile.mkdtemp(prefix="neumf-worker-"))
        try:
            with open(self._folder / "call.pickle", "wb") as file:
                pickle.dump((function.__module__, function.__qualname__, args, os.getcwd()),
                            file, protocol=pickle.HIGHEST_PROTOCOL)
            # started in its own folder (python -c imports from where it starts) and
            # its own session (a terminal's Ctrl-C reaches the parent, which stops it)
            with open(self._folder / "stderr.txt", "wb") as stderr:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _CHILD, str(self._folder),
                     json.dumps(_import_path())], cwd=self._folder,
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr,
                    env=env, start_new_session=True)
        except BaseException:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        self._cleanup = weakref.finalize(self, _stop, self._process, self._folder)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def result(self) -> Any:
        """Wait for the child and return what the function returned; its
        warnings are raised here as warnings, its exception as itself (the
        child's traceback as the cause), its death as ChildProcessError."""
        path = self._folder / "result.pickle"
        while not path.exists():  # written whole (renamed), then the child waits to be stopped
            code = self._process.poll()
            if code is not None and not path.exists():
                raise ChildProcessError(self._death(code))
            time.sleep(_POLL)
        with open(path, "rb") as file:
            outcome, value, caught = pickle.load(file)
        for record in caught:
            _warn_again(*record)
        if outcome == "error":
            error, text = value
            raise error from RuntimeError(f"in the {self.label} process:\n{text}")
        return value

    def stop(self) -> None:
        """Kill the child if it still runs and remove its folder."""
        self._cleanup()

    def _death(self, code: int) -> str:
        """How the child ended without a result: its exit code or signal, and
        its last words (the last line first: a traceback's summary)."""
        how = f"exit code {code}"
        if code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        path = self._folder / "stderr.txt"
        lines = [line for line in path.read_text(errors="replace").splitlines()
                 if line.strip()] if path.exists() else []
        words = f": {lines[-1].strip()}" if lines else ", saying nothing"
        tail = "\n".join(lines[-_STDERR_LINES:])
        return f"the {self.label} process ended ({how}) without a result{words}" + (
            f"\nits last words:\n{tail}" if tail else "")


def start(function: Callable, *args, threads: int = 1, label: str = "worker") -> Worker:
    """Run ``function(*args)`` (a module-level function, picklable arguments)
    in a new Python process with ``threads`` MXNet engine threads.

    Use as ``with start(f, x) as worker: ...; value = worker.result()``.
    """
    return Worker(function, args, threads, label)


def _import_path() -> list:
    """This process's ``sys.path`` as absolute paths (``''`` and ``'..'`` mean
    where this process stands; the child starts elsewhere)."""
    return [os.path.abspath(os.fspath(entry)) for entry in sys.path
            if isinstance(entry, (str, os.PathLike))]


def _stop(process: subprocess.Popen, folder: Path) -> None:
    """Kill the child (or its watcher) if it runs, then remove its folder."""
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdin.close()
    shutil.rmtree(folder, ignore_errors=True)


def _warn_again(message: str, category: type, filename: str, lineno: int,
                module: str | None) -> None:
    """A child's warning raised here as it was raised there: its place, its
    module (filters by module match) and that module's once-only registry."""
    registry = vars(sys.modules[module]).setdefault("__warningregistry__", {}) \
        if module in sys.modules else None
    warnings.warn_explicit(message, category, filename, lineno, module=module,
                           registry=registry)


def _die_with_parent(folder: Path) -> None:
    """Wait for the parent's pipe to close (it ended or stopped us), then end."""
    sys.stdin.buffer.read()
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(1)


def _child(folder: str) -> None:
    """The child's side: run the call in ``folder``, write its outcome there."""
    folder = Path(folder)
    threading.Thread(target=_die_with_parent, args=(folder,), daemon=True).start()
    with open(folder / "call.pickle", "rb") as file:
        module, name, args, cwd = pickle.load(file)
    os.chdir(cwd)  # relative paths mean what they mean to the parent
    function = importlib.import_module(module)
    for part in name.split("."):
        function = getattr(function, part)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = ("value", function(*args))
        except Exception as error:  # noqa: BLE001 - every error goes back to the parent
            outcome = ("error", (_portable(error), traceback.format_exc()))
    modules = {getattr(mod, "__file__", None): mod_name
               for mod_name, mod in list(sys.modules.items())}
    record = [(str(item.message), item.category, item.filename, item.lineno,
               modules.get(item.filename)) for item in caught]
    partial = folder / "result.pickle.partial"
    with open(partial, "wb") as file:
        pickle.dump((*outcome, record), file, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, folder / "result.pickle")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _WATCHER, str(folder)])


def _portable(error: Exception) -> Exception:
    """``error`` if it survives a pickle round trip, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - an error that cannot travel travels as text
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
