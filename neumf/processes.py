"""One function of the package run in a second Python process, beside this one.

The child is a fresh interpreter (``python -c``), not a fork:
MXNet's engine threads do not survive a fork, and ``multiprocessing``'s spawn
would import the caller's ``__main__`` again (a script without a main guard
would start its work twice). Arguments and the result travel as pickles in a
private folder; the child's warnings come back and are raised again here, its
exception is raised again here, and it dies with its parent (it watches a
pipe from the parent) or when :meth:`Worker.stop` kills it, as leaving the
``with`` block does, Ctrl-C included.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

__all__ = ["Worker", "start"]

# Lines of the child's stderr quoted when it ends without a result
_STDERR_LINES = 20
# The child's program (not ``-m``: this module is imported by then, which runpy warns of)
_CHILD = "import sys; from neumf.processes import _child; _child(sys.argv[1])"


class Worker:
    """A function running in a child process; :meth:`result` waits for it."""

    def __init__(self, function: Callable, args: tuple, threads: int, label: str):
        self.label = label
        # the child finds the modules this process finds (a notebook's sys.path included)
        path = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
        env = {**os.environ, "MXNET_CPU_WORKER_NTHREADS": str(threads),
               "OMP_NUM_THREADS": str(threads), "PYTHONPATH": path}
        self._folder = Path(tempfile.mkdtemp(prefix="neumf-worker-"))
        try:
            with open(self._folder / "call.pickle", "wb") as file:
                pickle.dump((function.__module__, function.__qualname__, args), file,
                            protocol=pickle.HIGHEST_PROTOCOL)
            # its own session: a terminal's Ctrl-C reaches the parent only, which stops it
            with open(self._folder / "stderr.txt", "wb") as stderr:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _CHILD, str(self._folder)],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr,
                    env=env, start_new_session=True)
        except BaseException:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise

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
        child's traceback as the cause), its death as RuntimeError."""
        code = self._process.wait()
        path = self._folder / "result.pickle"
        if not path.exists():
            raise RuntimeError(f"the {self.label} process ended (exit code {code}) without a "
                               f"result; its last words:\n{self._last_words()}")
        with open(path, "rb") as file:
            outcome, value, caught = pickle.load(file)
        for message, category in caught:
            warnings.warn(message, category, stacklevel=2)
        if outcome == "error":
            error, text = value
            raise error from RuntimeError(f"in the {self.label} process:\n{text}")
        return value

    def stop(self) -> None:
        """Kill the child if it still runs and remove its folder."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process.stdin.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _last_words(self) -> str:
        lines = (self._folder / "stderr.txt").read_text(errors="replace").splitlines()
        return "\n".join(lines[-_STDERR_LINES:]) or "(nothing on stderr)"


def start(function: Callable, *args, threads: int = 1, label: str = "worker") -> Worker:
    """Run ``function(*args)`` (a module-level function, picklable arguments)
    in a new Python process with ``threads`` MXNet and OpenMP threads.

    Use as ``with start(f, x) as worker: ...; value = worker.result()``.
    """
    return Worker(function, args, threads, label)


def _die_with_parent() -> None:
    """Wait for the parent's pipe to close (it ended or stopped us), then end."""
    sys.stdin.buffer.read()
    os._exit(1)


def _child(folder: str) -> None:
    """The child's side: run the call in ``folder``, write its outcome there."""
    folder = Path(folder)
    threading.Thread(target=_die_with_parent, daemon=True).start()
    with open(folder / "call.pickle", "rb") as file:
        module, name, args = pickle.load(file)
    function = importlib.import_module(module)
    for part in name.split("."):
        function = getattr(function, part)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = ("value", function(*args))
        except Exception as error:  # noqa: BLE001 - every error goes back to the parent
            text = traceback.format_exc()
            try:
                pickle.loads(pickle.dumps(error))
            except Exception:  # noqa: BLE001 - an error that cannot travel travels as text
                error = RuntimeError(f"{type(error).__name__}: {error}")
            outcome = ("error", (error, text))
    record = [(str(item.message), item.category) for item in caught]
    partial = folder / "result.pickle.partial"
    with open(partial, "wb") as file:
        pickle.dump((*outcome, record), file, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, folder / "result.pickle")
