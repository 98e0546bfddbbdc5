"""Ctrl-C that always stops the command.

Python raises KeyboardInterrupt wherever the main thread is when SIGINT
arrives. MXNet frees NDArrays all the time, and an exception raised inside a
finalizer (``__del__``) is printed as "Exception ignored" and dropped: one
Ctrl-C in many was lost and training went on (seen as a hung test).
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from typing import Iterator

__all__ = ["interrupts_that_land"]

# Seconds between repeats of an interrupt that has not ended the command yet
_REPEAT = 0.5


@contextlib.contextmanager
def interrupts_that_land() -> Iterator[None]:
    """Within: a Ctrl-C raises KeyboardInterrupt, and again every
    ``_REPEAT`` seconds until the block is left; errors of finalizers it
    interrupted are not printed. Outside the main thread, or where SIGINT
    is ignored (a background job), nothing changes."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    left, hook = threading.Event(), sys.unraisablehook

    def repeat() -> None:
        while not left.wait(_REPEAT):
            _thread.interrupt_main()

    def on_interrupt(signum, frame):
        if not interrupted.is_alive() and not left.is_set():
            interrupted.start()
        raise KeyboardInterrupt

    def quiet(unraisable) -> None:
        if not interrupted.is_alive():
            hook(unraisable)

    interrupted = threading.Thread(target=repeat, name="neumf-interrupt", daemon=True)
    signal.signal(signal.SIGINT, on_interrupt)
    sys.unraisablehook = quiet
    try:
        yield
    finally:
        left.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = hook
