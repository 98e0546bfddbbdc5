"""Float32 denormals flushed to zero in every thread that computes
(neumf.cpu): values, not times. Each check runs in a fresh interpreter,
so that MXNet's engine and OpenMP threads exist before neumf is imported."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from neumf.cpu import flushing

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="flush-to-zero is set on Linux x86-64 only")

# A denormal (2e-39) times 1 on MXNet's engine, over a million values so that
# OpenMP threads share the work; then the same in NumPy, and in a new thread.
_PROBE = """
import threading
import numpy as np
import mxnet as mx

def engine():
    x = mx.nd.array(np.full(1 << 20, 2e-39, dtype=np.float32))
    return float(np.abs((x * 1.0).asnumpy()).max())

def host():
    return float((np.full(8, 2e-39, dtype=np.float32) * np.float32(1)).max())

def thread():
    out = []
    worker = threading.Thread(target=lambda: out.append(host()))
    worker.start()
    worker.join()
    return out[0]
"""


def _run(code: str, **env) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_PROBE + code)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


@pytest.mark.slow
def test_mxnet_used_before_import_neumf_flushes_afterwards():
    values = [float(value) for value in _run(
        "print(engine(), host())\nimport neumf\nprint(engine(), host(), thread())")]
    # the engine and OpenMP threads existed, and kept denormals, before the import
    assert values[0] > 0 and values[1] > 0
    assert values[2:] == [0.0, 0.0, 0.0]


@pytest.mark.slow
def test_neumf_imported_first_flushes_mxnets_later_threads():
    assert [float(value) for value in _run("import neumf\nprint(engine(), thread())",
                                           )] == [0.0, 0.0]


@pytest.mark.slow
def test_opting_out_keeps_denormals():
    values = _run("import neumf\nprint(engine(), host())", NEUMF_FLUSH_DENORMALS="0")
    assert all(float(value) > 0 for value in values)


def test_this_process_flushes():
    assert flushing()  # conftest imports neumf before any test runs


_SERVER_UPDATE = """
import numpy as np
import mxnet as mx
store = mx.kv.create("dist_sync")  # the worker does not import neumf: only the server

store.set_optimizer(mx.optimizer.create("sgd", learning_rate=1.0, wd=0.0))
store.init(0, mx.nd.array(np.full(4, 2e-39, dtype=np.float32)))
store.push(0, mx.nd.zeros(4))  # the server computes w - lr * 0
out = mx.nd.ones(4)
store.pull(0, out=out)
print(float(np.abs(out.asnumpy()).max()))
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_parameter_server_that_neumf_launch_starts_flushes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_SERVER_UPDATE)
    done = subprocess.run([sys.executable, "-m", "neumf", "launch", "-n", "1", "-s", "1",
                           "--timeout", "120", "--", sys.executable, str(script)],
                          capture_output=True, text=True, timeout=150,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) == 0.0


@pytest.mark.slow
def test_numpy_float_limits_stay_right_and_quiet():
    # NumPy computes a type's limits on first use; after flush-to-zero it
    # would warn that the smallest subnormal is zero (scipy.linalg asks at
    # import). Its bits, not a comparison: denormals-are-zero compares it as 0
    code = ("import neumf, numpy as np\n"
            "print(np.finfo(np.float64).smallest_subnormal.tobytes() != bytes(8), "
            "np.finfo(np.complex64).tiny)")
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "True"


@pytest.mark.slow
@pytest.mark.parametrize("before, env, expected", [
    ("", {}, "2"),                                            # neumf first: two workers
    ("", {"MXNET_CPU_WORKER_NTHREADS": "1"}, "1"),            # the user's choice stays
    ("import mxnet\n", {}, "None"),                           # too late: MXNet read it
])
def test_mxnet_gets_two_engine_workers_where_nobody_chose(before, env, expected):
    code = before + "import os, neumf\nprint(os.environ.get('MXNET_CPU_WORKER_NTHREADS'))"
    environment = {key: value for key, value in os.environ.items()
                   if key != "MXNET_CPU_WORKER_NTHREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**environment, "PYTHONWARNINGS": "ignore", **env})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == expected
