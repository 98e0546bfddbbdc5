"""neumf.processes: a function run in a second Python process."""

import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from neumf.processes import start

pytestmark = pytest.mark.slow  # each starts a Python process (about a second with MXNet)


class Unpicklable(Exception):
    def __init__(self, a, b):  # two required arguments: pickle cannot rebuild it
        super().__init__(f"{a} and {b}")


def add(a, b):
    return {"sum": a + b, "threads": os.environ["MXNET_CPU_WORKER_NTHREADS"]}


def fail(message):
    raise ValueError(message)


def fail_oddly():
    raise Unpicklable(1, 2)


def warn_then_return(value):
    warnings.warn("careful with this", RuntimeWarning, stacklevel=1)
    return value


def die(code):
    sys.stderr.write("last words before the end\n")
    sys.stderr.flush()
    os._exit(code)


def sleep(seconds):
    time.sleep(seconds)


def test_the_value_comes_back_with_the_threads_asked_for():
    with start(add, 2, 3, threads=2) as worker:
        assert worker.result() == {"sum": 5, "threads": "2"}


def test_an_error_is_raised_again_with_the_childs_traceback():
    with start(fail, "bad value 7", label="tower") as worker, \
            pytest.raises(ValueError, match="bad value 7") as info:
        worker.result()
    cause = str(info.value.__cause__)
    assert "in the tower process" in cause and "def fail" not in cause and "fail" in cause


def test_an_error_that_cannot_travel_comes_as_text():
    with start(fail_oddly) as worker, pytest.raises(RuntimeError, match="Unpicklable: 1 and 2"):
        worker.result()


def test_warnings_are_raised_again_here():
    with start(warn_then_return, 4) as worker, pytest.warns(RuntimeWarning, match="careful"):
        assert worker.result() == 4


def test_a_child_that_dies_is_an_error_that_quotes_it():
    with start(die, 3, label="MLP tower") as worker, \
            pytest.raises(RuntimeError, match="MLP tower process ended .exit code 3.") as info:
        worker.result()
    assert "last words before the end" in str(info.value)


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_leaving_the_block_stops_the_child_and_its_folder():
    with start(sleep, 60) as worker:
        folder, pid = worker._folder, worker.pid
        assert folder.is_dir()
    assert worker._process.poll() is not None and not folder.exists()
    assert _gone(pid, 5)


def test_the_child_dies_with_its_parent(tmp_path):
    program = ("import sys, time; sys.path.insert(0, sys.argv[1]);"
               "from neumf.processes import start; import test_processes as t;"
               "w = start(t.sleep, 60); print(w.pid, flush=True); time.sleep(60)")
    with subprocess.Popen([sys.executable, "-c", program, os.path.dirname(__file__)],
                          stdout=subprocess.PIPE, text=True) as parent:
        child = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)  # no finally, no cleanup: only the pipe closes
        parent.wait(timeout=30)
    assert _gone(child, 10), "the child outlived its parent"
