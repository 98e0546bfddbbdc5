"""neumf.processes: a function run in a second Python process."""

import gc
import inspect
import os
import signal
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import pytest

import neumf.processes
from neumf.processes import start

pytestmark = pytest.mark.slow  # each starts a Python process (about a second with MXNet)


class Unpicklable(Exception):
    def __init__(self, a, b):  # two required arguments: pickle cannot rebuild it
        super().__init__(f"{a} and {b}")


def add(a, b):
    return {"sum": a + b, "threads": os.environ["MXNET_CPU_WORKER_NTHREADS"],
            "omp": os.environ.get("OMP_NUM_THREADS"), "wait": os.environ.get("OMP_WAIT_POLICY"),
            "cwd": os.getcwd()}


def fail(message):
    raise ValueError(message)


def fail_oddly():
    raise Unpicklable(1, 2)


def warn_then_return(value):
    warnings.warn("careful with this", RuntimeWarning, stacklevel=1)
    return value


def die(code):
    sys.stderr.write("Traceback (most recent call last):\nSomeError: last words\n")
    sys.stderr.flush()
    os._exit(code)


def sleep(seconds):
    time.sleep(seconds)


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_the_value_comes_back_with_the_engine_threads_asked_for(monkeypatch):
    monkeypatch.setattr(neumf.processes, "_STARTED_WITH", types.MappingProxyType({}))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with start(add, 2, 3, threads=2) as worker:
        value = worker.result()
    # OpenMP's threads are left as they are here (the numbers depend on them), told to sleep
    assert value == {"sum": 5, "threads": "2", "omp": None, "wait": "PASSIVE",
                     "cwd": os.getcwd()}


def test_the_child_gets_the_threads_this_process_started_with(monkeypatch):
    started = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}  # the user's, at import
    monkeypatch.setattr(neumf.processes, "_STARTED_WITH", types.MappingProxyType(started))
    monkeypatch.setenv("OMP_NUM_THREADS", "5")  # too late for this process's OpenMP
    with start(add, 2, 3) as worker:
        value = worker.result()
    assert (value["omp"], value["wait"]) == ("3", "ACTIVE")


def test_an_error_is_raised_again_with_the_childs_traceback():
    with start(fail, "bad value 7", label="tower") as worker, \
            pytest.raises(ValueError, match="bad value 7") as info:
        worker.result()
    cause = str(info.value.__cause__)
    assert "in the tower process" in cause and "def fail" not in cause and "fail" in cause


def test_an_error_that_cannot_travel_comes_as_text():
    with start(fail_oddly) as worker, pytest.raises(RuntimeError, match="Unpicklable: 1 and 2"):
        worker.result()


def test_warnings_are_raised_again_as_from_where_they_were_raised():
    line = inspect.getsourcelines(warn_then_return)[1] + 1
    with start(warn_then_return, 4) as worker, \
            pytest.warns(RuntimeWarning, match="careful with this") as caught:
        assert worker.result() == 4
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)
    with start(warn_then_return, 5) as worker, warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", module="test_processes")  # a filter by module holds
        assert worker.result() == 5


def test_a_child_that_dies_says_so_in_its_first_line():
    with start(die, 3, label="MLP tower") as worker, \
            pytest.raises(ChildProcessError) as info:
        worker.result()
    first, *rest = str(info.value).splitlines()
    assert first == "the MLP tower process ended (exit code 3) without a result: " \
                    "SomeError: last words"
    assert "Traceback (most recent call last):" in rest


def test_a_killed_child_is_named_as_killed():
    with start(sleep, 60) as worker, pytest.raises(ChildProcessError, match="killed by SIGKILL"):
        os.kill(worker.pid, signal.SIGKILL)
        worker.result()


def test_leaving_the_block_stops_the_child_and_its_folder():
    with start(sleep, 60) as worker:
        folder, pid = worker._folder, worker.pid
        assert folder.is_dir()
    assert not folder.exists() and _gone(pid, 5)


def test_a_worker_forgotten_is_stopped():
    worker = start(sleep, 60)
    folder, pid = worker._folder, worker.pid
    del worker
    gc.collect()
    assert not folder.exists() and _gone(pid, 5)


def test_the_child_imports_what_the_parent_imports(tmp_path):
    scripts, work = tmp_path / "scripts", tmp_path / "work"
    scripts.mkdir()
    work.mkdir()
    # stray modules where the user stands (python -c would import them first) and
    # beside the script (a child starting with the script's folder on its path would)
    (work / "random.py").write_text("raise SystemExit('the stray random.py was imported')\n")
    (scripts / "types.py").write_text("raise SystemExit('the stray types.py was imported')\n")
    tests = os.path.relpath(os.path.dirname(__file__), work)  # relative to where we stand
    (scripts / "run.py").write_text(
        "import sys\nfrom pathlib import Path\n"
        f"sys.path.insert(0, {tests!r})\n"
        "sys.path.append(Path('/nowhere'))  # a Path: Python's imports skip it\n"
        "from neumf.processes import start\nimport test_processes\n"
        "with start(test_processes.add, 1, 2) as worker:\n"
        "    print(worker.result()['sum'], worker.result()['cwd'])\n")
    done = subprocess.run([sys.executable, str(scripts / "run.py")], cwd=work,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", str(work)]  # and it works where the user stands


def test_the_import_path_goes_across_as_absolute_paths(tmp_path, monkeypatch):
    # the child starts in its own folder: '' and '..' must mean what they mean here
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", "..", Path("lib"), b"bytes", 3])
    assert neumf.processes._import_path() == [str(tmp_path), str(tmp_path.parent),
                                              str(tmp_path / "lib")]


_ORPHAN = """import sys, time
sys.path.insert(0, sys.argv[1])
from neumf.processes import start
import test_processes as t
w = start(t.sleep, 60) if sys.argv[2] == "running" else start(t.add, 1, 2)
while sys.argv[2] == "finished" and not (w._folder / "result.pickle").exists():
    time.sleep(0.05)
print(w.pid, w._folder, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("child", ["running", "finished"])
def test_a_killed_parent_leaves_no_process_and_no_folder(child):
    with subprocess.Popen([sys.executable, "-c", _ORPHAN, os.path.dirname(__file__), child],
                          stdout=subprocess.PIPE, text=True) as parent:
        pid, folder = parent.stdout.readline().split()
        parent.send_signal(signal.SIGKILL)  # no finally, no cleanup: only the pipe closes
        parent.wait(timeout=30)
    assert _gone(int(pid), 10), "the child outlived its parent"
    assert not Path(folder).exists()
